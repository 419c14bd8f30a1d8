"""ImportExportJobTrigger: poll GetStatus from the triggerer until the awaited state.

Runs in the triggerer's event loop, where one process may hold thousands of waits. Every wait
on one connection shares one aiobotocore client and one schedule (:class:`SharedConnection`),
polled by as many pollers as the client has pooled connections, earliest-due first. A wait is
a handful of objects and a poll leaves nothing behind: Python's full garbage collections pause
the whole loop for a time that grows with the live objects, and they come more often the more
objects each poll leaves to outlive a young collection (docs/benchmarks.md).

Also: jittered polls, so waits do not fire in lockstep after a triggerer restart; bounded backoff
on transient errors; an absolute deadline that survives triggerer restarts (an attempt counter
would start again from zero).
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import heapq
import json
import random
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent
from asgiref.sync import sync_to_async

from airflow_provider_importexport import exceptions as exc
from airflow_provider_importexport.status import (
    SuccessWithErrorsPolicy,
    WaitFor,
    evaluate_wait,
    public_status,
)
from airflow_provider_importexport.utils.progress import WaitProgress, endpoint_line

if TYPE_CHECKING:
    from airflow_provider_importexport.hooks.importexport import ImportExportHook

#: Largest first-poll delay: a restarted triggerer spreads its first round of polls over
#: the poll interval, up to this many seconds, instead of firing them all at once.
START_JITTER_SECONDS = 60.0
#: Each wait between polls is waiter_delay times a factor in this range: spread out, and never
#: longer than waiter_delay, so a wait polls within its interval unless the service is the limit.
DELAY_JITTER = (0.9, 1.0)
#: A wait logs its state on every change, and otherwise once per this many seconds.
HEARTBEAT_SECONDS = 3600.0
#: Pollers per shared client when its botocore config sets no max_pool_connections (botocore's default).
DEFAULT_POOL_CONNECTIONS = 10
#: Waits due within this many seconds of each other are handed to the pollers together.
DUE_SLACK_SECONDS = 0.005


def _connect(trigger: ImportExportJobTrigger) -> tuple[ImportExportHook, int]:
    """The blocking part of opening a connection, for a worker thread: import the hook module
    (boto3, about a second: not on the event loop), read the Airflow connection (it must
    exist), and the client's connection pool size."""
    hook = trigger.hook()
    hook.require_connection()
    _load_client_data()
    return hook, hook.config.max_pool_connections or DEFAULT_POOL_CONNECTIONS


def _load_client_data() -> None:
    """Parse the JSON botocore reads to create a client (endpoints.json alone is about a megabyte)
    into the loader the Amazon provider's async sessions share, here in the worker thread, so the
    client's creation, which runs on the event loop, finds it parsed (about 40 ms less on the loop).
    Nothing happens if that loader is not where it was."""
    from airflow.providers.amazon.aws.hooks import base_aws

    loader = getattr(base_aws, "_loader", None)
    if loader is None:
        return
    for name in ("endpoints", "partitions", "sdk-default-configuration", "_retry"):
        loader.load_data(name)
    for type_name in ("service-2", "endpoint-rule-set-1"):
        loader.load_service_model("importexport", type_name)


