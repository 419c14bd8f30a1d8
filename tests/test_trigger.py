"""ImportExportJobTrigger against the emulator: real aiobotocore over HTTP, every outcome, faults, serde."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import random
import time
from typing import Any

import pytest

from airflow_provider_importexport.emulator import ImportExportEmulator
from airflow_provider_importexport.hooks.importexport import ImportExportHook
from airflow_provider_importexport.status import PROCESSING_FAILURES, WaitFor
from airflow_provider_importexport.triggers import importexport as triggers_module
from airflow_provider_importexport.triggers.importexport import POOL, ImportExportJobTrigger
from tests.helpers import import_manifest


@pytest.fixture
def hook(aws_conn: str) -> ImportExportHook:
    return ImportExportHook(aws_conn_id=aws_conn)


@pytest.fixture
def job_id(hook: ImportExportHook, bucket: str) -> str:
    return str(hook.create_job("Import", import_manifest(bucket))["JobId"])


@pytest.fixture(autouse=True)
def prompt_first_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests wait on one job each: no need to spread first polls over a minute."""
    monkeypatch.setattr(triggers_module, "START_JITTER_SECONDS", 0.2)


def trigger(job_id: str, **kwargs: Any) -> ImportExportJobTrigger:
    kwargs.setdefault("waiter_delay", 0.2)
    return ImportExportJobTrigger(job_id=job_id, aws_conn_id="aws_default", **kwargs)


async def first_event(t: ImportExportJobTrigger, timeout: float = 30) -> dict[str, Any]:
    async def collect() -> dict[str, Any]:
        async for event in t.run():
            return dict(event.payload)
        raise AssertionError("the trigger ended without an event")

    return await asyncio.wait_for(collect(), timeout)


def finish(emulator: ImportExportEmulator, job_id: str, outcome: str, error_count: int | None = None) -> None:
    emulator.admin.act(job_id, "receive")
    options: dict[str, Any] = {"outcome": outcome}
    if error_count is not None:
        options["error_count"] = error_count
    emulator.admin.act(job_id, "process", **options)


async def test_completion_success(emulator: ImportExportEmulator, job_id: str, bucket: str) -> None:
    finish(emulator, job_id, "Complete")
    event = await first_event(trigger(job_id))
    assert event["status"] == "success"
    assert event["job"]["ProgressCode"] == "Complete"
    assert event["job"]["LogBucket"] == bucket
    assert event["job"]["LogKey"] == f"import-log-{job_id}"
    assert "CurrentManifest" not in event["job"]


async def test_waits_while_the_job_moves(emulator: ImportExportEmulator, job_id: str) -> None:
    waiting = asyncio.ensure_future(first_event(trigger(job_id, wait_for="arrival")))
    await asyncio.sleep(0.6)
    assert not waiting.done()
    await asyncio.to_thread(emulator.admin.act, job_id, "receive")
    event = await waiting
    assert event["status"] == "success"
    assert event["job"]["LocationCode"] == "AtAWS"


@pytest.mark.parametrize(("policy", "state"), [("succeed", "success"), ("warn", "warning"), ("fail", "failure")])
async def test_success_with_errors_policy(emulator: ImportExportEmulator, job_id: str, policy: str, state: str) -> None:
    finish(emulator, job_id, "SuccessWithErrors", error_count=3)
    event = await first_event(trigger(job_id, on_success_with_errors=policy))
    assert event["status"] == state
    assert "3 failed file(s)" in event["message"]


@pytest.mark.parametrize("code", sorted(c.value for c in PROCESSING_FAILURES))
async def test_each_failure_code(emulator: ImportExportEmulator, job_id: str, code: str) -> None:
    finish(emulator, job_id, code)
    event = await first_event(trigger(job_id))
    assert event["status"] == "failure"
    assert f"ProgressCode {code}" in event["message"]
    assert "Next:" in event["message"]


