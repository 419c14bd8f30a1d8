"""One row of the Import/Export page per job, built from ListJobs and GetStatus answers.

Pure functions, no I/O, so every state a job can be in is easy to test. A row holds only
what the page shows: the manifest is parsed for its deviceId and run marker alone, because
CurrentManifest echoes the job's PIN or TrueCrypt password.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from airflow_provider_importexport import exceptions as exc
from airflow_provider_importexport.manifest import parse_manifest
from airflow_provider_importexport.operators.importexport import MARKER_PREFIX
from airflow_provider_importexport.status import (
    LOCATION_MESSAGES,
    LocationCode,
    Outcome,
    ProgressCode,
    ProgressInfo,
    progress_info,
)

#: The create operator's run marker inside a manifest's ``generator`` field.
MARKER_PATTERN = re.compile(re.escape(MARKER_PREFIX) + r"[0-9a-f]{20}")
#: The timeline of a job, in order.
STAGES = ("created", "shipped", "arrived", "processed", "returned")
#: What a job whose current stage is this one is waiting for (the page's "stuck" note).
WAITING_FOR = {
    "shipped": "the device has not reached AWS",
    "arrived": "the device has not reached AWS",
    "processed": "the data transfer has not finished",
    "returned": "the device has not been shipped back",
}
_ARRIVED = (LocationCode.AT_AWS.value, LocationCode.RETURNED.value)
_PROCESSED_STATE = {Outcome.SUCCESS: "done", Outcome.SUCCESS_WITH_ERRORS: "warning"}
_UNITS = (("day", 86400), ("hour", 3600), ("minute", 60))


@dataclass(frozen=True)
class DagRunRef:
    """The DAG run (and create task) whose marker a job's manifest carries."""

    dag_id: str
    run_id: str
    task_id: str


@dataclass(frozen=True)
class Stage:
    """One step of a job's timeline; ``state`` is done, warning, failed, current, stuck, pending or skipped."""

    name: str
    state: str


@dataclass(frozen=True)
class ManifestFacts:
    """The only manifest fields the page uses."""

    device_id: str | None = None
    marker: str | None = None


@dataclass(frozen=True)
class JobRow:
    """What the page shows for one job (JSON-safe through :meth:`to_dict`)."""

    job_id: str
    job_type: str
    device_id: str | None
    canceled: bool
    location_code: str
    location_meaning: str
    progress_code: str
    progress_meaning: str
    outcome: str
    created: str | None
    age_seconds: float | None
    age: str
    error_count: int | None
    log_object: str | None
    carrier: str | None
    tracking_number: str | None
    label_available: bool
    marker: str | None
    timeline: tuple[Stage, ...]
    stuck: str | None = None
    error: str | None = None
    dag_run: DagRunRef | None = None

    @property
    def active(self) -> bool:
        """Still on its way: some stage is current (or stuck)."""
        return current_stage(self.timeline) is not None

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "active": self.active}


def manifest_facts(text: str | None, job_type: str | None) -> ManifestFacts:
    """deviceId and the run marker, through the provider's manifest model; nothing else leaves here."""
    if not text:
        return ManifestFacts()
    try:
        model = parse_manifest(text, job_type=job_type)
    except (exc.ImportExportError, ValueError, TypeError):
        return ManifestFacts()
    found = MARKER_PATTERN.search(model.generator or "")
    return ManifestFacts(model.device_id, found.group(0) if found else None)


def in_words(seconds: float) -> str:
    """``2 days``, ``1 hour``, ``5 minutes``: the largest whole unit."""
    for unit, size in _UNITS:
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return "less than a minute"


def location_meaning(status: dict[str, Any]) -> str:
    code = str(status.get("LocationCode", ""))
    try:
        template = LOCATION_MESSAGES[LocationCode(code)]
    except ValueError:
        return f"Unknown location code {code!r}."
    return template.format(carrier=status.get("Carrier") or "?", tracking_number=status.get("TrackingNumber") or "?")