class _Wait:
    """One trigger's place in its connection's schedule: its state between polls, nothing else."""

    __slots__ = ("context", "deadline", "due", "failures", "manifest_seen", "outcome", "progress", "trigger")

    def __init__(self, trigger: ImportExportJobTrigger, outcome: asyncio.Future[TriggerEvent]) -> None:
        self.trigger = trigger
        #: the POSIX time after which the wait fails, or None
        self.deadline = dt.datetime.fromisoformat(trigger.deadline).timestamp() if trigger.deadline else None
        self.due = 0.0  # loop time of the next poll
        self.failures = 0  # transient failures in a row
        self.manifest_seen: int | None = None
        self.progress = _Progress(trigger)
        self.outcome = outcome
        #: the trigger task's context: the triggerer routes a log line to a trigger's log by it
        self.context = contextvars.copy_context()

    def __lt__(self, other: _Wait) -> bool:
        return self.due < other.due

    def seconds_left(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.time()

    def log(self, message: str) -> None:
        """Log in the trigger's own context, so the line lands in that trigger's log."""
        self.context.run(self.trigger.log.info, "%s", message)

    def finish(self, event: TriggerEvent) -> None:
        if not self.outcome.done():
            self.outcome.set_result(event)


class SharedConnection:
    """What every wait on one connection shares in one event loop.

    One aiobotocore client, one check that the connection exists, one schedule (a heap of waits
    by due time) and a fixed set of pollers, as many as the client's connection pool: at most that
    many GetStatus calls are in flight, however many waits are due or however slow the service,
    and waits are served earliest-due first, so none starves behind others. A waiting wait holds
    no sleeping coroutine, future or timer of its own.
    """

    def __init__(self, key: tuple[Any, ...], trigger: ImportExportJobTrigger) -> None:
        self.key = key
        self.users = 0
        self.client: Any = None
        self._loop = asyncio.get_running_loop()
        self._schedule: list[_Wait] = []
        self._ready: asyncio.Queue[_Wait] = asyncio.Queue()
        self._timer: asyncio.TimerHandle | None = None
        self._pollers: list[asyncio.Task[None]] = []
        self._client_context: Any = None
        #: opening, once for every user; it runs in the first trigger's context
        self.opened: asyncio.Future[None] = asyncio.ensure_future(self._open(trigger))

    async def _open(self, trigger: ImportExportJobTrigger) -> None:
        hook, pollers = await sync_to_async(_connect)(trigger)
        self._client_context = await hook.get_async_conn()
        self.client = await self._client_context.__aenter__()
        # Pollers run in a context of their own: each wait's log lines go through wait.log.
        self._pollers = [
            asyncio.create_task(self._poller(), context=contextvars.Context()) for _ in range(max(1, pollers))
        ]

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        tasks = [self.opened, *self._pollers]
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks)
        if self._client_context is not None:
            await self._client_context.__aexit__(None, None, None)

    def schedule(self, wait: _Wait, delay: float) -> None:
        """Poll this wait ``delay`` seconds from now."""
        wait.due = self._loop.time() + delay
        heapq.heappush(self._schedule, wait)
        if self._schedule[0] is wait:
            self._arm()

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_at(self._schedule[0].due, self._hand_over) if self._schedule else None

    def _hand_over(self) -> None:
        """Give every due wait to the pollers, earliest first; drop waits that ended meanwhile."""
        self._timer = None
        now = self._loop.time() + DUE_SLACK_SECONDS
        while self._schedule and self._schedule[0].due <= now:
            wait = heapq.heappop(self._schedule)
            if not wait.outcome.done():
                self._ready.put_nowait(wait)
        self._arm()

    async def _poller(self) -> None:
        while True:
            wait = await self._ready.get()
            if wait.outcome.done():
                continue
            try:
                delay = await wait.trigger.poll(wait, self.client)
            except Exception as error:  # a bug, not a service failure: the trigger fails with it
                if not wait.outcome.done():
                    wait.outcome.set_exception(error)
                continue
            if delay is not None and not wait.outcome.done():
                self.schedule(wait, delay)


class AsyncClientPool:
    """One SharedConnection per hook configuration and event loop, reference counted.

    The connection closes, and its entry goes, when its last wait finishes.
    """

    def __init__(self) -> None:
        self.clients: dict[tuple[Any, ...], SharedConnection] = {}

    async def acquire(self, trigger: ImportExportJobTrigger) -> SharedConnection:
        key = (id(asyncio.get_running_loop()), *trigger.pool_key())
        shared = self.clients.get(key)
        if shared is None:
            shared = self.clients[key] = SharedConnection(key, trigger)
        shared.users += 1
        try:
            await asyncio.shield(shared.opened)  # one waiter's cancellation must not stop it for all
        except BaseException:
            await self.release(shared)
            raise
        return shared

    async def release(self, shared: SharedConnection) -> None:
        shared.users -= 1
        if shared.users == 0:
            if self.clients.get(shared.key) is shared:
                del self.clients[shared.key]
            await shared.close()


POOL = AsyncClientPool()


