"""Operators that create, update and cancel AWS Import/Export jobs and fetch shipping labels."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.sdk import ResumableJobMixin

from airflow_provider_importexport import exceptions as exc
from airflow_provider_importexport.hooks.importexport import ImportExportHook, label_address_params
from airflow_provider_importexport.links.importexport import ImportExportLogLink, ImportExportShippingLabelLink
from airflow_provider_importexport.manifest import Manifest, ManifestLike, ReturnAddress, load_manifest
from airflow_provider_importexport.masking import register_manifest_secrets
from airflow_provider_importexport.status import ProgressCode, progress_info
from airflow_provider_importexport.utils.files import check_signature_path, download, write_signature_file
from airflow_provider_importexport.utils.params import did_you_mean
from airflow_provider_importexport.utils.task_errors import fails_fast

if TYPE_CHECKING:
    from airflow.sdk import Context

JOB_TYPES = ("Import", "Export")
#: Prefix of the marker the create operator writes into a manifest's ``generator`` field.
MARKER_PREFIX = "airflow-importexport:"
#: How many of the newest jobs to look through when the run's start time is unknown.
ADOPTION_SCAN_LIMIT = 200
#: Allowance for a clock difference between the workers and the service when scanning by time.
CLOCK_SKEW = dt.timedelta(minutes=15)


def _check_job_type(job_type: str) -> None:
    if job_type not in JOB_TYPES:
        raise exc.InvalidParameterError(
            f"job_type must be 'Import' or 'Export', got {job_type!r}{did_you_mean(job_type, JOB_TYPES)}; "
            "fix the operator's job_type argument."
        )


def _validated(manifest: ManifestLike, job_type: str) -> Manifest:
    """Local validation before any call: every problem, each naming the field and the fix."""
    register_manifest_secrets(manifest)
    model = load_manifest(manifest, job_type=job_type)
    register_manifest_secrets(model)
    return model


def _state_message(hook: ImportExportHook, job_id: str, doing: str, allowed: str) -> str:
    try:
        status = hook.get_status(job_id)
        state = f"LocationCode {status['LocationCode']}, ProgressCode {status['ProgressCode']}"
    except exc.ImportExportError as err:
        state = f"state unknown ({err.code})"
    return f"Cannot {doing} job {job_id}: it is {state}; {allowed}."


class _ManifestOperator(AwsBaseOperator[ImportExportHook]):
    """Shared by create and update: secrets in the manifest are masked from the moment it renders."""

    aws_hook_class = ImportExportHook
    template_fields_renderers = {"manifest": "yaml"}
    manifest: ManifestLike

    def render_template_fields(self, context: Context, jinja_env: Any = None) -> None:
        super().render_template_fields(context, jinja_env)
        # Rendered fields are sent to the UI right after rendering: register secrets first.
        register_manifest_secrets(self.manifest)


def run_marker(dag_id: str, task_id: str, run_id: str, map_index: int | None) -> str:
    """The token a create task writes into its job's manifest (``generator``): one per task run.

    The same across retries, different across runs and map indexes; the UI's shipments view
    computes it too, to find the DAG run behind a job.
    """
    identity = f"{dag_id}/{task_id}/{run_id}/{map_index}"
    return MARKER_PREFIX + hashlib.sha256(identity.encode()).hexdigest()[:20]


class ImportExportCreateJobOperator(ResumableJobMixin, _ManifestOperator):
    """Create an AWS Import/Export job (one job = one device) and return its JobId.

    Never creates a second job for the same task run: a retried attempt first adopts the
    job an earlier attempt created, found through Airflow's task state store or, if that
    is lost, through a marker this operator writes into the manifest's ``generator``
    field and finds again with ListJobs and GetStatus.

    .. seealso:: README, "Migrate data in"

    :param manifest: the manifest as a model, a dict or YAML text (templated; secrets are masked)
    :param job_type: ``Import`` or ``Export`` (templated; default: Import)
    :param validate_only: only ask the service to validate; nothing is created (default: False)
    :param signature_path: where to write the SIGNATURE file: the device's root folder (it must
        exist: an unmounted device fails the task before any job is created) or a path ending in
        ``/SIGNATURE`` (templated). Written atomically, never half-written.
    :param manifest_addendum: the service's ManifestAddendum (internal use; templated)
    :param cancel_on_kill: cancel the job when a user kills the task before the job started (default: True)
    :param aws_conn_id: The Airflow connection used for AWS credentials (default: aws_default).
    :param region_name: AWS region name; if not specified, the connection's region is used.
    :param verify: Whether or not to verify SSL certificates.
    :param botocore_config: Configuration dictionary (key-values) for botocore client.
    """

    template_fields: Sequence[str] = aws_template_fields("manifest", "job_type", "signature_path", "manifest_addendum")
    operator_extra_links = (ImportExportLogLink(),)
    external_id_key = "importexport_job_id"

    def __init__(
        self,
        *,
        manifest: ManifestLike,
        job_type: str = "Import",
        validate_only: bool = False,
        signature_path: str | None = None,
        manifest_addendum: str | None = None,
        cancel_on_kill: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.manifest = manifest
        self.job_type = job_type
        self.validate_only = validate_only
        self.signature_path = signature_path
        self.manifest_addendum = manifest_addendum
        self.cancel_on_kill = cancel_on_kill
        self.job_id: str | None = None
        self._created: dict[str, Any] = {}
        self._result: str | None = None
        self._marker: str | None = None
        self._scan_since: dt.datetime | None = None

    @fails_fast
    def execute(self, context: Context) -> Any:
        _check_job_type(self.job_type)
        model = _validated(self.manifest, self.job_type)
        if self.validate_only:
            return self._dry_run(model)
        if self.signature_path:
            check_signature_path(self.signature_path)  # an unmounted device fails before CreateJob
        self._marker = self.marker(context)
        self._scan_since = self._run_began(context)
        self._model = dataclasses.replace(model, generator=self._generator(model, self._marker))
        return self.execute_resumable(context)

    def _dry_run(self, model: Manifest) -> dict[str, Any]:
        verdict = self.hook.create_job(self.job_type, model, validate_only=True)
        self._log_warning(verdict)
        self.log.info("Manifest accepted by the service (ValidateOnly); no job was created.")
        return {"valid": True, "WarningMessage": verdict.get("WarningMessage")}

    # --- duplicate guard -------------------------------------------------------------------

    @staticmethod
    def marker(context: Context) -> str:
        """A stable token for this task run (same across retries, different across runs)."""
        ti = context["ti"]
        return run_marker(ti.dag_id, ti.task_id, ti.run_id, ti.map_index)

    @staticmethod
    def _generator(model: Manifest, mark: str) -> str:
        base = (model.generator or "").replace(mark, "").strip()
        return f"{base} {mark}".strip()

    def submit_job(self, context: Context) -> str:
        assert self._marker is not None  # set by execute() before the mixin submits
        adopted = self.find_job_by_marker(self._marker) if self._earlier_attempt_may_have_created(context) else None
        if adopted:
            self.log.warning(
                "Adopting job %s created by an earlier attempt of this task run; not creating another.", adopted
            )
            self.job_id = adopted
            return adopted
        created = self.hook.create_job(self.job_type, self._model, manifest_addendum=self.manifest_addendum)
        self._created = created
        self.job_id = created["JobId"]
        self.log.info("Created %s job %s.", self.job_type, self.job_id)
        return created["JobId"]

    @staticmethod
    def _earlier_attempt_may_have_created(context: Context) -> bool:
        """Only a retry or a cleared task (try 2 or later) can follow an attempt whose CreateJob
        reached the service; the first try skips the scan (a ListJobs walk and a GetStatus per job)."""
        return int(context["ti"].try_number or 1) > 1

    @staticmethod
    def _run_began(context: Context) -> dt.datetime | None:
        """The earliest time an attempt of this run can have created a job: the run's run_after
        (or logical date), which clearing the task does not move."""
        dag_run = context.get("dag_run")
        began = getattr(dag_run, "run_after", None) or getattr(dag_run, "logical_date", None)
        return began - CLOCK_SKEW if began else None

    def find_job_by_marker(self, mark: str) -> str | None:
        """A live job whose manifest carries this marker (this task run's), newest first.

        Looks through every job created since this run began (ListJobs is newest first), so
        however many jobs the account created meanwhile, an earlier attempt's job is found;
        without a known start, through the newest ADOPTION_SCAN_LIMIT. Canceled jobs and jobs
        of the other type are skipped without reading their status.
        """
        for scanned, job in enumerate(self.hook.list_jobs()):
            if self._older_than_this_run(job, scanned):
                break
            if job.get("IsCanceled") or job.get("JobType", self.job_type) != self.job_type:
                continue
            try:
                status = self.hook.get_status(job["JobId"])
            except (exc.JobNotFoundError, exc.JobExpiredError, exc.JobCanceledError):
                continue
            if mark in status.get("CurrentManifest", "") and self._adoptable(status["ProgressCode"]):
                return str(job["JobId"])
        return None

    def _older_than_this_run(self, job: dict[str, Any], scanned: int) -> bool:
        if self._scan_since is None:
            return scanned >= ADOPTION_SCAN_LIMIT
        created = job.get("CreationDate")
        return isinstance(created, dt.datetime) and created < self._scan_since

    @staticmethod
    def _adoptable(progress: str) -> bool:
        outcome = progress_info(progress).outcome.value
        return outcome in ("active", "success", "success_with_errors")

    def get_job_status(self, external_id: Any, context: Context) -> str:
        try:
            return str(self.hook.get_status_or_ended(str(external_id))["ProgressCode"])
        except exc.JobNotFoundError:  # purged since: as good as expired, never adopted
            return ProgressCode.EXPIRED.value

    def is_job_active(self, status: str) -> bool:
        return not progress_info(status).terminal

    def is_job_succeeded(self, status: str) -> bool:
        return self._adoptable(status) and progress_info(status).terminal

    def poll_until_complete(self, external_id: Any, context: Context) -> Any:
        """Creating a job does not wait for the device: waiting is the sensor's work."""
        return self.get_job_result(external_id, context)

    def get_job_result(self, external_id: Any, context: Context) -> str:
        job_id = str(external_id)
        if self._result == job_id:
            return job_id
        self.job_id = job_id
        details = self._created if self._created.get("JobId") == job_id else self.hook.get_status(job_id)
        self._log_warning(details)
        for key in ("Signature", "SignatureFileContents", "ArtifactList", "WarningMessage"):
            context["ti"].xcom_push(key=key, value=details.get(key))
        context["ti"].xcom_push(key="JobId", value=job_id)
        self._persist_log_link(context, job_id)
        if self.signature_path and details.get("SignatureFileContents"):
            path = write_signature_file(self.signature_path, details["SignatureFileContents"])
            self.log.info("Wrote the SIGNATURE file for job %s to %s.", job_id, path)
        self._result = job_id
        return job_id

    def _persist_log_link(self, context: Context, job_id: str) -> None:
        """Where the job's log will be: known from the manifest and the job id at creation."""
        ImportExportLogLink.persist(
            context=context,
            operator=self,
            region_name=self.hook.user_region,
            aws_partition=self.hook.conn_partition,
            log_bucket=self._model.effective_log_bucket,
            log_key=self._model.log_key(job_id),
        )

    def _log_warning(self, details: dict[str, Any]) -> None:
        if details.get("WarningMessage"):
            self.log.warning("AWS Import/Export: %s", details["WarningMessage"])

    def on_kill(self) -> None:
        """Cancel the job a killed task created; killed during CreateJob, look for it by marker."""
        if not self.cancel_on_kill:
            return
        if self.job_id is None and self._marker:
            try:
                self.job_id = self.find_job_by_marker(self._marker)
            except exc.ImportExportError as err:
                self.log.warning("Task killed: could not look for a job it may have created (%s).", err)
        if not self.job_id:
            return
        try:
            self.hook.cancel_job(self.job_id)
            self.log.warning("Task killed: canceled job %s, which had not started.", self.job_id)
        except exc.ImportExportError as err:
            self.log.warning("Task killed: job %s was not canceled (%s).", self.job_id, err)

    # --- OpenLineage: called by Airflow's OpenLineage provider; None without the extra (docs/lineage.md)

    def get_openlineage_facets_on_start(self) -> Any:
        from airflow_provider_importexport import openlineage

        return openlineage.create_job_on_start(self)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        from airflow_provider_importexport import openlineage

        return openlineage.create_job_on_complete(self, task_instance)

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        from airflow_provider_importexport import openlineage

        return openlineage.create_job_on_failure(self, task_instance)


class ImportExportUpdateJobOperator(_ManifestOperator):
    """Replace the whole manifest of a job whose data transfer has not started.

    :param job_id: the job to update (templated)
    :param manifest: the new manifest as a model, a dict or YAML text (templated; secrets are masked)
    :param job_type: ``Import`` or ``Export`` (templated; default: Import)
    :param validate_only: only ask the service to validate the new manifest (default: False)
    """

    template_fields: Sequence[str] = aws_template_fields("job_id", "manifest", "job_type")

    def __init__(
        self,
        *,
        job_id: str,
        manifest: ManifestLike,
        job_type: str = "Import",
        validate_only: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.job_id = job_id
        self.manifest = manifest
        self.job_type = job_type
        self.validate_only = validate_only

    @fails_fast
    def execute(self, context: Context) -> dict[str, Any]:
        _check_job_type(self.job_type)
        if not self.job_id:
            raise exc.InvalidParameterError("job_id is empty; pass the JobId returned by the create task.")
        model = _validated(self.manifest, self.job_type)
        try:
            result = self.hook.update_job(self.job_id, self.job_type, model, validate_only=self.validate_only)
        except exc.UnableToUpdateJobError as err:
            message = _state_message(
                self.hook, self.job_id, "update", "a manifest can only be replaced before the transfer starts"
            )
            raise exc.UnableToUpdateJobError(message, job_id=self.job_id) from err
        if result.get("WarningMessage"):
            self.log.warning("AWS Import/Export: %s", result["WarningMessage"])
        self.log.info("%s job %s's manifest.", "Validated" if self.validate_only else "Replaced", self.job_id)
        return result


class ImportExportCancelJobOperator(AwsBaseOperator[ImportExportHook]):
    """Cancel a job that has not started.

    :param job_id: the job to cancel (templated)
    :param ignore_already_canceled: treat "already canceled" as success, so a cleanup task
        can be re-run safely (default: False)
    """

    aws_hook_class = ImportExportHook
    template_fields: Sequence[str] = aws_template_fields("job_id")

    def __init__(self, *, job_id: str, ignore_already_canceled: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.job_id = job_id
        self.ignore_already_canceled = ignore_already_canceled

    @fails_fast
    def execute(self, context: Context) -> bool:
        if not self.job_id:
            raise exc.InvalidParameterError("job_id is empty; pass the JobId of the job to cancel.")
        try:
            self.hook.cancel_job(self.job_id)
        except exc.JobCanceledError:
            if not self.ignore_already_canceled:
                raise
            self.log.info("Job %s was already canceled.", self.job_id)
            return True
        except exc.UnableToCancelJobError as err:
            message = _state_message(
                self.hook, self.job_id, "cancel", "only a job that has not started can be canceled"
            )
            raise exc.UnableToCancelJobError(message, job_id=self.job_id) from err
        self.log.info("Canceled job %s.", self.job_id)
        return True


class ImportExportGetShippingLabelOperator(AwsBaseOperator[ImportExportHook]):
    """Get the pre-paid shipping label for one or several jobs shipped together.

    :param job_ids: a JobId, a comma-separated string or a list of JobIds (templated)
    :param address: the sender's address, a ReturnAddress or a dict of its fields (templated);
        without it the service uses the first job's return address
    :param download_path: also download the PDF to this file (templated)
    """

    aws_hook_class = ImportExportHook
    template_fields: Sequence[str] = aws_template_fields("job_ids", "address", "download_path")
    operator_extra_links = (ImportExportShippingLabelLink(),)

    def __init__(
        self,
        *,
        job_ids: str | list[str],
        address: ReturnAddress | dict[str, Any] | None = None,
        download_path: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.job_ids = job_ids
        self.address = address
        self.download_path = download_path

    def _job_id_list(self) -> list[str]:
        raw = self.job_ids.split(",") if isinstance(self.job_ids, str) else list(self.job_ids or [])
        ids = [str(j).strip() for j in raw if str(j).strip()]
        if not ids:
            raise exc.InvalidParameterError("job_ids is empty; pass one JobId or a list of JobIds shipped together.")
        return ids

    @fails_fast
    def execute(self, context: Context) -> str:
        job_ids = self._job_id_list()
        try:
            label_address_params(self.address)
        except (ValueError, TypeError) as err:
            raise exc.InvalidParameterError(f"address: {err}") from None
        result = self.hook.get_shipping_label(job_ids, self.address)
        url = result["ShippingLabelURL"]
        if result.get("Warning"):
            self.log.warning("AWS Import/Export: %s", result["Warning"])
        ImportExportShippingLabelLink.persist(
            context=context,
            operator=self,
            region_name=self.hook.user_region,
            aws_partition=self.hook.conn_partition,
            shipping_label_url=url,
        )
        if self.download_path:
            path = download(url, self.download_path)
            self.log.info("Downloaded the shipping label to %s.", path)
        return url
