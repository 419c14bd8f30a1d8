"""The emulator's device lifecycle, data and logs, labels, limits, faults and persistence, over HTTP."""

from __future__ import annotations

import hashlib
import io
import os
import time
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from airflow_provider_importexport.emulator import ImportExportEmulator
from airflow_provider_importexport.emulator.processing import SIGNATURE_FILE
from airflow_provider_importexport.logs import LOG_COLUMNS, parse_log
from airflow_provider_importexport.manifest import DeviceOperation, ExportOperation, GlacierImportManifest
from airflow_provider_importexport.status import PROCESSING_FAILURES
from tests.helpers import address, export_manifest, import_manifest


@pytest.fixture
def importexport_emulator(emulator_with_devices: ImportExportEmulator) -> ImportExportEmulator:
    return emulator_with_devices


def new_job(client: Any, bucket: str, **manifest: Any) -> dict[str, Any]:
    """CreateJob for an S3 import into ``bucket`` (manifest fields as keyword arguments)."""
    manifest_text = import_manifest(bucket, **manifest).to_yaml()
    return dict(client.create_job(JobType="Import", Manifest=manifest_text, ValidateOnly=False))


def status(client: Any, job_id: str) -> tuple[str, str]:
    answer = client.get_status(JobId=job_id)
    return answer["LocationCode"], answer["ProgressCode"]


def write_device(root: Path, files: dict[str, bytes], signature: str | None) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for relative, data in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(data)
    if signature is not None:
        (root / SIGNATURE_FILE).write_text(signature)


def test_full_import_through_every_stage(
    emulator: ImportExportEmulator, client: Any, s3: Any, bucket: str, devices: Path
) -> None:
    manifest = import_manifest(
        bucket,
        device_id="disk-import",
        prefix="data/",
        log_prefix="logs/",
        ignore=[r"\.tmp$"],
        substitutions={"raw": "cooked"},
        content_types={"dat": "application/x-data"},
    )
    job = client.create_job(JobType="Import", Manifest=manifest.to_yaml(), ValidateOnly=False)
    job_id = job["JobId"]
    files = {"raw/a.dat": b"alpha", "b.txt": b"bravo!", "scratch.tmp": b"ignored", "deep/er/c.csv": b"1,2\n"}
    write_device(devices / "disk-import", files, job["SignatureFileContents"])

    seen = [status(client, job_id)]
    emulator.admin.act(job_id, "ship")
    emulator.admin.act(job_id, "receive")
    seen.append(status(client, job_id))
    emulator.admin.act(job_id, "start")
    seen.append(status(client, job_id))
    emulator.admin.act(job_id, "process")
    seen.append(status(client, job_id))
    emulator.admin.act(job_id, "return", carrier="UPS", tracking_number="1Z999")
    final = client.get_status(JobId=job_id)
    seen.append((final["LocationCode"], final["ProgressCode"]))
    assert seen == [
        ("NotReceived", "Pending"),
        ("AtAWS", "Pending"),
        ("AtAWS", "InProgress"),
        ("AtAWS", "Complete"),
        ("Returned", "Complete"),
    ]
    assert (final["Carrier"], final["TrackingNumber"], final["ErrorCount"]) == ("UPS", "1Z999", 0)
    assert "UPS" in final["LocationMessage"] and "1Z999" in final["LocationMessage"]
    assert (final["LogBucket"], final["LogKey"]) == (bucket, f"logs/import-log-{job_id}")
    assert f"logs/import-log-{job_id}" in final["ProgressMessage"]

    objects = {o["Key"]: o for o in s3.list_objects_v2(Bucket=bucket, Prefix="data/")["Contents"]}
    assert sorted(objects) == ["data/b.txt", "data/cooked/a.dat", "data/deep/er/c.csv"]
    head = s3.head_object(Bucket=bucket, Key="data/cooked/a.dat")
    assert head["ContentType"] == "application/x-data"
    assert s3.get_object(Bucket=bucket, Key="data/b.txt")["Body"].read() == b"bravo!"

    log_text = s3.get_object(Bucket=bucket, Key=final["LogKey"])["Body"].read().decode()
    assert log_text.splitlines()[0] == ",".join(LOG_COLUMNS)
    rows = {r["File"]: r for r in parse_log(log_text)}
    assert (rows["SIGNATURE"]["Status"], rows["SIGNATURE"]["Code"]) == ("103", "Ignored")
    assert rows["scratch.tmp"]["Code"] == "Ignored"
    assert rows["b.txt"]["Key"] == f"{bucket}/data/b.txt"
    assert rows["b.txt"]["Bytes"] == "6"
    assert rows["b.txt"]["MD5"] == hashlib.md5(b"bravo!").hexdigest()


