"""The device lifecycle as a state machine: what each step does to a job, and when the time profile makes it due.

A step is an admin action (ship, receive, start, process, return, expire, attach) or the
same step taken by the time profile at the moment it fell due. Processing that moves data
is split in three, so its caller can run the slow middle part without holding the
backend's lock: :meth:`Lifecycle.step` checks and claims the job and returns a
:class:`Transfer`, :meth:`Lifecycle.transfer` copies, :meth:`Lifecycle.finish` records.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_provider_importexport import exceptions as exc
from airflow_provider_importexport.emulator.processing import ABORT_PROGRESS, JobAborted, Processor, ProcessResult
from airflow_provider_importexport.emulator.state import Job, require
from airflow_provider_importexport.emulator.storage import S3Storage
from airflow_provider_importexport.manifest import parse_manifest
from airflow_provider_importexport.settings import settings_from_dict
from airflow_provider_importexport.status import PROCESSING_FAILURES, LocationCode, Outcome, ProgressCode

log = logging.getLogger(__name__)

DAY = 86400.0
#: Admin actions, in lifecycle order.
ACTIONS = ("ship", "receive", "start", "process", "return", "expire", "attach")


@dataclass
class LifecycleProfile:
    """How long each automatic stage takes, in seconds; None leaves that step to the admin API.

    ``arrive_after`` counts from creation, each later step from the previous one. Expiry
    (no device within ``expire_after``) and purging of expired jobs always run.
    """

    arrive_after: float | None = None
    start_after: float | None = None
    process_after: float | None = None
    return_after: float | None = None
    expire_after: float = 30 * DAY
    purge_after: float = 7 * DAY

    @classmethod
    def named(cls, name: str) -> LifecycleProfile:
        try:
            return PROFILES[name]
        except KeyError:
            raise ValueError(f"unknown lifecycle profile {name!r}; use one of {', '.join(PROFILES)}") from None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LifecycleProfile:
        return settings_from_dict(cls, data, "lifecycle profile")


PROFILES = {
    "manual": LifecycleProfile(),
    "demo": LifecycleProfile(arrive_after=3, start_after=2, process_after=3, return_after=3),
    "fast": LifecycleProfile(arrive_after=0.3, start_after=0.2, process_after=0.3, return_after=0.3),
}


@dataclass(frozen=True)
class Transfer:
    """A processing step's data transfer, claimed but not yet run: ``planned`` is an outcome the admin chose."""

    job: Job
    when: dt.datetime
    planned: ProgressCode | None


