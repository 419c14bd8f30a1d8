"""The trigger at scale, against the emulator over HTTP: the shared schedule bounds the calls in
flight, a cancelled wait leaves it, log lines reach each trigger's own log, an unchanged job
logs once, and loading the trigger class does not import boto3."""

from __future__ import annotations

import asyncio
import contextvars
import subprocess
import sys
from typing import Any

import pytest

from airflow_provider_importexport.emulator import ImportExportEmulator
from airflow_provider_importexport.hooks.importexport import ImportExportHook
from airflow_provider_importexport.triggers import importexport as triggers_module
from airflow_provider_importexport.triggers.importexport import POOL, ImportExportJobTrigger
from tests.helpers import import_manifest
from tests.test_trigger import first_event, trigger

#: Which trigger's task a log line was written in (the triggerer binds trigger_id the same way).
CURRENT_TRIGGER: contextvars.ContextVar[str] = contextvars.ContextVar("current_trigger", default="none")


@pytest.fixture(autouse=True)
def prompt_first_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(triggers_module, "START_JITTER_SECONDS", 0.2)


@pytest.fixture
def hook(aws_conn: str) -> ImportExportHook:
    return ImportExportHook(aws_conn_id=aws_conn)


@pytest.fixture
def make_jobs(hook: ImportExportHook, bucket: str) -> Any:
    def make(count: int) -> list[str]:
        manifests = [import_manifest(bucket, device_id=f"d{n}") for n in range(count)]
        return [str(hook.create_job("Import", manifest)["JobId"]) for manifest in manifests]

    return make


class LogRecorder:
    """Stands in for the trigger class's logger: each line with the trigger task it was written in."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def info(self, template: str, *args: Any) -> None:
        self.lines.append((CURRENT_TRIGGER.get(), template % args))


@pytest.fixture
def logged(monkeypatch: pytest.MonkeyPatch) -> LogRecorder:
    recorder = LogRecorder()
    monkeypatch.setattr(ImportExportJobTrigger, "log", property(lambda self: recorder))
    return recorder


async def in_own_task(name: str, t: ImportExportJobTrigger, timeout: float = 30) -> dict[str, Any]:
    """Run a trigger in a task of its own with CURRENT_TRIGGER set, as the triggerer binds trigger_id."""

    async def run() -> dict[str, Any]:
        CURRENT_TRIGGER.set(name)
        return await first_event(t, timeout)

    return await asyncio.create_task(run())


async def test_calls_in_flight_are_bounded_by_the_connection_pool(
    emulator: ImportExportEmulator, make_jobs: Any
) -> None:
    """However many waits are due, one shared client has at most max_pool_connections calls out."""
    jobs = make_jobs(8)
    emulator.admin.set_faults(latency_ms=300)
    emulator.admin.request("DELETE", "requests")
    waits = [
        asyncio.create_task(first_event(trigger(job, waiter_delay=60, botocore_config={"max_pool_connections": 2})))
        for job in jobs
    ]
    while len(emulator.admin.requests(action="GetStatus")) < len(jobs):
        await asyncio.sleep(0.2)
    for wait in waits:
        wait.cancel()
    await asyncio.gather(*waits, return_exceptions=True)
    ends = sorted(r["at"] for r in emulator.admin.requests(action="GetStatus"))[: len(jobs)]
    # Each call takes >= 0.3 s; three that ended within 0.3 s would have been out at once.
    assert min(later - earlier for earlier, later in zip(ends, ends[2:], strict=False)) >= 0.29, ends


async def test_a_cancelled_wait_leaves_the_schedule(emulator: ImportExportEmulator, make_jobs: Any) -> None:
    """What the triggerer does when a task is cleared: the wait stops polling; others go on."""
    kept, dropped = make_jobs(2)
    waits = {
        job: asyncio.create_task(first_event(trigger(job, wait_for="arrival", waiter_delay=0.3), timeout=60))
        for job in (kept, dropped)
    }
    while len({r["job_id"] for r in emulator.admin.requests(action="GetStatus")}) < 2:
        await asyncio.sleep(0.1)
    waits[dropped].cancel()
    await asyncio.gather(waits[dropped], return_exceptions=True)
    await asyncio.sleep(0.5)  # a poll already out may still land
    polls_after_cancel = len(emulator.admin.requests(action="GetStatus", job_id=dropped))
    kept_before = len(emulator.admin.requests(action="GetStatus", job_id=kept))
    await asyncio.sleep(1.5)
    assert len(emulator.admin.requests(action="GetStatus", job_id=dropped)) == polls_after_cancel
    assert len(emulator.admin.requests(action="GetStatus", job_id=kept)) > kept_before
    await asyncio.to_thread(emulator.admin.act, kept, "receive")
    assert (await asyncio.wait_for(waits[kept], 30))["status"] == "success"
    assert POOL.clients == {}


async def test_log_lines_land_in_each_triggers_own_context(
    emulator: ImportExportEmulator, make_jobs: Any, logged: LogRecorder
) -> None:
    """Pollers are shared, but the triggerer routes a line to a trigger's log by that trigger's context."""
    first, second = make_jobs(2)
    for job in (first, second):
        await asyncio.to_thread(emulator.admin.act, job, "expire")  # each wait ends at its first poll
    await asyncio.gather(in_own_task("first", trigger(first)), in_own_task("second", trigger(second)))
    about_jobs = [(name, first in line, second in line) for name, line in logged.lines]
    assert set(about_jobs) - {(name, False, False) for name in ("first", "second")} == {
        ("first", True, False),
        ("second", False, True),
    }, logged.lines


async def test_an_unchanged_job_logs_once_and_again_on_a_change(
    emulator: ImportExportEmulator, make_jobs: Any, logged: LogRecorder
) -> None:
    (job,) = make_jobs(1)
    waiting = asyncio.create_task(in_own_task("wait", trigger(job, wait_for="completion", waiter_delay=0.2)))

    def lines() -> list[str]:
        return [line for _, line in logged.lines if job in line]

    await asyncio.sleep(1.5)
    assert len(emulator.admin.requests(action="GetStatus", job_id=job)) >= 3
    assert len(lines()) == 1 and "NotReceived" in lines()[0], logged.lines
    await asyncio.to_thread(emulator.admin.act, job, "receive")
    await asyncio.sleep(1.0)
    assert len(lines()) == 2 and "AtAWS" in lines()[1], logged.lines
    await asyncio.to_thread(emulator.admin.act, job, "process", outcome="Complete")
    assert (await asyncio.wait_for(waiting, 30))["status"] == "success"
    assert len(lines()) == 3


async def test_a_missing_connection_fails_every_wait_sharing_it(make_jobs: Any) -> None:
    jobs = make_jobs(3)
    events = await asyncio.gather(
        *(first_event(ImportExportJobTrigger(job_id=job, aws_conn_id="not_defined_anywhere")) for job in jobs)
    )
    assert [e["status"] for e in events] == ["error"] * 3
    assert all("'not_defined_anywhere' is not defined" in e["message"] for e in events)
    assert POOL.clients == {}


def test_loading_the_trigger_class_imports_no_aws_sdk() -> None:
    """The triggerer imports trigger classes on its event loop; boto3 takes about a second to import,
    so it waits for the first connection, which opens in a worker thread."""
    code = (
        "import sys; import airflow_provider_importexport.triggers.importexport; "
        "print(sorted(m for m in ('boto3', 'botocore', 'aiobotocore') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"
