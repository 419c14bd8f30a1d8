"""Operators as real Airflow task instances (dag.test) against the emulator over HTTP."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_importexport.emulator import ImportExportEmulator
from airflow_provider_importexport.hooks.importexport import ImportExportHook
from tests.helpers import address, import_manifest

HEADER = """
import datetime
from airflow.sdk import DAG
from airflow_provider_importexport.operators.importexport import (
    ImportExportCancelJobOperator,
    ImportExportCreateJobOperator,
    ImportExportGetShippingLabelOperator,
    ImportExportUpdateJobOperator,
)

with DAG("$dag_id", schedule=None, start_date=datetime.datetime(2026, 1, 1), catchup=False) as dag:
"""


def dag_source(body: str) -> str:
    return HEADER + "\n".join("    " + line for line in body.strip().splitlines()) + "\n"


def hook() -> ImportExportHook:
    return ImportExportHook(aws_conn_id="aws_default")


SECRET_PIN = "739184265"


def test_create_job(run_dag: Any, bucket: str, device_dir: Path) -> None:
    manifest = import_manifest(bucket, log_prefix="logs/").to_yaml()
    result = run_dag(
        dag_source("""
ImportExportCreateJobOperator(task_id="create", manifest=$manifest, signature_path="$device")
"""),
        manifest=repr(manifest),
        device=device_dir,
    )
    assert result.state("create") == "success"
    job_id = result.xcom("create")
    xcoms = result.xcoms("create")
    assert xcoms["JobId"] == job_id
    assert xcoms["SignatureFileContents"] == (device_dir / "SIGNATURE").read_text()
    assert f"jobId:{job_id}" in xcoms["SignatureFileContents"]
    assert xcoms["Signature"]
    assert xcoms["ArtifactList"][0]["URL"].endswith(f"instructions-{job_id}.pdf")
    assert "erased" in xcoms["WarningMessage"]
    assert xcoms["importexport_log"]["log_bucket"] == bucket
    assert xcoms["importexport_log"]["log_key"] == f"logs/import-log-{job_id}"
    assert [j["JobId"] for j in hook().list_jobs()] == [job_id]
    assert not list(device_dir.glob(".SIGNATURE.*"))  # no temporary file left behind


def test_validate_only_creates_nothing(run_dag: Any, bucket: str) -> None:
    result = run_dag(
        dag_source("ImportExportCreateJobOperator(task_id='check', manifest=$manifest, validate_only=True)"),
        manifest=repr(import_manifest(bucket).to_yaml()),
    )
    assert result.state("check") == "success"
    assert result.xcom("check")["valid"] is True
    assert list(hook().list_jobs()) == []


def test_a_new_run_creates_a_new_job(run_dag: Any, bucket: str) -> None:
    source = dag_source("ImportExportCreateJobOperator(task_id='create', manifest=$manifest)")
    first = run_dag(source, manifest=repr(import_manifest(bucket).to_yaml()))
    second = run_dag(source, manifest=repr(import_manifest(bucket).to_yaml()))
    assert first.xcom("create") != second.xcom("create")
    assert len(list(hook().list_jobs())) == 2


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ("job_type='Transfer', manifest=$manifest", "job_type must be 'Import' or 'Export'"),
        ("manifest=$bad_manifest", "returnAddress.street1: PO boxes are not served"),
        ("manifest='not: [yaml'", "MalformedManifestException"),
    ],
)
def test_bad_input_fails_before_any_call(
    run_dag: Any, emulator: ImportExportEmulator, bucket: str, capfd: Any, arguments: str, expected: str
) -> None:
    result = run_dag(
        dag_source(f"ImportExportCreateJobOperator(task_id='create', {arguments}, retries=3)"),
        manifest=repr(import_manifest(bucket).to_yaml()),
        bad_manifest=repr(import_manifest(bucket, return_address=address(street1="PO Box 1")).to_yaml()),
    )
    assert result.state("create") == "failed"
    assert result.ti("create").try_number == 1  # not retried: retrying cannot fix input
    assert emulator.admin.fault_counts()["none"] == 0  # the service was never called
    assert expected in capfd.readouterr().out


def test_secrets_never_reach_logs_xcom_or_rendered_fields(
    run_dag: Any, bucket: str, capfd: Any, device_dir: Path
) -> None:
    template = import_manifest(bucket, device_id="{{ params.device }}", pin_code=SECRET_PIN).to_yaml()
    result = run_dag(
        dag_source("""
