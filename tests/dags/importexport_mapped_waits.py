"""Many deferred waits from one mapped ImportExportJobSensor, one per job in the run's conf.

For the two-triggerer failover test (tests/test_triggerer_failover.py) and the real-triggerer
benchmark (scripts/bench_real_triggerer.py): the caller creates the jobs, triggers a run with
``{"jobs": [...]}`` and moves the jobs when it chooses. ``$IMPORTEXPORT_MAPPED_POLL_SECONDS`` is
the sensors' poll interval.
"""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.sdk import DAG, task

from airflow_provider_importexport.sensors.importexport import ImportExportJobSensor

DAG_ID = "importexport_mapped_waits"

with DAG(
    DAG_ID,
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    # A second try would defer again: a test counting tries must see any retry.
    default_args={"retries": 0},
    tags=["test"],
) as dag:

    @task
    def jobs(**context: Any) -> list[str]:
        return list(context["dag_run"].conf["jobs"])

    ImportExportJobSensor.partial(
        task_id="wait",
        wait_for="completion",
        waiter_delay=float(os.environ.get("IMPORTEXPORT_MAPPED_POLL_SECONDS", "2")),
        timeout=3600,
        deferrable=True,
    ).expand(job_id=jobs())
