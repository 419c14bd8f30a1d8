"""The emulator's service state: accounts' jobs, the six operations and the device lifecycle.

Like a moto backend it knows nothing of HTTP: the server decodes a request into an
operation name and parameters, and this module answers with the output members or
raises the provider exception whose code the service would send.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import itertools
import logging
import re
import secrets
import string
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_provider_importexport import exceptions as exc
from airflow_provider_importexport.emulator import labels
from airflow_provider_importexport.emulator.auth import Account
from airflow_provider_importexport.emulator.processing import (
    ABORT_PROGRESS,
    JobAborted,
    Processor,
)
from airflow_provider_importexport.emulator.state import (
    CancelRule,
    Job,
    check_cancelable,
    check_updatable,
    check_usable,
    require,
)
from airflow_provider_importexport.emulator.storage import S3Storage, StateStore, bucket_info
from airflow_provider_importexport.manifest import (
    Manifest,
    ReturnAddress,
    S3ImportManifest,
    address_problems,
    load_manifest,
    manifest_error,
    parse_manifest,
)
from airflow_provider_importexport.settings import settings_from_dict
from airflow_provider_importexport.status import PROCESSING_FAILURES, LocationCode, Outcome, ProgressCode

log = logging.getLogger(__name__)

#: JobIds: 5 characters from 1-9 and A-Z without O (spec §3.1).
JOB_ID_ALPHABET = "123456789" + string.ascii_uppercase.replace("O", "")
#: ListJobs page size when MaxJobs is absent (the service documents none).
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
DAILY_CREATE_QUOTA = 50
DAY = 86400.0


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


@dataclass
class BackendConfig:
    """Behaviour switches, documented in the README's emulator section."""

    profile: LifecycleProfile
    cancel_rule: CancelRule = CancelRule.BEFORE_TRANSFER
    daily_create_quota: int = DAILY_CREATE_QUOTA
    devices_dir: str | None = None
    #: GetStatus on a canceled or expired job: "progress" answers ProgressCode Canceled/Expired
    #: (the status table), "error" raises CanceledJobId/ExpiredJobId (the model).
    ended_job_status: str = "progress"
    state_file: str | None = None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


