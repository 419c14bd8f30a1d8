"""The service core's errors at the Airflow face: one class to catch, Airflow's retry rules kept."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_provider_importexport import exceptions as exc
from airflow_provider_importexport.utils.task_errors import airflow_class, as_airflow_error

DAG_SOURCE = """
import datetime
from airflow.sdk import DAG, task
from airflow_provider_importexport import exceptions
from airflow_provider_importexport.hooks.importexport import ImportExportHook

with DAG("$dag_id", schedule=None, start_date=datetime.datetime(2026, 1, 1), catchup=False) as dag:

    @task(retries=2, retry_delay=datetime.timedelta(seconds=0))
    def status_of_unknown_job():
        return ImportExportHook(aws_conn_id="aws_default").get_status("NOSUCHJOB")

    @task(retries=2, retry_delay=datetime.timedelta(seconds=0))
    def catch_by_service_error():
        try:
            ImportExportHook(aws_conn_id="aws_default").get_status("NOSUCHJOB")
        except exceptions.JobNotFoundError as error:
            return error.code

    status_of_unknown_job()
    catch_by_service_error()
"""


def test_core_errors_are_plain_python() -> None:
    assert not issubclass(exc.JobNotFoundError, AirflowException)
    assert not issubclass(exc.ServiceUnavailableError, AirflowException)


def test_twin_keeps_class_code_and_details() -> None:
    error = exc.ManifestError("bad manifest", job_id="JOB1", code="MissingManifestFieldException", problems=["p"])
    twin = as_airflow_error(error)
    assert isinstance(twin, exc.ManifestError)
    assert isinstance(twin, AirflowFailException)
    assert (str(twin), twin.code, twin.job_id, twin.problems) == (str(error), error.code, "JOB1", ["p"])
    assert type(twin).__name__ == "ManifestError"
    assert as_airflow_error(twin) is twin
    assert airflow_class(exc.ManifestError) is type(twin)  # made once per class


def test_retryable_errors_stay_retryable() -> None:
    twin = as_airflow_error(exc.ServiceUnavailableError("slow down"))
    assert isinstance(twin, AirflowException)
    assert not isinstance(twin, AirflowFailException)


@pytest.mark.parametrize("make", [lambda e: e, as_airflow_error], ids=["core", "twin"])
def test_errors_survive_pickling(make: Any) -> None:
    error = make(exc.InvalidManifestFieldError("bad field", job_id="JOB2", problems=["q"]))
    restored = pickle.loads(pickle.dumps(error))
    assert type(restored) is type(error)
    assert (str(restored), restored.job_id, restored.problems) == (str(error), "JOB2", ["q"])


def test_hook_errors_in_a_task_fail_without_retries_and_catch_by_class(run_dag: Any) -> None:
    result = run_dag(DAG_SOURCE)
    assert result.state("status_of_unknown_job") == "failed"
    assert result.ti("status_of_unknown_job").try_number == 1  # non-retryable: no second try
    assert result.state("catch_by_service_error") == "success"
    assert result.xcom("catch_by_service_error") == "InvalidJobIdException"
