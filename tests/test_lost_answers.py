"""Answers lost after the service acted, and errors that are not the service's XML, through the hook.

Every assertion about what the service did is counted from the emulator's own request records
(``admin.requests()``), not inferred from the end state.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import boto3
import pytest
from botocore.config import Config

from airflow_provider_importexport import exceptions as exc
from airflow_provider_importexport.emulator import ImportExportEmulator
from airflow_provider_importexport.hooks.importexport import ImportExportHook
from tests.helpers import import_manifest

LOST_ANSWERS = ["drop_after", "error_500_after", "error_500_html_after"]


@pytest.fixture
def hook(aws_conn: str) -> ImportExportHook:
    return ImportExportHook(aws_conn_id=aws_conn)


@pytest.fixture
def job_id(hook: ImportExportHook, bucket: str, emulator: ImportExportEmulator) -> str:
    job = hook.create_job("Import", import_manifest(bucket))["JobId"]
    emulator.admin.request("DELETE", "requests")
    return str(job)


def raw_client(emulator: ImportExportEmulator) -> Any:
    """boto3 with botocore's retries off, to see each fault as the wire delivers it."""
    return boto3.client(
        "importexport",
        endpoint_url=emulator.endpoint_url,
        region_name="us-east-1",
        config=Config(retries={"total_max_attempts": 1}),
    )


CALLS = {
    "GetStatus": lambda c, job, bucket: c.get_status(JobId=job),
    "ListJobs": lambda c, job, bucket: c.list_jobs(),
    "UpdateJob": lambda c, job, bucket: c.update_job(
        JobId=job, JobType="Import", Manifest=import_manifest(bucket).to_yaml(), ValidateOnly=False
    ),
    "GetShippingLabel": lambda c, job, bucket: c.get_shipping_label(jobIds=[job]),
    "CancelJob": lambda c, job, bucket: c.cancel_job(JobId=job),
    "CreateJob": lambda c, job, bucket: c.create_job(
        JobType="Import", Manifest=import_manifest(bucket).to_yaml(), ValidateOnly=False
    ),
}


@pytest.mark.parametrize("fault", LOST_ANSWERS)
@pytest.mark.parametrize("action", sorted(CALLS))
@pytest.mark.parametrize("how", ["queued", "rate"])
def test_after_faults_carry_out_the_request_and_lose_the_answer(
    emulator: ImportExportEmulator, job_id: str, bucket: str, action: str, fault: str, how: str
) -> None:
    if how == "queued":
        emulator.admin.queue_faults(f"{fault}@{action}")
    else:
        emulator.admin.set_faults(**{f"{fault}_rate": 1.0, "actions": [action]})
    with pytest.raises(Exception):  # noqa: B017 - each fault surfaces as a different botocore error
        CALLS[action](raw_client(emulator), job_id, bucket)
    records = emulator.admin.requests(action=action)
    assert len(records) == 1
    assert records[0]["fault"] == fault
    assert records[0]["carried_out"] is True
    assert records[0]["outcome"] == "ok"
    assert emulator.admin.fault_counts()[fault] == 1
    if action == "CreateJob":
        assert records[0]["job_id"] in {j["JobId"] for j in emulator.admin.jobs()}


def test_a_queued_fault_aimed_at_one_operation_spares_the_others(
    emulator: ImportExportEmulator, hook: ImportExportHook, job_id: str
) -> None:
    emulator.admin.queue_faults("drop_after@CancelJob")
    for _ in range(3):
        hook.get_status(job_id)
    assert [r["fault"] for r in emulator.admin.requests(action="GetStatus")] == [None, None, None]
    hook.cancel_job(job_id)
    assert emulator.admin.requests(action="CancelJob")[0]["fault"] == "drop_after"


@pytest.mark.parametrize("fault", LOST_ANSWERS)
def test_cancel_after_a_lost_answer_succeeds(
    emulator: ImportExportEmulator, hook: ImportExportHook, job_id: str, fault: str
) -> None:
    emulator.admin.queue_faults(f"{fault}@CancelJob")
    assert hook.cancel_job(job_id) == {"Success": True}
    records = emulator.admin.requests(action="CancelJob")
    assert [(r["carried_out"], r["outcome"], r["answered"]) for r in records] == [
        (True, "ok", fault != "drop_after"),
        (True, "CanceledJobIdException", True),
    ]
    assert [j["IsCanceled"] for j in hook.list_jobs()] == [True]


