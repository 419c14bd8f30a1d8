"""Get data out of S3 onto a device with AWS Import/Export, and report how it comes back.

create an export job (SIGNATURE written onto the device) -> shipping label -> wait until the
device has been returned -> report the carrier and tracking number. The device is encrypted
with a TrueCrypt password kept in the Airflow Variable ``importexport_export_password``; the
provider masks it in logs, XCom and the rendered-template view.
"""

from __future__ import annotations

import datetime
import os
from typing import Any

from airflow.sdk import DAG, task
from importexport_example_config import (
    AWS_CONN_ID,
    BUCKET,
    EXPORT_DEVICE_ID,
    EXPORT_DEVICE_PATH,
    LOG_BUCKET,
    POLL_SECONDS,
    PREFIX,
    RETURN_ADDRESS,
)

from airflow_provider_importexport.operators.importexport import (
    ImportExportCreateJobOperator,
    ImportExportGetShippingLabelOperator,
)
from airflow_provider_importexport.sensors.importexport import ImportExportJobSensor

# [START howto_operator_importexport_export_manifest]
MANIFEST = f"""\
manifestVersion: 2.0
deviceId: {EXPORT_DEVICE_ID}
generator: example_importexport_export
fileSystem: NTFS
logBucket: {LOG_BUCKET}
logPrefix: importexport/
trueCryptPassword: "{{{{ var.value.importexport_export_password }}}}"
operations:
  - exportBucket: {BUCKET}
    prefix: {PREFIX}
returnAddress:
""" + "".join(f"  {key}: '{value}'\n" for key, value in RETURN_ADDRESS.items())
# [END howto_operator_importexport_export_manifest]


with DAG(
    dag_id="example_importexport_export",
    description="Export an S3 prefix onto a device and track its return",
    schedule=None,
    start_date=datetime.datetime(2026, 1, 1),
    catchup=False,
    tags=["importexport", "example"],
    default_args={"aws_conn_id": AWS_CONN_ID},
) as dag:
    # [START howto_operator_importexport_create_export_job]
    create = ImportExportCreateJobOperator(
        task_id="create_export_job", job_type="Export", manifest=MANIFEST, signature_path=EXPORT_DEVICE_PATH
    )
    # [END howto_operator_importexport_create_export_job]

    label = ImportExportGetShippingLabelOperator(
        task_id="shipping_label",
        job_ids=create.output,
        download_path=os.path.join(os.path.dirname(EXPORT_DEVICE_PATH), f"{EXPORT_DEVICE_ID}-shipping-label.pdf"),
    )

    # [START howto_sensor_importexport_return]
    returned = ImportExportJobSensor(
        task_id="wait_for_return", job_id=create.output, wait_for="return", deferrable=True, waiter_delay=POLL_SECONDS
    )

    @task
    def report_tracking(status: dict[str, Any]) -> str:
        """Tell people how their data is travelling back."""
        message = (
            f"Export job {status['JobId']} is on its way back by {status['Carrier']}, "
            f"tracking number {status['TrackingNumber']} (log: s3://{status['LogBucket']}/{status['LogKey']})."
        )
        print(message)
        return message

    create >> label >> returned
    report_tracking(returned.output)
    # [END howto_sensor_importexport_return]
