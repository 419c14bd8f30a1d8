"""The fault suite (`make chaos`): job lifecycles under faults, with the guarantees counted.

Runs many whole job lifecycles concurrently against one emulator process that throttles, fails,
loses answers after doing the work, and stalls; each lifecycle goes through the real parts:

- the create operator's own ``execute()`` (validation, duplicate guard, task state store,
  SIGNATURE on the device), attempt after attempt as Airflow retries a task (a fresh operator
  per try, the same run identity, one state store per task run);
- the real ``ImportExportJobTrigger.run()`` in one event loop, until the job's final state.

Three phases: ``faults`` (the rates below), ``kill`` (the emulator is killed with SIGKILL mid-run
and restarted from its state file on the same port), ``retrigger`` (some waits are cancelled
mid-wait and re-created from ``serialize()``, as a triggerer restart does).

What it counts comes from the emulator's own records: the jobs carrying each run marker
(duplicates), the CreateJob requests carried out, the faults injected by kind, each job's final
state (what each wait should have answered). It prints a table per phase, writes
``docs/reliability.md`` and ends with one line:
``chaos: jobs=<N> created=<N> duplicates=<N> waits=<N> ended_ok=<N> lost=<N>``.
Exits non-zero when a duplicate or a lost wait was seen, or fewer jobs were created than intended.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import importlib
import json
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from script_env import fake_aws_environment

ROOT = Path(__file__).resolve().parents[1]
#: Lifecycles are spread over accounts, as the service's 50-jobs-a-day quota spreads real ones:
#: a retried create task looks through its own account's recent jobs only.
ACCOUNTS = 20
MARKER = re.compile(r"airflow-importexport:[0-9a-f]{20}")
#: 20 % throttling, 5 % HTTP 5xx, 2 % answers lost after the work was done, latency spikes.
FAULTS = {
    "throttle_rate": 0.20,
    "error_500_rate": 0.02,
    "error_503_rate": 0.02,
    "error_500_html_rate": 0.01,
    "drop_after_rate": 0.01,
    "error_500_after_rate": 0.005,
    "error_500_html_after_rate": 0.005,
    "latency_spike_rate": 0.01,
    "latency_spike_ms": 8000,
    "seed": 2026,
}
#: Seconds per automatic stage after the device arrives. The harness ships each device once its
#: create task has finished (SIGNATURE written), as people do: an automatic arrival a few seconds
#: after CreateJob could beat a retried create task, which no real shipment can.
PROFILE = {"start_after": 1.0, "process_after": 1.0}
#: A wait is on time when it ends within this long after its job's final state was due
#: (arrival + start + processing): one poll interval, plus retries through faults and restarts.
ON_TIME_SLACK = 30.0
MAX_TRIES = 8  # the create task's retries: Airflow would retry a failed attempt this often
#: The create task's retry_delay. It must outlast any request an earlier try left in flight (here
#: the longest stall, a latency spike): a request the client gave up on can still create its job
#: later, after the retry looked for it. Airflow's default retry_delay (5 minutes) is far longer
#: than botocore's 60 s read timeout; the README says so.
RETRY_DELAY = FAULTS["latency_spike_ms"] / 1000 + 2.0
WAITER_DELAY = 5.0
#: The connection's read timeout: a latency spike beyond it is an answer lost in transit.
READ_TIMEOUT = 6.0


def account_keys(account: int) -> tuple[str, str, str]:
    """Access key, secret key and account id of one of the emulator's chaos accounts."""
    return f"AKIACHAOS{account:011d}", f"chaos-secret-{account}", f"{900000000000 + account}"


def conn_id(account: int) -> str:
    return f"chaos_{account}"


def buckets(account: int) -> tuple[str, str]:
    return f"chaos-data-{account}", f"chaos-logs-{account}"