async def test_canceled_job_fails_arrival_wait_at_once(hook: ImportExportHook, job_id: str) -> None:
    hook.cancel_job(job_id)
    event = await first_event(trigger(job_id, wait_for="arrival", waiter_delay=60))
    assert event["status"] == "failure"
    assert "Canceled" in event["message"]


async def test_expired_job_fails(emulator: ImportExportEmulator, job_id: str) -> None:
    emulator.admin.act(job_id, "expire")
    event = await first_event(trigger(job_id, wait_for="completion", waiter_delay=60))
    assert event["status"] == "failure"
    assert "Expired" in event["message"]


async def test_expired_and_purged_job_fails(emulator: ImportExportEmulator, job_id: str) -> None:
    emulator.admin.act(job_id, "expire")
    emulator.admin.advance_clock(8 * 86400)
    event = await first_event(trigger(job_id, waiter_delay=60))
    assert event["status"] == "failure"
    assert "Expired" in event["message"]


async def test_return_wait_reports_the_tracking_number(emulator: ImportExportEmulator, job_id: str) -> None:
    finish(emulator, job_id, "Complete")
    emulator.admin.act(job_id, "return", carrier="DHL", tracking_number="JD0123")
    event = await first_event(trigger(job_id, wait_for=WaitFor.RETURN.value))
    assert event["status"] == "success"
    assert (event["job"]["Carrier"], event["job"]["TrackingNumber"]) == ("DHL", "JD0123")


async def test_survives_transient_faults(emulator: ImportExportEmulator, job_id: str) -> None:
    finish(emulator, job_id, "Complete")
    emulator.admin.queue_faults("throttle", "error_503", "drop", "error_500")
    event = await first_event(trigger(job_id))
    assert event["status"] == "success"
    counts = emulator.admin.fault_counts()
    assert counts["throttle"] == counts["error_503"] == counts["drop"] == counts["error_500"] == 1


async def test_persistent_faults_are_bounded(emulator: ImportExportEmulator, job_id: str) -> None:
    emulator.admin.set_faults(error_503_rate=1.0)
    event = await first_event(trigger(job_id, max_consecutive_errors=3, waiter_delay=0.01), timeout=60)
    assert event["status"] == "error"
    assert "3 attempts" in event["message"]
    assert emulator.admin.fault_counts()["error_503"] == 3


async def test_deadline_fails_never_succeeds(job_id: str) -> None:
    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=0.5)).isoformat()
    event = await first_event(trigger(job_id, deadline=soon, waiter_delay=5))
    assert event["status"] == "timeout"
    assert "deadline" in event["message"]


async def test_unknown_job_is_an_error_event(aws_conn: str) -> None:
    event = await first_event(trigger("ZZZZ9"))
    assert event["status"] == "error"
    assert "InvalidJobIdException" in event["message"]


def test_serialize_round_trip(job_id: str) -> None:
    from airflow.jobs.triggerer_job_runner import TriggerRunner
    from airflow.serialization.serialized_objects import BaseSerialization

    original = trigger(
        job_id, wait_for="return", deadline="2030-01-01T00:00:00+00:00", botocore_config={"read_timeout": 7}
    )
    classpath, kwargs = original.serialize()
    stored = BaseSerialization.deserialize(BaseSerialization.serialize(kwargs))
    rebuilt = TriggerRunner().get_trigger_by_classpath(classpath)(**stored)
    assert rebuilt.serialize() == (classpath, kwargs)
    assert classpath == "airflow_provider_importexport.triggers.importexport.ImportExportJobTrigger"
    assert rebuilt.hook().conn_config.botocore_config.read_timeout == 7


async def test_recreated_trigger_resumes(emulator: ImportExportEmulator, job_id: str) -> None:
    from airflow.jobs.triggerer_job_runner import TriggerRunner

    finish(emulator, job_id, "Complete")
    classpath, kwargs = trigger(job_id).serialize()
    event = await first_event(TriggerRunner().get_trigger_by_classpath(classpath)(**kwargs))
    assert event["status"] == "success"


