"""Process imported data when it lands: scheduled on the Asset the import DAG emits.

The asset event carries the job id, the import log's location and its summary, so this DAG
knows exactly which import produced the data it is processing.
"""

from __future__ import annotations

import datetime
from typing import Any

from airflow.sdk import DAG, task
from importexport_example_config import AWS_CONN_ID, BUCKET, IMPORTED_DATA, PREFIX

# [START howto_sensor_importexport_asset_downstream]
with DAG(
    dag_id="example_importexport_downstream",
    description="Catalogue newly imported objects",
    schedule=[IMPORTED_DATA],
    start_date=datetime.datetime(2026, 1, 1),
    catchup=False,
    tags=["importexport", "example"],
) as dag:

    @task
    def catalogue(**context: Any) -> dict[str, Any]:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        events = context["triggering_asset_events"].get(IMPORTED_DATA, [])
        jobs = [event.extra.get("JobId") for event in events]
        keys = S3Hook(aws_conn_id=AWS_CONN_ID).list_keys(bucket_name=BUCKET, prefix=PREFIX)
        print(f"Import job(s) {jobs or 'unknown (manual run)'} landed {len(keys)} objects under s3://{BUCKET}/{PREFIX}")
        return {"jobs": jobs, "objects": len(keys)}

    catalogue()
# [END howto_sensor_importexport_asset_downstream]
