"""A data engineer's first week (#16): what the task logs say, under real Airflow task execution.

Each test runs a DAG with dag.test() against the emulator and reads the task logs as a user
would: which endpoint is called, a failure to reach it, the story of a wait in poke and
reschedule mode, a timeout that says what to do next, and no error lines in normal operation.
"""

from __future__ import annotations

import re
import socket
from typing import Any

import pytest

from airflow_provider_importexport.emulator import ImportExportEmulator
from airflow_provider_importexport.hooks.importexport import ImportExportHook
from airflow_provider_importexport.pytest_plugin import drive_lifecycle
from tests.helpers import FAST_RETRIES, connection_json, import_manifest

pytestmark = pytest.mark.slow

HEADER = """
import datetime
from airflow.sdk import DAG
from airflow_provider_importexport.operators.importexport import ImportExportCreateJobOperator
from airflow_provider_importexport.sensors.importexport import ImportExportJobSensor

with DAG("$dag_id", schedule=None, start_date=datetime.datetime(2026, 1, 1), catchup=False) as dag:
"""


def dag_source(body: str) -> str:
    return HEADER + "\n".join("    " + line for line in body.strip().splitlines()) + "\n"


def new_job(bucket: str) -> str:
    return str(ImportExportHook(aws_conn_id="aws_default").create_job("Import", import_manifest(bucket))["JobId"])


def closed_port() -> int:
    """A 127.0.0.1 port nothing listens on (bound, then closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def lines_with(output: str, text: str) -> list[str]:
    return [line for line in output.splitlines() if text in line]


def test_a_deferred_wait_names_its_endpoint_interval_and_deadline_and_logs_no_errors(
    run_dag: Any, emulator: ImportExportEmulator, bucket: str, capfd: Any
) -> None:
    job_id = new_job(bucket)
    with drive_lifecycle(emulator.admin, job_id, steps=("receive",), every=0.5, reads_between=2) as driver:
        result = run_dag(
            dag_source("""
ImportExportJobSensor(task_id="arrived", job_id="$job_id", wait_for="arrival", deferrable=True, waiter_delay=1,
                      timeout=120)
"""),
            job_id=job_id,
        )
    assert driver.done == ["receive"]
    assert result.state("arrived") == "success"
    output = capfd.readouterr().out
    output = output[output.index("[DAG TEST] starting") :]  # the DAG run's log (the test's own calls log too)
    endpoint = f"ImportExport endpoint: {emulator.endpoint_url} (region us-east-1, connection aws_default)"
    [task, trigger] = lines_with(output, endpoint)  # once by the task's hook, once by the trigger
    assert "hooks.importexport.ImportExportHook]" in task
    assert "triggers.importexport.ImportExportJobTrigger]" in trigger
    [deferring] = lines_with(output, "Deferring to the triggerer")
    assert f"Waiting for arrival: job {job_id} is LocationCode NotReceived, ProgressCode Pending." in deferring
    deadline = r"deadline \d{4}-\d\d-\d\d \d\d:\d\d UTC, in (1 minute 59 seconds|2 minutes)"
    assert re.search(rf"Deferring to the triggerer: it checks every 1 second, {deadline}", deferring), deferring
    assert "XCom not found" not in output
    assert lines_with(output, "[error") == [], "no error lines in normal operation"


def test_the_create_task_on_an_unreachable_endpoint_fails_with_a_provider_error(
    run_dag: Any, bucket: str, capfd: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    port = closed_port()
    monkeypatch.setenv(
        "AIRFLOW_CONN_UNREACHABLE",
        connection_json(f"http://127.0.0.1:{port}", service_config={"importexport": {"retry_policy": FAST_RETRIES}}),
    )
    result = run_dag(
        dag_source("""