def setup_environment(home: Path, endpoint: str) -> None:
    """Fake credentials and a throwaway Airflow home, before Airflow is imported."""
    for account in range(ACCOUNTS):
        access_key, secret_key, _ = account_keys(account)
        os.environ[f"AIRFLOW_CONN_{conn_id(account).upper()}"] = json.dumps(
            {
                "conn_type": "aws",
                "login": access_key,
                "password": secret_key,
                "extra": {
                    "endpoint_url": endpoint,
                    "region_name": "us-east-1",
                    "config_kwargs": {"read_timeout": READ_TIMEOUT, "connect_timeout": 2},
                    "service_config": {
                        "importexport": {"retry_policy": {"max_attempts": 6, "initial_delay": 0.2, "max_delay": 2}}
                    },
                },
            }
        )
    os.environ.update(
        fake_aws_environment(
            AIRFLOW_HOME=str(home / "airflow"),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__LOGGING__LOGGING_LEVEL="ERROR",  # thousands of retry warnings are expected here
        )
    )


# --- the emulator process ---------------------------------------------------------------------------


class EmulatorProcess:
    """The emulator in its own process on a fixed port, killable and restartable from its state."""

    def __init__(self, workdir: Path, port: int) -> None:
        self.workdir = workdir
        self.port = port
        self.endpoint = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[str] | None = None
        self.devices = workdir / "devices"
        self.state_file = workdir / "state.json"
        self.devices.mkdir(exist_ok=True)

    def start(self) -> None:
        from airflow_provider_importexport.emulator.client import spawn

        accounts = [f"--account={':'.join(account_keys(n))}" for n in range(ACCOUNTS)]
        self.process, self.admin = spawn(
            "--port", str(self.port), "--devices-dir", str(self.devices), "--state-file", str(self.state_file),
            "--daily-create-quota", "1000000", "--faults", json.dumps(FAULTS), *accounts,
        )  # fmt: skip
        self.admin.set_profile(**PROFILE)
        for account in range(ACCOUNTS):
            for bucket in buckets(account):
                if bucket not in self._buckets(account):
                    self.admin.create_bucket(bucket, access_key=account_keys(account)[0])

    def _buckets(self, account: int) -> set[str]:
        import boto3

        access_key, secret_key, _ = account_keys(account)
        s3 = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
        )
        return {b["Name"] for b in s3.list_buckets().get("Buckets", [])}

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- one lifecycle ---------------------------------------------------------------------------------


@dataclass
class Lifecycle:
    index: int
    phase: str
    device_id: str
    account: int = 0
    job_id: str | None = None
    tries: int = 0
    create_error: str = ""
    event: dict[str, Any] = field(default_factory=dict)
    ended_at: float = 0.0
    shipped_at: float = 0.0
    retriggered: int = 0


class StateStore:
    """The task state store of one task run (Airflow keeps it across the run's tries)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str) -> Any:
        return self.values.get(key)

    def set(self, key: str, value: Any) -> None:
        self.values[key] = value


def task_context(life: Lifecycle, try_number: int, store: StateStore, run_after: dt.datetime) -> dict[str, Any]:
    """What the create operator reads from Airflow's context for one try of one task run."""
    ti = SimpleNamespace(
        dag_id="chaos",
        task_id="create",
        run_id=f"{life.phase}__{life.index}",
        map_index=-1,
        try_number=try_number,
        xcom_push=lambda **_: None,
        stats_tags={},
    )
    return {"ti": ti, "task_state_store": store, "dag_run": SimpleNamespace(run_after=run_after, logical_date=None)}


def manifest_for(life: Lifecycle) -> dict[str, Any]:
    bucket, log_bucket = buckets(life.account)
    return {
        "manifestVersion": "2.0",
        "deviceId": life.device_id,
        "bucket": bucket,
        "prefix": f"{life.phase}/{life.index}/",
        "logBucket": log_bucket,
        "eraseDevice": "yes",
        "returnAddress": {
            "name": "Chaos Team",
            "street1": "1 Main Street",
            "city": "Seattle",
            "stateOrProvince": "WA",
            "postalCode": "98101",
            "country": "US",
            "phoneNumber": "206-555-0100",
        },
    }


def ship_device(life: Lifecycle, admin_endpoint: str) -> None:
    """The device arrives at AWS (admin API), retried while the emulator restarts."""
    from airflow_provider_importexport.emulator.client import AdminError, EmulatorAdmin

    admin = EmulatorAdmin(admin_endpoint)
    deadline = time.monotonic() + 60
    while True:
        try:
            admin.act(str(life.job_id), "receive")
            life.shipped_at = time.monotonic()
            return
        except (OSError, AdminError) as error:
            if time.monotonic() > deadline:
                life.create_error = f"could not ship the device: {error}"
                return
            time.sleep(0.5)


