"""ImportExportJobSensor in each mode under real task execution (dag.test runs triggers inline)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_importexport.emulator import ImportExportEmulator
from airflow_provider_importexport.hooks.importexport import ImportExportHook
from tests.helpers import import_manifest

HEADER = """
import datetime
from airflow.sdk import DAG, Asset, task
from airflow_provider_importexport.operators.importexport import ImportExportCreateJobOperator
from airflow_provider_importexport.sensors.importexport import ImportExportJobSensor

with DAG("$dag_id", schedule=None, start_date=datetime.datetime(2026, 1, 1), catchup=False) as dag:
"""


def dag_source(body: str) -> str:
    return HEADER + "\n".join("    " + line for line in body.strip().splitlines()) + "\n"


@pytest.fixture
def importexport_emulator(emulator_with_devices: ImportExportEmulator) -> ImportExportEmulator:
    return emulator_with_devices


def hook() -> ImportExportHook:
    return ImportExportHook(aws_conn_id="aws_default")


def make_device(devices: Path, name: str, files: dict[str, bytes]) -> Path:
    root = devices / name
    for relative, data in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(data)
    return root


class DeviceDriver(threading.Thread):
    """Moves the job one lifecycle step once the next sensor's trigger has polled it, so every
    wait really happens in the (in-line) trigger, however slow the machine is.

    After each step, the previous sensor's last poll, the next sensor's one synchronous check
    and at least two trigger polls must reach the emulator before the next step.
    """

    POLLS_PER_STEP = 4

    def __init__(self, emulator: ImportExportEmulator, steps: list[str]) -> None:
        super().__init__(daemon=True)
        self.emulator, self.steps = emulator, steps
        self.done: list[str] = []
        self.stop = threading.Event()

    def reads(self) -> tuple[str, int] | None:
        jobs = self.emulator.admin.jobs()
        return (jobs[0]["JobId"], jobs[0]["StatusReads"]) if jobs else None

    def run(self) -> None:
        baseline = 0
        for action in self.steps:
            while not self.stop.wait(0.1):
                seen = self.reads()
                if seen and seen[1] >= baseline + self.POLLS_PER_STEP:
                    break
            if self.stop.is_set() or seen is None:
                return
            self.emulator.admin.act(seen[0], action)
            baseline = self.reads()[1]  # type: ignore[index]
            self.done.append(action)


def test_deferrable_end_to_end(
    run_dag: Any, emulator: ImportExportEmulator, devices: Path, bucket: str, s3: Any, capfd: Any
) -> None:
    device = make_device(
        devices, "disk-001", {"photos/a.jpg": b"a" * 100, "photos/b.jpg": b"b" * 50, "notes.txt": b"hi"}
    )
    driver = DeviceDriver(emulator, ["receive", "process", "return"])
    driver.start()
    try:
        result = run_dag(
            dag_source("""
create = ImportExportCreateJobOperator(task_id="create", manifest=$manifest, signature_path="$device")
arrived = ImportExportJobSensor(task_id="arrived", job_id=create.output, wait_for="arrival", deferrable=True,
                                waiter_delay=0.5, timeout=120)
done = ImportExportJobSensor(task_id="done", job_id=create.output, deferrable=True, waiter_delay=0.5, timeout=120,
                             read_log=True, outlets=[Asset("s3://$bucket/incoming/")])
returned = ImportExportJobSensor(task_id="returned", job_id=create.output, wait_for="return", deferrable=True,
                                 waiter_delay=0.5, timeout=120)

@task
def consume(log_bucket, log_key):
    return f"s3://{log_bucket}/{log_key}"

