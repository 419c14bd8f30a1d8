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
from airflow_provider_importexport.utils.params import check_choice, check_seconds
from airflow_provider_importexport.utils.progress import WaitProgress, deferring_line
from airflow_provider_importexport.utils.task_errors import fails_fast

if TYPE_CHECKING:
    from airflow.sdk import Context

#: Devices travel by mail: poll every 15 minutes and give up after 30 days by default.
DEFAULT_POKE_INTERVAL = 15 * 60
DEFAULT_TIMEOUT = 30 * 24 * 3600
#: The task state store key under which a rescheduled sensor keeps its progress story.
PROGRESS_KEY = "importexport_progress"
MODES = ("poke", "reschedule")


def poll_interval(waiter_delay: float | None, kwargs: dict[str, Any]) -> float:
    """The one poll interval: ``waiter_delay`` or ``poke_interval``, whichever the task passed.

    Both passed with different values is an error naming both. Values from ``default_args``
    yield to the task's own; with neither, 15 minutes.
    """
    defaults = kwargs.get("default_args") or {}
    poke_interval = kwargs.pop("poke_interval", None)
    delay_is_default = waiter_delay is not None and defaults.get("waiter_delay", object()) == waiter_delay
    if waiter_delay is not None:
        check_seconds("waiter_delay", waiter_delay)
    if poke_interval is not None:
        poke_interval = check_seconds("poke_interval", poke_interval)
    if waiter_delay is not None and poke_interval is not None and float(waiter_delay) != poke_interval:
        if not delay_is_default:
            raise ValueError(
                f"waiter_delay={waiter_delay!r} and poke_interval={poke_interval!r} are the same setting, the seconds "
                "between checks in every mode: pass only one of them."
            )
        return poke_interval
    for value in (waiter_delay, poke_interval, defaults.get("poke_interval")):
        if value is not None:
            return check_seconds("poke_interval", value)
    return float(DEFAULT_POKE_INTERVAL)


def sensor_timeout(delay: float, waiter_max_attempts: int | None, kwargs: dict[str, Any]) -> float:
    """``timeout``, or ``waiter_delay * waiter_max_attempts``: passing both is an error naming both."""
    timeout = kwargs.get("timeout")
    if waiter_max_attempts is None:
        value = timeout if timeout is not None else (kwargs.get("default_args") or {}).get("timeout")
        return check_seconds("timeout", value) if value is not None else float(DEFAULT_TIMEOUT)
    if isinstance(waiter_max_attempts, bool) or not isinstance(waiter_max_attempts, int) or waiter_max_attempts < 1:
        raise ValueError(f"waiter_max_attempts={waiter_max_attempts!r} is not valid: give a whole number, 1 or more.")
    if timeout is not None:
        raise ValueError(
            f"timeout={timeout!r} and waiter_max_attempts={waiter_max_attempts!r} both set how long the sensor "
            "waits: pass only one of them."
        )
    return delay * waiter_max_attempts


