"""The service's six operations as the service defines them, over every emulated account's jobs.

Like a moto backend it knows nothing of HTTP: the server decodes a request into an
operation name and parameters, and this module answers with the output members or
raises the provider exception whose code the service would send. How jobs move
(:mod:`.lifecycle`), which id and quota a new job gets (:mod:`.admission`), where jobs
are held (:mod:`.registry`) and how they survive a restart (:mod:`.persistence`) live
beside it.
"""

from __future__ import annotations

import datetime as dt
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
from airflow_provider_importexport.emulator import admission, labels
from airflow_provider_importexport.emulator.auth import Account
from airflow_provider_importexport.emulator.lifecycle import ACTIONS, Lifecycle, LifecycleProfile, Transfer
from airflow_provider_importexport.emulator.persistence import SavedState, StateFile
from airflow_provider_importexport.emulator.registry import JobRegistry
from airflow_provider_importexport.emulator.state import (
    CancelRule,
    Job,
    check_cancelable,
    check_updatable,
    check_usable,
)
from airflow_provider_importexport.emulator.storage import S3Storage, bucket_info
from airflow_provider_importexport.manifest import (
    Manifest,
    ReturnAddress,
    S3ImportManifest,
    address_problems,
    load_manifest,
    manifest_error,
    parse_manifest,
)
from airflow_provider_importexport.status import LocationCode, ProgressCode

log = logging.getLogger(__name__)

#: ListJobs page size when MaxJobs is absent (the service documents none).
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