def test_cancel_of_a_job_someone_else_canceled_still_says_so(
    emulator: ImportExportEmulator, hook: ImportExportHook, job_id: str
) -> None:
    hook.cancel_job(job_id)
    emulator.admin.queue_faults("throttle@CancelJob")  # a refusal proves nothing was done
    with pytest.raises(exc.JobCanceledError):
        hook.cancel_job(job_id)


@pytest.mark.parametrize("fault", LOST_ANSWERS)
def test_update_after_a_lost_answer_succeeds(
    emulator: ImportExportEmulator, hook: ImportExportHook, job_id: str, bucket: str, fault: str
) -> None:
    emulator.admin.queue_faults(f"{fault}@UpdateJob")
    assert hook.update_job(job_id, "Import", import_manifest(bucket, prefix="v2/"))["Success"] is True
    assert [r["outcome"] for r in emulator.admin.requests(action="UpdateJob")] == ["ok", "ok"]
    assert "prefix: v2/" in hook.get_status(job_id)["CurrentManifest"]


@pytest.mark.parametrize("fault", LOST_ANSWERS)
def test_shipping_label_after_a_lost_answer_succeeds(
    emulator: ImportExportEmulator, hook: ImportExportHook, job_id: str, fault: str
) -> None:
    emulator.admin.queue_faults(f"{fault}@GetShippingLabel")
    assert hook.get_shipping_label([job_id])["ShippingLabelURL"].endswith(".pdf")
    assert len(emulator.admin.requests(action="GetShippingLabel")) == 2


@pytest.mark.parametrize("fault", ["error_500_html", "drop", "error_500"])
def test_idempotent_calls_retry_unparseable_and_lost_answers(
    emulator: ImportExportEmulator, hook: ImportExportHook, job_id: str, fault: str
) -> None:
    emulator.admin.queue_faults(f"{fault}@GetStatus", f"{fault}@ListJobs")
    assert hook.get_status(job_id)["JobId"] == job_id
    assert [j["JobId"] for j in hook.list_jobs()] == [job_id]
    assert [r["fault"] for r in emulator.admin.requests(action="GetStatus")] == [fault, None]
    assert [r["fault"] for r in emulator.admin.requests(action="ListJobs")] == [fault, None]


@pytest.mark.parametrize(
    "fault", ["error_500_html", "drop", "error_500", "error_500_html_after", "drop_after", "error_500_after"]
)
def test_create_job_is_never_resent_after_a_failure_that_may_follow_a_created_job(
    emulator: ImportExportEmulator, hook: ImportExportHook, bucket: str, fault: str
) -> None:
    emulator.admin.queue_faults(f"{fault}@CreateJob")
    with pytest.raises(exc.ServiceUnavailableError) as raised:
        hook.create_job("Import", import_manifest(bucket))
    # the provider's own class (as its Airflow twin: utils.task_errors), not botocore's
    assert type(raised.value).__mro__[1] is exc.ServiceUnavailableError
    assert len(emulator.admin.requests(action="CreateJob")) == 1


@pytest.mark.parametrize("fault", ["throttle", "error_503"])
def test_create_job_is_resent_after_a_refusal(
    emulator: ImportExportEmulator, hook: ImportExportHook, bucket: str, fault: str
) -> None:
    emulator.admin.queue_faults(f"{fault}@CreateJob")
    job = hook.create_job("Import", import_manifest(bucket))["JobId"]
    records = emulator.admin.requests(action="CreateJob")
    assert [(r["carried_out"], r["job_id"]) for r in records] == [(False, None), (True, job)]