ImportExportCreateJobOperator(
    task_id="create", manifest=$manifest, signature_path="$device", params={"device": "disk-042"}
)
"""),
        manifest=repr(template),
        device=device_dir,
    )
    assert result.state("create") == "success"
    rendered = result.rendered("create")
    assert "disk-042" in json.dumps(rendered)  # the template did render ...
    assert SECRET_PIN not in json.dumps(rendered)  # ... with the PIN masked
    assert SECRET_PIN not in json.dumps(result.xcoms("create"))
    output = capfd.readouterr()
    assert SECRET_PIN not in output.out + output.err
    assert SECRET_PIN in hook().get_status(result.xcom("create"))["CurrentManifest"]  # the service got it


def test_update_job(run_dag: Any, bucket: str, emulator: ImportExportEmulator, capfd: Any) -> None:
    job_id = hook().create_job("Import", import_manifest(bucket))["JobId"]
    new = import_manifest(bucket, prefix="v2/")
    result = run_dag(
        dag_source("""
ImportExportUpdateJobOperator(task_id="dry", job_id="$job_id", manifest=$manifest, validate_only=True)
ImportExportUpdateJobOperator(task_id="update", job_id="$job_id", manifest=$manifest)
"""),
        job_id=job_id,
        manifest=repr(new.to_yaml()),
    )
    assert result.state("dry") == "success"
    assert result.state("update") == "success"
    assert result.xcom("update")["Success"] is True
    assert "prefix: v2/" in hook().get_status(job_id)["CurrentManifest"]

    emulator.admin.act(job_id, "receive")
    emulator.admin.act(job_id, "start")
    late = run_dag(
        dag_source("ImportExportUpdateJobOperator(task_id='update', job_id='$job_id', manifest=$manifest)"),
        job_id=job_id,
        manifest=repr(new.to_yaml()),
    )
    assert late.state("update") == "failed"
    assert "LocationCode AtAWS, ProgressCode InProgress" in capfd.readouterr().out


def test_cancel_job(run_dag: Any, bucket: str, emulator: ImportExportEmulator, capfd: Any) -> None:
    job_id = hook().create_job("Import", import_manifest(bucket))["JobId"]
    source = dag_source("""
ImportExportCancelJobOperator(task_id="cancel", job_id="$job_id", ignore_already_canceled=$ignore)
""")
    canceled = run_dag(source, job_id=job_id, ignore=False)
    assert canceled.state("cancel") == "success"
    assert canceled.xcom("cancel") is True
    assert next(hook().list_jobs())["IsCanceled"] is True
    already = run_dag(source, job_id=job_id, ignore=True)
    assert already.state("cancel") == "success"
    assert already.xcom("cancel") is True  # "the job is canceled" holds either way
    assert run_dag(source, job_id=job_id, ignore=False).state("cancel") == "failed"

    started = hook().create_job("Import", import_manifest(bucket))["JobId"]
    emulator.admin.act(started, "receive")
    emulator.admin.act(started, "process", outcome="DeviceError")
    capfd.readouterr()
    assert run_dag(source, job_id=started, ignore=True).state("cancel") == "failed"
    assert "ProgressCode DeviceError" in capfd.readouterr().out


def test_shipping_label(run_dag: Any, bucket: str, tmp_path: Path) -> None:
    first = hook().create_job("Import", import_manifest(bucket))["JobId"]
    second = hook().create_job("Import", import_manifest(bucket, device_id="disk-002"))["JobId"]
    result = run_dag(
        dag_source("""