def progress_meaning(status: dict[str, Any], info: ProgressInfo) -> str:
    values = {
        "log_key": status.get("LogKey") or "?",
        "log_bucket": status.get("LogBucket") or "?",
        "error_count": status.get("ErrorCount", "?"),
    }
    return info.message.format(**values)


def timeline(location: str, info: ProgressInfo, *, stuck: bool = False) -> tuple[Stage, ...]:
    """Created → shipped → arrived → processed → returned, as far as GetStatus can tell.

    The API has no shipping event: a device counts as shipped once it arrived. The first
    stage not reached is ``current`` (``stuck`` when the job is overdue); a job that ended
    before its device arrived (canceled, expired) skips the stages it never reached.
    """
    arrived = location in _ARRIVED
    reached: dict[str, str | None] = {
        "created": "done",
        "shipped": "done" if arrived else None,
        "arrived": "done" if arrived else None,
        "processed": _PROCESSED_STATE.get(info.outcome, "failed") if info.terminal else None,
        "returned": "done" if location == LocationCode.RETURNED.value else None,
    }
    over = info.terminal and not arrived
    stages: list[Stage] = []
    waiting = False
    for name in STAGES:
        state = reached[name]
        if state is None:
            if over:
                state = "skipped"
            elif waiting:
                state = "pending"
            else:
                state, waiting = ("stuck" if stuck else "current"), True
        stages.append(Stage(name, state))
    return tuple(stages)


def current_stage(stages: tuple[Stage, ...]) -> str | None:
    return next((s.name for s in stages if s.state in ("current", "stuck")), None)


def build_row(
    listing: dict[str, Any],
    status: dict[str, Any] | exc.ImportExportError,
    *,
    now: dt.datetime,
    stuck_after: dt.timedelta,
) -> JobRow:
    """The row for one ListJobs entry and its GetStatus answer (or the error GetStatus raised)."""
    job_id = str(listing["JobId"])
    canceled = bool(listing.get("IsCanceled"))
    error = f"GetStatus failed: {status}" if isinstance(status, exc.ImportExportError) else None
    answer: dict[str, Any] = {} if isinstance(status, exc.ImportExportError) else status
    job_type = str(answer.get("JobType") or listing.get("JobType") or "")
    progress = ProgressCode.CANCELED.value if canceled else str(answer.get("ProgressCode", ""))
    location = str(answer.get("LocationCode", ""))
    info = progress_info(progress)
    created = _created(answer.get("CreationDate") or listing.get("CreationDate"))
    age = (now - created).total_seconds() if created else None
    overdue = age is not None and age > stuck_after.total_seconds() and not error
    stages = timeline(location, info, stuck=overdue)
    waiting = current_stage(stages)
    facts = manifest_facts(answer.get("CurrentManifest"), job_type or None)
    return JobRow(
        job_id=job_id,
        job_type=job_type,
        device_id=facts.device_id,
        canceled=canceled,
        location_code=location,
        location_meaning=location_meaning(answer) if location else "",
        progress_code=progress,
        progress_meaning=progress_meaning(answer, info) if progress else "",
        outcome=info.outcome.value if progress else "",
        created=created.isoformat() if created else None,
        age_seconds=age,
        age=_age_words(age, ended=waiting is None),
        error_count=_int_or_none(answer.get("ErrorCount")),
        log_object=_log_object(answer),
        carrier=answer.get("Carrier") or None,
        tracking_number=answer.get("TrackingNumber") or None,
        label_available=waiting == "shipped" and not canceled,
        marker=facts.marker,
        timeline=stages,
        stuck=f"{WAITING_FOR[waiting]} after {in_words(age or 0)}" if waiting and overdue else None,
        error=error,
    )


def _age_words(age: float | None, *, ended: bool) -> str:
    if age is None:
        return ""
    return f"created {in_words(age)} ago" if ended else f"open for {in_words(age)}"


def _created(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return None


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _log_object(status: dict[str, Any]) -> str | None:
    bucket, key = status.get("LogBucket"), status.get("LogKey")
    return f"s3://{bucket}/{key}" if bucket and key else None
