"""A week-long wait's log reads as a short story (#16): the real trigger against the emulator,
with the emulator's clock standing in for a week.

The trigger runs as in a triggerer (its pool, its pollers, aiobotocore over HTTP) except for
the pause between polls: instead of sleeping, the emulator's clock moves forward by the delay
the trigger asked for, and the progress lines read the same clock. The job moves on its own,
by the emulator's time profile.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_importexport.emulator import ImportExportEmulator
from airflow_provider_importexport.hooks.importexport import ImportExportHook
from airflow_provider_importexport.triggers import importexport as triggers_module
from airflow_provider_importexport.triggers.importexport import ImportExportJobTrigger
from airflow_provider_importexport.utils import progress
from tests.helpers import import_manifest

HOUR = 3600
DAY = 24 * HOUR
#: NotReceived for 2 days 4 hours, AtAWS/Pending 20 hours, InProgress 2 days, back 2 days after: a week.
PROFILE = {"arrive_after": 2 * DAY + 4 * HOUR, "start_after": 20 * HOUR, "process_after": 2 * DAY,
           "return_after": 2 * DAY}  # fmt: skip
STATES = [("NotReceived/Pending", 52), ("AtAWS/Pending", 20), ("AtAWS/InProgress", 48), ("AtAWS/Complete", 48)]


class EmulatorTime:
    """The emulator's clock, moved forward instead of sleeping; ``now`` is what progress lines read."""

    def __init__(self, emulator: ImportExportEmulator) -> None:
        self.emulator = emulator
        self.offset = 0.0

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self.offset)

    def advance(self, seconds: float) -> None:
        self.emulator.admin.advance_clock(seconds)
        self.offset += seconds


@pytest.fixture
def emulator_time(importexport_emulator: ImportExportEmulator, monkeypatch: pytest.MonkeyPatch) -> EmulatorTime:
    """Polls come back at once, the emulator's clock having moved by the delay the trigger asked for."""
    clock = EmulatorTime(importexport_emulator)
    schedule = triggers_module.SharedConnection.schedule

    def fast_forward(shared: Any, wait: Any, delay: float) -> None:
        clock.advance(delay)
        schedule(shared, wait, 0.0)

    monkeypatch.setattr(triggers_module.SharedConnection, "schedule", fast_forward)
    monkeypatch.setattr(triggers_module, "START_JITTER_SECONDS", 0.0)
    monkeypatch.setattr(triggers_module, "DELAY_JITTER", (1.0, 1.0))
    monkeypatch.setattr(progress, "now", clock.now)
    return clock


def ship_a_signed_device(devices: Path, bucket: str) -> str:
    """An import job and its device (the SIGNATURE and one file), so processing completes."""
    job = ImportExportHook(aws_conn_id="aws_default").create_job("Import", import_manifest(bucket))
    device = devices / "disk-001"
    device.mkdir()
    (device / "SIGNATURE").write_text(job["SignatureFileContents"])
    (device / "data.csv").write_bytes(b"a,b\n1,2\n")
    return str(job["JobId"])


async def wait_for(trigger: ImportExportJobTrigger) -> dict[str, Any]:
    async for event in trigger.run():
        return dict(event.payload)
    raise AssertionError("the trigger ended without an event")


def trigger_lines(text: str) -> list[str]:
    """The trigger's own log lines, without their timestamp and logger columns."""
    lines = [line for line in text.splitlines() if "ImportExportJobTrigger]" in line]
    return [re.sub(r"^\S+ \[\w+\s*\] (.*?)\s+\[[\w.]+\].*$", r"\1", line) for line in lines]


async def test_a_week_long_wait_reads_as_a_short_story(
    importexport_emulator: ImportExportEmulator,
    importexport_devices: Path,
    emulator_time: EmulatorTime,
    bucket: str,
    capfd: Any,
) -> None:
    job_id = ship_a_signed_device(importexport_devices, bucket)
    importexport_emulator.admin.set_profile(**PROFILE)
    deadline = (emulator_time.now() + dt.timedelta(days=30)).isoformat()
    trigger = ImportExportJobTrigger(job_id=job_id, wait_for="return", waiter_delay=900, deadline=deadline)

    event = await asyncio.wait_for(wait_for(trigger), timeout=240)

    assert event["status"] == "success"
    assert event["job"]["LocationCode"] == "Returned"
    polls = len(importexport_emulator.admin.requests("GetStatus", job_id))
    assert polls == 7 * 24 * 4 + 1  # one every 15 minutes for a week, and the one that saw the device back
    lines = trigger_lines(capfd.readouterr().out + capfd.readouterr().err)
    story = "\n".join(lines)
    endpoint = f"ImportExport endpoint: {importexport_emulator.endpoint_url} (region us-east-1, connection aws_default)"
    assert lines[0] == endpoint
    assert lines[1].startswith(f"Waiting for return of job {job_id}: NotReceived/Pending for ")
    changes = [line for line in lines if line.startswith(f"Job {job_id} is now ")]
    assert [line.split(" is now ")[1].split(" ")[0] for line in changes] == [
        "AtAWS/Pending",
        "AtAWS/InProgress",
        "AtAWS/Complete",
    ]
    # each change says how long the job stayed in the state before, in pendulum's words
    assert ", after 2 days 4 hours in NotReceived/Pending. Still waiting for return." in changes[0]
    assert "Job created 2 days 4 hours ago; next check in 15 minutes" in changes[0]
    assert "after 20 hours in AtAWS/Pending" in changes[1]
    assert "after 2 days in AtAWS/InProgress" in changes[2]
    assert "(Your device is at AWS. The data transfer is in progress.)" in changes[1]
    # between changes, one heartbeat an hour, each with the state's age: hours 1 .. N-1 of each state
    heartbeats = [line for line in lines if line.startswith(f"Still waiting for return of job {job_id}: ")]
    assert len(heartbeats) == sum(hours - 1 for _, hours in STATES)
    beat = f"Still waiting for return of job {job_id}: AtAWS/InProgress for 1 day 12 hours (Your device is at AWS."
    assert beat in story
    assert "Job created 4 days 12 hours ago; next check in 15 minutes, deadline " in story
    assert re.search(r"deadline \d{4}-\d\d-\d\d \d\d:\d\d UTC, in 3 weeks 2 days", story)
    assert len(set(lines)) == len(lines)  # no two lines alike
    assert lines[-1] == f"Done waiting for return: job {job_id} is LocationCode Returned, ProgressCode Complete."
    assert len(lines) == 1 + 1 + len(changes) + len(heartbeats) + 1  # endpoint, first state, changes, beats, end


async def test_a_trigger_timeout_says_the_last_state_how_long_and_what_next(
    importexport_emulator: ImportExportEmulator, bucket: str, aws_conn: str
) -> None:
    job_id = ImportExportHook(aws_conn_id=aws_conn).create_job("Import", import_manifest(bucket))["JobId"]
    deadline = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1.5)).isoformat()
    trigger = ImportExportJobTrigger(job_id=job_id, wait_for="arrival", waiter_delay=0.5, deadline=deadline)
    event = await asyncio.wait_for(wait_for(trigger), timeout=60)
    assert event["status"] == "timeout"
    message = event["message"]
    assert message.startswith(f"Gave up waiting for arrival of job {job_id} after 1 second (deadline ")
    assert "passed): it was last seen NotReceived/Pending for " in message
    assert "(AWS has not received your device. The specified job has not started.)" in message
    assert f"Next: look at the job (aws importexport get-status --job-id {job_id}); to keep waiting" in message
