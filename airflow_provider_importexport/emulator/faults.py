"""Faults on demand: throttling, HTTP 500/503, latency, dropped connections, lost answers.

Seeded, so a run with the same settings and request order sees the same faults. Faults are
drawn per API operation once the request is authenticated and parsed, so a test can aim one
at CreateJob alone. "After" faults strike once the operation was carried out: the job exists,
the client never hears of it. That is what a caller that must not repeat itself is tested with.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

from airflow_provider_importexport.settings import settings_from_dict

#: What a refusal fault answers: (wire code, HTTP status, message).
FAULTS = {
    "throttle": ("Throttling", 400, "Rate exceeded"),
    "error_500": ("InternalFailure", 500, "The request processing has failed because of an unknown error."),
    "error_503": ("ServiceUnavailable", 503, "The service is unavailable. Please try again shortly."),
}
#: A 500 whose body is not the service's XML: a web server's or proxy's HTML page botocore cannot parse.
HTML_ERROR_PAGE = (
    b"<!doctype html>\n<html><head><title>500 Internal Server Error</title></head>"
    b"<body>Internal Server Error</body></html>"
)
#: Faults that strike after the request was carried out, and how the answer is lost.
AFTER_FAULTS = {"error_500_after": "error_500", "drop_after": "drop", "error_500_html_after": "error_500_html"}
#: Every fault kind, in the order rates are drawn.
FAULT_KINDS = (*FAULTS, "error_500_html", "drop", *AFTER_FAULTS)


@dataclass
class FaultConfig:
    """Rates are probabilities per API request (0..1); latency is added to requests.

    ``latency_ms`` delays every request; ``latency_spike_rate`` of them are delayed by
    ``latency_spike_ms`` instead. ``actions`` limits rate-drawn faults to those operations
    (e.g. ``["CreateJob"]``); empty means every operation.
    """

    throttle_rate: float = 0.0
    error_500_rate: float = 0.0
    error_503_rate: float = 0.0
    drop_rate: float = 0.0
    error_500_html_rate: float = 0.0
    error_500_after_rate: float = 0.0
    drop_after_rate: float = 0.0
    error_500_html_after_rate: float = 0.0
    latency_ms: float = 0.0
    latency_spike_rate: float = 0.0
    latency_spike_ms: float = 0.0
    actions: tuple[str, ...] = ()
    seed: int = 0

    def __post_init__(self) -> None:
        for kind in (*FAULT_KINDS, "latency_spike"):
            value = getattr(self, f"{kind}_rate")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{kind}_rate must be a number between 0 and 1, got {value!r}")
        total = sum(self.rate(kind) for kind in FAULT_KINDS)
        if total > 1.0:
            raise ValueError(f"fault rates add up to {total}; they must not exceed 1")
        for name in ("latency_ms", "latency_spike_ms"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 600_000:
                raise ValueError(f"{name} must be a number of milliseconds from 0 to 600000, got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        if isinstance(self.actions, str) or not all(isinstance(a, str) for a in self.actions):
            raise ValueError(f"actions must be a list of operation names such as ['CreateJob'], got {self.actions!r}")
        self.actions = tuple(self.actions)

    def rate(self, kind: str) -> float:
        return float(getattr(self, f"{kind}_rate"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaultConfig:
        return settings_from_dict(cls, data, "fault")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "actions": list(self.actions)}


@dataclass(frozen=True)
class Fault:
    """The fault drawn for one request: its kind (None for none) and extra delay."""

    kind: str | None
    delay_ms: float = 0.0

    @property
    def after(self) -> bool:
        return self.kind in AFTER_FAULTS

    @property
    def effect(self) -> str | None:
        """What the client sees: a refusal in FAULTS, "error_500_html", "drop", or None."""
        return AFTER_FAULTS.get(self.kind, self.kind) if self.kind else None


def parse_queued(entry: str) -> tuple[str, str | None]:
    """``"drop_after"`` strikes the next request; ``"drop_after@CreateJob"`` the next CreateJob."""
    kind, _, action = entry.partition("@")
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault {kind!r}; use one of {sorted(FAULT_KINDS)}, optionally with @Operation")
    return kind, action or None


class FaultInjector:
    """Draws a fault (or none) per API operation, from the queue first, then from the rates."""

    def __init__(self, config: FaultConfig | None = None) -> None:
        self._lock = threading.Lock()
        #: Faults forced on the next matching requests, regardless of rates.
        self.queued: deque[tuple[str, str | None]] = deque()
        self.configure(config or FaultConfig())

    def configure(self, config: FaultConfig) -> None:
        with self._lock:
            self.config = config
            self._random = random.Random(config.seed)
            self.counts = dict.fromkeys((*FAULT_KINDS, "latency_spike", "none"), 0)

    def queue(self, *entries: str) -> None:
        parsed = [parse_queued(entry) for entry in entries]
        with self._lock:
            self.queued.extend(parsed)

    def queued_names(self) -> list[str]:
        with self._lock:
            return [f"{kind}@{action}" if action else kind for kind, action in self.queued]

    def draw(self, action: str) -> Fault:
        with self._lock:
            kind = self._take_queued(action)
            if kind is None and (not self.config.actions or action in self.config.actions):
                kind = self._draw_rate()
            delay = self.config.latency_ms
            if self.config.latency_spike_rate and self._random.random() < self.config.latency_spike_rate:
                delay = self.config.latency_spike_ms
                self.counts["latency_spike"] += 1
            self.counts[kind or "none"] += 1
            return Fault(kind, delay)

    def _take_queued(self, action: str) -> str | None:
        for index, (kind, target) in enumerate(self.queued):
            if target is None or target == action:
                del self.queued[index]
                return kind
        return None

    def _draw_rate(self) -> str | None:
        roll = self._random.random()
        for kind in FAULT_KINDS:
            rate = self.config.rate(kind)
            if roll < rate:
                return kind
            roll -= rate
        return None


@dataclass
class RequestRecord:
    """One API request the emulator received and authenticated: what it did, what the client saw."""

    seq: int
    action: str
    request_id: str
    account_id: str
    fault: str | None
    carried_out: bool
    outcome: str = ""
    job_id: str | None = None
    answered: bool = True
    #: When the emulator finished with the request (seconds since the epoch).
    at: float = 0.0


class RequestLog:
    """The emulator's own record of API requests, so tests count on the server side.

    Bounded (the oldest records go first); thread-safe.
    """

    def __init__(self, limit: int = 200_000) -> None:
        self._lock = threading.Lock()
        self._records: deque[RequestRecord] = deque(maxlen=limit)
        self._seq = 0

    def add(self, **fields: Any) -> RequestRecord:
        with self._lock:
            self._seq += 1
            record = RequestRecord(seq=self._seq, at=time.time(), **fields)
            self._records.append(record)
            return record

    def query(self, action: str | None = None, job_id: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            records = list(self._records)
        return [
            asdict(r)
            for r in records
            if (action is None or r.action == action) and (job_id is None or r.job_id == job_id)
        ]

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
