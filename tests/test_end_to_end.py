"""The import DAG through real Airflow components, not dag.test: an API server, a scheduler with
the LocalExecutor, a DAG processor and a triggerer, each its own process, on SQLite."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_importexport.emulator import DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY, ImportExportEmulator
from tests.airflow_stack import AirflowStack

EXAMPLES = Path(__file__).resolve().parents[1] / "dags_examples"
MIGRATION, DOWNSTREAM = "example_importexport_migration", "example_importexport_downstream"


@pytest.fixture
def importexport_emulator(tmp_path: Path) -> Any:
    devices = tmp_path / "devices"
    with ImportExportEmulator(devices_dir=str(devices), profile="manual") as emulator:
        for bucket in ("data-lake-raw", "data-lake-logs"):
            emulator.admin.create_bucket(bucket)
        yield emulator


@pytest.fixture
def stack(tmp_path: Path, emulator: ImportExportEmulator) -> Any:
    dags = tmp_path / "dags"
    shutil.copytree(EXAMPLES, dags, ignore=shutil.ignore_patterns("__pycache__"))
    device = tmp_path / "devices" / "disk-e2e"
    for relative, data in {"a/one.txt": b"one", "a/two.txt": b"two" * 100, "three.bin": bytes(range(200))}.items():
        (device / relative).parent.mkdir(parents=True, exist_ok=True)
        (device / relative).write_bytes(data)
    connection = {
        "conn_type": "aws",
        "login": DEFAULT_ACCESS_KEY,
        "password": DEFAULT_SECRET_KEY,
        "extra": {"endpoint_url": emulator.endpoint_url, "region_name": "us-east-1"},
    }
    home = tmp_path / "airflow-home"
    home.mkdir()
    airflow = AirflowStack(
        home,
        dags,
        {
            "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(connection),
            "IMPORTEXPORT_EXAMPLE_DEVICE_PATH": str(device),
            "IMPORTEXPORT_EXAMPLE_DEVICE_ID": "disk-e2e",
            "IMPORTEXPORT_EXAMPLE_POLL_SECONDS": "1",
        },
    )
    airflow.start()
    yield airflow
    airflow.stop()


def finished_run_state(stack: AirflowStack, dag_id: str, what: str, timeout: float) -> str:
    """Wait for the DAG's run to end; its final state."""
    return str(
        stack.wait_for(
            what,
            lambda: stack.query(
                "SELECT state FROM dag_run WHERE dag_id = ? AND state IN ('success', 'failed')", dag_id
            ),
            timeout,
        )[0][0]
    )


def wait_for_deferred(stack: AirflowStack, task_id: str) -> str:
    """Wait until the task is deferred; return the job id the create task pushed."""
    stack.wait_for(
        f"{task_id} to defer",
        lambda: stack.query(
            "SELECT 1 FROM task_instance WHERE dag_id = ? AND task_id = ? AND state = 'deferred'", MIGRATION, task_id
        ),
        timeout=240,
    )
    return str(
        stack.query(
            "SELECT value FROM xcom WHERE dag_id = ? AND task_id = 'create_job' AND key = 'return_value'", MIGRATION
        )[0][0]
    )


def test_import_dag_with_scheduler_triggerer_and_executor(stack: AirflowStack, emulator: ImportExportEmulator) -> None:
    stack.wait_for(
        "the DAG processor to serialize the examples",
        lambda: (
            len(stack.query("SELECT dag_id FROM serialized_dag WHERE dag_id IN (?, ?)", MIGRATION, DOWNSTREAM)) == 2
        ),
        timeout=180,
    )
    stack.airflow("dags", "trigger", MIGRATION)
    # The device moves only once each sensor is deferred, so both waits really happen in the triggerer.
    job_id = json.loads(wait_for_deferred(stack, "wait_for_device"))
    emulator.admin.act(job_id, "receive")
    wait_for_deferred(stack, "wait_for_import")
    emulator.admin.act(job_id, "process")
    state = finished_run_state(stack, MIGRATION, "the import DAG run to finish", timeout=300)
    assert state == "success", stack.log_text("scheduler")[-3000:]

    # the sensors really deferred, and the triggerer process ran their serialized triggers
    for task_id, line in (
        ("wait_for_device", f"The device of job {job_id} has arrived"),
        ("wait_for_import", f"Done waiting for completion: job {job_id}"),
    ):
        task_logs = stack.task_logs(MIGRATION, task_id)
        assert "Pausing task as DEFERRED" in task_logs["task"]
        assert line in task_logs["trigger"]
        assert "Trigger fired event" in task_logs["trigger"]

    # ... and resumed with the XCom values
    xcom = dict(stack.query("SELECT key, value FROM xcom WHERE dag_id = ? AND task_id = 'wait_for_import'", MIGRATION))
    assert json.loads(xcom["LogBucket"]) == "data-lake-logs"
    assert json.loads(xcom["LogKey"]) == f"importexport/import-log-{job_id}"
    report = json.loads(
        stack.query(
            "SELECT value FROM xcom WHERE dag_id = ? AND task_id = 'verify_import' AND key = 'return_value'", MIGRATION
        )[0][0]
    )
    assert report["ok"] is True and report["files_checked"] == 3

    # the import's asset event scheduled the downstream DAG
    downstream = finished_run_state(stack, DOWNSTREAM, "the asset-scheduled downstream run", timeout=180)
    assert downstream == "success"
    catalogue = json.loads(
        stack.query(
            "SELECT value FROM xcom WHERE dag_id = ? AND task_id = 'catalogue' AND key = 'return_value'", DOWNSTREAM
        )[0][0]
    )
    assert catalogue == {"jobs": [job_id], "objects": 3}