@dataclass
class BackendConfig:
    """Behaviour switches, documented in the README's emulator section."""

    profile: LifecycleProfile
    cancel_rule: CancelRule = CancelRule.BEFORE_TRANSFER
    daily_create_quota: int = admission.DAILY_CREATE_QUOTA
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
        self.config = config
        self._clock = clock
        self.clock_offset = dt.timedelta()
        self.registry = JobRegistry()
        self.lifecycle = Lifecycle(storage)
        self.documents: dict[str, bytes] = {}
        self._lock = threading.RLock()
        self._state = StateFile(config.state_file) if config.state_file else None
        self._load()

    def now(self) -> dt.datetime:
        return self._clock() + self.clock_offset

    # --- the six operations ------------------------------------------------------------------

    def create_job(self, account: Account, params: dict[str, Any], base_url: str) -> dict[str, Any]:
        job_type = _job_type(params)
        manifest_text = params["Manifest"]
        manifest = self._validated(account, manifest_text, job_type)
        with self._lock:
            if not params.get("ValidateOnly"):
                created = self.registry.created_on(account.account_id, self.now().date())
                admission.check_quota(created, self.config.daily_create_quota)
            job = self._new_job(account, job_type, manifest_text, manifest, base_url)
            if not params.get("ValidateOnly"):
                self.registry.add(job)
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
        job_type = _job_type(params)
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
        marker = params.get("Marker")
        with self._lock:
            self.advance_all()
            if marker is not None:
                job = self.registry.get(marker)
                if job is None or job.account_id != account.account_id:
                    raise exc.InvalidParameterError(f"Marker {marker!r} is not one of your job ids.")
            page: list[Job] = []
            truncated = False
            for job in self.registry.newest_first(account.account_id, after=marker):
                if len(page) == max_jobs:
                    truncated = True
                    break
                page.append(job)
        return {"Jobs": [j.listing() for j in page], "IsTruncated": truncated}

    def get_shipping_label(self, account: Account, params: dict[str, Any], base_url: str) -> dict[str, Any]:
        job_ids = params.get("jobIds") or []
        if not job_ids:
            raise exc.InvalidParameterError("jobIds must name at least one job.")
        with self._lock:
            jobs = [self._owned(account, job_id) for job_id in job_ids]
            for job in jobs:
                check_usable(job)
        address = _label_address(params, jobs[0])
        tracking = "1Z" + "".join(secrets.choice(string.digits + string.ascii_uppercase) for _ in range(16))
        name = f"shipping-label-{'-'.join(job_ids)}.pdf"
        with self._lock:
            self.documents[name] = labels.shipping_label(job_ids, address, tracking)
        arrived = [j.job_id for j in jobs if j.location is not LocationCode.NOT_RECEIVED]
        result: dict[str, Any] = {"ShippingLabelURL": f"{base_url}/_importexport/documents/{name}"}
        if arrived:
            result["Warning"] = f"The device for job(s) {', '.join(arrived)} has already been received."
        return result

    # --- what the admin API drives ---------------------------------------------------------------

    def transition(self, job_id: str, action: str, **options: Any) -> dict[str, Any]:
        """Move one job a step: ship, receive, start, process, return, expire, attach."""
        if action not in ACTIONS:
            raise exc.InvalidParameterError(f"Unknown action {action!r}; use one of {', '.join(ACTIONS)}.")
        with self._lock:
            job = self.registry.get(job_id)
            if job is None:
                raise exc.JobNotFoundError("No such job.", job_id=job_id)
            work = self.lifecycle.step(job, action, self.now(), **options)
            if work is not None:
                self._run(work)
            self._save()
            return job.status()

    def advance_all(self) -> None:
        """Apply the time profile to every job."""
        with self._lock:
            moved = [self._advance(job) | self._purge_if_due(job) for job in self.registry.all()]
            if any(moved):
                self._save()

    def job(self, job_id: str) -> Job | None:
        """One job, with the time profile applied."""
        self.advance_all()
        return self.registry.get(job_id)

    def all_jobs(self) -> list[Job]:
        """Every job, with the time profile applied."""
        self.advance_all()
        return self.registry.all()

    def advance_clock(self, offset: dt.timedelta) -> dt.datetime:
        """Set how far the emulator's clock runs ahead of the real one, apply it to every job; the new now."""
        with self._lock:
            self.clock_offset = offset
        self.advance_all()
        return self.now()

    def set_profile(self, profile: LifecycleProfile) -> None:
        self.config.profile = profile

    def document(self, name: str) -> bytes | None:
        """A document (job sheet or shipping label) the API linked to, by file name."""
        with self._lock:
            return self.documents.get(name)

    # --- helpers -------------------------------------------------------------------------------

    def _advance(self, job: Job) -> bool:
        """Apply the time profile to one job; whether any step was taken."""
        moved = False
        while True:
            stepped, work = self.lifecycle.advance(job, self.config.profile, self.now())
            moved |= stepped
            if work is None:
                return moved
            self._run(work)

    def _run(self, work: Transfer) -> None:
        self.lifecycle.finish(work, self.lifecycle.transfer(work))

    def _purge_if_due(self, job: Job) -> bool:
        if self.lifecycle.purge_due(job, self.config.profile, self.now()):
            self.registry.purge(job)
            return True
        return False

    def _owned(self, account: Account, job_id: str) -> Job:
        job = self.registry.get(job_id.upper())
        if job is not None and job.account_id == account.account_id:
            if self._advance(job):
                self._save()  # a restart must not lose a step (or the data a processing step wrote)
            if not self._purge_if_due(job):
                return job
        if job is None and self.registry.was_purged(job_id.upper()):
            raise exc.JobExpiredError("The job has expired and was purged.", job_id=job_id)
        raise exc.JobNotFoundError("No such job id for this account.", job_id=job_id)

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

    def _new_job(self, account: Account, job_type: str, text: str, manifest: Manifest, base_url: str) -> Job:
        job_id = admission.new_job_id(self.registry.taken)
        signature, contents = admission.signature(account.secret_key, job_id, text)
        job = Job(
            job_id=job_id,
            account_id=account.account_id,
            job_type=job_type,
            manifest_text=text,
            created=self.now(),
            sequence=self.registry.next_sequence(),
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

    def _default_device(self, manifest: Manifest) -> str | None:
        """The device folder named by the manifest's deviceId under the emulator's devices folder."""
        if not self.config.devices_dir or not manifest.device_id:
            return None
        if not re.fullmatch(r"[\w.\-]+", manifest.device_id) or manifest.device_id in (".", ".."):
            return None  # no folder of the devices folder has that name: the device never arrives
        return str(Path(self.config.devices_dir, manifest.device_id).resolve())

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
            path = self._state.path if self._state else None
            log.error("could not save the emulator state to %s (%s); the next change retries", path, err)

    def save(self) -> None:
        """Save now (at shutdown); raises OSError when the state file cannot be written."""
        with self._lock:
            self._write_state()

    def _write_state(self) -> None:
        if self._state is None:
            return
        self._state.save(SavedState(self.registry.all(), self.registry.purged(), self.documents, self.clock_offset))

    def _load(self) -> None:
        """Restore jobs and S3 from the state file; StateFileError says what to fix."""
        saved = self._state.load() if self._state else None
        if saved is None:
            return
        self.registry.restore(saved.jobs, saved.purged)
        self.documents = saved.documents
        self.clock_offset = saved.clock_offset


def _job_type(params: dict[str, Any]) -> str:
    job_type = params["JobType"]
    if job_type not in ("Import", "Export"):
        raise exc.InvalidParameterError(f"JobType must be Import or Export, not {job_type!r}.")
    return str(job_type)


def _label_address(params: dict[str, Any], first: Job) -> ReturnAddress:
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


def _bar_code_on_device(manifest: Manifest) -> bool:
    """EBS and Glacier devices (manifestVersion 3.0) carry a bar code instead of a SIGNATURE file."""
    return manifest.version == "3.0"


def _job_sheet_name(job_id: str, manifest: Manifest) -> str:
    return f"{'signature' if _bar_code_on_device(manifest) else 'instructions'}-{job_id}.pdf"


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
