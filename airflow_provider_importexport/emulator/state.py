"""Job records and the device lifecycle's rules, without I/O.

A job moves through the states of the one status table (:mod:`..status`); the rules of
which call is allowed in which state live here so the backend, the admin API and the
time profile all apply the same ones.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import asdict, dataclass, field
from typing import Any

from airflow_provider_importexport import exceptions as exc
from airflow_provider_importexport.status import (
    LOCATION_MESSAGES,
    LocationCode,
    Outcome,
    ProgressCode,
    progress_info,
)


class CancelRule(enum.StrEnum):
    """When CancelJob is allowed: the sources disagree (spec §2.4), so it is a switch.

    ``before-transfer`` (default, the API reference and model): only while ProgressCode is
    Pending. ``until-complete`` (the guide's "Canceling a Job" page): also while InProgress.
    """

    BEFORE_TRANSFER = "before-transfer"
    UNTIL_COMPLETE = "until-complete"


@dataclass(slots=True)
class Job:
    """One job: one device, owned by one account (slots: an emulator may hold a hundred thousand)."""

    job_id: str
    account_id: str
    job_type: str
    manifest_text: str
    created: dt.datetime
    sequence: int
    signature: str
    signature_file_contents: str
    location: LocationCode = LocationCode.NOT_RECEIVED
    progress: ProgressCode = ProgressCode.PENDING
    stage_since: dt.datetime | None = None
    shipped: bool = False
    error_count: int = 0
    carrier: str | None = None
    tracking_number: str | None = None
    log_bucket: str | None = None
    log_key: str | None = None
    device_path: str | None = None
    planned_outcome: str | None = None
    planned_error_count: int | None = None
    artifacts: list[dict[str, str]] = field(default_factory=list)
    #: Why processing aborted, in this job's own words: the status table's message for the
    #: code is generic, and a user needs the actual cause and fix.
    progress_message: str | None = None
    #: GetStatus calls answered for this job (admin view only): how often DAGs polled it.
    status_reads: int = 0

    def __post_init__(self) -> None:
        if self.stage_since is None:
            self.stage_since = self.created

    @property
    def canceled(self) -> bool:
        return self.progress is ProgressCode.CANCELED

    @property
    def expired(self) -> bool:
        return self.progress is ProgressCode.EXPIRED

    @property
    def outcome(self) -> Outcome:
        return progress_info(self.progress.value).outcome

    def move(
        self, when: dt.datetime, *, location: LocationCode | None = None, progress: ProgressCode | None = None
    ) -> None:
        if progress is not None and progress is not self.progress:
            self.progress_message = None
        self.location = location or self.location
        self.progress = progress or self.progress
        self.stage_since = when

    def abort(self, when: dt.datetime, progress: ProgressCode, reason: str) -> None:
        """End the transfer in a failure code, keeping the specific reason as the ProgressMessage."""
        self.move(when, progress=progress)
        self.progress_message = reason

    # -- what the API shows --
    def status(self) -> dict[str, Any]:
        """GetStatus output members, with the documented messages filled in."""
        info = progress_info(self.progress.value)
        result: dict[str, Any] = {
            "JobId": self.job_id,
            "JobType": self.job_type,
            "LocationCode": self.location.value,
            "LocationMessage": LOCATION_MESSAGES[self.location].format(
                carrier=self.carrier, tracking_number=self.tracking_number
            ),
            "ProgressCode": self.progress.value,
            "ProgressMessage": self.progress_message
            or info.message.format(log_key=self.log_key, log_bucket=self.log_bucket, error_count=self.error_count),
            "ErrorCount": self.error_count,
            "Signature": self.signature,
            "SignatureFileContents": self.signature_file_contents,
            "CurrentManifest": self.manifest_text,
            "CreationDate": self.created,
            "ArtifactList": self.artifacts,
        }
        optional = {
            "Carrier": self.carrier,
            "TrackingNumber": self.tracking_number,
            "LogBucket": self.log_bucket,
            "LogKey": self.log_key,
        }
        result.update({k: v for k, v in optional.items() if v is not None})
        return result

    def listing(self) -> dict[str, Any]:
        return {
            "JobId": self.job_id,
            "CreationDate": self.created,
            "IsCanceled": self.canceled,
            "JobType": self.job_type,
        }

    # -- persistence --
    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("created", "stage_since"):
            data[key] = data[key].isoformat()
        data["location"] = self.location.value
        data["progress"] = self.progress.value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Job:
        data = dict(data)
        for key in ("created", "stage_since"):
            data[key] = dt.datetime.fromisoformat(data[key])
        data["location"] = LocationCode(data["location"])
        data["progress"] = ProgressCode(data["progress"])
        return cls(**data)


# --- rules --------------------------------------------------------------------------------------


def check_usable(job: Job) -> None:
    """Canceled and expired jobs answer every call but GetStatus with their own error."""
    if job.canceled:
        raise exc.JobCanceledError("The job was canceled and is no longer valid.", job_id=job.job_id)
    if job.expired:
        raise exc.JobExpiredError("The job has expired.", job_id=job.job_id)


def check_updatable(job: Job) -> None:
    check_usable(job)
    if job.progress is not ProgressCode.PENDING:
        raise exc.UnableToUpdateJobError(
            f"The job can no longer be updated: its data transfer has started (ProgressCode {job.progress.value}).",
            job_id=job.job_id,
        )


def check_cancelable(job: Job, rule: CancelRule) -> None:
    check_usable(job)
    allowed = {ProgressCode.PENDING}
    if rule is CancelRule.UNTIL_COMPLETE:
        allowed |= {ProgressCode.STARTED, ProgressCode.IN_PROGRESS}
    if job.progress not in allowed:
        raise exc.UnableToCancelJobError(
            f"The job can no longer be canceled (ProgressCode {job.progress.value}, "
            f"LocationCode {job.location.value}).",
            job_id=job.job_id,
        )


class TransitionError(exc.InvalidParameterError):
    """An admin transition that the lifecycle does not allow from the job's state."""


def require(job: Job, condition: bool, action: str, needs: str) -> None:
    if not condition:
        raise TransitionError(
            f"Cannot {action} job {job.job_id}: it needs {needs}, but is "
            f"LocationCode {job.location.value} / ProgressCode {job.progress.value}."
        )