class ImportExportJobTrigger(BaseTrigger):
    """Wait in the triggerer for an Import/Export job to arrive, finish, or come back.

    :param job_id: the job to wait on
    :param wait_for: ``arrival``, ``completion`` or ``return``
    :param waiter_delay: seconds between polls (jittered between 0.9 and 1 times this)
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

    @property
    def log(self) -> Any:
        """One logger for every wait, not one per trigger (a structlog logger is several objects)."""
        return type(self).logger()

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
        # Imported here, not with this module: it imports boto3 through the Amazon provider's
        # base hook, and the triggerer imports trigger classes on its event loop.
        from airflow_provider_importexport.hooks.importexport import ImportExportHook

        return ImportExportHook(
            aws_conn_id=self.aws_conn_id, region_name=self.region_name, verify=self.verify, config=self.botocore_config
        )

    def pool_key(self) -> tuple[Any, ...]:
        return (self.aws_conn_id, self.region_name, str(self.verify), json.dumps(self.botocore_config, sort_keys=True))

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Join the connection's schedule and wait for the event its pollers decide."""
        try:
            shared = await POOL.acquire(self)
        except exc.ImportExportError as err:
            yield self._event("error", str(err))
            return
        wait = _Wait(self, asyncio.get_running_loop().create_future())
        meta = shared.client.meta
        self.log.info("%s", endpoint_line(meta.endpoint_url, self.region_name or meta.region_name, self.aws_conn_id))
        try:
            first = random.uniform(0, min(self.waiter_delay, START_JITTER_SECONDS))
            shared.schedule(wait, self._capped(first, wait.seconds_left()))
            event = await wait.outcome
        finally:
            wait.outcome.cancel()  # if it is still pending, the schedule drops the wait
            await POOL.release(shared)
        yield event

    async def poll(self, wait: _Wait, client: Any) -> float | None:
        """One poll of this wait: seconds until its next poll, or None once its outcome is set.

        Transient failures come back after a backoff, up to max_consecutive_errors in a row;
        the wait is decided again only when the job's state changed since the last poll (what
        decides a wait is the LocationCode and ProgressCode), so an unchanged answer costs no
        verdict and no message.
        """
        left = wait.seconds_left()
        if left is not None and left <= 0:
            wait.finish(self._event("timeout", wait.progress.timed_out()))
            return None
        try:
            status = await client.get_status(JobId=self.job_id)
        except Exception as error:
            return self._failed(wait, error, left)
        wait.failures = 0
        status.pop("ResponseMetadata", None)
        await self._mask(wait, status)
        return self._decide(wait, status, left)

    def _decide(self, wait: _Wait, status: dict[str, Any], left: float | None) -> float | None:
        lines = wait.progress.observe(status)
        if not lines:  # unchanged since a poll that said "waiting", and no heartbeat due
            return self._next_delay(left)
        verdict = evaluate_wait(status, self.wait_for, self.on_success_with_errors)
        if verdict.done:
            wait.log(verdict.message)
            wait.finish(self._event(verdict.state, verdict.message, status))
            return None
        for line in lines:
            wait.log(line)
        return self._next_delay(left)

    def _failed(self, wait: _Wait, error: Exception, left: float | None) -> float | None:
        """A failed GetStatus: the backoff before the next try, or None once the wait has ended."""
        from botocore.exceptions import ClientError

        from airflow_provider_importexport.hooks.importexport import ended_job_status, is_transient, translate

        if not is_transient(error):
            try:
                if not isinstance(error, ClientError):
                    raise translate(error, self.job_id) from error
                status = ended_job_status(self.job_id, translate(error, self.job_id))
            except exc.ImportExportError as err:
                wait.finish(self._event("error", str(err)))
                return None
            return self._decide(wait, status, left)
        wait.failures += 1
        if wait.failures >= self.max_consecutive_errors:
            message = (
                f"GetStatus kept failing ({self.max_consecutive_errors} attempts in a row): {translate(error).message}"
            )
            wait.finish(self._event("error", str(exc.ServiceUnavailableError(message, job_id=self.job_id))))
            return None
        return self._capped(min(2.0**wait.failures, max(self.waiter_delay, 1.0)) * random.uniform(0.5, 1.0), left)

    def _next_delay(self, left: float | None) -> float:
        return self._capped(self.waiter_delay * random.uniform(*DELAY_JITTER), left)

    @staticmethod
    def _capped(seconds: float, left: float | None) -> float:
        """Never sleep past the deadline: the wait must time out at it, not a poll later."""
        return max(0.0, seconds if left is None else min(seconds, left))

    async def _mask(self, wait: _Wait, status: dict[str, Any]) -> None:
        """Register the manifest's secrets once per manifest text, not on every poll (a YAML parse).

        The async form: a poller is not the trigger's task, and telling the triggerer's
        supervisor about a secret from a sync call needs that task's greenback portal.
        """
        manifest = status.get("CurrentManifest") or ""
        seen = hash(manifest)
        if seen != wait.manifest_seen:
            from airflow.sdk.log import amask_secret

            from airflow_provider_importexport.masking import manifest_secrets

            for secret in manifest_secrets(manifest):
                await amask_secret(secret)
            wait.manifest_seen = seen

    def _event(self, state: str, message: str, status: dict[str, Any] | None = None) -> TriggerEvent:
        return TriggerEvent(
            {"status": state, "message": message, "job_id": self.job_id, "job": public_status(status or {})}
        )


class _Progress(WaitProgress):
    """A wait's story (``utils.progress``): a line on every change of state, and hourly otherwise."""

    __slots__ = ()

    def __init__(self, trigger: ImportExportJobTrigger) -> None:
        deadline = dt.datetime.fromisoformat(trigger.deadline) if trigger.deadline else None
        super().__init__(trigger.job_id, trigger.wait_for, trigger.waiter_delay, deadline, heartbeat=HEARTBEAT_SECONDS)