class Lifecycle:
    """The steps, their rules and their due times; ``busy`` holds the jobs whose data is being moved."""

    def __init__(self, storage: S3Storage) -> None:
        self.storage = storage
        self.processor = Processor(storage)
        self.busy: set[str] = set()

    # --- one step -------------------------------------------------------------------------------

    def step(self, job: Job, action: str, when: dt.datetime, **options: Any) -> Transfer | None:
        """Take one step (TransitionError when the job's state does not allow it); a data transfer
        is returned to be run with :meth:`transfer` and recorded with :meth:`finish`."""
        if action not in ACTIONS:
            raise exc.InvalidParameterError(f"Unknown action {action!r}; use one of {', '.join(ACTIONS)}.")
        if action == "process":
            return self._process(job, when, **options)
        getattr(self, f"_{action}")(job, when, **options)
        return None

    def _ship(self, job: Job, when: dt.datetime) -> None:
        require(job, job.location is LocationCode.NOT_RECEIVED and not job.canceled and not job.expired,
                "ship", "a device not yet received on a live job")  # fmt: skip
        job.shipped = True

    def _receive(self, job: Job, when: dt.datetime) -> None:
        require(job, job.location is LocationCode.NOT_RECEIVED and job.progress is ProgressCode.PENDING,
                "receive", "LocationCode NotReceived and ProgressCode Pending")  # fmt: skip
        job.move(when, location=LocationCode.AT_AWS)

    def _start(self, job: Job, when: dt.datetime) -> None:
        require(job, job.location is LocationCode.AT_AWS and job.progress is ProgressCode.PENDING,
                "start", "LocationCode AtAWS and ProgressCode Pending")  # fmt: skip
        job.move(when, progress=ProgressCode.IN_PROGRESS)

    def _process(
        self, job: Job, when: dt.datetime, outcome: str | None = None, error_count: int | None = None
    ) -> Transfer | None:
        if outcome is not None:
            _check_outcome(outcome)
            job.planned_outcome, job.planned_error_count = outcome, error_count
        if job.location is LocationCode.AT_AWS and job.progress is ProgressCode.PENDING:
            self._start(job, when)
        needs = "LocationCode AtAWS with ProgressCode Pending or InProgress"
        if job.location is LocationCode.NOT_RECEIVED:
            needs += (
                f" (receive it first: importexport-emulator admin receive {job.job_id}, "
                f"or admin.act({job.job_id!r}, 'receive') in Python)"
            )
        require(job, job.progress is ProgressCode.IN_PROGRESS, "process", needs)
        planned = ProgressCode(job.planned_outcome) if job.planned_outcome else None
        if planned in PROCESSING_FAILURES:
            job.move(when, progress=planned)
            return None
        self.busy.add(job.job_id)
        return Transfer(job, when, planned)

    def _return(self, job: Job, when: dt.datetime, carrier: str = "UPS", tracking_number: str | None = None) -> None:
        ended = job.outcome is not Outcome.ACTIVE
        require(job, job.location is LocationCode.AT_AWS and ended, "return", "LocationCode AtAWS and a finished job")
        job.carrier = carrier
        job.tracking_number = tracking_number or "1Z" + secrets.token_hex(8).upper()
        job.move(when, location=LocationCode.RETURNED)

    def _expire(self, job: Job, when: dt.datetime) -> None:
        require(job, job.location is LocationCode.NOT_RECEIVED and job.progress is ProgressCode.PENDING,
                "expire", "no device received and ProgressCode Pending")  # fmt: skip
        job.move(when, progress=ProgressCode.EXPIRED)

    def _attach(self, job: Job, when: dt.datetime, path: str) -> None:
        job.device_path = str(Path(path).resolve())

    # --- the data transfer ------------------------------------------------------------------------

    def transfer(self, work: Transfer) -> ProcessResult:
        """Move the job's data (S3 and the device folder); never raises: a failure is the job's abort."""
        job = work.job
        try:
            if work.planned is not None and not (job.device_path and Path(job.device_path).is_dir()):
                return self._synthetic(job, work.planned)
            return self.processor.run(job)
        except JobAborted as aborted:
            return ProcessResult(aborted.progress, reason=aborted.reason)
        except Exception as err:
            # One job's failure must not leave it InProgress, where every later look at it would fail again.
            log.exception("processing job %s failed", job.job_id)
            reason = f"The job was aborted: the emulator failed while processing it ({type(err).__name__}: {err})."
            return ProcessResult(ABORT_PROGRESS, reason=reason)

    def _synthetic(self, job: Job, planned: ProgressCode) -> ProcessResult:
        """A chosen success outcome for a job without a device folder: an empty log, the chosen count."""
        manifest = parse_manifest(job.manifest_text, job_type=job.job_type)
        bucket, key = manifest.effective_log_bucket, manifest.log_key(job.job_id)
        errors = job.planned_error_count or (1 if planned is ProgressCode.SUCCESS_WITH_ERRORS else 0)
        if bucket:
            self.storage.put(job.account_id, bucket, key, b"", ContentType="text/csv")
        return ProcessResult(planned, errors, bucket, key)

    def finish(self, work: Transfer, result: ProcessResult) -> None:
        """Record a transfer's outcome, unless the job left InProgress meanwhile (canceled)."""
        job = work.job
        self.busy.discard(job.job_id)
        if job.progress is not ProgressCode.IN_PROGRESS:
            return
        if result.reason is not None:
            job.abort(work.when, result.progress, result.reason)
            return
        job.error_count, job.log_bucket, job.log_key = result.error_count, result.log_bucket, result.log_key
        job.move(work.when, progress=result.progress)

    # --- the time profile -----------------------------------------------------------------------------

    def advance(
        self, job: Job, profile: LifecycleProfile, now: dt.datetime, *, transfers: bool = True
    ) -> tuple[bool, Transfer | None]:
        """Take every step whose time has come, at the time it came, up to a data transfer
        (returned to be run; without ``transfers``, stop before it). Whether a step was taken."""
        moved = False
        for _ in range(len(ACTIONS)):  # at most one pass per stage
            due = self.next_step(job, profile)
            if due is None or due[0] > now:
                break
            when, action = due
            if action == "process" and (not transfers or job.job_id in self.busy):
                break
            work = self.step(job, action, when)
            moved = True
            if work is not None:
                return moved, work
        return moved, None

    def next_step(self, job: Job, profile: LifecycleProfile) -> tuple[dt.datetime, str] | None:
        """The time profile's next step for the job, and when it falls due."""
        found = _next_stage(job, profile)
        if found is None:
            return None
        delay, action = found
        return (job.stage_since or job.created) + dt.timedelta(seconds=delay), action

    @staticmethod
    def purge_due(job: Job, profile: LifecycleProfile, now: dt.datetime) -> bool:
        """An expired job is forgotten ``purge_after`` seconds after it expired."""
        due = (job.stage_since or job.created) + dt.timedelta(seconds=profile.purge_after)
        return job.expired and now >= due


def _next_stage(job: Job, profile: LifecycleProfile) -> tuple[float, str] | None:
    if job.progress is ProgressCode.EXPIRED:
        return None
    if job.location is LocationCode.NOT_RECEIVED and job.progress is ProgressCode.PENDING:
        if profile.arrive_after is not None:
            return profile.arrive_after, "receive"
        return None if job.shipped else (profile.expire_after, "expire")
    if job.location is LocationCode.AT_AWS and job.progress is ProgressCode.PENDING and profile.start_after is not None:
        return profile.start_after, "start"
    if job.progress is ProgressCode.IN_PROGRESS and profile.process_after is not None:
        return profile.process_after, "process"
    if job.location is LocationCode.AT_AWS and job.outcome is not Outcome.ACTIVE and profile.return_after is not None:
        return profile.return_after, "return"
    return None


def _check_outcome(outcome: str) -> None:
    allowed = [*sorted(c.value for c in PROCESSING_FAILURES), "Complete", "SuccessWithErrors"]
    if outcome not in allowed:
        raise exc.InvalidParameterError(f"Unknown outcome {outcome!r}; use one of {', '.join(allowed)}.")