def create_with_retries(life: Lifecycle, devices: Path) -> None:
    """The create task as Airflow runs it: try after try, a fresh operator each time."""
    from airflow_provider_importexport.operators.importexport import ImportExportCreateJobOperator

    device = devices / life.device_id
    device.mkdir(exist_ok=True)
    (device / "data.txt").write_text(f"lifecycle {life.index}\n")
    store, run_after = StateStore(), dt.datetime.now(dt.UTC)
    for try_number in range(1, MAX_TRIES + 1):
        life.tries = try_number
        operator = ImportExportCreateJobOperator(
            task_id="create", manifest=manifest_for(life), signature_path=str(device), aws_conn_id=conn_id(life.account)
        )
        try:
            life.job_id = operator.execute(task_context(life, try_number, store, run_after))
            return
        except Exception as error:  # a failed try: Airflow retries the task after retry_delay
            life.create_error = f"{type(error).__name__}: {error}"[:300]
            time.sleep(RETRY_DELAY)
    life.job_id = None


async def wait_for_job(life: Lifecycle, retrigger: bool, rng: random.Random) -> None:
    """The real trigger until its first event; optionally cancelled once and re-created from serialize()."""
    from airflow_provider_importexport.triggers.importexport import ImportExportJobTrigger

    assert life.job_id is not None
    deadline = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10)).isoformat()
    trigger: Any = ImportExportJobTrigger(
        job_id=life.job_id, waiter_delay=WAITER_DELAY, deadline=deadline, aws_conn_id=conn_id(life.account)
    )
    while True:
        events = trigger.run()
        pending = asyncio.ensure_future(events.__anext__())
        if retrigger and not life.retriggered:
            done, _ = await asyncio.wait({pending}, timeout=rng.uniform(0.5, 4.0))
            if not done:  # what a triggerer restart does: cancel, then build again from the DB row
                pending.cancel()
                await asyncio.gather(pending, return_exceptions=True)
                await events.aclose()
                classpath, kwargs = trigger.serialize()
                module, _, name = classpath.rpartition(".")
                trigger = getattr(importlib.import_module(module), name)(**kwargs)
                life.retriggered += 1
                continue
        event = await pending
        await events.aclose()
        life.event, life.ended_at = dict(event.payload), time.monotonic()
        return


async def run_lifecycles(
    lives: list[Lifecycle], devices: Path, endpoint: str, retrigger_share: float, seed: int
) -> None:
    rng = random.Random(seed)
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(max_workers=24) as creators:

        async def one(life: Lifecycle) -> None:
            await loop.run_in_executor(creators, create_with_retries, life, devices)
            if life.job_id:
                await loop.run_in_executor(creators, ship_device, life, endpoint)
                await wait_for_job(life, rng.random() < retrigger_share, rng)

        await asyncio.gather(*(one(life) for life in lives))


# --- counting from the emulator's records ----------------------------------------------------------


@dataclass
class PhaseResult:
    name: str
    intended: int
    created: int
    duplicates: int
    waits: int
    ended_ok: int
    lost: int
    wall_s: float
    requests: Counter[str]
    faults: dict[str, int]
    lateness_s: list[float] = field(default_factory=list)
    retriggered: int = 0
    restarts: int = 0
    problems: list[str] = field(default_factory=list)


def life_marker(life: Lifecycle) -> str:
    from airflow_provider_importexport.operators.importexport import ImportExportCreateJobOperator

    context = task_context(life, 1, StateStore(), dt.datetime.now(dt.UTC))
    return ImportExportCreateJobOperator.marker(context)  # type: ignore[arg-type]


def expected_state(job: dict[str, Any]) -> str:
    from airflow_provider_importexport.status import evaluate_wait

    return evaluate_wait(job, "completion", "warn").state