class ImportExportBackend:
    """All jobs of all emulated accounts."""

    def __init__(
        self,
        accounts: list[Account],
        storage: S3Storage,
        config: BackendConfig,
        clock: Callable[[], dt.datetime] = _now,
    ) -> None:
        self.accounts = {a.account_id: a for a in accounts}
        self.storage = storage
        self.processor = Processor(storage)
        self.config = config
        self._clock = clock
        self.clock_offset = dt.timedelta()
        self.jobs: dict[str, Job] = {}
        self.documents: dict[str, bytes] = {}
        self._purged: set[str] = set()
        self._sequence = itertools.count()
        self._lock = threading.RLock()
        self._store = StateStore(config.state_file) if config.state_file else None
        self._load()

    def now(self) -> dt.datetime:
        return self._clock() + self.clock_offset

    # --- the six operations ------------------------------------------------------------------

    def create_job(self, account: Account, params: dict[str, Any], base_url: str) -> dict[str, Any]:
        job_type = self._job_type(params)
        manifest_text = params["Manifest"]
        manifest = self._validated(account, manifest_text, job_type)
        with self._lock:
            if not params.get("ValidateOnly"):
                self._check_quota(account)
            job = self._new_job(account, job_type, manifest_text, manifest, base_url)
            if not params.get("ValidateOnly"):
                self.jobs[job.job_id] = job
                self._store_job_sheet(job, manifest)
                self._save()
        return {
            "JobId": job.job_id,
            "JobType": job.job_type,
            "Signature": job.signature,
            "SignatureFileContents": job.signature_file_contents,
            "WarningMessage": _warnings(manifest),
            "ArtifactList": job.artifacts,
        }

    def update_job(self, account: Account, params: dict[str, Any]) -> dict[str, Any]:
        job_type = self._job_type(params)
        with self._lock:
            job = self._owned(account, params["JobId"])
            check_updatable(job)
        manifest = self._validated(account, params["Manifest"], job_type)
        with self._lock:
            check_updatable(job)
            if not params.get("ValidateOnly"):
                job.manifest_text = params["Manifest"]
                job.job_type = job_type
                self._save()
        return {"Success": True, "WarningMessage": _warnings(manifest), "ArtifactList": job.artifacts}

    def cancel_job(self, account: Account, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            job = self._owned(account, params["JobId"])
            check_cancelable(job, self.config.cancel_rule)
            job.move(self.now(), progress=ProgressCode.CANCELED)
            self._save()
        return {"Success": True}

    def get_status(self, account: Account, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            job = self._owned(account, params["JobId"])
            job.status_reads += 1
            if self.config.ended_job_status == "error":
                check_usable(job)
            return job.status()

    def list_jobs(self, account: Account, params: dict[str, Any]) -> dict[str, Any]:
        max_jobs = params.get("MaxJobs", DEFAULT_PAGE_SIZE)
        if not 0 <= max_jobs <= MAX_PAGE_SIZE:
            raise exc.InvalidParameterError(f"MaxJobs must be between 0 and {MAX_PAGE_SIZE}, got {max_jobs}.")
        with self._lock:
            self.advance_all()
            mine = sorted(
                (j for j in self.jobs.values() if j.account_id == account.account_id),
                key=lambda j: (j.created, j.sequence),
                reverse=True,
            )
        start = 0
        if "Marker" in params:
            ids = [j.job_id for j in mine]
            if params["Marker"] not in ids:
                raise exc.InvalidParameterError(f"Marker {params['Marker']!r} is not one of your job ids.")
            start = ids.index(params["Marker"]) + 1
        page = mine[start : start + max_jobs]
        return {"Jobs": [j.listing() for j in page], "IsTruncated": start + len(page) < len(mine)}

    def get_shipping_label(self, account: Account, params: dict[str, Any], base_url: str) -> dict[str, Any]:
        job_ids = params.get("jobIds") or []
        if not job_ids:
            raise exc.InvalidParameterError("jobIds must name at least one job.")
        with self._lock:
            jobs = [self._owned(account, job_id) for job_id in job_ids]
            for job in jobs:
                check_usable(job)
        address = self._label_address(params, jobs[0])
        tracking = "1Z" + "".join(secrets.choice(string.digits + string.ascii_uppercase) for _ in range(16))
        name = f"shipping-label-{'-'.join(job_ids)}.pdf"
        with self._lock:
            self.documents[name] = labels.shipping_label(job_ids, address, tracking)
        arrived = [j.job_id for j in jobs if j.location is not LocationCode.NOT_RECEIVED]
        result: dict[str, Any] = {"ShippingLabelURL": f"{base_url}/_importexport/documents/{name}"}
        if arrived:
            result["Warning"] = f"The device for job(s) {', '.join(arrived)} has already been received."
        return result

    # --- lifecycle (admin API and time profile) ------------------------------------------------

    def transition(self, job_id: str, action: str, **options: Any) -> dict[str, Any]:
        """Move one job a step: ship, receive, start, process, return, expire, attach."""
        handlers: dict[str, Callable[..., None]] = {
            "ship": self._ship,
            "receive": self._receive,
            "start": self._start,
            "process": self._process,
            "return": self._return,
            "expire": self._expire,
            "attach": self._attach,
        }
        if action not in handlers:
            raise exc.InvalidParameterError(f"Unknown action {action!r}; use one of {', '.join(handlers)}.")
        with self._lock:
            job = self.jobs.get(job_id)
            if job is None:
                raise exc.JobNotFoundError("No such job.", job_id=job_id)
            handlers[action](job, self.now(), **options)
            self._save()
            return job.status()

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

    def _process(self, job: Job, when: dt.datetime, outcome: str | None = None, error_count: int | None = None) -> None:
        if outcome is not None:
            _check_outcome(outcome)
            job.planned_outcome, job.planned_error_count = outcome, error_count
        if job.location is LocationCode.AT_AWS and job.progress is ProgressCode.PENDING:
            self._start(job, when)
        require(job, job.progress is ProgressCode.IN_PROGRESS, "process", "ProgressCode InProgress (device at AWS)")
        planned = ProgressCode(job.planned_outcome) if job.planned_outcome else None
        if planned in PROCESSING_FAILURES:
            job.move(when, progress=planned)
            return
        try:
            self._transfer(job, when, planned)
        except JobAborted as aborted:
            job.abort(when, aborted.progress, aborted.reason)
        except Exception as err:
            # One job's failure must not leave it InProgress, where every later look at it
            # (and every ListJobs, which advances all jobs) would fail again.
            log.exception("processing job %s failed", job.job_id)
            reason = f"The job was aborted: the emulator failed while processing it ({type(err).__name__}: {err})."
            job.abort(when, ABORT_PROGRESS, reason)

    def _transfer(self, job: Job, when: dt.datetime, planned: ProgressCode | None) -> None:
        """The data transfer proper: S3 and the device folder (or a chosen outcome without a device)."""
        if planned is not None and not (job.device_path and Path(job.device_path).is_dir()):
            self._finish_synthetic(job, when, planned)
            return
        result = self.processor.run(job)
        job.error_count, job.log_bucket, job.log_key = result.error_count, result.log_bucket, result.log_key
        job.move(when, progress=result.progress)

    def _finish_synthetic(self, job: Job, when: dt.datetime, planned: ProgressCode) -> None:
        """A chosen success outcome for a job without a device folder: an empty log, the chosen count."""
        manifest = parse_manifest(job.manifest_text, job_type=job.job_type)
        job.log_bucket, job.log_key = manifest.effective_log_bucket, manifest.log_key(job.job_id)
        job.error_count = job.planned_error_count or (1 if planned is ProgressCode.SUCCESS_WITH_ERRORS else 0)
        if job.log_bucket:
            self.storage.put(job.account_id, job.log_bucket, job.log_key, b"", ContentType="text/csv")
        job.move(when, progress=planned)

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

    def advance(self, job: Job) -> None:
        """Apply the time profile: every step whose time has come, at the time it came."""
        if self._advance(job):
            self._save()  # a restart must not lose a step (or the data a processing step wrote)

    def _advance(self, job: Job) -> bool:
        """The steps of :meth:`advance`, without saving; whether any was taken."""
        profile, now, moved = self.config.profile, self.now(), False
        for _ in range(8):  # at most one pass per stage
            step = self._next_step(job, profile)
            if step is None:
                break
            delay, action = step
            due = (job.stage_since or job.created) + dt.timedelta(seconds=delay)
            if due > now:
                break
            getattr(self, action)(job, due)
            moved = True
        return moved

    def _next_step(self, job: Job, profile: LifecycleProfile) -> tuple[float, str] | None:
        if job.progress is ProgressCode.EXPIRED:
            return None
        if job.location is LocationCode.NOT_RECEIVED and job.progress is ProgressCode.PENDING:
            if profile.arrive_after is not None:
                return profile.arrive_after, "_receive"
            return None if job.shipped else (profile.expire_after, "_expire")  # type: ignore[return-value]
        if (
            job.location is LocationCode.AT_AWS
            and job.progress is ProgressCode.PENDING
            and profile.start_after is not None
        ):
            return profile.start_after, "_start"
        if job.progress is ProgressCode.IN_PROGRESS and profile.process_after is not None:
            return profile.process_after, "_process"
        if (
            job.location is LocationCode.AT_AWS
            and job.outcome is not Outcome.ACTIVE
            and profile.return_after is not None
        ):
            return profile.return_after, "_return"
        return None

    def advance_all(self) -> None:
        with self._lock:
            moved = [self._advance(job) | self._purge_if_due(job) for job in list(self.jobs.values())]
            if any(moved):
                self._save()

    def _purge_if_due(self, job: Job) -> bool:
        due = (job.stage_since or job.created) + dt.timedelta(seconds=self.config.profile.purge_after)
        if job.expired and self.now() >= due:
            del self.jobs[job.job_id]
            self._purged.add(job.job_id)
            return True
        return False

    # --- helpers -------------------------------------------------------------------------------

    def _owned(self, account: Account, job_id: str) -> Job:
        job = self.jobs.get(job_id.upper())
        if job is not None and job.account_id == account.account_id:
            self.advance(job)
            if not self._purge_if_due(job):
                return job
        if job_id.upper() in self._purged and job is None:
            raise exc.JobExpiredError("The job has expired and was purged.", job_id=job_id)
        raise exc.JobNotFoundError("No such job id for this account.", job_id=job_id)

    @staticmethod
    def _job_type(params: dict[str, Any]) -> str:
        job_type = params["JobType"]
        if job_type not in ("Import", "Export"):
            raise exc.InvalidParameterError(f"JobType must be Import or Export, not {job_type!r}.")
        return str(job_type)

    def _validated(self, account: Account, manifest_text: str, job_type: str) -> Manifest:
        """The same validation as the provider's, then what only the service knows: keys and buckets."""
        manifest = load_manifest(manifest_text, job_type=job_type, bucket_regions=_bucket_region)
        if manifest.access_key_id and manifest.access_key_id != account.access_key:
            raise exc.InvalidAccessKeyIdError(
                "The manifest's accessKeyId does not match the access key that signed the request."
            )
        for bucket in manifest.buckets():
            info = bucket_info(bucket)
            if info is None:
                raise exc.NoSuchBucketError(f"The bucket {bucket!r} does not exist; create it first.")
            if info.owner_account_id != account.account_id:
                raise exc.BucketPermissionError(f"Your account does not have permission to use bucket {bucket!r}.")
        return manifest

    def _check_quota(self, account: Account) -> None:
        today = self.now().date()
        created = sum(1 for j in self.jobs.values() if j.account_id == account.account_id and j.created.date() == today)
        if created >= self.config.daily_create_quota:
            raise exc.CreateJobQuotaExceededError(
                f"Your account has created {created} jobs today (UTC), its daily quota; try again tomorrow."
            )

    def _new_job(self, account: Account, job_type: str, text: str, manifest: Manifest, base_url: str) -> Job:
        job_id = self._new_job_id()
        mac = hmac.new(
            account.secret_key.encode(), f"{job_id}\n{text.replace(chr(13) + chr(10), chr(10))}".encode(), hashlib.sha1
        )
        signature = base64.b64encode(mac.digest()).decode()
        contents = f"version:2.0\nsigningMethod:HmacSHA1\njobId:{job_id}\nsignature:{signature}\n"
        job = Job(
            job_id=job_id,
            account_id=account.account_id,
            job_type=job_type,
            manifest_text=text,
            created=self.now(),
            sequence=next(self._sequence),
            signature=signature,
            signature_file_contents=contents,
            device_path=self._default_device(manifest),
        )
        name = _job_sheet_name(job_id, manifest)
        description = (
            "Signature bar code to tape to the device" if _bar_code_on_device(manifest) else "Job instructions"
        )
        job.artifacts = [{"Description": description, "URL": f"{base_url}/_importexport/documents/{name}"}]
        return job

    def _store_job_sheet(self, job: Job, manifest: Manifest) -> None:
        """The PDF behind the job's ArtifactList entry."""
        sheet = labels.job_sheet(job.job_id, job.signature, bar_code_on_device=_bar_code_on_device(manifest))
        self.documents[_job_sheet_name(job.job_id, manifest)] = sheet

    def _new_job_id(self) -> str:
        while True:
            job_id = "".join(secrets.choice(JOB_ID_ALPHABET) for _ in range(5))
            if job_id not in self.jobs and job_id not in self._purged:
                return job_id

    def _default_device(self, manifest: Manifest) -> str | None:
        """The device folder named by the manifest's deviceId under the emulator's devices folder."""
        if not self.config.devices_dir or not manifest.device_id:
            return None
        if not re.fullmatch(r"[\w.\-]+", manifest.device_id) or manifest.device_id in (".", ".."):
            return None  # no folder of the devices folder has that name: the device never arrives
        return str(Path(self.config.devices_dir, manifest.device_id).resolve())

    def _label_address(self, params: dict[str, Any], first: Job) -> ReturnAddress:
        keys = ReturnAddress.yaml_keys()
        given = {keys[k]: v for k, v in params.items() if k in keys}
        if not given:
            manifest = parse_manifest(first.manifest_text, job_type=first.job_type)
            assert manifest.return_address is not None
            return manifest.return_address
        address = ReturnAddress(**given)
        problems = address_problems(address)
        if problems:
            raise manifest_error(problems)
        return address

    # --- persistence ---------------------------------------------------------------------------

    def _save(self) -> None:
        """Save after a change; a failure is logged, not raised.

        The change was made and is answered as made (a CreateJob whose job exists must not
        answer 500); it stays in memory, and every later save, at the latest at shutdown,
        writes it.
        """
        try:
            self._write_state()
        except OSError as err:
            path = self._store.path if self._store else None
            log.error("could not save the emulator state to %s (%s); the next change retries", path, err)

    def checkpoint(self) -> None:
        """Save after a change made outside the operations (e.g. an S3 write); never raises."""
        with self._lock:
            self._save()

    def save(self) -> None:
        """Save now (at shutdown); raises OSError when the state file cannot be written."""
        with self._lock:
            self._write_state()

    def _write_state(self) -> None:
        if self._store is None:
            return
        self._store.save(
            {
                "jobs": [j.to_json() for j in self.jobs.values()],
                "purged": sorted(self._purged),
                "documents": {k: base64.b64encode(v).decode() for k, v in self.documents.items()},
                "clock_offset": self.clock_offset.total_seconds(),
            }
        )

    def _load(self) -> None:
        """Check the state file at start and restore jobs and S3 from it; StateFileError says what to fix."""
        if self._store is None:
            return
        data = self._store.load()
        if data is None:
            return
        try:
            self.jobs = {j["job_id"]: Job.from_json(j) for j in data["jobs"]}
            self._purged.update(data.get("purged", []))
            self.documents = {k: base64.b64decode(v) for k, v in data.get("documents", {}).items()}
            self.clock_offset = dt.timedelta(seconds=data.get("clock_offset", 0))
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise self._store.invalid(f"a job record is damaged ({type(err).__name__}: {err})") from err
        self._sequence = itertools.count(max((j.sequence for j in self.jobs.values()), default=-1) + 1)
        self._store.restore_s3(data)


def _bar_code_on_device(manifest: Manifest) -> bool:
    """EBS and Glacier devices (manifestVersion 3.0) carry a bar code instead of a SIGNATURE file."""
    return manifest.version == "3.0"


def _job_sheet_name(job_id: str, manifest: Manifest) -> str:
    return f"{'signature' if _bar_code_on_device(manifest) else 'instructions'}-{job_id}.pdf"


def _check_outcome(outcome: str) -> None:
    allowed = [*sorted(c.value for c in PROCESSING_FAILURES), "Complete", "SuccessWithErrors"]
    if outcome not in allowed:
        raise exc.InvalidParameterError(f"Unknown outcome {outcome!r}; use one of {', '.join(allowed)}.")


def _warnings(manifest: Manifest) -> str | None:
    notes = []
    for bucket in manifest.data_buckets():
        if not re.fullmatch(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]", bucket) or ".." in bucket:
            notes.append(f"Bucket name {bucket!r} is not DNS-compatible; some S3 features will not work with it.")
    if isinstance(manifest, S3ImportManifest) or getattr(manifest, "erase_device", None):
        notes.append("Your device will be erased before it is returned.")
    return " ".join(notes) or None


def _bucket_region(bucket: str) -> str | None:
    """A bucket's region, as the service knows it, for the MultipleRegions check."""
    info = bucket_info(bucket)
    return info.region if info else None
