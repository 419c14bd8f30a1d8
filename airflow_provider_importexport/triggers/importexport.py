"""ImportExportJobTrigger: poll GetStatus from the triggerer until the awaited state.

Runs in the triggerer's event loop: aiobotocore for the calls, one shared client per
(connection, region, verify, botocore config) per event loop so thousands of waits do not
each open a client, jittered polls so they do not fire in lockstep after a triggerer
restart, bounded backoff on transient errors, and an absolute deadline that survives
triggerer restarts (an attempt counter would start again from zero).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent
from asgiref.sync import sync_to_async
from botocore.exceptions import ClientError

from airflow_provider_importexport import exceptions as exc
from airflow_provider_importexport.hooks.importexport import (
    ImportExportHook,
    ended_job_status,
    is_transient,
    translate,
    with_secrets_masked,
    without_metadata,
)
from airflow_provider_importexport.status import (
    SuccessWithErrorsPolicy,
    WaitFor,
    evaluate_wait,
    public_status,
)

#: Largest first-poll delay: a restarted triggerer spreads its first round of polls over
#: the poll interval, up to this many seconds, instead of firing them all at once.
START_JITTER_SECONDS = 60.0
#: Each sleep is waiter_delay times a factor in this range.
DELAY_JITTER = (0.9, 1.1)
#: A wait logs its state on every change, and otherwise once per this many seconds.
HEARTBEAT_SECONDS = 3600.0


class SharedConnection:
    """What every wait on one connection shares in one event loop.

    One hook, one aiobotocore client and one check that the connection exists, instead of one
    each per wait; and a bound on GetStatus calls in flight (the client's connection pool size),
    so a slow service parks waits cheaply on a semaphore rather than holding thousands of
    half-built requests, which would also feed the garbage collector's oldest generation.
    """

    def __init__(self, hook: ImportExportHook) -> None:
        self.hook = hook
        self.client: Any = None
        self.users = 0
        self.in_flight = asyncio.Semaphore(hook.config.max_pool_connections or 10)
        self._context: Any = None

    async def open(self) -> None:
        await sync_to_async(self.hook.require_connection)()
        self._context = await self.hook.get_async_conn()
        self.client = await self._context.__aenter__()

    async def close(self) -> None:
        if self._context is not None:
            await self._context.__aexit__(None, None, None)


@dataclass
class AsyncClientPool:
    """One SharedConnection per hook configuration and event loop, reference counted.

    The connection closes, and its entry and lock are dropped, when its last wait finishes.
    """

    clients: dict[tuple[Any, ...], SharedConnection] = field(default_factory=dict)
    locks: dict[tuple[Any, ...], asyncio.Lock] = field(default_factory=dict)

    @asynccontextmanager
    async def connection(self, trigger: ImportExportJobTrigger) -> AsyncIterator[SharedConnection]:
        key = (id(asyncio.get_running_loop()), *trigger.pool_key())
        lock = self.locks.setdefault(key, asyncio.Lock())
        async with lock:
            shared = self.clients.get(key)
            if shared is None:
                shared = SharedConnection(trigger.hook())
                await shared.open()
                self.clients[key] = shared
            shared.users += 1
        try:
            yield shared
        finally:
            async with lock:
                shared.users -= 1
                if shared.users == 0:
                    del self.clients[key]
                    self.locks.pop(key, None)
                    await shared.close()


POOL = AsyncClientPool()


class ImportExportJobTrigger(BaseTrigger):
    """Wait in the triggerer for an Import/Export job to arrive, finish, or come back.

    :param job_id: the job to wait on
    :param wait_for: ``arrival``, ``completion`` or ``return``
    :param waiter_delay: seconds between polls (jittered)
    :param deadline: ISO-8601 time after which the wait fails (None: no deadline)
    :param on_success_with_errors: ``succeed``, ``warn`` or ``fail``
    :param max_consecutive_errors: transient errors in a row before the wait fails
    :param aws_conn_id: The Airflow connection used for AWS credentials.
    :param region_name: AWS region name; if not specified, the connection's region is used.
    :param verify: Whether or not to verify SSL certificates.
    :param botocore_config: Configuration dictionary (key-values) for botocore client.
    """

    def __init__(
        self,
        job_id: str,
        wait_for: str = WaitFor.COMPLETION.value,
        waiter_delay: float = 900,
        deadline: str | None = None,
        on_success_with_errors: str = SuccessWithErrorsPolicy.WARN.value,
        max_consecutive_errors: int = 10,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.job_id = job_id
        self.wait_for = WaitFor(wait_for).value
        self.waiter_delay = float(waiter_delay)
        self.deadline = deadline
        self.on_success_with_errors = SuccessWithErrorsPolicy(on_success_with_errors).value
        self.max_consecutive_errors = max_consecutive_errors
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.verify = verify
        self.botocore_config = botocore_config
        self._manifest_seen: int | None = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{self.__class__.__module__}.{self.__class__.__qualname__}",
            {
                "job_id": self.job_id,
                "wait_for": self.wait_for,
                "waiter_delay": self.waiter_delay,
                "deadline": self.deadline,
                "on_success_with_errors": self.on_success_with_errors,
                "max_consecutive_errors": self.max_consecutive_errors,
                "aws_conn_id": self.aws_conn_id,
                "region_name": self.region_name,
                "verify": self.verify,
                "botocore_config": self.botocore_config,
            },
        )

    def hook(self) -> ImportExportHook:
        return ImportExportHook(
            aws_conn_id=self.aws_conn_id, region_name=self.region_name, verify=self.verify, config=self.botocore_config
        )

    def pool_key(self) -> tuple[Any, ...]:
        return (self.aws_conn_id, self.region_name, str(self.verify), json.dumps(self.botocore_config, sort_keys=True))

    def _deadline(self) -> dt.datetime | None:
        return dt.datetime.fromisoformat(self.deadline) if self.deadline else None

    def _seconds_left(self) -> float | None:
        deadline = self._deadline()
        if deadline is None:
            return None
        return (deadline - dt.datetime.now(dt.timezone.utc)).total_seconds()

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            async with POOL.connection(self) as shared:
                await self._sleep(random.uniform(0, min(self.waiter_delay, START_JITTER_SECONDS)))
                progress = _Progress()
                while True:
                    left = self._seconds_left()
                    if left is not None and left <= 0:
                        yield self._event("timeout", f"Gave up waiting for {self.wait_for} of job {self.job_id}: "
                                          f"the deadline {self.deadline} passed.")  # fmt: skip
                        return
                    status = await self._poll(shared)
                    verdict = evaluate_wait(status, self.wait_for, self.on_success_with_errors)
                    if verdict.done:
                        self.log.info("%s", verdict.message)
                        yield self._event(verdict.state, verdict.message, status)
                        return
                    if progress.worth_logging(status):
                        self.log.info("%s", verdict.message)
                    await self._sleep(self.waiter_delay * random.uniform(*DELAY_JITTER))
        except exc.ImportExportError as err:
            yield self._event("error", str(err))

    async def _sleep(self, seconds: float) -> None:
        left = self._seconds_left()
        await asyncio.sleep(max(0.0, min(seconds, left) if left is not None else seconds))

    async def _poll(self, shared: SharedConnection) -> dict[str, Any]:
        """One GetStatus on the shared client, retried with backoff while errors are transient.

        A plain loop rather than a retry object per poll: at thousands of waits, every object
        a poll leaves behind is work for the garbage collector.
        """
        failures = 0
        while True:
            try:
                async with shared.in_flight:
                    answer = await shared.client.get_status(JobId=self.job_id)
                return self._masked(without_metadata(answer))
            except Exception as error:
                if not is_transient(error):
                    if isinstance(error, ClientError):
                        return ended_job_status(self.job_id, translate(error, self.job_id))
                    raise translate(error, self.job_id) from error
                failures += 1
                if failures >= self.max_consecutive_errors:
                    raise exc.ServiceUnavailableError(
                        f"GetStatus kept failing ({self.max_consecutive_errors} attempts in a row): "
                        f"{translate(error).message}",
                        job_id=self.job_id,
                    ) from error
                await self._sleep(min(2.0**failures, max(self.waiter_delay, 1.0)) * random.uniform(0.5, 1.0))

    def _masked(self, status: dict[str, Any]) -> dict[str, Any]:
        """Register the manifest's secrets once per manifest text, not on every poll (a YAML parse)."""
        seen = hash(status.get("CurrentManifest") or "")
        if seen != self._manifest_seen:
            with_secrets_masked(status)
            self._manifest_seen = seen
        return status

    def _event(self, state: str, message: str, status: dict[str, Any] | None = None) -> TriggerEvent:
        return TriggerEvent(
            {"status": state, "message": message, "job_id": self.job_id, "job": public_status(status or {})}
        )


class _Progress:
    """When a wait's state is worth a log line: on every change, and hourly otherwise."""

    __slots__ = ("_last_logged", "_state")

    def __init__(self) -> None:
        self._state: tuple[str, str] | None = None
        self._last_logged = 0.0

    def worth_logging(self, status: dict[str, Any]) -> bool:
        state = (str(status.get("LocationCode")), str(status.get("ProgressCode")))
        now = time.monotonic()
        if state != self._state or now - self._last_logged >= HEARTBEAT_SECONDS:
            self._state, self._last_logged = state, now
            return True
        return False