ImportExportCreateJobOperator(task_id="create", aws_conn_id="unreachable", manifest=$manifest, retries=0)
"""),
        manifest=repr(import_manifest(bucket).to_yaml()),
    )
    assert result.state("create") == "failed"
    output = capfd.readouterr().out
    endpoint = f"ImportExport endpoint: http://127.0.0.1:{port} (region us-east-1, connection unreachable)"
    assert len(lines_with(output, endpoint)) == 1
    assert len(lines_with(output, "CreateJob failed (attempt 1 of 4), retrying in")) == 1
    # the traceback's last line is the raised exception: the provider's, with botocore's only as its cause
    raised = [line for line in output.splitlines() if re.match(r"[\w.]+(Error|Exception): ", line)]
    assert raised[-2].startswith("botocore.exceptions.EndpointConnectionError: Could not connect")
    assert raised[-1].startswith("airflow_provider_importexport.exceptions.ServiceUnavailableError: [Service")
    assert f'Could not connect to the endpoint URL: "http://127.0.0.1:{port}/"' in raised[-1]
    assert "check the AWS connection's endpoint_url" in raised[-1]


def test_a_wait_tells_its_story_in_poke_and_reschedule_mode_and_a_timeout_says_what_next(
    run_dag: Any, emulator: ImportExportEmulator, bucket: str, capfd: Any
) -> None:
    poked, rescheduled, stuck = new_job(bucket), new_job(bucket), new_job(bucket)
    steps = ("receive", "start", ("process", {"outcome": "Complete"}))  # no device folder: the outcome is given
    with (
        drive_lifecycle(emulator.admin, poked, steps=steps, every=0.3, reads_between=3) as poke_driver,
        drive_lifecycle(emulator.admin, rescheduled, steps=steps, every=0.3, reads_between=3) as reschedule_driver,
    ):
        result = run_dag(
            dag_source("""
ImportExportJobSensor(task_id="poked", job_id="$poked", mode="poke", waiter_delay=0.2, timeout=120)
ImportExportJobSensor(task_id="rescheduled", job_id="$rescheduled", waiter_delay=0.2, timeout=120)
ImportExportJobSensor(task_id="stuck", job_id="$stuck", mode="poke", waiter_delay=0.2, timeout=2)
"""),
            poked=poked,
            rescheduled=rescheduled,
            stuck=stuck,
        )
    assert poke_driver.done == reschedule_driver.done == ["receive", "start", "process"]
    assert [result.state(task) for task in ("poked", "rescheduled", "stuck")] == ["success", "success", "failed"]
    output = capfd.readouterr().out
    for job_id in (poked, rescheduled):
        story = [line for line in lines_with(output, job_id) if "sensors.importexport.ImportExportJobSensor]" in line]
        [first] = lines_with(output, f"Waiting for completion of job {job_id}: NotReceived/Pending for ")
        assert "(AWS has not received your device. The specified job has not started.)" in first
        assert re.search(r"Job created [^;]+ ago; next check in [^,]+, deadline .+ UTC, in \d+ (minute|second)", first)
        [arrived] = lines_with(output, f"Job {job_id} is now AtAWS/Pending (Your device is at AWS.")
        assert "after " in arrived and " in NotReceived/Pending. Still waiting for completion." in arrived
        [started] = lines_with(output, f"Job {job_id} is now AtAWS/InProgress")
        assert "The data transfer is in progress." in started
        assert len(story) == 4, story  # the first state, two changes, the end: no line per poll
    # the story survives reschedules: one opening line, not one per run
    assert len(lines_with(output, f"Waiting for completion of job {rescheduled}")) == 1
    [timed_out] = lines_with(output, f"Gave up waiting for completion of job {stuck} after ")
    assert "it was last seen NotReceived/Pending for " in timed_out
    assert "AWS has not received your device." in timed_out
    assert f"Next: look at the job (aws importexport get-status --job-id {stuck})" in timed_out
    assert "clear this task or give the sensor a longer timeout" in timed_out
    assert "XCom not found" not in output