def test_bad_files_make_success_with_errors(
    emulator: ImportExportEmulator, client: Any, s3: Any, bucket: str, devices: Path
) -> None:
    job = new_job(client, bucket, device_id="disk-bad")
    root = devices / "disk-bad"
    write_device(
        root,
        {"good.txt": b"ok", "/".join(["d" * 240] * 5) + ".txt": b"a key over S3's 1024 bytes"},
        job["SignatureFileContents"],
    )
    os.symlink(root / "missing-target", root / "broken-link")
    (root / os.fsdecode(b"caf\xe9.txt")).write_bytes(b"latin-1 name")
    emulator.admin.act(job["JobId"], "receive")
    emulator.admin.act(job["JobId"], "process")
    final = client.get_status(JobId=job["JobId"])
    assert final["ProgressCode"] == "SuccessWithErrors"
    assert final["ErrorCount"] == 3
    rows = parse_log(s3.get_object(Bucket=bucket, Key=final["LogKey"])["Body"].read().decode())
    codes = sorted(r["Code"].split(":")[0] for r in rows if r["Status"] not in ("200", "103"))
    assert codes == ["DeviceReadError", "InvalidFileName", "KeyTooLongError"]


@pytest.mark.parametrize(
    ("signature", "expected"), [(None, "MissingSignature"), ("version:2.0\njobId:WRONG\n", "InvalidSignature")]
)
def test_signature_checks(
    emulator: ImportExportEmulator, client: Any, bucket: str, devices: Path, signature: str | None, expected: str
) -> None:
    job_id = new_job(client, bucket, device_id="disk-sig")["JobId"]
    write_device(devices / "disk-sig", {"a.txt": b"a"}, signature)
    emulator.admin.act(job_id, "receive")
    emulator.admin.act(job_id, "process")
    assert status(client, job_id) == ("AtAWS", expected)
    emulator.admin.act(job_id, "return")
    assert status(client, job_id) == ("Returned", expected)


def test_full_export(emulator: ImportExportEmulator, client: Any, s3: Any, make_bucket: Any, devices: Path) -> None:
    source, logs = make_bucket("source"), make_bucket("logs")
    for key in ("images/a.jpg", "images/b.jpg", "images/m.jpg", "images/z.jpg", "docs/readme.txt", "bad//name"):
        s3.put_object(Bucket=source, Key=key, Body=key.encode())
    manifest = export_manifest(
        source,
        logs,
        device_id="disk-export",
        operations=[
            ExportOperation(
                export_bucket=source, prefix="images/", begin_marker="images/a.jpg", end_marker="images/m.jpg"
            ),
            ExportOperation(export_bucket=source, prefix="docs/", target_directory="documents"),
            ExportOperation(export_bucket=source, prefix="bad"),
        ],
    )
    job = client.create_job(JobType="Export", Manifest=manifest.to_yaml(), ValidateOnly=False)
    root = devices / "disk-export"
    write_device(root, {}, job["SignatureFileContents"])
    for action in ("receive", "start", "process", "return"):
        emulator.admin.act(job["JobId"], action)
    final = client.get_status(JobId=job["JobId"])
    assert (final["LocationCode"], final["ProgressCode"]) == ("Returned", "Complete")
    assert (root / source / "images/b.jpg").read_bytes() == b"images/b.jpg"
    assert (root / source / "images/m.jpg").exists()
    assert not (root / source / "images/a.jpg").exists()  # beginMarker is exclusive
    assert not (root / source / "images/z.jpg").exists()  # after endMarker
    assert (root / "documents" / source / "docs/readme.txt").exists()
    assert (root / "EXPORT-RECOVERY/0000/0000").read_bytes() == b"bad//name"
    assert final["LogKey"] == f"export-log-{job['JobId']}"
    rows = parse_log(s3.get_object(Bucket=logs, Key=final["LogKey"])["Body"].read().decode())
    assert len(rows) == 4
    assert all(r["Status"] == "200" for r in rows)


