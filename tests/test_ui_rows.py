"""The Import/Export page's rows, read through the real hook from the emulator over HTTP.

Each job is moved into its state with the emulator's admin API; the rows, their timelines,
the calls one refresh makes and the cache are checked here, without a web server (the page
itself: tests/test_ui_server.py).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from airflow_provider_importexport.emulator import ImportExportEmulator
from airflow_provider_importexport.operators.importexport import ImportExportCreateJobOperator
from airflow_provider_importexport.plugins.dag_runs import marker_of
from airflow_provider_importexport.plugins.reader import SnapshotCache, ViewSettings, read_snapshot
from airflow_provider_importexport.plugins.shipments import DagRunRef, JobRow
from tests.helpers import export_manifest, import_manifest

SECRET = "s3cr3t-Passw0rd"  # tests.helpers.export_manifest's TrueCrypt password
DONE5 = ("done",) * 5

#: name -> (admin actions, LocationCode, ProgressCode, timeline states)
JOB_STATES: dict[str, tuple[list[tuple[str, dict[str, Any]]], str, str, tuple[str, ...]]] = {
    "new": ([], "NotReceived", "Pending", ("done", "current", "pending", "pending", "pending")),
    "arrived": ([("receive", {})], "AtAWS", "Pending", ("done", "done", "done", "current", "pending")),
    "transferring": (
        [("receive", {}), ("start", {})],
        "AtAWS",
        "InProgress",
        ("done", "done", "done", "current", "pending"),
    ),
    "complete": (
        [("receive", {}), ("process", {"outcome": "Complete"}), ("return", {"tracking_number": "1ZUITEST0001"})],
        "Returned",
        "Complete",
        DONE5,
    ),
    "with-errors": (
        [("receive", {}), ("process", {"outcome": "SuccessWithErrors", "error_count": 3})],
        "AtAWS",
        "SuccessWithErrors",
        ("done", "done", "done", "warning", "current"),
    ),
    "device-error": (
        [("receive", {}), ("process", {"outcome": "DeviceError"})],
        "AtAWS",
        "DeviceError",
        ("done", "done", "done", "failed", "current"),
    ),
    "expired": ([("expire", {})], "NotReceived", "Expired", ("done", "skipped", "skipped", "failed", "skipped")),
}
CANCELED_TIMELINE = ("done", "skipped", "skipped", "failed", "skipped")


def seed_jobs(client: Any, admin: Any, bucket: str) -> dict[str, str]:
    """One import job per JOB_STATES entry (deviceId ``disk-<name>``), a canceled one and a fresh
    export whose manifest holds a TrueCrypt password; returns their job ids by name."""
    ids: dict[str, str] = {}
    for name, (actions, *_) in JOB_STATES.items():
        manifest = import_manifest(bucket, device_id=f"disk-{name}", log_bucket=bucket).to_yaml()
        ids[name] = client.create_job(JobType="Import", Manifest=manifest, ValidateOnly=False)["JobId"]
        for action, options in actions:
            admin.act(ids[name], action, **options)
    manifest = import_manifest(bucket, device_id="disk-canceled").to_yaml()
    ids["canceled"] = client.create_job(JobType="Import", Manifest=manifest, ValidateOnly=False)["JobId"]
    client.cancel_job(JobId=ids["canceled"])
    manifest = export_manifest(bucket, bucket, device_id="disk-export").to_yaml()
    ids["export"] = client.create_job(JobType="Export", Manifest=manifest, ValidateOnly=False)["JobId"]
    return ids


def check_rows(rows: dict[str, dict[str, Any]], ids: dict[str, str], bucket: str) -> None:
    """The rows (as JSON dicts, by job id) show each seeded job's state; shared with the server test."""
    for name, (_, location, progress, stages) in JOB_STATES.items():
        row = rows[ids[name]]
        assert (row["device_id"], row["location_code"], row["progress_code"]) == (f"disk-{name}", location, progress)
        assert tuple(stage["state"] for stage in row["timeline"]) == stages, name
    complete, errors = rows[ids["complete"]], rows[ids["with-errors"]]
    assert (complete["carrier"], complete["tracking_number"]) == ("UPS", "1ZUITEST0001")
    assert complete["location_meaning"] == "Your device was returned by UPS. Tracking number: 1ZUITEST0001."
    assert complete["log_object"] == f"s3://{bucket}/import-log-{ids['complete']}"
    assert (errors["error_count"], errors["outcome"]) == (3, "success_with_errors")
    assert errors["progress_meaning"].startswith("The data transfer completed with 3 errors. See log import-log-")
    assert rows[ids["new"]]["location_meaning"] == "AWS has not received your device."
    assert rows[ids["new"]]["label_available"] and not rows[ids["arrived"]]["label_available"]
    assert rows[ids["new"]]["age"] == "open for less than a minute"
    assert rows[ids["complete"]]["age"] == "created less than a minute ago"
    canceled = rows[ids["canceled"]]
    assert canceled["canceled"] and canceled["progress_code"] == "Canceled" and not canceled["label_available"]
    assert tuple(stage["state"] for stage in canceled["timeline"]) == CANCELED_TIMELINE
    export = rows[ids["export"]]
    assert (export["job_type"], export["device_id"], export["location_code"]) == (
        "Export",
        "disk-export",
        "NotReceived",
    )