def test_read_timeouts_become_the_providers_error(emulator: ImportExportEmulator, aws_conn: str, job_id: str) -> None:
    emulator.admin.set_faults(latency_ms=1500)
    slow = ImportExportHook(aws_conn_id=aws_conn, config={"read_timeout": 0.3, "connect_timeout": 1})
    with pytest.raises(exc.ServiceUnavailableError, match="ReadTimeoutError"):
        slow.get_status(job_id)
    deadline = time.monotonic() + 5  # the emulator records each request once its delay has passed
    while len(emulator.admin.requests(action="GetStatus")) < slow.retry_policy.max_attempts < 99:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert len(emulator.admin.requests(action="GetStatus")) == slow.retry_policy.max_attempts


def test_no_service_at_the_endpoint_is_the_providers_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from tests.helpers import connection_json

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv(
        "AIRFLOW_CONN_NOWHERE",
        connection_json(
            f"http://127.0.0.1:{port}",
            service_config={"importexport": {"retry_policy": {"max_attempts": 2, "initial_delay": 0.01}}},
        ),
    )
    with pytest.raises(exc.ServiceUnavailableError, match="EndpointConnectionError"):
        ImportExportHook(aws_conn_id="nowhere").list_jobs_page()


def test_retry_warnings_name_the_operation_and_attempt(
    emulator: ImportExportEmulator, hook: ImportExportHook, job_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    emulator.admin.queue_faults("throttle@GetStatus")
    with caplog.at_level(logging.WARNING):
        hook.get_status(job_id)
    (message,) = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert message.startswith("GetStatus failed (attempt 1 of 4), retrying in ")
    assert "[Throttling] Rate exceeded" in message
    assert "lambda" not in message


@pytest.mark.parametrize(
    ("login", "password", "code"),
    [
        ("AKIAIOSFODNN7EXAMPLE", "not-the-secret", "SignatureDoesNotMatch"),
        ("AKIAUNKNOWNKEY000001", "whatever", "InvalidClientTokenIdException"),
    ],
)
def test_authentication_errors_are_never_retried(
    emulator: ImportExportEmulator,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    login: str,
    password: str,
    code: str,
) -> None:
    import json

    from tests.helpers import FAST_RETRIES

    connection = {
        "conn_type": "aws",
        "login": login,
        "password": password,
        "extra": {"endpoint_url": emulator.endpoint_url, "region_name": "us-east-1",
                  "service_config": {"importexport": {"retry_policy": FAST_RETRIES}}},
    }  # fmt: skip
    monkeypatch.setenv("AIRFLOW_CONN_WRONG_KEYS", json.dumps(connection))
    with caplog.at_level(logging.WARNING), pytest.raises(exc.RequestError) as raised:
        ImportExportHook(aws_conn_id="wrong_keys").list_jobs_page()
    assert raised.value.code == code
    assert not [r for r in caplog.records if "retrying" in r.getMessage()]


def test_create_job_is_resent_when_the_connection_never_opened(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """No connection means the request never left: resending CreateJob cannot create a second job."""
    import socket

    from tests.helpers import connection_json

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    policy = {"max_attempts": 3, "initial_delay": 0.01, "max_delay": 0.02}
    monkeypatch.setenv(
        "AIRFLOW_CONN_NOWHERE",
        connection_json(f"http://127.0.0.1:{port}", service_config={"importexport": {"retry_policy": policy}}),
    )
    with caplog.at_level(logging.WARNING), pytest.raises(exc.ServiceUnavailableError):
        ImportExportHook(aws_conn_id="nowhere").create_job("Import", import_manifest("data"))
    retries = [r.getMessage() for r in caplog.records if r.getMessage().startswith("CreateJob failed")]
    assert [m.split(",")[0] for m in retries] == [
        "CreateJob failed (attempt 1 of 3)",
        "CreateJob failed (attempt 2 of 3)",
    ]


def test_the_default_retry_policy_is_the_documented_one() -> None:
    """README: 5 attempts within 120 s, exponential backoff with jitter from 1 s up to 20 s."""
    from airflow_provider_importexport.hooks.importexport import RetryPolicy

    assert RetryPolicy() == RetryPolicy(
        max_attempts=5, initial_delay=1.0, max_delay=20.0, total_timeout=120.0, jitter=1.0
    )
