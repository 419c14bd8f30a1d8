"""OpenLineage: Airflow's real OpenLineage listener, with a file transport, during real task runs.

The example DAGs run with ``dag.test()`` in a fresh child worker (the listener is a plugin, loaded
once per process when its transport is configured); the events are read back from the file.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_importexport import openlineage as ol
from airflow_provider_importexport.emulator import ImportExportEmulator
from airflow_provider_importexport.hooks.importexport import ImportExportHook
from airflow_provider_importexport.manifest import (
    DeviceOperation,
    EbsImportManifest,
    ExportOperation,
    GlacierImportManifest,
)
from tests import helpers, test_examples
from tests.helpers import address, export_manifest, import_manifest

# The examples' settings, device folder and emulator (with their buckets), as in test_examples.
example_devices = test_examples.example_devices
importexport_emulator = test_examples.importexport_emulator

#: How long the listener may take to write an event after its task ended (it forks to emit).
EVENT_DEADLINE = 60.0

Event = dict[str, Any]


@pytest.fixture
def lineage_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Airflow's OpenLineage listener on, writing every event as a JSON line to a file."""
    path = tmp_path / "openlineage.jsonl"
    transport = {"type": "file", "log_file_path": str(path), "append": True}
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__TRANSPORT", json.dumps(transport))
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__NAMESPACE", "importexport-tests")
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__DISABLED", "False")
    monkeypatch.delenv("OPENLINEAGE_DISABLED", raising=False)
    helpers._discard_worker()  # a worker that ran a DAG already loaded its plugins without the listener
    yield path
    helpers._discard_worker()  # and later tests' DAGs must not emit into this file


def read_events(path: Path, until: Callable[[list[Event]], bool]) -> list[Event]:
    """The events written so far, once ``until`` holds for them (the listener emits from a fork)."""
    deadline = time.monotonic() + EVENT_DEADLINE
    while True:
        text = path.read_text() if path.exists() else ""
        events = [json.loads(line) for line in text.splitlines() if line.strip()]
        if until(events) or time.monotonic() > deadline:
            return events
        time.sleep(0.2)


def task_events(events: list[Event], dag_id: str, task_id: str) -> dict[str, Event]:
    """A task's events by type; the last of each type (a resumed sensor starts twice)."""
    name = f"{dag_id}.{task_id}"
    return {e["eventType"]: e for e in events if e["job"]["name"] == name}


def have(*wanted: tuple[str, str, str]) -> Callable[[list[Event]], bool]:
    """A predicate: every (dag_id, task_id, eventType) has been emitted."""

    def check(events: list[Event]) -> bool:
        return all(kind in task_events(events, dag, task) for dag, task, kind in wanted)

    return check


def names(datasets: list[dict[str, Any]]) -> list[str]:
    return [f"{d['namespace']}/{d['name']}" for d in datasets]


# --- the example migration DAG --------------------------------------------------------------------


