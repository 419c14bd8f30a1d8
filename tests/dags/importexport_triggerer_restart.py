"""Deferrable ImportExportJobSensor waits for the triggerer restart test (tests/test_end_to_end.py).

The test owns the plan: ``$IMPORTEXPORT_RESTART_WAITS`` maps each task id to its ``wait_for``
and ``timeout``, and the run's conf maps each task id to the job it waits on, so the test can
create the jobs itself and move them only once the triggerer has been restarted.
"""

from __future__ import annotations

import json
import os

import pendulum
from airflow.sdk import DAG

from airflow_provider_importexport.sensors.importexport import ImportExportJobSensor

DAG_ID = "importexport_triggerer_restart"
WAITS_ENV = "IMPORTEXPORT_RESTART_WAITS"

with DAG(
    DAG_ID,
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    # A second try would defer again with a fresh deadline: the test must see any retry.
    default_args={"retries": 0},
    tags=["test"],
) as dag:
    for task_id, wait in json.loads(os.environ.get(WAITS_ENV, "{}")).items():
        ImportExportJobSensor(
            task_id=task_id,
            job_id=f"{{{{ dag_run.conf['jobs']['{task_id}'] }}}}",
            wait_for=wait["wait_for"],
            timeout=wait["timeout"],
            waiter_delay=1,
            deferrable=True,
        )