async def test_triggers_share_one_client(
    emulator: ImportExportEmulator, job_id: str, hook: ImportExportHook, bucket: str
) -> None:
    other = hook.create_job("Import", import_manifest(bucket))["JobId"]
    waits = [asyncio.ensure_future(first_event(trigger(j, wait_for="arrival"))) for j in (job_id, other)]
    for _ in range(200):  # until both triggers hold the client (creating it may take a moment)
        if POOL.clients and next(iter(POOL.clients.values())).users == 2:
            break
        await asyncio.sleep(0.05)
    assert len(POOL.clients) == 1
    assert next(iter(POOL.clients.values())).users == 2
    for j in (job_id, other):
        await asyncio.to_thread(emulator.admin.act, j, "receive")
    assert [e["status"] for e in await asyncio.gather(*waits)] == ["success", "success"]
    assert POOL.clients == {}  # closed with its last user


def test_provider_lists_the_trigger() -> None:
    import json
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "airflow", "providers", "triggers", "--output", "json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert "airflow_provider_importexport.triggers.importexport" in result.stdout
    assert json.loads(result.stdout[result.stdout.index("[") :])


async def test_missing_connection_is_a_clear_error(job_id: str) -> None:
    event = await first_event(ImportExportJobTrigger(job_id=job_id, aws_conn_id="not_defined_anywhere"))
    assert event["status"] == "error"
    assert "'not_defined_anywhere' is not defined" in event["message"]
    assert "aws_conn_id=None" in event["message"]