def test_migration_dag_links_the_device_to_the_s3_prefix(
    run_dag: Any,
    emulator: ImportExportEmulator,
    example_devices: Path,
    lineage_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # In a thread (not the default fork) lineage may read the sensor's XCom: its log summary.
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__EXECUTE_IN_THREAD", "True")
    test_examples.write_device(example_devices / "disk-001", test_examples.device_files())
    result = test_examples.run_example("example_importexport_migration")
    assert result.state("verify_import") == "success"
    job_id = result.xcom("create_job")
    dag = "example_importexport_migration"
    events = read_events(
        lineage_file,
        have((dag, "create_job", "START"), (dag, "create_job", "COMPLETE"), (dag, "wait_for_import", "COMPLETE")),
    )
    device = f"importexport/disk-001/{job_id}"

    create = task_events(events, dag, "create_job")
    assert set(create) >= {"START", "COMPLETE"}
    assert names(create["START"]["outputs"]) == ["s3://data-lake-raw/migrated"]
    assert create["START"]["inputs"] == []  # no job, no device dataset yet
    done = create["COMPLETE"]
    assert names(done["inputs"]) == [device]
    assert names(done["outputs"]) == ["s3://data-lake-raw/migrated"]
    assert done["inputs"][0]["facets"][ol.DEVICE_FACET] | {"_producer": "", "_schemaURL": ""} == {
        "_producer": "",
        "_schemaURL": "",
        "deviceId": "disk-001",
        "jobId": job_id,
        "jobType": "Import",
        "manifestKind": "S3 import",
    }
    assert done["run"]["facets"][ol.JOB_FACET]["jobId"] == job_id
    assert done["run"]["facets"][ol.JOB_FACET]["log"] == f"s3://data-lake-logs/importexport/import-log-{job_id}"

    imported = task_events(events, dag, "wait_for_import")
    assert set(imported) >= {"START", "COMPLETE"}
    assert imported["START"]["run"]["facets"][ol.JOB_FACET] | {"_producer": "", "_schemaURL": ""} == {
        "_producer": "",
        "_schemaURL": "",
        "jobId": job_id,
    }
    # Its START names only the declared outlet, the Asset s3://data-lake-raw/migrated/: the same dataset.
    assert names(imported["START"]["outputs"]) == ["s3://data-lake-raw/migrated"]
    complete = imported["COMPLETE"]
    assert names(complete["inputs"]) == [device]
    assert names(complete["outputs"]) == ["s3://data-lake-raw/migrated"]
    facet = complete["run"]["facets"][ol.JOB_FACET]
    summary = result.xcom("wait_for_import")["log_summary"]
    assert facet["jobId"] == job_id
    assert facet["progressCode"] == "Complete"
    assert facet["errorCount"] == 0
    assert facet["log"] == f"s3://data-lake-logs/importexport/import-log-{job_id}"
    assert (facet["filesOk"], facet["filesFailed"], facet["bytesOk"]) == (3, 0, summary["bytes_ok"])
    stats = complete["outputs"][0]["outputFacets"]["outputStatistics"]
    assert (stats["fileCount"], stats["size"]) == (3, summary["bytes_ok"])

    arrived = task_events(events, dag, "wait_for_device")["COMPLETE"]["run"]["facets"][ol.JOB_FACET]
    assert arrived["jobId"] == job_id
    assert arrived["locationCode"] in ("AtAWS", "Returned")  # the state right after the task

    validate = task_events(events, dag, "validate_with_service")["COMPLETE"]
    assert (validate["inputs"], validate["outputs"]) == ([], [])  # ValidateOnly creates nothing


def test_export_dag_reads_s3_into_the_device_and_emits_no_secret(
    run_dag: Any, emulator: ImportExportEmulator, example_devices: Path, s3: Any, lineage_file: Path
) -> None:
    s3.put_object(Bucket="data-lake-raw", Key="migrated/report.csv", Body=b"a,b\n1,2\n")
    (example_devices / "disk-002").mkdir(exist_ok=True)
    result = test_examples.run_example("example_importexport_export")
    assert result.state("report_tracking") == "success"
    job_id = result.xcom("create_export_job")
    dag = "example_importexport_export"
    events = read_events(
        lineage_file, have((dag, "create_export_job", "COMPLETE"), (dag, "wait_for_return", "COMPLETE"))
    )
    for task in ("create_export_job", "wait_for_return"):
        complete = task_events(events, dag, task)["COMPLETE"]
        assert names(complete["inputs"]) == ["s3://data-lake-raw/migrated"], task
        assert names(complete["outputs"]) == [f"importexport/disk-002/{job_id}"], task
    assert task_events(events, dag, "wait_for_return")["COMPLETE"]["run"]["facets"][ol.JOB_FACET]["locationCode"] == (
        "Returned"
    )
    text = lineage_file.read_text()
    assert test_examples.EXPORT_PASSWORD not in text
    assert "trueCryptPassword" not in text


# --- failures ----------------------------------------------------------------------------------------

FAILING_DAG = """
import datetime
from airflow.sdk import DAG
from airflow_provider_importexport.operators.importexport import ImportExportCreateJobOperator
from airflow_provider_importexport.sensors.importexport import ImportExportJobSensor

with DAG("$dag_id", schedule=None, start_date=datetime.datetime(2026, 1, 1), catchup=False) as dag:
    ImportExportCreateJobOperator(task_id="create", manifest='''$manifest''')
    ImportExportJobSensor(task_id="wait", job_id="$job_id", waiter_delay=0.5)
"""


def test_failures_carry_the_service_code(
    run_dag: Any, emulator: ImportExportEmulator, example_devices: Path, lineage_file: Path
) -> None:
    failed_job = ImportExportHook(aws_conn_id="aws_default").create_job("Import", import_manifest("data-lake-raw"))
    emulator.admin.act(failed_job["JobId"], "receive")
    emulator.admin.act(failed_job["JobId"], "process", outcome="InvalidSignature")
    result = run_dag(
        FAILING_DAG, manifest=import_manifest("no-such-bucket", prefix="in/").to_yaml(), job_id=failed_job["JobId"]
    )
    assert (result.state("create"), result.state("wait")) == ("failed", "failed")
    events = read_events(lineage_file, have((result.dag_id, "create", "FAIL"), (result.dag_id, "wait", "FAIL")))

    create = task_events(events, result.dag_id, "create")["FAIL"]
    assert create["run"]["facets"][ol.ERROR_FACET]["code"] == "NoSuchBucketException"
    assert "NoSuchBucketException" in create["run"]["facets"]["errorMessage"]["message"]
    assert names(create["outputs"]) == ["s3://no-such-bucket/in"]

    wait = task_events(events, result.dag_id, "wait")["FAIL"]
    assert wait["run"]["facets"][ol.ERROR_FACET] | {"_producer": "", "_schemaURL": ""} == {
        "_producer": "",
        "_schemaURL": "",
        "code": "JobFailed",
        "jobId": failed_job["JobId"],
    }
    assert wait["run"]["facets"][ol.JOB_FACET]["progressCode"] == "InvalidSignature"
    assert names(wait["inputs"]) == [f"importexport/disk-001/{failed_job['JobId']}"]


# --- dataset naming for the other job kinds (the same functions, on the real manifest models) --------


def test_glacier_import_writes_its_vault_in_the_named_region() -> None:
    model = GlacierImportManifest(
        device_id="disk-9",
        log_bucket="logs",
        return_address=address(),
        operations=[
            DeviceOperation(destination="glacier", region="eu-west-1", vault_name="archive", archive_comment="x"),
            DeviceOperation(destination="glacier", vault_name="cold", archive_comment="y"),
        ],
    )
    inputs, outputs = ol.manifest_datasets(model, "ABCDE", default_region="us-west-2")
    assert names(_plain(inputs)) == ["importexport/disk-9/ABCDE"]
    assert names(_plain(outputs)) == ["glacier://eu-west-1/archive", "glacier://us-west-2/cold"]


def test_ebs_import_has_the_device_and_no_output() -> None:
    model = EbsImportManifest(
        device_id="disk-7",
        log_bucket="logs",
        return_address=address(),
        operations=[DeviceOperation(destination="ebs-snapshot", region="us-east-1")],
    )
    inputs, outputs = ol.manifest_datasets(model, "EBS01")
    assert names(_plain(inputs)) == ["importexport/disk-7/EBS01"]
    assert outputs == []


def test_export_reads_every_location_once_and_before_the_job_exists_has_no_device() -> None:
    model = export_manifest(
        "raw",
        "logs",
        operations=[
            ExportOperation(export_bucket="raw", prefix="a/"),
            ExportOperation(export_bucket="raw", prefix="a/", begin_marker="a/m"),
            ExportOperation(export_bucket="other"),
        ],
    )
    inputs, outputs = ol.manifest_datasets(model, None)
    assert [(d["namespace"], d["name"]) for d in _plain(inputs)] == [("s3://raw", "a"), ("s3://other", "/")]
    assert outputs == []


def _plain(datasets: list[Any]) -> list[dict[str, Any]]:
    from openlineage.client.serde import Serde

    return [Serde.to_dict(d) for d in datasets]