class ImportExportJobSensor(AwsBaseSensor[ImportExportHook]):
    """Wait for an AWS Import/Export job: ``wait_for="arrival"``, ``"completion"`` or ``"return"``.

    Pushes the job's status to XCom, each member as its own key (``LogBucket``, ``LogKey``,
    ``ProgressCode``, ``LocationCode``, ``ErrorCount``, ``Carrier``, ``TrackingNumber``,
    the messages) and all of them as the return value. In deferrable mode (the default
    follows ``[operators] default_deferrable``) the wait runs in the triggerer and the
    sensor's ``timeout`` is honoured there as an absolute deadline. Without it the sensor
    runs in ``reschedule`` mode unless ``mode`` says otherwise, so a wait of weeks does not
    hold a worker slot between checks.

    The poll interval is one setting in every mode: ``waiter_delay``, or ``poke_interval``
    under its usual sensor name (pass either; both with different values is an error). The
    log tells a short story: a line on every change of the job's state and an hourly
    heartbeat, each with the state's age, the job's age, the next check and the deadline.

    .. seealso:: README, "Wait on a device inside an existing pipeline"

    :param job_id: the job to wait on (templated)
    :param wait_for: ``arrival`` (LocationCode AtAWS), ``completion`` (a terminal ProgressCode)
        or ``return`` (LocationCode Returned) (default: completion)
    :param on_success_with_errors: SuccessWithErrors outcome: ``succeed``, ``warn`` (succeed and
        log a warning) or ``fail`` (default: warn)
    :param read_log: read the job's log from S3 and push a summary (files ok / failed, bytes)
        as XCom ``log_summary`` (default: False)
    :param deferrable: wait in the triggerer (default: ``[operators] default_deferrable``)
    :param mode: when not deferrable: ``reschedule`` (default: frees the worker slot between
        checks) or ``poke`` (holds it)
    :param waiter_delay: seconds between checks in every mode; ``poke_interval`` is the same
        setting under the sensors' usual name (default: 900)
    :param waiter_max_attempts: checks before giving up; sets ``timeout`` to
        ``waiter_delay * waiter_max_attempts``, so pass one or the other (default: none;
        ``timeout`` is 30 days)
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
        delay = poll_interval(waiter_delay, kwargs)
        kwargs["poke_interval"] = delay
        kwargs["timeout"] = sensor_timeout(delay, waiter_max_attempts, kwargs)
        mode = kwargs.get("mode", (kwargs.get("default_args") or {}).get("mode"))
        if mode is not None:
            check_choice("mode", mode, MODES)
        elif not deferrable:
            kwargs["mode"] = "reschedule"  # a wait of days must not hold a worker slot
        wait_for = check_choice("wait_for", wait_for, [w.value for w in WaitFor])
        policies = [p.value for p in SuccessWithErrorsPolicy]
        on_success_with_errors = check_choice("on_success_with_errors", on_success_with_errors, policies)
        if isinstance(max_consecutive_errors, bool) or not isinstance(max_consecutive_errors, int):
            raise ValueError(f"max_consecutive_errors={max_consecutive_errors!r} is not valid: give a whole number.")
        super().__init__(**kwargs)
        self.job_id = job_id
        self.wait_for = wait_for
        self.on_success_with_errors = on_success_with_errors
        self.read_log = read_log
        self.deferrable = deferrable
        self.waiter_delay = delay
        self.waiter_max_attempts = waiter_max_attempts
        self.max_consecutive_errors = max_consecutive_errors
        self._progress: WaitProgress | None = None

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
            return self._execute_sync(context)
        status = self._read_status()
        verdict = self._verdict(status)
        if verdict.done:
            return self._finish(context, verdict, public_status(status))
        deadline = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self.timeout)
        self.log.info("%s %s", verdict.message, deferring_line(self.waiter_delay, deadline))
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

    def _execute_sync(self, context: Context) -> Any:
        """Poke or reschedule; a timeout says the last state seen, how long, and what to do next."""
        try:
            return super().execute(context)
        except AirflowSensorTimeout as timeout:
            raise AirflowSensorTimeout(self._progress_of(context).timed_out()) from timeout

    @fails_fast
    def poke(self, context: Context) -> PokeReturnValue:
        status = self._read_status()
        verdict = self._verdict(status)
        if not verdict.done:
            self._tell_progress(context, status)
            return PokeReturnValue(is_done=False)
        return PokeReturnValue(is_done=True, xcom_value=self._finish(context, verdict, public_status(status)))

    def _read_status(self) -> dict[str, Any]:
        return self.hook.get_status_or_ended(self.job_id)

    def _verdict(self, status: dict[str, Any]) -> Verdict:
        return evaluate_wait(status, self.wait_for, self.on_success_with_errors)

    # --- the story of a long wait (poke and reschedule) -------------------------------------------

    def _progress_of(self, context: Context) -> WaitProgress:
        """This wait's progress, kept in the task state store so a rescheduled run goes on with it."""
        if self._progress is None:
            progress = WaitProgress(self.job_id, self.wait_for, self.poke_interval)
            progress.restore(self._stored_progress(context))
            progress.deadline = progress.started + dt.timedelta(seconds=self.timeout)
            self._progress = progress
        return self._progress

    def _tell_progress(self, context: Context, status: dict[str, Any]) -> None:
        progress = self._progress_of(context)
        lines = progress.observe(status)
        for line in lines:
            self.log.info("%s", line)
        if lines and self.reschedule:
            self._store_progress(context, progress)

    def _stored_progress(self, context: Context) -> Any:
        store = context.get("task_state_store")
        return store.get(PROGRESS_KEY) if store is not None and self.reschedule else None

    def _store_progress(self, context: Context, progress: WaitProgress) -> None:
        store = context.get("task_state_store")
        if store is not None:
            store.set(PROGRESS_KEY, progress.snapshot(), retention=dt.timedelta(seconds=self.timeout, days=1))

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