create >> arrived >> done >> returned
consume(done.output["LogBucket"], done.output["LogKey"])
"""),
            manifest=repr(import_manifest(bucket, prefix="incoming/").to_yaml()),
            device=device,
            bucket=bucket,
        )
    finally:
        driver.stop.set()
        driver.join(timeout=10)
    assert driver.done == ["receive", "process", "return"]  # each step came while a trigger was polling
    output = capfd.readouterr().out
    for task_id in ("create", "arrived", "done", "returned", "consume"):
        assert result.state(task_id) == "success", task_id
    assert output.count("Deferring to the triggerer") == 3
    job_id = result.xcom("create")
    done = result.xcoms("done")
    assert done["ProgressCode"] == "Complete"
    assert done["ErrorCount"] == 0
    assert (done["LogBucket"], done["LogKey"]) == (bucket, f"import-log-{job_id}")
    assert done["log_summary"] == {"files_ok": 3, "files_failed": 0, "files_ignored": 1, "bytes_ok": 152}
    assert result.xcom("done")["LogKey"] == done["LogKey"]
    assert "CurrentManifest" not in result.xcom("done")
    assert result.xcom("consume") == f"s3://{bucket}/import-log-{job_id}"
    returned = result.xcoms("returned")
    assert returned["LocationCode"] == "Returned"
    assert returned["Carrier"] == "UPS"
    assert returned["TrackingNumber"].startswith("1Z")
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="incoming/")["Contents"])
    assert keys == ["incoming/notes.txt", "incoming/photos/a.jpg", "incoming/photos/b.jpg"]
    assert_asset_event(f"s3://{bucket}/incoming", job_id)  # Airflow normalises away the trailing slash


def assert_asset_event(uri: str, job_id: str) -> None:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.settings import Session
    from sqlalchemy import select

    with Session() as session:
        events = session.scalars(
            select(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id).where(AssetModel.uri == uri)
        ).all()
        assert len(events) == 1
        assert events[0].extra["JobId"] == job_id
        assert events[0].extra["log_summary"]["files_ok"] == 3


@pytest.mark.parametrize("mode", ["poke", "reschedule"])
def test_sync_modes(run_dag: Any, emulator: ImportExportEmulator, bucket: str, mode: str) -> None:
    """The sensor keeps poking while the job moves, and ends only on the state it waits for."""
    from airflow_provider_importexport.pytest_plugin import drive_lifecycle

    job_id = hook().create_job("Import", import_manifest(bucket))["JobId"]
    # each step only after the sensor read the job again: it must see every state on the way
    with drive_lifecycle(emulator.admin, job_id, steps=("receive", "process", "return"), every=0.2) as driver:
        result = run_dag(
            dag_source("""
ImportExportJobSensor(task_id="wait", job_id="$job_id", wait_for="return", mode="$mode", deferrable=False,
                      waiter_delay=0.5, on_success_with_errors="succeed")
"""),
            job_id=job_id,
            mode=mode,
        )
    # no device folder for this job: the transfer aborts with MissingDevice, and waiting for
    # the return ends with that failure once the device is back, not before
    assert driver.done == ["receive", "process", "return"]
    assert result.state("wait") == "failed"
    assert len(emulator.admin.requests(action="GetStatus", job_id=job_id)) >= 4


def test_poke_mode_success(run_dag: Any, emulator: ImportExportEmulator, bucket: str) -> None:
    job_id = hook().create_job("Import", import_manifest(bucket))["JobId"]
    emulator.admin.act(job_id, "receive")
    emulator.admin.act(job_id, "process", outcome="Complete")
    result = run_dag(
        dag_source('ImportExportJobSensor(task_id="wait", job_id="$job_id", mode="poke", deferrable=False)'),
        job_id=job_id,
    )
    assert result.state("wait") == "success"
    assert result.xcom("wait", "ProgressCode") == "Complete"
    assert result.xcom("wait", "LogKey") == f"import-log-{job_id}"
    assert "log_summary" not in result.xcom("wait")  # read_log defaults to False: no S3 read


def test_the_documented_defaults() -> None:
    """README: poll every 15 minutes, give up after 30 days, or after 10 failed polls in a row."""
    from airflow_provider_importexport.sensors.importexport import ImportExportJobSensor

    sensor = ImportExportJobSensor(task_id="wait", job_id="ABCDE", deferrable=False)
    assert (sensor.poke_interval, sensor.timeout) == (15 * 60, 30 * 24 * 3600)
    assert sensor.max_consecutive_errors == 10


@pytest.mark.parametrize("deferrable", [True, False])
@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        ("DeviceError", "the device did not work. Next: Check the device"),
        ("MissingSignature", "SIGNATURE file is missing"),
        ("InvalidSignature", "SIGNATURE file on the device is invalid"),
        ("UnsupportedFileFormat", "file system or format is not supported"),
    ],
)
def test_failure_codes_fail_with_the_services_message(
    run_dag: Any, emulator: ImportExportEmulator, bucket: str, capfd: Any, outcome: str, expected: str, deferrable: bool
) -> None:
    job_id = hook().create_job("Import", import_manifest(bucket))["JobId"]
    emulator.admin.act(job_id, "receive")
    emulator.admin.act(job_id, "process", outcome=outcome)
    result = run_dag(
        dag_source("""