ImportExportGetShippingLabelOperator(
    task_id="label",
    job_ids="$first, $second",
    address={"name": "{{ params.sender }}", "street1": "1 Main Street", "city": "Seattle",
             "stateOrProvince": "WA", "postalCode": "98101", "country": "US", "phoneNumber": "206-555-0100"},
    download_path="$folder",
    params={"sender": "Shipping Desk"},
)
"""),
        first=first,
        second=second,
        folder=tmp_path,
    )
    assert result.state("label") == "success"
    url = result.xcom("label")
    assert url.endswith(f"shipping-label-{first}-{second}.pdf")
    pdf = tmp_path / f"shipping-label-{first}-{second}.pdf"
    assert pdf.read_bytes().startswith(b"%PDF-")
    assert result.xcom("label", "importexport_shipping_label")["shipping_label_url"] == url


def test_shipping_label_without_job_ids_fails_before_any_call(
    run_dag: Any, emulator: ImportExportEmulator, capfd: Any
) -> None:
    result = run_dag(dag_source("ImportExportGetShippingLabelOperator(task_id='label', job_ids=' , ')"))
    assert result.state("label") == "failed"
    assert emulator.admin.fault_counts()["none"] == 0
    assert "job_ids is empty" in capfd.readouterr().out


def test_on_kill_cancels_a_job_that_has_not_started(aws_conn: str, bucket: str) -> None:
    from airflow_provider_importexport.operators.importexport import ImportExportCreateJobOperator

    operator = ImportExportCreateJobOperator(task_id="create", manifest=import_manifest(bucket))
    operator.job_id = hook().create_job("Import", import_manifest(bucket))["JobId"]
    operator.on_kill()
    assert next(hook().list_jobs())["IsCanceled"] is True


def test_on_kill_during_create_finds_the_job_by_its_marker(aws_conn: str, bucket: str) -> None:
    from airflow_provider_importexport.operators.importexport import MARKER_PREFIX, ImportExportCreateJobOperator

    operator = ImportExportCreateJobOperator(task_id="create", manifest=import_manifest(bucket))
    operator._marker = MARKER_PREFIX + "killed-mid-create"
    hook().create_job("Import", import_manifest(bucket, generator="other-run"))
    mine = hook().create_job("Import", import_manifest(bucket, generator=operator._marker))["JobId"]
    operator.on_kill()  # the CreateJob answer never arrived: job_id is unknown to the operator
    canceled = {j["JobId"]: j["IsCanceled"] for j in hook().list_jobs()}
    assert canceled[mine] is True
    assert sum(canceled.values()) == 1


@pytest.mark.parametrize(
    ("region", "domain"), [("cn-north-1", "amazonaws.cn"), ("us-gov-west-1", "amazonaws-us-gov.com")]
)
def test_links_carry_the_connections_partition_and_region(
    run_dag: Any, emulator: ImportExportEmulator, bucket: str, monkeypatch: pytest.MonkeyPatch, region: str, domain: str
) -> None:
    from tests.helpers import connection_json

    connection = json.loads(connection_json(emulator.endpoint_url))
    connection["extra"]["region_name"] = region
    monkeypatch.setenv("AIRFLOW_CONN_OTHER_PARTITION", json.dumps(connection))
    result = run_dag(
        dag_source(
            "ImportExportCreateJobOperator(task_id='create', manifest=$manifest, aws_conn_id='other_partition')"
        ),
        manifest=repr(import_manifest(bucket).to_yaml()),
    )
    link = result.xcom("create", "importexport_log")
    assert (link["region_name"], link["aws_domain"]) == (region, domain)


def test_on_kill_of_a_job_that_started_leaves_it_and_does_not_raise(
    aws_conn: str, bucket: str, emulator: ImportExportEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    from airflow_provider_importexport.operators.importexport import ImportExportCreateJobOperator

    operator = ImportExportCreateJobOperator(task_id="create", manifest=import_manifest(bucket))
    operator.job_id = hook().create_job("Import", import_manifest(bucket))["JobId"]
    emulator.admin.act(operator.job_id, "receive")
    emulator.admin.act(operator.job_id, "start")
    operator.on_kill()  # the transfer runs: CancelJob is refused, and a kill must not fail because of it
    assert next(hook().list_jobs())["IsCanceled"] is False
    assert [r["outcome"] for r in emulator.admin.requests(action="CancelJob")] == ["UnableToCancelJobIdException"]
