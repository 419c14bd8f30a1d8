"""The update and cancel how-tos' code (docs/howto/update-job.md, cancel-job.md), run as written.

Like an Airflow system test: the DAGs below are what the pages show (tests/test_docs.py checks
the copies), and the tests run them with ``dag.test()`` against the emulator. The example DAGs
in ``dags_examples/`` have no update or cancel step, so these two live here.
"""

from __future__ import annotations

import datetime
import importlib.util
import shutil
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Param

from airflow_provider_importexport.emulator import ImportExportEmulator
from airflow_provider_importexport.hooks.importexport import ImportExportHook
from airflow_provider_importexport.operators.importexport import (
    ImportExportCancelJobOperator,
    ImportExportUpdateJobOperator,
)

ORIGINAL_MANIFEST = """\
manifestVersion: 2.0
deviceId: disk-001
bucket: data-lake-raw
prefix: migrated/
logBucket: data-lake-logs
returnAddress: {name: Data Team, street1: 1 Main Street, city: Seattle, stateOrProvince: WA,
                postalCode: '98101', country: US, phoneNumber: 206-555-0100}
"""

# [START howto_operator_importexport_update_manifest]
CORRECTED_MANIFEST = """\
manifestVersion: 2.0
deviceId: disk-001
bucket: data-lake-raw
prefix: migrated/2026/
logBucket: data-lake-logs
returnAddress: {name: Data Team, street1: 1 Main Street, city: Seattle, stateOrProvince: WA,
                postalCode: '98101', country: US, phoneNumber: 206-555-0100}
"""
# [END howto_operator_importexport_update_manifest]

with DAG(
    dag_id="example_importexport_update_job",
    description="Replace a job's manifest before its transfer starts",
    schedule=None,
    start_date=datetime.datetime(2026, 1, 1),
    catchup=False,
    params={"job_id": Param("", type="string", description="the JobId the create task returned")},
    tags=["importexport", "example"],
) as update_dag:
    # [START howto_operator_importexport_update_job]
    check = ImportExportUpdateJobOperator(
        task_id="check_new_manifest", job_id="{{ params.job_id }}", manifest=CORRECTED_MANIFEST, validate_only=True
    )
    update = ImportExportUpdateJobOperator(
        task_id="update_job", job_id="{{ params.job_id }}", manifest=CORRECTED_MANIFEST
    )
    check >> update
    # [END howto_operator_importexport_update_job]

with DAG(
    dag_id="example_importexport_cancel_job",
    description="Cancel a job whose device has not shipped",
    schedule=None,
    start_date=datetime.datetime(2026, 1, 1),
    catchup=False,
    params={"job_id": Param("", type="string", description="the JobId to cancel")},
    tags=["importexport", "example"],
) as cancel_dag:
    # [START howto_operator_importexport_cancel_job]
    cancel = ImportExportCancelJobOperator(
        task_id="cancel_job", job_id="{{ params.job_id }}", ignore_already_canceled=True
    )
    # [END howto_operator_importexport_cancel_job]


def _job_for_the_examples(emulator: ImportExportEmulator) -> str:
    for bucket in ("data-lake-raw", "data-lake-logs"):
        emulator.admin.create_bucket(bucket)
    return str(ImportExportHook(aws_conn_id="aws_default").create_job("Import", ORIGINAL_MANIFEST)["JobId"])


def _run(dag_id: str, job_id: str) -> Any:
    """Run one of this file's DAGs from the dags folder, as the DAG processor would see it."""
    from tests.conftest import DAGS_FOLDER, DagResult

    DAGS_FOLDER.mkdir(parents=True, exist_ok=True)
    path = DAGS_FOLDER / Path(__file__).name
    shutil.copy(__file__, path)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (dag,) = [value for value in vars(module).values() if isinstance(value, DAG) and value.dag_id == dag_id]
    return DagResult(dag.test(run_conf={"job_id": job_id}))


def test_the_update_how_to_replaces_the_manifest(
    airflow_db: None, aws_conn: str, emulator: ImportExportEmulator
) -> None:
    job_id = _job_for_the_examples(emulator)
    result = _run("example_importexport_update_job", job_id)
    assert result.state("check_new_manifest") == "success"
    assert result.state("update_job") == "success"
    assert "prefix: migrated/2026/" in emulator.admin.job(job_id)["CurrentManifest"]
    assert [r["action"] for r in emulator.admin.requests(job_id=job_id)].count("UpdateJob") == 2


def test_the_cancel_how_to_cancels_and_can_run_again(
    airflow_db: None, aws_conn: str, emulator: ImportExportEmulator
) -> None:
    job_id = _job_for_the_examples(emulator)
    assert _run("example_importexport_cancel_job", job_id).state("cancel_job") == "success"
    assert emulator.admin.job(job_id)["ProgressCode"] == "Canceled"
    assert (
        _run("example_importexport_cancel_job", job_id).state("cancel_job") == "success"
    )  # ignore_already_canceled=True
