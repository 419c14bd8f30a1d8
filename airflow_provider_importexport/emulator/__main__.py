"""Command line: ``importexport-emulator [serve options]`` and ``importexport-emulator admin ...``."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from typing import Any

try:
    from airflow_provider_importexport.emulator.admission import DAILY_CREATE_QUOTA
    from airflow_provider_importexport.emulator.auth import DEFAULT_ACCOUNT, Account
    from airflow_provider_importexport.emulator.client import TOKEN_ENV, AdminError, EmulatorAdmin
    from airflow_provider_importexport.emulator.faults import FaultConfig
    from airflow_provider_importexport.emulator.lifecycle import PROFILES, LifecycleProfile
    from airflow_provider_importexport.emulator.server import EmulatorServer, EmulatorSettings
    from airflow_provider_importexport.emulator.state import CancelRule
except ModuleNotFoundError as missing:  # moto, werkzeug, fpdf2, uvicorn, httptools, a2wsgi: the [emulator] extra
    module = (missing.name or "airflow_provider_importexport").partition(".")[0]
    if module == "airflow_provider_importexport":
        raise
    print(
        "The emulator needs the [emulator] extra: pip install 'airflow-provider-importexport[emulator]' "
        f"(missing: {module})",
        file=sys.stderr,
    )
    raise SystemExit(2) from None


def serve_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="importexport-emulator",
        description="Local AWS Import/Export emulator (with moto S3 on the same endpoint). "
        "Use 'importexport-emulator admin --help' to drive running jobs.",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default: 127.0.0.1); any address beyond loopback needs --admin-token",
    )
    parser.add_argument("--port", type=int, default=5050, help="port to bind; 0 picks a free one (default: 5050)")
    parser.add_argument(
        "--account",
        action="append",
        default=[],
        metavar="ACCESS_KEY:SECRET_KEY[:ACCOUNT_ID]",
        help="an extra account (repeatable); AWS's documentation example key pair is always account 123456789012",
    )
    parser.add_argument("--profile", default="manual", choices=sorted(PROFILES), help="lifecycle time profile")
    parser.add_argument(
        "--cancel-rule", default=CancelRule.BEFORE_TRANSFER.value, choices=[r.value for r in CancelRule]
    )
    parser.add_argument("--devices-dir", help="folder whose sub-folders, named by a manifest's deviceId, are devices")
    parser.add_argument("--state-file", help="JSON file keeping jobs across restarts")
    parser.add_argument("--daily-create-quota", type=int, default=DAILY_CREATE_QUOTA)
    parser.add_argument(
        "--ended-job-status",
        default="progress",
        choices=["progress", "error"],
        help="GetStatus on canceled/expired jobs: ProgressCode (default) or the model's error",
    )
    parser.add_argument(
        "--faults", default="{}", help='fault rates as JSON, e.g. \'{"throttle_rate": 0.1, "seed": 1}\''
    )
    parser.add_argument("--verbose", action="store_true", help="log every request")
    _add_token_option(
        parser, "the admin API then requires it (Authorization: Bearer TOKEN); required with a --host beyond loopback"
    )
    return parser


def _add_token_option(parser: argparse.ArgumentParser, effect: str) -> None:
    parser.add_argument(
        "--admin-token",
        default=os.environ.get(TOKEN_ENV) or None,
        metavar="TOKEN",
        help=f"admin API token (default: ${TOKEN_ENV}, which keeps it out of the process list); {effect}",
    )


def settings_from(args: argparse.Namespace) -> EmulatorSettings:
    extra = [Account.parse(text, i) for i, text in enumerate(args.account, start=1)]
    return EmulatorSettings(
        host=args.host,
        port=args.port,
        accounts=[DEFAULT_ACCOUNT, *(a for a in extra if a.access_key != DEFAULT_ACCOUNT.access_key)],
        profile=LifecycleProfile.named(args.profile),
        cancel_rule=CancelRule(args.cancel_rule),
        devices_dir=args.devices_dir,
        state_file=args.state_file,
        faults=FaultConfig.from_dict(_json_object(args.faults, "--faults")),
        daily_create_quota=args.daily_create_quota,
        ended_job_status=args.ended_job_status,
        verbose=args.verbose,
        admin_token=args.admin_token,
    )


def _json_object(text: str, option: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as err:
        raise ValueError(f"{option} takes a JSON object: {err}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{option} takes a JSON object such as '{{\"throttle_rate\": 0.1}}', got {text!r}")
    return value


def serve(argv: list[str]) -> int:
    args = serve_parser().parse_args(argv)
    try:
        settings = settings_from(args)
    except (ValueError, TypeError) as err:
        serve_parser().error(str(err))
    try:
        server = EmulatorServer(settings)
    except OSError as err:
        serve_parser().error(f"cannot listen on {settings.host}:{settings.port}: {err.strerror or err}")
    except ValueError as err:  # e.g. an unusable --state-file, named with its fix
        serve_parser().error(str(err))
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    if server.exposure_warning:
        print(server.exposure_warning, file=sys.stderr, flush=True)
    print(f"importexport-emulator ready on {server.endpoint_url} (profile {args.profile})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.backend.save()
    return 0


def admin(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="importexport-emulator admin", description="Drive a running emulator.")
    parser.add_argument(
        "--endpoint-url", default="http://127.0.0.1:5050", help="the emulator's URL (default: %(default)s)"
    )
    _add_token_option(parser, "needed when the emulator was started with one")
    sub = parser.add_subparsers(dest="command", required=True)
    steps = {
        "ship": "mark a job's device as shipped (it is still NotReceived)",
        "receive": "the device arrives at AWS: NotReceived/Pending -> AtAWS/Pending",
        "start": "start the data transfer: AtAWS/Pending -> AtAWS/InProgress",
        "expire": "expire a job whose device never arrived (ProgressCode Expired)",
    }
    for action, text in steps.items():
        sub.add_parser(action, help=text).add_argument("job_id", help="the JobId")
    process = sub.add_parser("process", help="run the data transfer, optionally forcing an outcome")
    process.add_argument("job_id", help="the JobId")
    process.add_argument("--outcome", help="Complete, SuccessWithErrors or a failure ProgressCode")
    process.add_argument("--error-count", type=int, help="the ErrorCount of a SuccessWithErrors outcome")
    ret = sub.add_parser("return", help="ship the device back")
    ret.add_argument("job_id", help="the JobId")
    ret.add_argument("--carrier", default="UPS", help="the carrier shown in GetStatus (default: %(default)s)")
    ret.add_argument("--tracking-number", help="the TrackingNumber (default: a made-up one)")
    attach = sub.add_parser("attach", help="use a folder as the job's device")
    attach.add_argument("job_id", help="the JobId")
    attach.add_argument("path", help="the folder that holds the device's files")
    sub.add_parser("jobs", help="list every job")
    sub.add_parser("status", help="one job's status (secrets masked)").add_argument("job_id", help="the JobId")
    faults = sub.add_parser("faults", help="set fault rates")
    faults.add_argument("settings", help="JSON, e.g. '{\"error_503_rate\": 0.2}'")
    clock = sub.add_parser("clock", help="move the emulator's clock forward")
    clock.add_argument("seconds", type=float, help="how far, in seconds")
    bucket = sub.add_parser("create-bucket", help="create an S3 bucket on the emulator's endpoint")
    bucket.add_argument("bucket", help="the bucket's name")
    bucket.add_argument("--region", default="us-east-1", help="its region (default: %(default)s)")
    bucket.add_argument("--access-key", help="the owning account's access key (default: the default account)")
    args = parser.parse_args(argv)
    client = EmulatorAdmin(args.endpoint_url, token=args.admin_token or "")
    try:
        result = _run_admin(client, args)
    except (AdminError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, default=str))
    return 0


def _run_admin(client: EmulatorAdmin, args: argparse.Namespace) -> Any:
    command = args.command
    if command in ("ship", "receive", "start", "expire"):
        return client.act(args.job_id, command)
    if command == "process":
        options = {k: v for k, v in {"outcome": args.outcome, "error_count": args.error_count}.items() if v is not None}
        return client.act(args.job_id, "process", **options)
    if command == "return":
        return client.act(args.job_id, "return", carrier=args.carrier, tracking_number=args.tracking_number)
    if command == "attach":
        return client.act(args.job_id, "attach", path=args.path)
    if command == "jobs":
        return client.jobs()
    if command == "status":
        return client.job(args.job_id)
    if command == "faults":
        return client.set_faults(**_json_object(args.settings, "faults"))
    if command == "clock":
        return client.advance_clock(args.seconds)
    return client.create_bucket(args.bucket, args.region, args.access_key)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["admin"]:
        return admin(argv[1:])
    return serve(argv)


if __name__ == "__main__":
    sys.exit(main())