def tally(
    name: str, lives: list[Lifecycle], admin: Any, wall: float, faults_before: dict[str, int], restarts: int
) -> PhaseResult:
    jobs = {job["JobId"]: job for job in admin.jobs()}
    markers: Counter[str] = Counter()
    for job in jobs.values():
        if f"prefix: {name}/" in job["CurrentManifest"]:
            markers.update(set(MARKER.findall(job["CurrentManifest"])))
    records = [r for r in admin.requests() if r["action"] != "CreateJob" or r["job_id"] in jobs]
    problems: list[str] = []
    ended_ok = 0
    lateness: list[float] = []
    for life in lives:
        marker = life_marker(life)
        if markers[marker] > 1:
            mine = [j for j in jobs.values() if marker in j["CurrentManifest"]]
            problems.append(
                f"lifecycle {life.index}: {markers[marker]} jobs ({', '.join(j['JobId'] for j in mine)}) after "
                f"{life.tries} tries; kept {life.job_id}; last error: {life.create_error}"
            )
    for life in lives:
        if not life.job_id:
            problems.append(f"lifecycle {life.index}: no job after {life.tries} tries ({life.create_error})")
            continue
        job = jobs.get(life.job_id)
        want = expected_state(job) if job else "missing"
        if life.event.get("status") == want:
            ended_ok += 1
            lateness.append(life.ended_at - life.shipped_at - sum(PROFILE.values()))
            if lateness[-1] > WAITER_DELAY * 1.1 + ON_TIME_SLACK:
                problems.append(f"job {life.job_id}: the wait ended {lateness[-1]:.1f} s after the job did")
        else:
            said = f"{life.event.get('status')!r} ({str(life.event.get('message', ''))[:160]})"
            problems.append(f"job {life.job_id}: the wait said {said}, the job is {want!r}")
    faults_now = admin.fault_counts()
    return PhaseResult(
        name=name,
        intended=len(lives),
        created=len(markers),
        duplicates=sum(count - 1 for count in markers.values()),
        waits=sum(1 for life in lives if life.job_id),
        ended_ok=ended_ok,
        lost=sum(1 for life in lives if life.job_id) - ended_ok,
        wall_s=wall,
        requests=Counter(r["action"] for r in records),
        faults={k: faults_now.get(k, 0) - faults_before.get(k, 0) for k in faults_now if k != "none"},
        lateness_s=lateness,
        retriggered=sum(life.retriggered for life in lives),
        restarts=restarts,
        problems=problems,
    )


# --- phases ------------------------------------------------------------------------------------------


def run_phase(
    name: str, emulator: EmulatorProcess, count: int, *, retrigger_share: float = 0.0, kill_after: float | None = None
) -> PhaseResult:
    lives = [Lifecycle(i, name, f"{name}-{i:05d}", i % ACCOUNTS) for i in range(count)]
    emulator.admin.request("DELETE", "requests")
    faults_before = emulator.admin.fault_counts()
    restarts = 0
    started = time.monotonic()
    killer: threading.Thread | None = None
    if kill_after is not None:

        def kill_and_restart() -> None:
            time.sleep(kill_after)
            print(f"    kill -9 the emulator after {kill_after:.0f} s, restart from {emulator.state_file.name}")
            emulator.kill()
            time.sleep(1.0)
            emulator.start()

        killer = threading.Thread(target=kill_and_restart)
        killer.start()
        restarts = 1
    asyncio.run(run_lifecycles(lives, emulator.devices, emulator.endpoint, retrigger_share, seed=len(name)))
    if killer is not None:
        killer.join()
        faults_before = {}  # the restarted emulator counts from zero
    return tally(name, lives, emulator.admin, time.monotonic() - started, faults_before, restarts)


