"""Faults on demand: throttling, HTTP 500/503, latency and dropped connections.

Seeded, so a run with the same settings and request order sees the same faults.
"""

from __future__ import annotations

import random
import threading
from dataclasses import asdict, dataclass
from typing import Any

from airflow_provider_importexport.settings import settings_from_dict


@dataclass
class FaultConfig:
    """Rates are probabilities per API request (0..1); latency is added to every request."""

    throttle_rate: float = 0.0
    error_500_rate: float = 0.0
    error_503_rate: float = 0.0
    drop_rate: float = 0.0
    latency_ms: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("throttle_rate", "error_500_rate", "error_503_rate", "drop_rate"):
            value = getattr(self, name)
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        total = self.throttle_rate + self.error_500_rate + self.error_503_rate + self.drop_rate
        if total > 1.0:
            raise ValueError(f"fault rates add up to {total}; they must not exceed 1")
        if self.latency_ms < 0:
            raise ValueError("latency_ms must not be negative")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaultConfig:
        return settings_from_dict(cls, data, "fault")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: What a drawn fault does: (wire code, HTTP status, message); "drop" closes the connection.
FAULTS = {
    "throttle": ("Throttling", 400, "Rate exceeded"),
    "error_500": ("InternalFailure", 500, "The request processing has failed because of an unknown error."),
    "error_503": ("ServiceUnavailable", 503, "The service is unavailable. Please try again shortly."),
}
#: Faults that strike after the request was carried out (the client never learns it was):
#: for testing callers that must not repeat a non-idempotent call.
AFTER_FAULTS = {"error_500_after": "error_500", "drop_after": "drop"}
QUEUEABLE = (*FAULTS, "drop", *AFTER_FAULTS)


class FaultInjector:
    """Draws a fault (or none) per request from the configured rates."""

    def __init__(self, config: FaultConfig | None = None) -> None:
        self._lock = threading.Lock()
        self.configure(config or FaultConfig())
        #: Faults forced for the next N requests, regardless of rates (tests: "next call throttles").
        self.queued: list[str] = []

    def configure(self, config: FaultConfig) -> None:
        with self._lock:
            self.config = config
            self._random = random.Random(config.seed)
            self.counts = dict.fromkeys((*FAULTS, "drop", "none"), 0)

    def queue(self, *faults: str) -> None:
        unknown = [f for f in faults if f not in QUEUEABLE]
        if unknown:
            raise ValueError(f"unknown fault(s) {unknown}; use {sorted(QUEUEABLE)}")
        with self._lock:
            self.queued.extend(faults)

    def draw(self) -> str | None:
        with self._lock:
            if self.queued:
                fault: str | None = self.queued.pop(0)
            else:
                fault = self._draw_rate()
            self.counts[fault or "none"] += 1
            return fault

    def _draw_rate(self) -> str | None:
        roll = self._random.random()
        for name, rate in (
            ("throttle", self.config.throttle_rate),
            ("error_500", self.config.error_500_rate),
            ("error_503", self.config.error_503_rate),
            ("drop", self.config.drop_rate),
        ):
            if roll < rate:
                return name
            roll -= rate
        return None
