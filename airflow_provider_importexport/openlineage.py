"""OpenLineage for Import/Export jobs: a shipped device in, S3 (or a Glacier vault) out, and back.

Airflow's OpenLineage provider calls the create operator's and the sensor's
``get_openlineage_facets_on_start/complete/failure``; they delegate here. Every function
returns None when the ``[openlineage]`` extra is not installed, so nothing changes without it.
The OpenLineage client is only imported when this module is, and the operators import it
only inside those methods, which only the OpenLineage listener calls.

Dataset naming (docs/lineage.md):

- a device: namespace ``importexport``, name ``<deviceId>/<JobId>``. A device id is a disk's
  serial number or sticker and the same disk travels again and again, each time with other
  data; one job is one shipment, so the pair names one shipment's contents. Both parts are
  fixed once the job exists (a retried task adopts the same job), so every event of a job
  names the same dataset. Known only once the job exists: a create task's START has no device.
- S3: namespace ``s3://<bucket>``, name the prefix without its trailing slash (``/`` for the
  whole bucket), as Airflow's OpenLineage provider names the Asset ``s3://bucket/prefix/``, so
  an Asset on the prefix is the same dataset.
- Glacier: namespace ``glacier://<region>``, name the vault; the manifest's operation region,
  else the connection's. EBS manifests name no snapshot (the service picks its id at the
  end), so an EBS import has the device as input and no output.

Manifests carry secrets (PIN codes, passwords): only ids, buckets, prefixes, vaults and
regions are read from them here, never the manifest itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

from airflow_provider_importexport import exceptions as exc
from airflow_provider_importexport.manifest import (
    GlacierImportManifest,
    Manifest,
    ManifestLike,
    S3ExportManifest,
    S3ImportManifest,
    parse_manifest,
)
from airflow_provider_importexport.status import progress_info, public_status

try:
    import attrs
    from airflow.providers.common.compat.openlineage.facet import (
        Dataset,
        DatasetFacet,
        OutputDataset,
        OutputStatisticsOutputDatasetFacet,
        RunFacet,
    )
    from airflow.providers.openlineage.extractors import OperatorLineage
except ImportError:  # the [openlineage] extra is not installed
    AVAILABLE = False
else:
    AVAILABLE = True


class CreateJobTask(Protocol):
    """What lineage reads from the create operator (a Protocol: operators import this module)."""

    manifest: ManifestLike
    job_type: str
    validate_only: bool
    job_id: str | None


class JobSensorTask(Protocol):
    """What lineage reads from the sensor."""

    job_id: str

    @property
    def hook(self) -> Any: ...


#: The namespace of device datasets.
DEVICE_NAMESPACE = "importexport"
#: Keys of this provider's custom facets.
JOB_FACET = "importexportJob"
ERROR_FACET = "importexportError"
DEVICE_FACET = "importexportDevice"
OUTPUT_STATISTICS_FACET = "outputStatistics"

if TYPE_CHECKING or AVAILABLE:

    @attrs.define
    class ImportExportJobRunFacet(RunFacet):
        """The job behind a run: its id and log object, and once it is done, how it ended.

        ``log`` is ``s3://LogBucket/LogKey``; the file counts and bytes come from the sensor's
        log summary (``read_log=True``).
        """

        jobId: str | None = None
        log: str | None = None
        progressCode: str | None = None
        locationCode: str | None = None
        errorCount: int | None = None
        filesOk: int | None = None
        filesFailed: int | None = None
        filesIgnored: int | None = None
        bytesOk: int | None = None

    @attrs.define
    class ImportExportErrorRunFacet(RunFacet):
        """A failed run's service error code (``InvalidJobIdException``, ``JobFailed``, ...).

        The message is in OpenLineage's own ``errorMessage`` facet, which Airflow adds.
        """

        code: str
        jobId: str | None = None

    @attrs.define
    class ImportExportDeviceDatasetFacet(DatasetFacet):
        """What a device dataset is: which disk, on which job, and what kind of job."""

        deviceId: str
        jobId: str
        jobType: str
        manifestKind: str


# --- the create operator ----------------------------------------------------------------------------


def create_job_on_start(operator: CreateJobTask) -> OperatorLineage | None:
    """The S3 side (or vault) of the manifest; the device once the job exists."""
    if not AVAILABLE:
        return None
    return _create_job_lineage(operator)


def create_job_on_complete(operator: CreateJobTask, task_instance: Any) -> OperatorLineage | None:
    """Device and S3 datasets, with the job id and where its log will be."""
    if not AVAILABLE:
        return None
    return _create_job_lineage(operator)


def create_job_on_failure(operator: CreateJobTask, task_instance: Any) -> OperatorLineage | None:
    """As on completion, plus the error facet with the service code."""
    if not AVAILABLE:
        return None
    lineage = _create_job_lineage(operator)
    lineage.run_facets.update(_error_facets(task_instance, operator.job_id))
    return lineage


def _create_job_lineage(operator: CreateJobTask) -> OperatorLineage:
    if operator.validate_only:
        return OperatorLineage()  # a dry run moves no data
    model = _parsed(operator.manifest, operator.job_type)
    if model is None:
        return OperatorLineage()
    job_id = operator.job_id
    facets: dict[str, Any] = {}
    if job_id:
        log = _s3_uri(model.effective_log_bucket, model.log_key(job_id))
        facets[JOB_FACET] = ImportExportJobRunFacet(jobId=job_id, log=log)
    inputs, outputs = manifest_datasets(model, job_id, default_region=_default_region(operator, model))
    return OperatorLineage(inputs=inputs, outputs=outputs, run_facets=facets)


# --- the sensor ----------------------------------------------------------------------------------------


def sensor_on_start(sensor: JobSensorTask) -> OperatorLineage | None:
    """Only the job id: what the job moves is known once it is done."""
    if not AVAILABLE:
        return None
    return OperatorLineage(run_facets={JOB_FACET: ImportExportJobRunFacet(jobId=sensor.job_id or None)})


def sensor_on_complete(sensor: JobSensorTask, task_instance: Any) -> OperatorLineage | None:
    """The job's state (one GetStatus); device and S3 datasets once the job is done.

    Files and bytes come from the sensor's log summary (its XCom) only where Airflow runs
    lineage in a thread (``[openlineage] execute_in_thread``): from the default forked
    process a call to the task's supervisor can break the task's connection to it, so
    lineage never makes one there. GetStatus goes to AWS, not to the supervisor.
    """
    if not AVAILABLE:
        return None
    status = _fetched_status(sensor) or {"JobId": sensor.job_id}
    summary = _log_summary(task_instance) if _runs_in_thread() else None
    if summary:
        status["log_summary"] = summary
    return _sensor_lineage(sensor, status)


def sensor_on_failure(sensor: JobSensorTask, task_instance: Any) -> OperatorLineage | None:
    """The error facet with the service code; for a failed job also its state and datasets."""
    if not AVAILABLE:
        return None
    error = _error_of(task_instance)
    status: dict[str, Any] = {"JobId": sensor.job_id}
    if isinstance(error, exc.JobFailedError):
        status = _fetched_status(sensor) or status
    lineage = _sensor_lineage(sensor, status)
    lineage.run_facets.update(_error_facets(task_instance, sensor.job_id, error=error))
    return lineage


def _sensor_lineage(sensor: JobSensorTask, status: dict[str, Any]) -> OperatorLineage:
    job_id = str(status.get("JobId") or sensor.job_id or "") or None
    facets = {JOB_FACET: _job_facet(job_id, status)}
    progress = status.get("ProgressCode")
    model = _parsed(status.get("CurrentManifest") or "", status.get("JobType"))
    if not (job_id and model and progress and progress_info(str(progress)).terminal):
        return OperatorLineage(run_facets=facets)  # not done (an arrival wait): no data moved yet
    region = _default_region(sensor, model)
    inputs, outputs = manifest_datasets(model, job_id, default_region=region, summary=status.get("log_summary"))
    return OperatorLineage(inputs=inputs, outputs=outputs, run_facets=facets)


def _job_facet(job_id: str | None, status: dict[str, Any]) -> ImportExportJobRunFacet:
    summary = status.get("log_summary") or {}
    return ImportExportJobRunFacet(
        jobId=job_id,
        log=_s3_uri(status.get("LogBucket"), status.get("LogKey")),
        progressCode=status.get("ProgressCode"),
        locationCode=status.get("LocationCode"),
        errorCount=_int(status.get("ErrorCount")),
        filesOk=_int(summary.get("files_ok")),
        filesFailed=_int(summary.get("files_failed")),
        filesIgnored=_int(summary.get("files_ignored")),
        bytesOk=_int(summary.get("bytes_ok")),
    )


def _runs_in_thread() -> bool:
    with contextlib.suppress(Exception):
        from airflow.providers.openlineage import conf

        return bool(conf.execute_in_thread())
    return False


def _log_summary(task_instance: Any) -> dict[str, Any] | None:
    """The log summary the sensor returned (``read_log=True``), from its XCom."""
    try:
        value = task_instance.xcom_pull(task_ids=task_instance.task_id, map_indexes=task_instance.map_index)
    except Exception:
        return None
    summary = value.get("log_summary") if isinstance(value, dict) else None
    return summary if isinstance(summary, dict) else None


def _fetched_status(sensor: JobSensorTask) -> dict[str, Any] | None:
    """GetStatus, keeping only the members safe to emit plus the manifest to read datasets from."""
    try:
        answer = sensor.hook.get_status(sensor.job_id)
    except Exception:  # lineage never fails a task
        return None
    return {**public_status(answer), "CurrentManifest": answer.get("CurrentManifest")}


# --- datasets ----------------------------------------------------------------------------------------


def manifest_datasets(
    model: Manifest,
    job_id: str | None,
    *,
    default_region: str = "us-east-1",
    summary: dict[str, Any] | None = None,
) -> tuple[list[Dataset], list[Dataset]]:
    """(inputs, outputs) of a job: the device (when the job id is known) and what the manifest names.

    ``summary`` (the sensor's log summary) becomes output statistics on an S3 job's one output.
    """
    device = [device_dataset(model, job_id)] if job_id else []
    if isinstance(model, S3ImportManifest):
        return device, _with_statistics([s3_dataset(model.bucket, model.prefix)], summary)
    if isinstance(model, S3ExportManifest):
        inputs = _unique(s3_dataset(op.export_bucket, op.prefix) for op in model.operations)
        return inputs, _with_statistics(device, summary)
    if isinstance(model, GlacierImportManifest):
        vaults = (glacier_dataset(op.vault_name, op.region or default_region) for op in model.operations)
        return device, _unique(vaults)
    return device, []  # EBS: the manifest names no snapshot


def device_dataset(model: Manifest, job_id: str) -> Dataset:
    """The device of one job: ``importexport`` / ``<deviceId>/<JobId>`` (see the module docstring)."""
    facet = ImportExportDeviceDatasetFacet(
        deviceId=str(model.device_id), jobId=job_id, jobType=model.job_type, manifestKind=model.kind_name
    )
    return Dataset(namespace=DEVICE_NAMESPACE, name=f"{model.device_id}/{job_id}", facets={DEVICE_FACET: facet})


def s3_dataset(bucket: str | None, prefix: str | None) -> Dataset:
    """``s3://bucket`` / prefix, named as Airflow's OpenLineage provider names the Asset
    ``s3://bucket/prefix`` (its URI loses a trailing slash), so an Asset on it joins the graph."""
    return Dataset(namespace=f"s3://{bucket}", name=(prefix or "").rstrip("/") or "/")


def glacier_dataset(vault: str | None, region: str) -> Dataset:
    return Dataset(namespace=f"glacier://{region}", name=str(vault))


def _with_statistics(outputs: list[Dataset], summary: dict[str, Any] | None) -> list[Dataset]:
    """The one output of an S3 job, with the files and bytes the log counted."""
    if not summary or len(outputs) != 1:
        return outputs
    stats = OutputStatisticsOutputDatasetFacet(
        size=_int(summary.get("bytes_ok")), fileCount=_int(summary.get("files_ok"))
    )
    only = outputs[0]
    return [
        OutputDataset(
            namespace=only.namespace,
            name=only.name,
            facets=only.facets,
            outputFacets={OUTPUT_STATISTICS_FACET: stats},
        )
    ]


def _unique(datasets: Iterable[Dataset]) -> list[Dataset]:
    found: dict[tuple[str, str], Dataset] = {}
    for dataset in datasets:
        found.setdefault((dataset.namespace, dataset.name), dataset)
    return list(found.values())


# --- failures ------------------------------------------------------------------------------------------


def _error_facets(task_instance: Any, job_id: str | None, *, error: BaseException | None = None) -> dict[str, Any]:
    """``importexportError`` with the service code, when the task failed with one of ours."""
    error = error if error is not None else _error_of(task_instance)
    code = getattr(error, "code", None)
    if not code:
        return {}
    return {ERROR_FACET: ImportExportErrorRunFacet(code=str(code), jobId=getattr(error, "job_id", None) or job_id)}


def _error_of(task_instance: Any) -> BaseException | None:
    """The exception the task failed with: the task runner puts it in the context before finalizing."""
    with contextlib.suppress(Exception):
        error = task_instance.get_template_context().get("exception")
        return error if isinstance(error, BaseException) else None
    return None


# --- small helpers ------------------------------------------------------------------------------------


def _parsed(manifest: ManifestLike, job_type: str | None) -> Manifest | None:
    """The manifest model, or None when it cannot be read (lineage never fails a task)."""
    try:
        return parse_manifest(manifest, job_type=job_type)
    except Exception:
        return None


def _default_region(operator: Any, model: Manifest) -> str:
    """The connection's region, for Glacier operations that name none (asked only then: it may
    look the connection up)."""
    if isinstance(model, GlacierImportManifest) and any(not op.region for op in model.operations):
        with contextlib.suppress(Exception):
            return str(operator.hook.user_region)
    return "us-east-1"


def _s3_uri(bucket: Any, key: Any) -> str | None:
    return f"s3://{bucket}/{key}" if bucket and key else None


def _int(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None
