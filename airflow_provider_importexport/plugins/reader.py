"""Reading every job of a connection for the page: bounded, and cached briefly per connection.

One refresh is one ListJobs walk (stopped at ``max_jobs``) and one GetStatus per job, at
most ``concurrency`` at a time. Page views within ``cache_seconds`` share the last answer,
and concurrent views of the same connection share one refresh, so opening the page many
times never multiplies the calls to the service.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import itertools
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from botocore.config import Config

from airflow_provider_importexport import exceptions as exc
from airflow_provider_importexport.hooks.importexport import ImportExportHook
from airflow_provider_importexport.plugins.shipments import DagRunRef, JobRow, build_row

#: Airflow config section of the page's settings (``AIRFLOW__IMPORTEXPORT__UI_CACHE_SECONDS``...).
CONFIG_SECTION = "importexport"
#: How many connections' answers the cache keeps (least recently used first out).
MAX_CACHED_CONNECTIONS = 32

#: Finds the DAG runs of run markers: ``(markers, oldest creation date) -> {marker: run}``.
RunFinder = Callable[[set[str], "dt.datetime | None"], dict[str, DagRunRef]]


@dataclass(frozen=True)
class ViewSettings:
    """The page's settings; each is ``[importexport] ui_<name>`` in Airflow's configuration."""

    cache_seconds: float = 30.0
    concurrency: int = 8
    max_jobs: int = 500
    stuck_after_days: float = 14.0
    default_conn_id: str = "aws_default"

    @classmethod
    def from_airflow_config(cls) -> ViewSettings:
        from airflow.configuration import conf

        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            default = field.default
            getter = {float: conf.getfloat, int: conf.getint}.get(type(default), conf.get)
            values[field.name] = getter(CONFIG_SECTION, f"ui_{field.name}", fallback=default)
        return cls(**values)

    def client_config(self) -> Config:
        """Short timeouts and botocore's own bounded retries: a page must answer, not wait 2 minutes."""
        return Config(
            connect_timeout=5,
            read_timeout=20,
            retries={"mode": "standard", "total_max_attempts": 3},
            max_pool_connections=max(self.concurrency, 1),
        )


@dataclass(frozen=True)
class Snapshot:
    """Every row of one connection, as read at ``fetched_at``."""

    conn_id: str
    fetched_at: dt.datetime
    rows: tuple[JobRow, ...]
    truncated: bool
    list_seconds: float
    status_seconds: float


def read_snapshot(conn_id: str, settings: ViewSettings, find_runs: RunFinder) -> Snapshot:
    """One refresh: the ListJobs walk, GetStatus per job (bounded), then the DAG runs of the markers."""
    hook = ImportExportHook(aws_conn_id=conn_id, config=settings.client_config())
    hook.require_connection()
    started = time.monotonic()
    listings = list(itertools.islice(hook.list_jobs(), settings.max_jobs + 1))
    listed = time.monotonic()
    truncated = len(listings) > settings.max_jobs
    listings = listings[: settings.max_jobs]
    statuses = read_statuses(hook, listings, settings.concurrency)
    now = dt.datetime.now(dt.UTC)
    stuck_after = dt.timedelta(days=settings.stuck_after_days)
    rows = [
        build_row(job, status, now=now, stuck_after=stuck_after) for job, status in zip(listings, statuses, strict=True)
    ]
    return Snapshot(
        conn_id=conn_id,
        fetched_at=now,
        rows=tuple(with_dag_runs(rows, find_runs)),
        truncated=truncated,
        list_seconds=listed - started,
        status_seconds=time.monotonic() - listed,
    )


def read_statuses(
    hook: ImportExportHook, listings: list[dict[str, Any]], concurrency: int
) -> list[dict[str, Any] | exc.ImportExportError]:
    """GetStatus of each job, ``concurrency`` at a time; a failed call becomes that row's error."""
    if not listings:
        return []
    hook.conn  # noqa: B018 - build the shared client once, before the threads use it

    def status(job: dict[str, Any]) -> dict[str, Any] | exc.ImportExportError:
        try:
            return hook.get_status_or_ended(str(job["JobId"]))
        except exc.ImportExportError as error:
            return error

    with ThreadPoolExecutor(max_workers=max(concurrency, 1), thread_name_prefix="importexport-ui") as pool:
        return list(pool.map(status, listings))


def with_dag_runs(rows: list[JobRow], find_runs: RunFinder) -> list[JobRow]:
    markers = {row.marker for row in rows if row.marker}
    if not markers:
        return rows
    dates = [dt.datetime.fromisoformat(row.created) for row in rows if row.marker and row.created]
    runs = find_runs(markers, min(dates, default=None))
    return [dataclasses.replace(row, dag_run=runs.get(row.marker or "")) for row in rows]


class SnapshotCache:
    """The last answer per connection for ``cache_seconds``; one refresh at a time per connection.

    A failed refresh is kept as long as a snapshot, so a service that is down is asked once
    per ``cache_seconds`` however often the page is opened.
    """

    def __init__(self, settings: ViewSettings, find_runs: RunFinder) -> None:
        self.settings = settings
        self.find_runs = find_runs
        self._entries: OrderedDict[str, tuple[float, Snapshot | exc.ImportExportError]] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}
        #: Refreshes done so far (each one ListJobs walk).
        self.refreshes = 0

    async def get(self, conn_id: str) -> Snapshot:
        """The connection's snapshot; raises the refresh's ImportExportError if it failed."""
        answer = self._fresh(conn_id)
        if answer is None:
            async with self._locks.setdefault(conn_id, asyncio.Lock()):
                answer = self._fresh(conn_id) or await self._refresh(conn_id)  # another view may have refreshed
        if isinstance(answer, exc.ImportExportError):
            raise answer.with_traceback(None)  # shared between views: no traceback piling up
        return answer

    async def _refresh(self, conn_id: str) -> Snapshot | exc.ImportExportError:
        answer: Snapshot | exc.ImportExportError
        try:
            answer = await asyncio.to_thread(read_snapshot, conn_id, self.settings, self.find_runs)
        except exc.ImportExportError as error:
            answer = error
        self.refreshes += 1
        self._entries[conn_id] = (time.monotonic(), answer)
        self._entries.move_to_end(conn_id)
        while len(self._entries) > MAX_CACHED_CONNECTIONS:
            evicted, _ = self._entries.popitem(last=False)
            self._locks.pop(evicted, None)
        return answer

    def _fresh(self, conn_id: str) -> Snapshot | exc.ImportExportError | None:
        entry = self._entries.get(conn_id)
        if entry is None or time.monotonic() - entry[0] >= self.settings.cache_seconds:
            return None
        self._entries.move_to_end(conn_id)
        return entry[1]