async def test_first_polls_spread_over_the_interval(
    emulator: ImportExportEmulator, hook: ImportExportHook, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restarted triggerer must not fire every wait's first poll at once."""
    monkeypatch.setattr(triggers_module, "START_JITTER_SECONDS", 60.0)
    jobs = [hook.create_job("Import", import_manifest(bucket, device_id=f"d{n}"))["JobId"] for n in range(12)]
    emulator.admin.request("DELETE", "requests")
    waits = [asyncio.create_task(first_event(trigger(job, waiter_delay=3), timeout=60)) for job in jobs]
    await asyncio.sleep(6)  # the interval, plus opening the shared client on a busy machine
    for wait in waits:
        wait.cancel()
    await asyncio.gather(*waits, return_exceptions=True)
    first_reads = {r["job_id"]: r["at"] for r in reversed(emulator.admin.requests(action="GetStatus"))}
    assert set(first_reads) == set(jobs)  # every wait polled within one interval ...
    assert max(first_reads.values()) - min(first_reads.values()) > 1.0  # ... spread over it, not at once
    assert len(emulator.admin.requests(action="GetStatus")) <= 3 * len(jobs)


async def test_the_trigger_registers_the_manifests_secrets_with_the_masker(
    emulator: ImportExportEmulator, hook: ImportExportHook, bucket: str
) -> None:
    """The triggerer logs on its own: a PIN the service echoes must be masked there too."""
    from airflow.sdk.log import redact

    pin = "93ab71c0-trigger-pin"
    job_id = hook.create_job("Import", import_manifest(bucket, pin_code=pin))["JobId"]
    emulator.admin.act(job_id, "expire")  # the wait ends at its first poll
    event = await first_event(trigger(job_id, wait_for="completion"))
    assert event["status"] == "failure"
    assert pin not in str(redact({"manifest": f"pinCode: {pin}"}))


def _get_status_times(emulator: ImportExportEmulator, job_id: str) -> list[float]:
    """When the emulator answered each GetStatus of this job, failed ones included (its own records)."""
    return [r["at"] for r in emulator.admin.requests(action="GetStatus", job_id=job_id)]


class _JitterAt(random.Random):
    """Every jitter draw at one end of its range, so a backoff's bounds can be seen exactly."""

    def __init__(self, end: float) -> None:
        super().__init__()
        self.end = end

    def random(self) -> float:
        return self.end


@pytest.mark.parametrize(("jitter_end", "factor"), [(0.0, 0.5), (0.999999, 1.0)], ids=["low", "high"])
async def test_backoff_doubles_after_each_failed_poll(
    emulator: ImportExportEmulator, job_id: str, monkeypatch: pytest.MonkeyPatch, jitter_end: float, factor: float
) -> None:
    """A throttled service gets room: after the k-th failure in a row the next try is 2**k x 0.5-1 s away."""
    monkeypatch.setattr(triggers_module, "random", _JitterAt(jitter_end))
    gaps = await _gaps_after_throttles(emulator, job_id, 3, waiter_delay=60)
    for failures, gap in enumerate(gaps, start=1):
        assert factor * 2**failures - 0.05 <= gap <= factor * 2**failures + 0.5, (failures, gaps)


async def test_a_tiny_interval_still_backs_off_half_a_second_to_a_second(
    emulator: ImportExportEmulator, job_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A test-sized waiter_delay must not turn a throttled service into a tight retry loop: the backoff is
    min(2**k, max(interval, 1 s)) x 0.5-1."""
    monkeypatch.setattr(triggers_module, "random", _JitterAt(0.999999))
    gaps = await _gaps_after_throttles(emulator, job_id, 3, waiter_delay=0.05)
    assert all(0.95 <= gap <= 1.5 for gap in gaps), gaps


async def _gaps_after_throttles(
    emulator: ImportExportEmulator, job_id: str, failures: int, **kwargs: Any
) -> list[float]:
    """Seconds between the GetStatus tries of a finished job's wait whose first ``failures`` polls are
    throttled, from the emulator's records; the wait must then succeed with no extra try."""
    finish(emulator, job_id, "Complete")
    emulator.admin.request("DELETE", "requests")
    emulator.admin.queue_faults(*["throttle@GetStatus"] * failures)
    event = await first_event(trigger(job_id, **kwargs), timeout=60)
    assert event["status"] == "success"
    times = _get_status_times(emulator, job_id)
    assert len(times) == failures + 1  # the throttled tries and one answered: none extra, none skipped
    return [later - earlier for earlier, later in itertools.pairwise(times)]


async def test_a_deadline_ends_the_wait_at_it_neither_before_nor_in_a_burst_after(
    emulator: ImportExportEmulator, job_id: str
) -> None:
    """Polls keep their interval up to the deadline; the timeout comes at it, not early, and no flurry of
    GetStatus calls follows."""
    emulator.admin.request("DELETE", "requests")
    deadline = time.time() + 2.5
    event = await first_event(
        trigger(job_id, waiter_delay=0.1, deadline=dt.datetime.fromtimestamp(deadline, dt.UTC).isoformat())
    )
    ended = time.time()
    assert event["status"] == "timeout"
    assert ended >= deadline  # never before the promised time
    times = _get_status_times(emulator, job_id)
    assert sum(t > deadline for t in times) <= 1  # at most the poll due at the deadline itself
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert len(times) >= 5 and max(gaps) <= 0.1 + 0.5, gaps  # the interval was kept (slack for a busy machine)


async def test_a_new_wait_polls_promptly_while_another_waits_out_a_long_interval(
    emulator: ImportExportEmulator, job_id: str, hook: ImportExportHook, bucket: str
) -> None:
    """Waits share one schedule: one that joins with an earlier poll than the one the timer is set for
    must re-arm it, not wait out the other wait's interval."""
    emulator.admin.request("DELETE", "requests")
    slow = asyncio.ensure_future(first_event(trigger(job_id, waiter_delay=120), timeout=150))
    for _ in range(200):  # until the slow wait has polled once: the timer now points two minutes out
        if _get_status_times(emulator, job_id):
            break
        await asyncio.sleep(0.05)
    other = hook.create_job("Import", import_manifest(bucket, device_id="prompt"))["JobId"]
    finish(emulator, other, "Complete")
    started = time.monotonic()
    event = await first_event(trigger(other), timeout=20)
    assert event["status"] == "success"
    assert time.monotonic() - started < 10  # first poll due within 0.2 s; a stuck timer would take ~2 min
    slow.cancel()
    await asyncio.gather(slow, return_exceptions=True)