def test_glacier_import_writes_the_documented_log(
    emulator: ImportExportEmulator, client: Any, s3: Any, bucket: str, devices: Path
) -> None:
    manifest = GlacierImportManifest(
        device_id="disk-glacier",
        log_bucket=bucket,
        operations=[
            DeviceOperation(
                destination="glacier", region="us-east-1", vault_name="archive", archive_comment="old scans"
            )
        ],
        return_address=address(),
    )
    job = client.create_job(JobType="Import", Manifest=manifest.to_yaml(), ValidateOnly=False)
    assert job["ArtifactList"][0]["URL"].endswith(f"signature-{job['JobId']}.pdf")
    write_device(devices / "disk-glacier", {"image.bin": b"\x00" * 64}, None)
    emulator.admin.act(job["JobId"], "receive")
    emulator.admin.act(job["JobId"], "process")
    final = client.get_status(JobId=job["JobId"])
    assert final["ProgressCode"] == "Complete"
    lines = s3.get_object(Bucket=bucket, Key=final["LogKey"])["Body"].read().decode().splitlines()
    assert len(lines) == 2
    assert ",archive,/123456789012/vaults/archive/archives/" in lines[1]
    assert lines[1].endswith(",old scans")


@pytest.mark.parametrize("outcome", sorted(c.value for c in PROCESSING_FAILURES))
def test_each_failure_outcome(emulator: ImportExportEmulator, client: Any, bucket: str, outcome: str) -> None:
    job_id = new_job(client, bucket)["JobId"]
    emulator.admin.act(job_id, "receive")
    emulator.admin.act(job_id, "process", outcome=outcome)
    answer = client.get_status(JobId=job_id)
    assert answer["ProgressCode"] == outcome
    assert "aborted" in answer["ProgressMessage"]
    assert "LogKey" not in answer
    with pytest.raises(client.exceptions.UnableToCancelJobIdException):
        client.cancel_job(JobId=job_id)


def test_lifecycle_rules_refuse_wrong_steps(emulator: ImportExportEmulator, client: Any, bucket: str) -> None:
    from airflow_provider_importexport.emulator.client import AdminError

    job_id = new_job(client, bucket)["JobId"]
    with pytest.raises(AdminError, match="Cannot return job"):
        emulator.admin.act(job_id, "return")
    with pytest.raises(AdminError, match="Unknown outcome"):
        emulator.admin.act(job_id, "process", outcome="Teleported")


def test_cancel_rule_switch() -> None:
    with ImportExportEmulator(cancel_rule="until-complete") as emulator:
        client = boto3.client("importexport", endpoint_url=emulator.endpoint_url, region_name="us-east-1")
        emulator.admin.create_bucket("cancel-rule-bucket")
        job_id = new_job(client, "cancel-rule-bucket")["JobId"]
        emulator.admin.act(job_id, "receive")
        emulator.admin.act(job_id, "start")
        assert client.cancel_job(JobId=job_id)["Success"] is True
        assert client.list_jobs()["Jobs"][0]["IsCanceled"] is True


def test_canceled_job_answers(client: Any, bucket: str) -> None:
    job_id = new_job(client, bucket)["JobId"]
    client.cancel_job(JobId=job_id)
    assert status(client, job_id) == ("NotReceived", "Canceled")
    for call in (
        lambda: client.cancel_job(JobId=job_id),
        lambda: client.get_shipping_label(jobIds=[job_id]),
        lambda: client.update_job(
            JobId=job_id, JobType="Import", Manifest=import_manifest(bucket).to_yaml(), ValidateOnly=False
        ),
    ):
        with pytest.raises(client.exceptions.CanceledJobIdException):
            call()