ImportExportJobSensor(task_id="wait", job_id="$job_id", deferrable=$deferrable, waiter_delay=0.5, retries=2)
"""),
        job_id=job_id,
        deferrable=deferrable,
    )
    assert result.state("wait") == "failed"
    assert result.ti("wait").try_number == 1  # a failed device is not retried
    output = capfd.readouterr().out
    assert f"ProgressCode {outcome}" in output
    assert expected in output


@pytest.mark.parametrize(("policy", "state"), [("warn", "success"), ("fail", "failed")])
def test_success_with_errors_policy(
    run_dag: Any, emulator: ImportExportEmulator, bucket: str, capfd: Any, policy: str, state: str
) -> None:
    job_id = hook().create_job("Import", import_manifest(bucket))["JobId"]
    emulator.admin.act(job_id, "receive")
    emulator.admin.act(job_id, "process", outcome="SuccessWithErrors", error_count=2)
    result = run_dag(
        dag_source("""
ImportExportJobSensor(task_id="wait", job_id="$job_id", deferrable=True, on_success_with_errors="$policy")
"""),
        job_id=job_id,
        policy=policy,
    )
    assert result.state("wait") == state
    lines = [line for line in capfd.readouterr().out.splitlines() if "2 failed file(s)" in line]
    assert lines
    if policy == "warn":  # the task succeeds, so the log level is what tells a reader to look
        assert all("[warning" in line for line in lines if "ImportExportJobSensor]" in line), lines
        assert any("ImportExportJobSensor]" in line for line in lines), lines


def test_canceled_job_fails_the_arrival_wait_at_once(run_dag: Any, bucket: str, capfd: Any) -> None:
    job_id = hook().create_job("Import", import_manifest(bucket))["JobId"]
    hook().cancel_job(job_id)
    result = run_dag(
        dag_source("""
ImportExportJobSensor(task_id="wait", job_id="$job_id", wait_for="arrival", deferrable=True, waiter_delay=3600)
"""),
        job_id=job_id,
    )
    assert result.state("wait") == "failed"
    assert "ProgressCode Canceled" in capfd.readouterr().out


def test_timeout_while_deferred_fails_the_task(run_dag: Any, bucket: str, capfd: Any) -> None:
    job_id = hook().create_job("Import", import_manifest(bucket))["JobId"]
    result = run_dag(
        dag_source("""
ImportExportJobSensor(task_id="wait", job_id="$job_id", deferrable=True, waiter_delay=0.5, timeout=2)
"""),
        job_id=job_id,
    )
    assert result.state("wait") == "failed"
    assert "deadline" in capfd.readouterr().out


def test_hook_parameters_reach_the_trigger(aws_conn: str) -> None:
    from airflow_provider_importexport.sensors.importexport import ImportExportJobSensor

    sensor = ImportExportJobSensor(
        task_id="wait",
        job_id="ABCDE",
        aws_conn_id="custom",
        region_name="eu-west-1",
        verify="/tmp/ca.pem",
        botocore_config={"read_timeout": 9},
        waiter_delay=30,
        waiter_max_attempts=4,
    )
    params = sensor.trigger_hook_parameters()
    assert params == {
        "aws_conn_id": "custom",
        "region_name": "eu-west-1",
        "verify": "/tmp/ca.pem",
        "botocore_config": {"read_timeout": 9},
    }
    assert sensor.timeout == 120
    assert sensor.poke_interval == 30
