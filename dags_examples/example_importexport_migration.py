"""Migrate a disk's worth of data into S3 with AWS Import/Export, then check every file landed.

build manifest -> validate -> create job (SIGNATURE written onto the device) -> shipping label
-> wait for the device to arrive -> wait for the import -> verify every file against S3 and
the import log -> write a report next to the log. The import emits the ``IMPORTED_DATA``
asset, which schedules ``example_importexport_downstream``.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, task
from importexport_example_config import (
    AWS_CONN_ID,
    BUCKET,
    DEVICE_ID,
    DEVICE_PATH,
    IMPORTED_DATA,
    LOG_BUCKET,
    POLL_SECONDS,
    PREFIX,
    RETURN_ADDRESS,
)

from airflow_provider_importexport.manifest import ReturnAddress, S3ImportManifest
from airflow_provider_importexport.operators.importexport import (
    ImportExportCreateJobOperator,
    ImportExportGetShippingLabelOperator,
)
from airflow_provider_importexport.sensors.importexport import ImportExportJobSensor

IGNORE = [r"^\.Trash", r"(^|/)Thumbs\.db$"]


with DAG(
    dag_id="example_importexport_migration",
    description="Import a device into S3 and verify it",
    schedule=None,
    start_date=datetime.datetime(2026, 1, 1),
    catchup=False,
    tags=["importexport", "example"],
    default_args={"aws_conn_id": AWS_CONN_ID, "retries": 2, "retry_delay": datetime.timedelta(seconds=5)},
) as dag:
    # [START howto_importexport_build_manifest]
    @task
    def build_manifest(**context: Any) -> str:
        """The manifest as YAML, built and validated by the provider's model before any call."""
        manifest = S3ImportManifest(
            device_id=DEVICE_ID,
            bucket=BUCKET,
            prefix=PREFIX,
            log_bucket=LOG_BUCKET,
            log_prefix="importexport/",
            ignore=IGNORE,
            generator="example_importexport_migration",
            return_address=ReturnAddress(**{ReturnAddress.yaml_keys()[k]: v for k, v in RETURN_ADDRESS.items()}),
        )
        return manifest.validate().to_yaml()

    # [END howto_importexport_build_manifest]

    manifest = build_manifest()

    # [START howto_operator_importexport_validate_only]
    validate = ImportExportCreateJobOperator(task_id="validate_with_service", manifest=manifest, validate_only=True)
    # [END howto_operator_importexport_validate_only]

    # [START howto_operator_importexport_create_job]
    create = ImportExportCreateJobOperator(task_id="create_job", manifest=manifest, signature_path=DEVICE_PATH)
    # [END howto_operator_importexport_create_job]

    # [START howto_operator_importexport_shipping_label]
    label = ImportExportGetShippingLabelOperator(
        task_id="shipping_label",
        job_ids=create.output,
        address=RETURN_ADDRESS,
        download_path=os.path.join(os.path.dirname(DEVICE_PATH), f"{DEVICE_ID}-shipping-label.pdf"),
    )
    # [END howto_operator_importexport_shipping_label]

    # [START howto_sensor_importexport_arrival]
    arrived = ImportExportJobSensor(
        task_id="wait_for_device", job_id=create.output, wait_for="arrival", deferrable=True, waiter_delay=POLL_SECONDS
    )
    # [END howto_sensor_importexport_arrival]

    # [START howto_sensor_importexport_completion]
    imported = ImportExportJobSensor(
        task_id="wait_for_import",
        job_id=create.output,
        wait_for="completion",
        deferrable=True,
        waiter_delay=POLL_SECONDS,
        on_success_with_errors="fail",
        read_log=True,
        outlets=[IMPORTED_DATA],
    )
    # [END howto_sensor_importexport_completion]

    @task
    def verify_import(status: dict[str, Any]) -> dict[str, Any]:
        """Every file on the device is in S3 with the same size and MD5, as the import log says."""
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        from airflow_provider_importexport.logs import parse_log

        s3 = S3Hook(aws_conn_id=AWS_CONN_ID)
        log_rows = parse_log(s3.read_key(key=status["LogKey"], bucket_name=status["LogBucket"]))
        logged = {row["File"]: row for row in log_rows if row["Status"] == "200"}
        device = Path(DEVICE_PATH)
        problems, checked, total_bytes = [], 0, 0
        for path in sorted(p for p in device.rglob("*") if p.is_file()):
            relative = path.relative_to(device).as_posix()
            if relative == "SIGNATURE" or any(re.search(rx, relative) for rx in IGNORE):
                continue
            data = path.read_bytes()
            md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
            head = s3.head_object(key=PREFIX + relative, bucket_name=BUCKET)
            if head is None:
                problems.append(f"{relative}: not in s3://{BUCKET}/{PREFIX}")
                continue
            if head["ContentLength"] != len(data) or head["ETag"].strip('"') != md5:
                problems.append(f"{relative}: size or checksum differs in S3")
            if logged.get(relative, {}).get("MD5") != md5:
                problems.append(f"{relative}: the import log does not list it with this MD5")
            checked += 1
            total_bytes += len(data)
        report = {
            "job_id": status["JobId"],
            "files_checked": checked,
            "bytes_checked": total_bytes,
            "problems": problems,
            "log": f"s3://{status['LogBucket']}/{status['LogKey']}",
            "log_summary": status.get("log_summary"),
            "ok": not problems and checked > 0,
        }
        report_key = f"reports/import-{status['JobId']}.json"
        s3.load_string(json.dumps(report, indent=2), key=report_key, bucket_name=LOG_BUCKET, replace=True)
        report["report"] = f"s3://{LOG_BUCKET}/{report_key}"
        if not report["ok"]:
            raise ValueError(f"Import verification failed: {problems or 'no files checked'}")
        return report

    manifest >> validate >> create >> label >> arrived >> imported
    verify_import(imported.output)
