"""Progress lines for a wait of days: one on every change of the job's state, and an hourly heartbeat.

Shared by the trigger (deferrable waits) and the sensor's poke and reschedule modes, so a
week-long wait logs a short story instead of the same line every poll. Each line says what
the wait is for, the job's LocationCode/ProgressCode with the service's own messages, how
long the job has existed and how long it has been in that state, when the next check is,
and the deadline. Durations are pendulum's words, cut to two units ("2 days 3 hours").
Only status codes and the service's messages are logged, never the manifest (it holds secrets).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

import pendulum

from airflow_provider_importexport.status import LocationCode, ProgressCode

#: A wait logs its state on every change, and otherwise once per this many seconds.
HEARTBEAT_SECONDS = 3600.0

Clock = Callable[[], dt.datetime]


def now() -> dt.datetime:
    """The wall clock in UTC (tests stand the emulator's clock in for it)."""
    return dt.datetime.now(dt.UTC)


def human(seconds: float) -> str:
    """``2 days 3 hours``: pendulum's words for a duration, rounded to its two largest units."""
    if seconds < 1:
        return "less than a second"
    unit = 3600 if seconds >= 86400 else 60 if seconds >= 3600 else 1
    words = pendulum.duration(seconds=round(seconds / unit) * unit).in_words(locale="en").split()
    return " ".join(words[:4])


def stamp(when: dt.datetime) -> str:
    """``2026-02-14 09:00 UTC``."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def deadline_text(deadline: dt.datetime | None, at: dt.datetime) -> str:
    if deadline is None:
        return "no deadline"
    left = (deadline - at).total_seconds()
    return f"deadline {stamp(deadline)}, in {human(left)}" if left > 0 else f"deadline {stamp(deadline)} passed"


def deferring_line(interval: float, deadline: dt.datetime | None) -> str:
    """What the sensor says when it hands the wait to the triggerer."""
    return f"Deferring to the triggerer: it checks every {human(interval)}, {deadline_text(deadline, now())}."


def _aware(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, str) and value:
        return _aware(dt.datetime.fromisoformat(value))
    return None


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def _messages(status: Mapping[str, Any]) -> str:
    """The service's LocationMessage and ProgressMessage, as one sentence pair."""
    return " ".join(str(status[key]).strip() for key in ("LocationMessage", "ProgressMessage") if status.get(key))


def endpoint_line(endpoint_url: str, region: str | None, aws_conn_id: str | None) -> str:
    """Which endpoint the calls go to: said once per task and per wait, so a connection without
    ``endpoint_url`` that reaches the real service (or an emulator left configured) shows."""
    where = f"region {region}" if region and region != "aws-global" else "AWS's global endpoint"
    connection = f"connection {aws_conn_id}" if aws_conn_id else "the default AWS credential chain"
    return f"ImportExport endpoint: {endpoint_url} ({where}, {connection})"


NEVER_MOVED = (LocationCode.NOT_RECEIVED.value, ProgressCode.PENDING.value)


class WaitProgress:
    """One wait's memory of the job's state: which lines are worth logging, and what they say.

    ``observe`` takes each GetStatus answer and returns the lines to log (usually none). A
    sensor in reschedule mode keeps it across runs with ``snapshot`` and ``restore``.
    """

    __slots__ = (
        "_clock", "_messages", "_since_known", "deadline", "heartbeat", "interval", "job_id", "logged", "since",
        "started", "state", "wait_for",
    )  # fmt: skip

    def __init__(
        self,
        job_id: str,
        wait_for: str,
        interval: float,
        deadline: dt.datetime | None = None,
        *,
        heartbeat: float = HEARTBEAT_SECONDS,
        clock: Clock | None = None,
    ) -> None:
        self.job_id, self.wait_for, self.interval = job_id, wait_for, float(interval)
        self.deadline, self.heartbeat = deadline, heartbeat
        self._clock = clock or now
        self.started = self._clock()
        self.state: tuple[str, str] | None = None
        self.since: dt.datetime | None = None
        self.logged: dt.datetime | None = None
        self._since_known = False
        self._messages = ""

    # --- deciding --------------------------------------------------------------------------------

    def observe(self, status: Mapping[str, Any]) -> list[str]:
        """The lines one GetStatus answer is worth: the state at first, then a line on each
        change of state, and a heartbeat when nothing was logged for an hour."""
        at = self._clock()
        state = (str(status.get("LocationCode")), str(status.get("ProgressCode")))
        if state == self.state:
            if self.logged is not None and (at - self.logged).total_seconds() < self.heartbeat:
                return []
            self._messages = _messages(status)
            lines = [self._heartbeat_line(status, at)]
        elif self.state is None:
            self._messages = _messages(status)
            self._begin(status, state, at)
            lines = [self._first_line(status, at)]
        else:
            self._messages = _messages(status)
            lines = [self._change_line(status, state, at)]
            self.since, self._since_known = at, True
        self.state, self.logged = state, at
        return lines

    def _begin(self, status: Mapping[str, Any], state: tuple[str, str], at: dt.datetime) -> None:
        """A job still NotReceived/Pending has been so since its creation; of any other state
        the wait knows only that it lasts at least from now."""
        created = _aware(status.get("CreationDate"))
        self._since_known = state == NEVER_MOVED and created is not None
        self.since = created if self._since_known else at
        self.state = state

    # --- the lines -------------------------------------------------------------------------------

    def _first_line(self, status: Mapping[str, Any], at: dt.datetime) -> str:
        return f"Waiting for {self.wait_for} of job {self.job_id}: {self._where(at)}. {self._tail(status, at)}"

    def _change_line(self, status: Mapping[str, Any], state: tuple[str, str], at: dt.datetime) -> str:
        assert self.state is not None
        return (
            f"Job {self.job_id} is now {'/'.join(state)}{self._quoted()}, after {self._duration_in_state(at)} "
            f"in {'/'.join(self.state)}. Still waiting for {self.wait_for}. {self._tail(status, at)}"
        )

    def _heartbeat_line(self, status: Mapping[str, Any], at: dt.datetime) -> str:
        return f"Still waiting for {self.wait_for} of job {self.job_id}: {self._where(at)}. {self._tail(status, at)}"

    def timed_out(self) -> str:
        """Why the wait ended without the awaited state: the last state, how long, and what next."""
        at = self._clock()
        last = f"it was last seen {self._where(at)}" if self.state else "no status was read"
        return (
            f"Gave up waiting for {self.wait_for} of job {self.job_id} after {human(self._waited(at))} "
            f"({deadline_text(self.deadline, at)}): {last}. Next: look at the job "
            f"(aws importexport get-status --job-id {self.job_id}); to keep waiting, clear this task or give the "
            "sensor a longer timeout; if the device will not reach AWS, cancel the job "
            "(ImportExportCancelJobOperator)."
        )

    def _where(self, at: dt.datetime) -> str:
        assert self.state is not None
        return f"{'/'.join(self.state)} for {self._duration_in_state(at)}{self._quoted()}"

    def _duration_in_state(self, at: dt.datetime) -> str:
        seconds = (at - self.since).total_seconds() if self.since else 0.0
        return human(seconds) if self._since_known else f"at least {human(seconds)}"

    def _quoted(self) -> str:
        return f" ({self._messages})" if self._messages else ""

    def _tail(self, status: Mapping[str, Any], at: dt.datetime) -> str:
        created = _aware(status.get("CreationDate"))
        age = f"Job created {human((at - created).total_seconds())} ago; " if created else ""
        return f"{age}next check in {human(self.interval)}, {deadline_text(self.deadline, at)}."

    def _waited(self, at: dt.datetime) -> float:
        return (at - self.started).total_seconds()

    # --- kept across a sensor's reschedules --------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """What a later run of the same sensor needs to go on with the story (JSON-safe)."""
        return {
            "state": list(self.state) if self.state else None,
            "since": _iso(self.since),
            "since_known": self._since_known,
            "logged": _iso(self.logged),
            "started": _iso(self.started),
        }

    def restore(self, saved: Mapping[str, Any] | None) -> WaitProgress:
        """Go on from a snapshot (a missing or foreign one is ignored)."""
        if not isinstance(saved, Mapping) or not saved.get("started"):
            return self
        state = saved.get("state")
        self.state = (str(state[0]), str(state[1])) if isinstance(state, list) and len(state) == 2 else None
        self.since = _aware(saved.get("since"))
        self._since_known = bool(saved.get("since_known"))
        self.logged = _aware(saved.get("logged"))
        self.started = _aware(saved["started"]) or self.started
        return self