@pytest.fixture
def seeded(emulator: ImportExportEmulator, aws_conn: str, client: Any, bucket: str) -> dict[str, str]:
    ids = seed_jobs(client, emulator.admin, bucket)
    emulator.admin.request("DELETE", "requests")
    return ids


def rows_by_id(rows: tuple[JobRow, ...]) -> dict[str, dict[str, Any]]:
    return {row.job_id: json.loads(json.dumps(row.to_dict())) for row in rows}


def no_runs(markers: set[str], since: Any) -> dict[str, DagRunRef]:
    return {}


def calls(emulator: ImportExportEmulator, action: str) -> int:
    return len(emulator.admin.requests(action=action))


def test_one_refresh_reads_every_job_once_and_shows_its_state(
    emulator: ImportExportEmulator, seeded: dict[str, str], bucket: str
) -> None:
    snapshot = read_snapshot("aws_default", ViewSettings(), no_runs)
    rows = rows_by_id(snapshot.rows)
    assert set(rows) == set(seeded.values())
    check_rows(rows, seeded, bucket)
    assert not snapshot.truncated
    # One ListJobs walk (one page of up to 100 jobs), one GetStatus per job, nothing else.
    assert calls(emulator, "ListJobs") == 1
    assert calls(emulator, "GetStatus") == len(seeded)
    assert calls(emulator, "GetShippingLabel") == 0
    assert SECRET not in json.dumps(list(rows.values()))


def test_max_jobs_bounds_the_walk_and_the_status_reads(emulator: ImportExportEmulator, seeded: dict[str, str]) -> None:
    snapshot = read_snapshot("aws_default", ViewSettings(max_jobs=3), no_runs)
    assert snapshot.truncated
    assert [row.job_id for row in snapshot.rows] == list(reversed(seeded.values()))[:3]  # ListJobs: newest first
    assert calls(emulator, "GetStatus") == 3


def test_jobs_open_longer_than_the_limit_are_stuck_at_their_current_stage(seeded: dict[str, str]) -> None:
    rows = rows_by_id(read_snapshot("aws_default", ViewSettings(stuck_after_days=0), no_runs).rows)
    new, arrived, errors = rows[seeded["new"]], rows[seeded["arrived"]], rows[seeded["with-errors"]]
    assert new["stuck"] == "the device has not reached AWS after less than a minute"
    assert [s["state"] for s in new["timeline"]] == ["done", "stuck", "pending", "pending", "pending"]
    assert arrived["stuck"] == "the data transfer has not finished after less than a minute"
    assert errors["stuck"] == "the device has not been shipped back after less than a minute"
    assert rows[seeded["complete"]]["stuck"] is None and rows[seeded["expired"]]["stuck"] is None


async def test_views_share_one_refresh_until_the_cache_expires(
    emulator: ImportExportEmulator, seeded: dict[str, str]
) -> None:
    cache = SnapshotCache(ViewSettings(cache_seconds=1.0), no_runs)
    first, second = await asyncio.gather(cache.get("aws_default"), cache.get("aws_default"))
    assert first is second and cache.refreshes == 1
    assert await cache.get("aws_default") is first
    assert (calls(emulator, "ListJobs"), calls(emulator, "GetStatus")) == (1, len(seeded))
    await asyncio.sleep(1.1)
    assert await cache.get("aws_default") is not first
    assert (calls(emulator, "ListJobs"), cache.refreshes) == (2, 2)


async def test_a_failed_refresh_is_cached_too() -> None:
    from airflow_provider_importexport import exceptions as exc

    cache = SnapshotCache(ViewSettings(cache_seconds=60), no_runs)
    for _ in range(2):
        with pytest.raises(exc.ImportExportError) as raised:
            await cache.get("no_such_connection")
        assert raised.value.code == "ConnectionNotFound"
    assert cache.refreshes == 1


def test_marker_of_is_the_operators_marker() -> None:
    ti = type("TI", (), {"dag_id": "d", "task_id": "t", "run_id": "r", "map_index": 2})()
    assert marker_of("d", "t", "r", 2) == ImportExportCreateJobOperator.marker({"ti": ti})  # type: ignore[typeddict-item]


def test_an_unreadable_manifest_shows_no_device() -> None:
    from airflow_provider_importexport.plugins.shipments import manifest_facts

    assert manifest_facts("deviceId: [unclosed\ntrueCryptPassword: hunter2", "Import").device_id is None
    assert manifest_facts(None, "Import").marker is None


def test_settings_come_from_airflows_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__IMPORTEXPORT__UI_CACHE_SECONDS", "5")
    monkeypatch.setenv("AIRFLOW__IMPORTEXPORT__UI_CONCURRENCY", "3")
    monkeypatch.setenv("AIRFLOW__IMPORTEXPORT__UI_DEFAULT_CONN_ID", "aws_shipping")
    settings = ViewSettings.from_airflow_config()
    assert (settings.cache_seconds, settings.concurrency, settings.default_conn_id) == (5.0, 3, "aws_shipping")
    assert (settings.max_jobs, settings.stuck_after_days) == (500, 14.0)
