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
from airflow_provider_importexport.emulator.persistence import (
    Record,
    SavedState,
    StateFile,
    clock_record,
    document_record,
    job_record,
    purge_record,
)
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
    """All jobs of all emulated accounts.

    One lock guards the jobs; no call holds it while data moves (a transfer runs between
    :meth:`Lifecycle.step` and :meth:`Lifecycle.finish` without it), so one account's
    processing never stalls another's calls. The time profile is applied to a job when a
    call looks at it, at the times its steps fell due.
    """

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
        self.lifecycle = Lifecycle(storage)
        #: Shipping labels by file name (job sheets are drawn when fetched).
        self.documents: dict[str, bytes] = {}
        self._lock = threading.RLock()
        self._transfer_done = threading.Condition(self._lock)
        self._state = StateFile(config.state_file) if config.state_file else None
        saved = self._state.load() if self._state else None
        self.registry = JobRegistry(saved.jobs, saved.purged) if saved else JobRegistry()
        if saved:
            self.documents, self.clock_offset = saved.documents, saved.clock_offset

    def now(self) -> dt.datetime:
        return self._clock() + self.clock_offset

    # --- the six operations ------------------------------------------------------------------

    def create_job(self, account: Account, params: dict[str, Any], base_url: str) -> dict[str, Any]:
        job_type = _job_type(params)
        manifest = self._validated(account, params["Manifest"], job_type)
        keep = not params.get("ValidateOnly")
        job = self._admit(account, job_type, params["Manifest"], manifest, base_url, keep=keep)
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
        job = self._look_up(account, params["JobId"])
        with self._lock:
            check_updatable(job)
        manifest = self._validated(account, params["Manifest"], job_type)
        with self._lock:
            check_updatable(job)
            if not params.get("ValidateOnly"):
                job.manifest_text = params["Manifest"]
                job.job_type = job_type
                self._persist(job_record, job)
        return {"Success": True, "WarningMessage": _warnings(manifest), "ArtifactList": job.artifacts}

    def cancel_job(self, account: Account, params: dict[str, Any]) -> dict[str, Any]:
        job = self._look_up(account, params["JobId"])
        with self._lock:
            check_cancelable(job, self.config.cancel_rule)
            job.move(self.now(), progress=ProgressCode.CANCELED)
            self._persist(job_record, job)
        return {"Success": True}

    def get_status(self, account: Account, params: dict[str, Any]) -> dict[str, Any]:
        job = self._look_up(account, params["JobId"])
        with self._lock:
            job.status_reads += 1
            if self.config.ended_job_status == "error":
                check_usable(job)
            return job.status()

    def list_jobs(self, account: Account, params: dict[str, Any]) -> dict[str, Any]:
        """A page of the account's jobs, newest first; only the jobs on it are looked at."""
        max_jobs = params.get("MaxJobs", DEFAULT_PAGE_SIZE)
        if not 0 <= max_jobs <= MAX_PAGE_SIZE:
            raise exc.InvalidParameterError(f"MaxJobs must be between 0 and {MAX_PAGE_SIZE}, got {max_jobs}.")
        marker = params.get("Marker")
        with self._lock:
            if marker is not None:
                job = self.registry.get(marker)
                if job is None or job.account_id != account.account_id or self._gone(job):
                    raise exc.InvalidParameterError(f"Marker {marker!r} is not one of your job ids.")
            page: list[dict[str, Any]] = []
            for job in self.registry.newest_first(account.account_id, after=marker):
                if self._gone(job):
                    continue
                if len(page) == max_jobs:
                    return {"Jobs": page, "IsTruncated": True}
                page.append(job.listing())
        return {"Jobs": page, "IsTruncated": False}

    def get_shipping_label(self, account: Account, params: dict[str, Any], base_url: str) -> dict[str, Any]:
        job_ids = params.get("jobIds") or []
        if not job_ids:
            raise exc.InvalidParameterError("jobIds must name at least one job.")
        jobs = [self._look_up(account, job_id) for job_id in job_ids]
        with self._lock:
            for job in jobs:
                check_usable(job)
        address = _label_address(params, jobs[0])
        tracking = "1Z" + "".join(secrets.choice(string.digits + string.ascii_uppercase) for _ in range(16))
        name = f"shipping-label-{'-'.join(job_ids)}.pdf"
        label = labels.shipping_label(job_ids, address, tracking)
        with self._lock:
            self.documents[name] = label
            self._persist(document_record, name, label)
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
            while job.job_id in self.lifecycle.busy:
                self._transfer_done.wait()
            work = self.lifecycle.step(job, action, self.now(), **options)
            self._persist(job_record, job)
        if work is not None:
            self._run(work)
        with self._lock:
            return job.status()

    def create_jobs(self, account: Account, job_type: str, manifest_text: str, base_url: str, count: int) -> list[str]:
        """``count`` jobs of one manifest, validated once: how a benchmark fills the emulator
        through CreateJob's own rules (job ids, quota, records) without ``count`` requests."""
        manifest = self._validated(account, manifest_text, job_type)
        return [self._admit(account, job_type, manifest_text, manifest, base_url).job_id for _ in range(count)]

    def advance_all(self) -> None:
        """Apply the time profile to every job (an admin look at all of them)."""
        for job in self._held():
            self._refresh(job)

    def _refresh(self, job: Job) -> Job | None:
        """The job with the time profile applied; None once it is purged."""
        self._settle(job)
        with self._lock:
            if self.registry.get(job.job_id) is not job or self._purge_if_due(job):
                return None
            return job

    def _held(self) -> list[Job]:
        """Every job held now (a copy of the list: walking it takes no lock)."""
        with self._lock:
            return self.registry.all()

    def job(self, job_id: str) -> Job | None:
        """One job, with the time profile applied."""
        with self._lock:
            job = self.registry.get(job_id)
        return None if job is None else self._refresh(job)

    def all_jobs(self) -> list[Job]:
        """Every job, with the time profile applied."""
        self.advance_all()
        return self._held()

    def advance_clock(self, offset: dt.timedelta) -> dt.datetime:
        """Run the emulator's clock ``offset`` ahead of the real one and apply it to every job; the new now."""
        with self._lock:
            self.clock_offset = offset
            self._persist(clock_record, offset)
        self.advance_all()
        return self.now()

    def set_profile(self, profile: LifecycleProfile) -> None:
        self.config.profile = profile

    def document(self, name: str) -> bytes | None:
        """A document the API linked to, by file name: a shipping label, or a job's sheet (drawn now)."""
        with self._lock:
            label = self.documents.get(name)
            kind, _, rest = name.partition("-")
            job = self.registry.get(rest.removesuffix(".pdf"))
        if label is not None or job is None or not any(a["URL"].endswith(f"/{name}") for a in job.artifacts):
            return label
        return labels.job_sheet(job.job_id, job.signature, bar_code_on_device=kind == "signature")

    def s3_changed(self) -> None:
        """S3 was written (the server calls this after each S3 write it answered)."""
        if self._state is not None:
            self._state.s3_changed()

    # --- looking at jobs -----------------------------------------------------------------------

    def _look_up(self, account: Account, job_id: str) -> Job:
        """The account's job with the time profile applied; JobNotFound, or JobExpired once purged."""
        key = job_id.upper()
        with self._lock:
            job = self.registry.get(key)
            if job is None or job.account_id != account.account_id:
                raise self._missing(key, job_id)
        if self._refresh(job) is None:
            with self._lock:
                raise self._missing(key, job_id)
        return job

    def _missing(self, key: str, job_id: str) -> exc.ImportExportError:
        if self.registry.get(key) is None and self.registry.was_purged(key):
            return exc.JobExpiredError("The job has expired and was purged.", job_id=job_id)
        return exc.JobNotFoundError("No such job id for this account.", job_id=job_id)

    def _settle(self, job: Job) -> None:
        """Take the job's due steps; a due transfer runs here, without the lock (never called with it held)."""
        while True:
            with self._lock:
                moved, work = self.lifecycle.advance(job, self.config.profile, self.now())
                if moved:
                    self._persist(job_record, job)  # a restart must not lose a step
            if work is None:
                return
            self._run(work)

    def _run(self, work: Transfer) -> None:
        result = self.lifecycle.transfer(work)
        with self._lock:
            self.lifecycle.finish(work, result)
            self._persist(job_record, work.job)  # ... nor the data the transfer wrote
            self._transfer_done.notify_all()

    def _gone(self, job: Job) -> bool:
        """Take the job's due steps short of a transfer (none decides whether it is listed); purge it when due."""
        moved, _ = self.lifecycle.advance(job, self.config.profile, self.now(), transfers=False)
        if moved:
            self._persist(job_record, job)
        return self._purge_if_due(job)

    def _purge_if_due(self, job: Job) -> bool:
        if self.lifecycle.purge_due(job, self.config.profile, self.now()):
            self.registry.purge(job)
            self._persist(purge_record, job.job_id)
            return True
        return False

    # --- new jobs ------------------------------------------------------------------------------

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

    def _admit(
        self, account: Account, job_type: str, text: str, manifest: Manifest, base_url: str, keep: bool = True
    ) -> Job:
        """A new job for a validated manifest, held (``keep``) within the account's daily quota."""
        with self._lock:
            now = self.now()
            if keep:
                created = self.registry.created_on(account.account_id, now.date())
                admission.check_quota(created, self.config.daily_create_quota)
            job = self._new_job(account, job_type, text, manifest, base_url, now)
            if keep:
                self.registry.add(job)
                self._persist(job_record, job)
            return job

    def _new_job(
        self, account: Account, job_type: str, text: str, manifest: Manifest, base_url: str, now: dt.datetime
    ) -> Job:
        job_id = admission.new_job_id(self.registry.taken)
        signature, contents = admission.signature(account.secret_key, job_id, text)
        name = _job_sheet_name(job_id, manifest)
        description = (
            "Signature bar code to tape to the device" if _bar_code_on_device(manifest) else "Job instructions"
        )
        return Job(
            job_id=job_id,
            account_id=account.account_id,
            job_type=job_type,
            manifest_text=text,
            created=now,
            sequence=self.registry.next_sequence(),
            signature=signature,
            signature_file_contents=contents,
            device_path=self._default_device(manifest),
            artifacts=[{"Description": description, "URL": f"{base_url}/_importexport/documents/{name}"}],
        )

    def _default_device(self, manifest: Manifest) -> str | None:
        """The device folder named by the manifest's deviceId under the emulator's devices folder."""
        if not self.config.devices_dir or not manifest.device_id:
            return None
        if not re.fullmatch(r"[\w.\-]+", manifest.device_id) or manifest.device_id in (".", ".."):
            return None  # no folder of the devices folder has that name: the device never arrives
        return str(Path(self.config.devices_dir, manifest.device_id).resolve())

    # --- persistence ---------------------------------------------------------------------------

    def _persist(self, make: Callable[..., Record], *args: Any) -> None:
        """Make one change, ``make(*args)``, durable before it is answered (with the lock held); a failure
        is logged, not raised.

        The change was made and is answered as made (a CreateJob whose job exists must not
        answer 500); it stays in memory, and the next change, at the latest the save at
        shutdown, writes the whole state.
        """
        if self._state is None:
            return
        try:
            self._state.record([make(*args)], self._whole)
        except OSError as err:
            log.error("could not save the emulator state to %s (%s); the next change retries", self._state.path, err)

    def _whole(self) -> SavedState:
        return SavedState(self.registry.all(), self.registry.purged(), dict(self.documents), self.clock_offset)

    def save(self) -> None:
        """Save now (at shutdown); raises OSError when the state file cannot be written."""
        with self._lock:
            if self._state is not None:
                self._state.save(self._whole())


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