def test_ended_job_status_error_switch() -> None:
    with ImportExportEmulator(ended_job_status="error") as emulator:
        client = boto3.client("importexport", endpoint_url=emulator.endpoint_url, region_name="us-east-1")
        emulator.admin.create_bucket("ended-status-bucket")
        job_id = new_job(client, "ended-status-bucket")["JobId"]
        client.cancel_job(JobId=job_id)
        with pytest.raises(client.exceptions.CanceledJobIdException):
            client.get_status(JobId=job_id)


def test_shipping_labels_are_valid_pdfs(client: Any, bucket: str) -> None:
    from pypdf import PdfReader

    first = new_job(client, bucket)["JobId"]
    second = new_job(client, bucket, device_id="d2")["JobId"]
    url = client.get_shipping_label(
        jobIds=[first, second], name="Label Sender", street1="9 Dock Road", city="Portland", stateOrProvince="OR",
        postalCode="97201", country="US", phoneNumber="503-555-0101",
    )["ShippingLabelURL"]  # fmt: skip
    with urllib.request.urlopen(url) as response:
        text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(response.read())).pages)
    for expected in (f"JOBID {first}", f"JOBID {second}", "Label Sender", "9 Dock Road", "AWS Import/Export"):
        assert expected in text
    with pytest.raises(client.exceptions.InvalidAddressException):
        client.get_shipping_label(jobIds=[first], name="No Street", city="Portland", country="US")


def test_daily_quota(emulator: ImportExportEmulator, client: Any, bucket: str) -> None:
    emulator.backend.config.daily_create_quota = 2
    manifest = import_manifest(bucket).to_yaml()
    client.create_job(JobType="Import", Manifest=manifest, ValidateOnly=False)
    client.create_job(JobType="Import", Manifest=manifest, ValidateOnly=True)  # uses no quota
    client.create_job(JobType="Import", Manifest=manifest, ValidateOnly=False)
    with pytest.raises(client.exceptions.CreateJobQuotaExceededException):
        client.create_job(JobType="Import", Manifest=manifest, ValidateOnly=False)
    emulator.admin.advance_clock(86400)
    assert client.create_job(JobType="Import", Manifest=manifest, ValidateOnly=False)["JobId"]


def test_expiry_then_purge(emulator: ImportExportEmulator, client: Any, bucket: str) -> None:
    job_id = new_job(client, bucket)["JobId"]
    emulator.admin.advance_clock(29 * 86400)
    assert status(client, job_id) == ("NotReceived", "Pending")
    emulator.admin.advance_clock(2 * 86400)
    assert status(client, job_id) == ("NotReceived", "Expired")
    with pytest.raises(client.exceptions.ExpiredJobIdException):
        client.cancel_job(JobId=job_id)
    emulator.admin.advance_clock(8 * 86400)
    with pytest.raises(client.exceptions.ExpiredJobIdException):
        client.get_status(JobId=job_id)
    assert client.list_jobs()["Jobs"] == []


def test_shipped_devices_do_not_expire(emulator: ImportExportEmulator, client: Any, bucket: str) -> None:
    job_id = new_job(client, bucket)["JobId"]
    emulator.admin.act(job_id, "ship")
    emulator.admin.advance_clock(40 * 86400)
    assert status(client, job_id) == ("NotReceived", "Pending")


def test_time_profile_drives_jobs(emulator: ImportExportEmulator, client: Any, bucket: str, devices: Path) -> None:
    emulator.admin.set_profile("fast")
    job = new_job(client, bucket, device_id="disk-auto")
    write_device(devices / "disk-auto", {"x.txt": b"x"}, job["SignatureFileContents"])
    seen = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        current = status(client, job["JobId"])
        if not seen or seen[-1] != current:
            seen.append(current)
        if current[0] == "Returned":
            break
        time.sleep(0.05)
    assert seen[0] == ("NotReceived", "Pending")
    assert seen[-1] == ("Returned", "Complete")
    assert set(seen) <= {
        ("NotReceived", "Pending"),
        ("AtAWS", "Pending"),
        ("AtAWS", "InProgress"),
        ("AtAWS", "Complete"),
        ("Returned", "Complete"),
    }


