"""ImportExportJobSensor: wait for a device to arrive, a transfer to finish, or a device to come back."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.amazon.aws.sensors.base_aws import AwsBaseSensor
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.sdk import conf
from airflow.sdk.bases.sensor import PokeReturnValue
from airflow.sdk.exceptions import AirflowSensorTimeout

from airflow_provider_importexport import exceptions as exc
from airflow_provider_importexport.hooks.importexport import ImportExportHook
from airflow_provider_importexport.links.importexport import ImportExportLogLink
from airflow_provider_importexport.logs import parse_log, summarize
from airflow_provider_importexport.status import (
    SuccessWithErrorsPolicy,
    Verdict,
    WaitFor,
    evaluate_wait,
    public_status,
)
from airflow_provider_importexport.triggers.importexport import ImportExportJobTrigger
from airflow_provider_importexport.utils.task_errors import fails_fast

if TYPE_CHECKING:
    from airflow.sdk import Context

#: Devices travel by mail: poll every 15 minutes and give up after 30 days by default.
DEFAULT_POKE_INTERVAL = 15 * 60
DEFAULT_TIMEOUT = 30 * 24 * 3600


class ImportExportJobSensor(AwsBaseSensor[ImportExportHook]):
    """Wait for an AWS Import/Export job: ``wait_for="arrival"``, ``"completion"`` or ``"return"``.

    Pushes the job's status to XCom, each member as its own key (``LogBucket``, ``LogKey``,
    ``ProgressCode``, ``LocationCode``, ``ErrorCount``, ``Carrier``, ``TrackingNumber``,
    the messages) and all of them as the return value. In deferrable mode (the default
    follows ``[operators] default_deferrable``) the wait runs in the triggerer and the
    sensor's ``timeout`` is honoured there as an absolute deadline.

    .. seealso:: README, "Wait on a device inside an existing pipeline"

    :param job_id: the job to wait on (templated)
    :param wait_for: ``arrival`` (LocationCode AtAWS), ``completion`` (a terminal ProgressCode)
        or ``return`` (LocationCode Returned) (default: completion)
    :param on_success_with_errors: SuccessWithErrors outcome: ``succeed``, ``warn`` (succeed and
        log a warning) or ``fail`` (default: warn)
    :param read_log: read the job's log from S3 and push a summary (files ok / failed, bytes)
        as XCom ``log_summary`` (default: False)
    :param deferrable: wait in the triggerer (default: ``[operators] default_deferrable``)
    :param waiter_delay: seconds between polls; the same as ``poke_interval`` (default: 900)
    :param waiter_max_attempts: polls before giving up; sets ``timeout`` to
        ``waiter_delay * waiter_max_attempts`` (default: none; ``timeout`` is 30 days)
    :param max_consecutive_errors: transient errors in a row tolerated in deferrable mode (default: 10)
    """

    aws_hook_class = ImportExportHook
    template_fields: Sequence[str] = aws_template_fields("job_id")
    operator_extra_links = (ImportExportLogLink(),)
    ui_color = "#f0eee4"

    def __init__(
        self,
        *,
        job_id: str,
        wait_for: str = WaitFor.COMPLETION.value,
        on_success_with_errors: str = SuccessWithErrorsPolicy.WARN.value,
        read_log: bool = False,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        waiter_delay: float | None = None,
        waiter_max_attempts: int | None = None,
        max_consecutive_errors: int = 10,
        **kwargs: Any,
    ) -> None:
        delay = waiter_delay if waiter_delay is not None else kwargs.pop("poke_interval", DEFAULT_POKE_INTERVAL)
        kwargs["poke_interval"] = delay
        if waiter_max_attempts is not None:
            kwargs["timeout"] = delay * waiter_max_attempts
        kwargs.setdefault("timeout", DEFAULT_TIMEOUT)
        super().__init__(**kwargs)
        self.job_id = job_id
        self.wait_for = WaitFor(wait_for).value
        self.on_success_with_errors = SuccessWithErrorsPolicy(on_success_with_errors).value
        self.read_log = read_log
        self.deferrable = deferrable
        self.waiter_delay = delay
        self.waiter_max_attempts = waiter_max_attempts
        self.max_consecutive_errors = max_consecutive_errors

    # --- the one place hook parameters travel to the trigger -----------------------------------

    def trigger_hook_parameters(self) -> dict[str, Any]:
        params = dict(self._hook_parameters)
        params["botocore_config"] = params.pop("config")
        return params

    # --- sync modes (poke, reschedule) ---------------------------------------------------------

    @fails_fast
    def execute(self, context: Context) -> Any:
        if not self.job_id:
            raise exc.InvalidParameterError("job_id is empty; pass the JobId returned by the create task.")
        self.hook.require_connection()
        if not self.deferrable:
            return super().execute(context)
        verdict, status = self._check()
        if verdict.done:
            return self._finish(context, verdict, status)
        self.log.info("%s Deferring to the triggerer.", verdict.message)
        deadline = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=self.timeout)
        self.defer(
            trigger=ImportExportJobTrigger(
                job_id=self.job_id,
                wait_for=self.wait_for,
                waiter_delay=self.waiter_delay,
                deadline=deadline.isoformat(),
                on_success_with_errors=self.on_success_with_errors,
                max_consecutive_errors=self.max_consecutive_errors,
                **self.trigger_hook_parameters(),
            ),
            method_name="execute_complete",
            timeout=dt.timedelta(seconds=self.timeout),
        )

    @fails_fast
    def poke(self, context: Context) -> PokeReturnValue:
        verdict, status = self._check()
        if not verdict.done:
            self.log.info("%s", verdict.message)
            return PokeReturnValue(is_done=False)
        return PokeReturnValue(is_done=True, xcom_value=self._finish(context, verdict, status))

    def _check(self) -> tuple[Verdict, dict[str, Any]]:
        status = public_status(self.hook.get_status_or_ended(self.job_id))
        return evaluate_wait(status, self.wait_for, self.on_success_with_errors), status

    # --- the deferred half ----------------------------------------------------------------------

    @fails_fast
    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        if not isinstance(event, dict) or "status" not in event:
            raise exc.ImportExportError(f"The trigger for job {self.job_id} returned no usable event: {event!r}.")
        state, message = event["status"], event.get("message", "")
        if state == "timeout":
            raise AirflowSensorTimeout(message)
        if state == "error":
            raise exc.ImportExportError(message, job_id=self.job_id)
        return self._finish(context, Verdict(state, message), event.get("job") or {})

    # --- shared ending ---------------------------------------------------------------------------

    def _finish(self, context: Context, verdict: Verdict, status: dict[str, Any]) -> dict[str, Any]:
        if verdict.state == "failure":
            raise exc.JobFailedError(verdict.message, job_id=self.job_id)
        if verdict.state == "warning":
            self.log.warning("%s", verdict.message)
        else:
            self.log.info("%s", verdict.message)
        result = dict(status)
        if self.read_log and status.get("LogBucket") and status.get("LogKey"):
            result["log_summary"] = self._log_summary(status["LogBucket"], status["LogKey"])
        ti = context["ti"]
        for key, value in result.items():
            ti.xcom_push(key=key, value=value)
        if status.get("LogBucket"):
            ImportExportLogLink.persist(
                context=context,
                operator=self,
                region_name=self.hook.user_region,
                aws_partition=self.hook.conn_partition,
                log_bucket=status["LogBucket"],
                log_key=status["LogKey"],
            )
        self._annotate_outlets(context, result)
        return result

    def _log_summary(self, bucket: str, key: str) -> dict[str, int]:
        hook = S3Hook(aws_conn_id=self.aws_conn_id, region_name=self.region_name, verify=self.verify)
        text = hook.read_key(key=key, bucket_name=bucket)
        return summarize(parse_log(text))

    def _annotate_outlets(self, context: Context, result: dict[str, Any]) -> None:
        """Asset events for declared outlets carry the job's id, log and error count."""
        if not self.outlets:
            return
        events = context.get("outlet_events")
        if events is None:
            return
        extra = {k: result.get(k) for k in ("JobId", "ProgressCode", "ErrorCount", "LogBucket", "LogKey")}
        if "log_summary" in result:
            extra["log_summary"] = result["log_summary"]
        for outlet in self.outlets:
            events[outlet].extra.update({k: v for k, v in extra.items() if v is not None})

    # --- OpenLineage: called by Airflow's OpenLineage provider; None without the extra (docs/lineage.md)

    def get_openlineage_facets_on_start(self) -> Any:
        from airflow_provider_importexport import openlineage

        return openlineage.sensor_on_start(self)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        from airflow_provider_importexport import openlineage

        return openlineage.sensor_on_complete(self, task_instance)

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        from airflow_provider_importexport import openlineage

        return openlineage.sensor_on_failure(self, task_instance)
