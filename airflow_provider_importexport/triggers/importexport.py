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
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import tenacity
from airflow.triggers.base import BaseTrigger, TriggerEvent
from asgiref.sync import sync_to_async
from botocore.exceptions import ClientError

from airflow_provider_importexport import exceptions as exc
from airflow_provider_importexport.hooks.importexport import (
    ImportExportHook,
    ended_job_status,
    is_transient,
    translate,
)
from airflow_provider_importexport.status import (
    SuccessWithErrorsPolicy,
    WaitFor,
    evaluate_wait,
    public_status,
)

#: Largest first-poll delay, so a restarted triggerer spreads its first round of polls.
START_JITTER_SECONDS = 60.0
#: Each sleep is waiter_delay times a factor in this range.
DELAY_JITTER = (0.9, 1.1)


@dataclass
class _Shared:
    client: Any
    context: Any
    users: int = 0


@dataclass
class AsyncClientPool:
    """One aiobotocore client per hook configuration and event loop, shared by every trigger.

    Reference counted: the client closes when its last trigger finishes.
    """

    clients: dict[tuple[Any, ...], _Shared] = field(default_factory=dict)
    locks: dict[tuple[Any, ...], asyncio.Lock] = field(default_factory=dict)

    @asynccontextmanager
    async def client(self, hook: ImportExportHook, key: tuple[Any, ...]) -> AsyncIterator[Any]:
        key = (id(asyncio.get_running_loop()), *key)
        lock = self.locks.setdefault(key, asyncio.Lock())
        async with lock:
            shared = self.clients.get(key)
            if shared is None:
                context = await hook.get_async_conn()
                shared = _Shared(await context.__aenter__(), context)
                self.clients[key] = shared
            shared.users += 1
        try:
            yield shared.client
        finally:
            async with lock:
                shared.users -= 1
                if shared.users == 0:
                    del self.clients[key]
                    await shared.context.__aexit__(None, None, None)


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

    def _pool_key(self) -> tuple[Any, ...]:
        return (self.aws_conn_id, self.region_name, str(self.verify), json.dumps(self.botocore_config, sort_keys=True))

    def _deadline(self) -> dt.datetime | None:
        return dt.datetime.fromisoformat(self.deadline) if self.deadline else None

    def _seconds_left(self) -> float | None:
        deadline = self._deadline()
        if deadline is None:
            return None
        return (deadline - dt.datetime.now(dt.timezone.utc)).total_seconds()

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = self.hook()
        try:
            await sync_to_async(hook.require_connection)()
            async with POOL.client(hook, self._pool_key()) as client:
                await self._sleep(random.uniform(0, min(self.waiter_delay, START_JITTER_SECONDS) * 0.1))
                while True:
                    left = self._seconds_left()
                    if left is not None and left <= 0:
                        yield self._event("timeout", f"Gave up waiting for {self.wait_for} of job {self.job_id}: "
                                          f"the deadline {self.deadline} passed.")  # fmt: skip
                        return
                    status = await self._poll(hook, client)
                    verdict = evaluate_wait(status, self.wait_for, self.on_success_with_errors)
                    self.log.info("%s", verdict.message)
                    if verdict.done:
                        yield self._event(verdict.state, verdict.message, status)
                        return
                    await self._sleep(self.waiter_delay * random.uniform(*DELAY_JITTER))
        except exc.ImportExportError as err:
            yield self._event("error", str(err))

    async def _sleep(self, seconds: float) -> None:
        left = self._seconds_left()
        await asyncio.sleep(max(0.0, min(seconds, left) if left is not None else seconds))

    async def _poll(self, hook: ImportExportHook, client: Any) -> dict[str, Any]:
        """One GetStatus, retried with backoff while errors are transient (bounded)."""
        retrying = tenacity.AsyncRetrying(
            stop=tenacity.stop_after_attempt(self.max_consecutive_errors),
            wait=tenacity.wait_exponential_jitter(initial=1, max=max(self.waiter_delay, 1)),
            retry=tenacity.retry_if_exception(is_transient),
            reraise=True,
        )
        try:
            return await retrying(hook.get_status_async, self.job_id, client)
        except Exception as error:
            if is_transient(error):
                raise exc.ServiceUnavailableError(
                    f"GetStatus kept failing ({self.max_consecutive_errors} attempts in a row): "
                    f"{translate(error).message}",
                    job_id=self.job_id,
                ) from error
            if isinstance(error, ClientError):
                return ended_job_status(self.job_id, translate(error, self.job_id))
            raise translate(error, self.job_id) from error

    def _event(self, state: str, message: str, status: dict[str, Any] | None = None) -> TriggerEvent:
        return TriggerEvent(
            {"status": state, "message": message, "job_id": self.job_id, "job": public_status(status or {})}
        )