def test_fault_rates_match_configuration(emulator: ImportExportEmulator) -> None:
    client = boto3.client(
        "importexport",
        endpoint_url=emulator.endpoint_url,
        region_name="us-east-1",
        config=Config(retries={"total_max_attempts": 1}),
    )
    emulator.admin.set_faults(throttle_rate=0.2, error_503_rate=0.1, seed=42)
    outcomes = {"ok": 0, "Throttling": 0, "ServiceUnavailable": 0}
    for _ in range(400):
        try:
            client.list_jobs()
            outcomes["ok"] += 1
        except client.exceptions.ClientError as error:
            outcomes[error.response["Error"]["Code"]] += 1
    # binomial(400, p) within four standard deviations of its mean
    assert 48 <= outcomes["Throttling"] <= 112
    assert 16 <= outcomes["ServiceUnavailable"] <= 64
    counts = emulator.admin.fault_counts()
    assert counts["throttle"] == outcomes["Throttling"]
    emulator.admin.set_faults(throttle_rate=0.2, error_503_rate=0.1, seed=42)  # same seed, same faults
    again = {"Throttling": 0}
    for _ in range(400):
        try:
            client.list_jobs()
        except client.exceptions.ClientError as error:
            again[error.response["Error"]["Code"]] = again.get(error.response["Error"]["Code"], 0) + 1
    assert again["Throttling"] == outcomes["Throttling"]


def test_latency_fault(emulator: ImportExportEmulator, client: Any) -> None:
    emulator.admin.set_faults(latency_ms=300)
    started = time.monotonic()
    client.list_jobs()
    assert time.monotonic() - started >= 0.3