def render(results: list[PhaseResult], machine: str) -> str:
    lines = [
        "# Reliability under faults",
        "",
        "`make chaos` (`scripts/chaos.py`): whole job lifecycles run concurrently against one emulator",
        "process, through the create operator's own `execute()` (retried as Airflow retries a task) and",
        "the real `ImportExportJobTrigger.run()`. Counts come from the emulator's own records: jobs per",
        "run marker, CreateJob requests carried out, faults injected, each job's final state.",
        "",
        f"Faults: `{json.dumps(FAULTS)}`; connection read timeout {READ_TIMEOUT} s (a latency spike",
        f"past it is an answer lost in transit); lifecycle profile `{json.dumps(PROFILE)}`; trigger",
        f"poll interval {WAITER_DELAY} s; up to {MAX_TRIES} tries per create task, {RETRY_DELAY:.0f} s apart",
        "(a retry_delay longer than the longest stall: see the README's duplicate guard).",
        "",
        f"Run on {machine}, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC.",
        "",
        "| phase | jobs intended | jobs created | duplicates | waits | ended correctly | lost "
        "| wait ended after the job, median / max | wall time |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.name} | {r.intended} | {r.created} | {r.duplicates} | {r.waits} | {r.ended_ok} | {r.lost} "
            f"| {statistics.median(r.lateness_s or [0]):.1f} s / {max(r.lateness_s or [0]):.1f} s | {r.wall_s:.0f} s |"
        )
    lines += ["", "Calls made and faults injected, per phase:", ""]
    for r in results:
        calls = ", ".join(f"{k} {v}" for k, v in sorted(r.requests.items()))
        faults = ", ".join(f"{k} {v}" for k, v in sorted(r.faults.items()) if v)
        extra = []
        if r.restarts:
            extra.append("the emulator was killed with SIGKILL once and restarted from its state file")
        if r.retriggered:
            extra.append(f"{r.retriggered} waits were cancelled mid-wait and re-created from serialize()")
        lines.append(f"- **{r.name}**: calls: {calls}. Faults: {faults or 'none'}. " + "; ".join(extra))
    lines += [
        "",
        "Reading it: *ended correctly* means the wait's final event is the verdict the job's final state calls",
        "for; *lost* counts every other end (an error, a timeout, the wrong verdict) or none. *Wait ended after",
        "the job* is how long after the job's final state fell due the wait reported it: one poll interval plus",
        "retries through faults, plus queueing when the one emulator process is short of CPU; waits more than",
        f"{WAITER_DELAY * 1.1 + ON_TIME_SLACK:.0f} s late are listed below (late, not lost). In the kill phase the",
        "restarted emulator counts calls and faults from zero.",
    ]
    problems = [p for r in results for p in r.problems]
    lines += ["", "Problems seen:" if problems else "No problems seen.", *[f"- {p}" for p in problems[:50]], ""]
    return "\n".join(lines)


def summary(results: list[PhaseResult]) -> str:
    total = {
        k: sum(getattr(r, k) for r in results)
        for k in ("intended", "created", "duplicates", "waits", "ended_ok", "lost")
    }
    return (
        f"chaos: jobs={total['intended']} created={total['created']} duplicates={total['duplicates']} "
        f"waits={total['waits']} ended_ok={total['ended_ok']} lost={total['lost']}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000, help="lifecycles in the faults phase (default 1000)")
    parser.add_argument("--kill-jobs", type=int, default=200, help="lifecycles in the kill phase (default 200)")
    parser.add_argument("--retrigger-jobs", type=int, default=200, help="lifecycles in the retrigger phase")
    parser.add_argument("--output", default=str(ROOT / "docs" / "reliability.md"), help="report file ('' for none)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="importexport-chaos-") as workdir:
        emulator = EmulatorProcess(Path(workdir), free_port())
        setup_environment(Path(workdir), emulator.endpoint)
        emulator.start()
        try:
            results = []
            for name, count, options in (
                ("faults", args.jobs, {}),
                ("kill", args.kill_jobs, {"kill_after": 6.0}),
                ("retrigger", args.retrigger_jobs, {"retrigger_share": 0.3}),
            ):
                if count <= 0:
                    continue
                print(f"==> phase {name}: {count} lifecycles", flush=True)
                result = run_phase(name, emulator, count, **options)
                print(f"    {summary([result])} wall={result.wall_s:.0f}s", flush=True)
                for problem in result.problems[:10]:
                    print(f"    ! {problem}", flush=True)
                results.append(result)
        finally:
            emulator.stop()
    machine = f"{os.cpu_count()} cores, Python {sys.version.split()[0]}"
    report = render(results, machine)
    if args.output:
        Path(args.output).write_text(report)
    print(report)
    line = summary(results)
    print(line)
    bad = any(r.duplicates or r.lost or r.created < r.intended for r in results)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