def test_restart_with_state_file_keeps_jobs(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    with ImportExportEmulator(state_file=str(state)) as first:
        client = boto3.client("importexport", endpoint_url=first.endpoint_url, region_name="us-east-1")
        first.admin.create_bucket("restart-bucket")
        job_id = new_job(client, "restart-bucket")["JobId"]
        first.admin.act(job_id, "receive")
        canceled = new_job(client, "restart-bucket")["JobId"]
        client.cancel_job(JobId=canceled)
    with ImportExportEmulator(state_file=str(state)) as second:
        client = boto3.client("importexport", endpoint_url=second.endpoint_url, region_name="us-east-1")
        assert status(client, job_id) == ("AtAWS", "Pending")
        listed = {j["JobId"]: j["IsCanceled"] for j in client.list_jobs()["Jobs"]}
        assert listed == {job_id: False, canceled: True}
        assert [j["JobId"] for j in client.list_jobs()["Jobs"]] == [canceled, job_id]


def test_a_received_job_cannot_expire(emulator: ImportExportEmulator, client: Any, bucket: str) -> None:
    """Only a job whose device never arrived expires; one at AWS, even still Pending, does not."""
    from airflow_provider_importexport.emulator.client import AdminError

    job_id = new_job(client, bucket)["JobId"]
    emulator.admin.act(job_id, "receive")
    with pytest.raises(AdminError, match="Cannot expire job"):
        emulator.admin.act(job_id, "expire")
    assert status(client, job_id) == ("AtAWS", "Pending")


@pytest.mark.parametrize("folder", ["none", "removed"])
def test_a_chosen_outcome_needs_no_device_folder(
    emulator: ImportExportEmulator, client: Any, bucket: str, tmp_path: Path, folder: str
) -> None:
    """admin process outcome=... plays the result without data, also when an attached folder has gone."""
    job_id = new_job(client, bucket)["JobId"]
    if folder == "removed":
        gone = tmp_path / "unplugged"
        gone.mkdir()
        emulator.admin.act(job_id, "attach", path=str(gone))
        gone.rmdir()
    emulator.admin.act(job_id, "receive")
    emulator.admin.act(job_id, "process", outcome="Complete")
    assert status(client, job_id) == ("AtAWS", "Complete")


def test_a_transfer_that_fails_unexpectedly_aborts_its_job_alone(
    emulator: ImportExportEmulator, client: Any, s3: Any, make_bucket: Any, devices: Path
) -> None:
    """A bug or an S3 failure mid-transfer must not leave the job InProgress (every later look would fail
    again): it ends aborted with the reason, and the next job is processed as usual."""
    doomed_bucket, good_bucket = make_bucket("doomed"), make_bucket("good")
    doomed = client.create_job(
        JobType="Import", Manifest=import_manifest(doomed_bucket, device_id="d1").to_yaml(), ValidateOnly=False
    )
    write_device(devices / "d1", {"a.txt": b"alpha"}, doomed["SignatureFileContents"])
    s3.delete_bucket(Bucket=doomed_bucket)  # the import's bucket (and its log's) vanish before the transfer
    emulator.admin.act(doomed["JobId"], "receive")
    emulator.admin.act(doomed["JobId"], "process")
    answer = client.get_status(JobId=doomed["JobId"])
    assert (answer["LocationCode"], answer["ProgressCode"]) == ("AtAWS", "DeviceError")
    assert "failed while processing it (NoSuchBucket" in answer["ProgressMessage"]

    fine = client.create_job(
        JobType="Import", Manifest=import_manifest(good_bucket, device_id="d2").to_yaml(), ValidateOnly=False
    )
    write_device(devices / "d2", {"b.txt": b"bravo"}, fine["SignatureFileContents"])
    emulator.admin.act(fine["JobId"], "receive")
    emulator.admin.act(fine["JobId"], "process")
    assert status(client, fine["JobId"]) == ("AtAWS", "Complete")


def test_the_default_quota_is_the_services_fifty_a_day(client: Any, bucket: str) -> None:
    manifest = import_manifest(bucket).to_yaml()
    for _ in range(50):
        client.create_job(JobType="Import", Manifest=manifest, ValidateOnly=False)
    with pytest.raises(client.exceptions.CreateJobQuotaExceededException, match="created 50 jobs today"):
        client.create_job(JobType="Import", Manifest=manifest, ValidateOnly=False)


def test_a_restart_clears_what_a_killed_save_left_and_keeps_other_files(tmp_path: Path) -> None:
    """kill -9 during a save leaves its temporary files (dot-named, beside the state file and among the
    S3 bodies); the next start removes them, and only them."""
    state = tmp_path / "state.json"
    bodies = tmp_path / "state.json.s3"
    bodies.mkdir()
    left_over = [tmp_path / ".state.json.k1ll3d", bodies / ".b0dy-half-written"]
    kept = [tmp_path / "notes.txt", tmp_path / ".other.json.x"]
    for path in (*left_over, *kept):
        path.write_text("x")
    with ImportExportEmulator(state_file=str(state)):
        assert [path.exists() for path in left_over] == [False, False]
        assert [path.exists() for path in kept] == [True, True]


def test_a_snapshot_drops_the_bodies_of_deleted_objects(tmp_path: Path) -> None:
    """The state file's S3 bodies folder holds what S3 holds: a deleted object's body goes with the next
    snapshot (a restart writes one), or the folder would grow forever."""
    state = tmp_path / "state.json"
    bodies = tmp_path / "state.json.s3"
    with ImportExportEmulator(state_file=str(state)) as first:
        client = boto3.client("importexport", endpoint_url=first.endpoint_url, region_name="us-east-1")
        s3 = boto3.client("s3", endpoint_url=first.endpoint_url, region_name="us-east-1")
        first.admin.create_bucket("snap-bucket")
        s3.put_object(Bucket="snap-bucket", Key="kept.txt", Body=b"kept body")
        s3.put_object(Bucket="snap-bucket", Key="gone.txt", Body=b"a body to delete")
        new_job(client, "snap-bucket")  # the first change after start: a snapshot with both bodies
        assert len([b for b in bodies.iterdir() if not b.name.startswith(".")]) == 2
        s3.delete_object(Bucket="snap-bucket", Key="gone.txt")
    with ImportExportEmulator(state_file=str(state)) as second:
        client = boto3.client("importexport", endpoint_url=second.endpoint_url, region_name="us-east-1")
        new_job(client, "snap-bucket")  # a snapshot again
        assert len([b for b in bodies.iterdir() if not b.name.startswith(".")]) == 1
        s3 = boto3.client("s3", endpoint_url=second.endpoint_url, region_name="us-east-1")
        assert s3.get_object(Bucket="snap-bucket", Key="kept.txt")["Body"].read() == b"kept body"
