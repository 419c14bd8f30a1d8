"""ImportExportHook: the six AWS Import/Export operations on the Amazon provider's AwsBaseHook."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import tenacity
from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from airflow.sdk.exceptions import AirflowNotFoundException
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
    ReadTimeoutError,
)
from botocore.parsers import ResponseParserError

from airflow_provider_importexport import exceptions as exc
from airflow_provider_importexport.manifest import Manifest, ManifestLike, ReturnAddress, parse_manifest
from airflow_provider_importexport.masking import register_manifest_secrets
from airflow_provider_importexport.settings import settings_from_dict
from airflow_provider_importexport.status import LocationCode, ProgressCode
from airflow_provider_importexport.utils.progress import endpoint_line
from airflow_provider_importexport.utils.task_errors import as_airflow_error

log = logging.getLogger(__name__)
T = TypeVar("T")

THROTTLING_CODES = frozenset(
    {"Throttling", "ThrottlingException", "ThrottledException", "RequestThrottled", "TooManyRequestsException",
     "RequestLimitExceeded", "SlowDown", "RequestThrottledException"}
)  # fmt: skip
AUTH_CODES = frozenset(
    {"SignatureDoesNotMatch", "InvalidClientTokenId", "InvalidClientTokenIdException", "MissingAuthenticationToken",
     "IncompleteSignature", "UnrecognizedClientException", "ExpiredToken", "AccessDenied", "RequestExpired"}
)  # fmt: skip
#: Connection failures where the request never reached the service: safe to resend anything.
NOT_SENT_ERRORS = (EndpointConnectionError, ConnectTimeoutError)
#: Failures after the request may have reached the service: a dropped or timed-out connection,
#: or an answer botocore could not parse (a proxy's or load balancer's HTML error page).
MAYBE_SENT_ERRORS = (ConnectionClosedError, ReadTimeoutError, ResponseParserError, HTTPClientError)
#: Everything botocore can raise for a call: each becomes a provider exception (see translate).
CLIENT_FAILURES = (BotoCoreError, ClientError, *MAYBE_SENT_ERRORS)


@dataclass(frozen=True)
class RetryPolicy:
    """How the hook retries transient failures (throttling, HTTP 5xx, connection errors).

    Exponential backoff with jitter, bounded both in attempts and in total time. Client
    errors are never retried. Set per connection with the extra
    ``{"service_config": {"importexport": {"retry_policy": {"max_attempts": 8}}}}``.
    When the connection's botocore config sets ``retries`` itself, botocore's policy
    governs and the hook makes a single attempt, so the two never multiply.
    """

    max_attempts: int = 5
    initial_delay: float = 1.0
    max_delay: float = 20.0
    total_timeout: float = 120.0
    jitter: float = 1.0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RetryPolicy:
        return settings_from_dict(cls, data, "retry_policy")


def error_code(error: BaseException) -> str:
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code", ""))
    return ""


def http_status(error: BaseException) -> int:
    if isinstance(error, ClientError):
        return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    return 0


def is_transient(error: BaseException) -> bool:
    """Throttling, HTTP 5xx and connection failures: worth another attempt."""
    if isinstance(error, (*NOT_SENT_ERRORS, *MAYBE_SENT_ERRORS)):
        return True
    return error_code(error) in THROTTLING_CODES or http_status(error) >= 500


def is_safe_to_resend(error: BaseException) -> bool:
    """Transient failures that show the service did not act on the request.

    Throttling and 503 are refusals before any work; a failed connect never sent
    anything. A 500, a dropped connection or a read timeout may follow a created job.
    """
    if isinstance(error, NOT_SENT_ERRORS):
        return True
    return error_code(error) in THROTTLING_CODES or http_status(error) == 503


def translate(error: BaseException, job_id: str | None = None) -> exc.ImportExportError:
    """The provider exception for a botocore failure, carrying the service's code and message.

    It is the Airflow twin of the service error (see ``utils.task_errors``), so a non-retryable
    one fails the task without retries even when a ``@task`` calls the hook directly.
    """
    if isinstance(error, exc.ImportExportError):
        return as_airflow_error(error)
    return as_airflow_error(service_error(error, job_id))


def service_error(error: BaseException, job_id: str | None = None) -> exc.ImportExportError:
    """The service-core exception for a botocore failure (no Airflow base)."""
    if isinstance(error, ClientError):
        code = error_code(error)
        message = str(error.response.get("Error", {}).get("Message", "")) or str(error)
        if code in exc.ERRORS_BY_CODE:
            return exc.error_for_code(code, message, job_id=job_id)
        if code in AUTH_CODES:
            return exc.AuthenticationError(message, job_id=job_id, code=code)
        if is_transient(error):
            return exc.ServiceUnavailableError(f"{message} (HTTP {http_status(error)})", job_id=job_id, code=code)
        return exc.ImportExportError(message, job_id=job_id, code=code)
    if isinstance(error, (NoCredentialsError, PartialCredentialsError)):
        return exc.AuthenticationError(
            f"{error}; give the AWS connection an access key or a role, or set the default credential chain.",
            job_id=job_id,
            code="MissingAuthenticationToken",
        )
    if isinstance(error, ParamValidationError):
        return exc.InvalidParameterError(str(error), job_id=job_id)
    if isinstance(error, ResponseParserError):
        return exc.ServiceUnavailableError(f"the service sent an answer that is not its XML: {error}", job_id=job_id)
    if isinstance(error, NOT_SENT_ERRORS):
        return exc.ServiceUnavailableError(
            f"{type(error).__name__}: {error}; check the AWS connection's endpoint_url (extra) "
            "and that the service is reachable from here",
            job_id=job_id,
        )
    return exc.ServiceUnavailableError(f"{type(error).__name__}: {error}", job_id=job_id)


def manifest_text(manifest: ManifestLike, job_type: str | None = None) -> str:
    """YAML text to send: text verbatim (it may be a rendered template), models and dicts rendered."""
    if isinstance(manifest, str):
        return manifest
    model = manifest if isinstance(manifest, Manifest) else parse_manifest(manifest, job_type=job_type)
    return model.to_yaml()


def with_secrets_masked(status: dict[str, Any]) -> dict[str, Any]:
    """Register the secrets GetStatus echoes in CurrentManifest with Airflow's masker, before use."""
    register_manifest_secrets(status.get("CurrentManifest") or "")
    return status


def without_metadata(response: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in response.items() if k != "ResponseMetadata"}


class ImportExportHook(AwsBaseHook):
    """Interact with AWS Import/Export (API 2010-06-01) through a boto3 ``importexport`` client.

    A thin hook: everything an operation needs is a method argument. Connection handling
    (``aws_conn_id``, ``region_name``, ``verify``, ``botocore_config``, the connection's
    ``endpoint_url`` or ``service_config.importexport.endpoint_url`` extra, assumed roles)
    is the Amazon provider's, unchanged.

    .. note:: botocore resolves this service to one global endpoint, so the client's own
       region reads ``aws-global``; :attr:`user_region` is the region to show users.

    Additional arguments (such as ``aws_conn_id``) may be specified and are passed down to
    the underlying AwsBaseHook.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["client_type"] = "importexport"
        super().__init__(*args, **kwargs)
        self._endpoint_told = False

    # --- configuration ---------------------------------------------------------------------

    def _get_config(self, config: Config | None = None) -> Config:
        merged = super()._get_config(config)
        if merged.retries is None:
            # The hook's own policy retries; botocore must not retry underneath it.
            merged = merged.merge(Config(retries={"total_max_attempts": 1, "mode": "standard"}))
        return merged

    @property
    def retry_policy(self) -> RetryPolicy:
        if self.config.retries is not None:
            return RetryPolicy(max_attempts=1)
        return RetryPolicy.from_dict(dict(self.service_config.get("retry_policy") or {}))

    def require_connection(self) -> None:
        """Fail clearly when ``aws_conn_id`` names a connection this process cannot see.

        The Amazon provider silently falls back to the default credential chain; in a
        triggerer that usually means polling with the wrong identity or none at all.
        Pass ``aws_conn_id=None`` to use the default chain on purpose.
        """
        if not self.aws_conn_id:
            return
        try:
            self.get_connection(self.aws_conn_id)
        except AirflowNotFoundException:
            raise exc.InvalidParameterError(
                f"The AWS connection {self.aws_conn_id!r} is not defined where this runs; define it for the "
                "workers and the triggerer (environment variable or secrets backend), or pass "
                "aws_conn_id=None to use the default AWS credential chain.",
                code="ConnectionNotFound",
            ) from None

    @property
    def user_region(self) -> str:
        """The region users configured, for links and logs: never ``aws-global`` (botocore's name for
        this service's one endpoint); us-east-1, where that endpoint lives, when none is set."""
        region = self.region_name or self.conn_region_name
        return region if region and region != "aws-global" else "us-east-1"

    def tell_endpoint(self) -> None:
        """Log once, at this hook's first call, which endpoint the calls go to: a connection
        without ``endpoint_url`` reaches the real service, and that must show in the task log."""
        if not self._endpoint_told:
            self._endpoint_told = True
            self.log.info("%s", endpoint_line(self.conn.meta.endpoint_url, self.user_region, self.aws_conn_id))

    # --- the call path -----------------------------------------------------------------------

    def _call(
        self,
        operation: str,
        *,
        job_id: str | None = None,
        resend_if: Callable[[BaseException], bool] = is_transient,
        **params: Any,
    ) -> dict[str, Any]:
        """One operation with the retry policy; failures become provider exceptions."""
        self.tell_endpoint()
        method = getattr(self.conn, operation)
        try:
            return without_metadata(self._retrying(self._api_name(operation), resend_if)(method, **params))
        except exc.ImportExportError:
            raise
        except CLIENT_FAILURES as error:
            raise translate(error, job_id) from error

    def _api_name(self, operation: str) -> str:
        """The service's name for a client method (``list_jobs`` -> ``ListJobs``), for messages."""
        return str(self.conn.meta.method_to_api_mapping.get(operation, operation))

    def _retrying(self, api_name: str, resend_if: Callable[[BaseException], bool]) -> tenacity.Retrying:
        policy = self.retry_policy
        return tenacity.Retrying(
            stop=tenacity.stop_after_attempt(policy.max_attempts) | tenacity.stop_after_delay(policy.total_timeout),
            wait=tenacity.wait_exponential_jitter(
                multiplier=policy.initial_delay, max=policy.max_delay, jitter=policy.jitter
            ),
            retry=tenacity.retry_if_exception(resend_if),
            before_sleep=_log_retry(api_name, policy.max_attempts),
            reraise=True,
        )

    # --- operations ----------------------------------------------------------------------------

    def create_job(
        self,
        job_type: str,
        manifest: ManifestLike,
        *,
        validate_only: bool = False,
        manifest_addendum: str | None = None,
        api_version: str | None = None,
    ) -> dict[str, Any]:
        """CreateJob. Returns JobId, JobType, Signature, SignatureFileContents, WarningMessage, ArtifactList.

        CreateJob has no idempotency token, so only failures that prove the service did not
        act (throttling, 503, no connection) are retried. Anything else that may have
        created a job raises :class:`ServiceUnavailableError`; the create operator then
        looks for the job by its ``generator`` marker before ever creating another.
        """
        params: dict[str, Any] = {
            "JobType": job_type,
            "Manifest": manifest_text(manifest, job_type),
            "ValidateOnly": validate_only,
        }
        if manifest_addendum:
            params["ManifestAddendum"] = manifest_addendum
        if api_version:
            params["APIVersion"] = api_version
        return self._call("create_job", resend_if=is_safe_to_resend, **params)

    def update_job(
        self, job_id: str, job_type: str, manifest: ManifestLike, *, validate_only: bool = False
    ) -> dict[str, Any]:
        """UpdateJob: replace the whole manifest of a job whose transfer has not started."""
        return self._call(
            "update_job",
            job_id=job_id,
            JobId=job_id,
            JobType=job_type,
            Manifest=manifest_text(manifest, job_type),
            ValidateOnly=validate_only,
        )

    def cancel_job(self, job_id: str) -> dict[str, Any]:
        """CancelJob. A resend after an attempt whose answer was lost may meet the job
        already canceled by that attempt: that counts as success."""
        maybe_canceled = False

        def resend(error: BaseException) -> bool:
            nonlocal maybe_canceled
            maybe_canceled = maybe_canceled or (is_transient(error) and not is_safe_to_resend(error))
            return is_transient(error)

        try:
            return self._call("cancel_job", job_id=job_id, resend_if=resend, JobId=job_id)
        except exc.JobCanceledError:
            if maybe_canceled:
                log.info("CancelJob: job %s is canceled (by an earlier attempt whose answer was lost).", job_id)
                return {"Success": True}
            raise

    def get_status(self, job_id: str) -> dict[str, Any]:
        """GetStatus: location, progress, log location, signature and current manifest.

        ``CurrentManifest`` holds the job's PIN or password as the service echoes them;
        they are registered with Airflow's secret masker before the answer is returned.
        """
        return with_secrets_masked(self._call("get_status", job_id=job_id, JobId=job_id))

    def get_status_or_ended(self, job_id: str) -> dict[str, Any]:
        """GetStatus, with CanceledJobId/ExpiredJobId answered as the matching ProgressCode."""
        try:
            return self.get_status(job_id)
        except (exc.JobCanceledError, exc.JobExpiredError) as error:
            return ended_job_status(job_id, error)

    def list_jobs_page(self, *, max_jobs: int | None = None, marker: str | None = None) -> dict[str, Any]:
        """One ListJobs page: ``Jobs`` (newest first) and ``IsTruncated``."""
        params: dict[str, Any] = {}
        if max_jobs is not None:
            params["MaxJobs"] = max_jobs
        if marker:
            params["Marker"] = marker
        return self._call("list_jobs", **params)

    def list_jobs(self, *, page_size: int | None = None) -> Iterator[dict[str, Any]]:
        """Every job of the account, newest first, through botocore's paginator.

        Each page is fetched under the retry policy, resuming from the previous page's
        token, so a throttled page is retried rather than ending the listing early.
        """
        self.tell_endpoint()
        paginator = self.conn.get_paginator("list_jobs")
        token: str | None = None
        while True:
            config: dict[str, Any] = {"PageSize": page_size} if page_size else {}
            if token:
                config["StartingToken"] = token
            try:
                page = self._retrying("ListJobs", is_transient)(
                    lambda c=config: next(iter(paginator.paginate(PaginationConfig=c)))
                )
            except CLIENT_FAILURES as error:
                raise translate(error) from error
            jobs = page.get("Jobs", [])
            yield from jobs
            if not page.get("IsTruncated") or not jobs:
                return
            token = jobs[-1]["JobId"]

    def get_shipping_label(
        self, job_ids: list[str], address: ReturnAddress | dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """GetShippingLabel for one or several jobs shipped together; returns ShippingLabelURL (and Warning).

        ``address`` is the sender's address (a ReturnAddress, or a dict with its fields in
        either spelling); without it the service uses the first job's return address.
        """
        params: dict[str, Any] = {"jobIds": list(job_ids)}
        params.update(label_address_params(address))
        return self._call("get_shipping_label", job_id=",".join(job_ids), **params)

    # --- async, for the trigger ----------------------------------------------------------------

    async def get_status_async(self, job_id: str, client: Any = None) -> dict[str, Any]:
        """GetStatus through aiobotocore; pass a shared ``client`` to avoid opening one per call."""
        if client is not None:
            return with_secrets_masked(without_metadata(await client.get_status(JobId=job_id)))
        async with await self.get_async_conn() as own_client:
            return with_secrets_masked(without_metadata(await own_client.get_status(JobId=job_id)))


def _log_retry(api_name: str, max_attempts: int) -> Callable[[tenacity.RetryCallState], None]:
    """A retry warning users can read: the operation, the attempt, the wait and the cause."""

    def before_sleep(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "%s failed (attempt %d of %d), retrying in %.1f s: %s",
            api_name,
            state.attempt_number,
            max_attempts,
            wait,
            translate(error) if error else "unknown error",
        )

    return before_sleep


def label_address_params(address: ReturnAddress | dict[str, Any] | None) -> dict[str, str]:
    """GetShippingLabel's address parameters from a ReturnAddress or a dict (snake or camel case)."""
    if address is None:
        return {}
    if isinstance(address, dict):
        keys = ReturnAddress.yaml_keys()
        names = set(keys.values())
        unknown = [k for k in address if k not in keys and k not in names]
        if unknown:
            raise ValueError(f"Unknown address field(s) {unknown}; use {sorted(keys)}.")
        address = ReturnAddress(**{keys.get(k, k): v for k, v in address.items() if v is not None})
    return {str(k): str(v) for k, v in address.to_dict().items()}


def ended_job_status(job_id: str, error: exc.ImportExportError) -> dict[str, Any]:
    """CanceledJobId / ExpiredJobId from GetStatus mean the same as those ProgressCodes."""
    if isinstance(error, exc.JobCanceledError):
        code = ProgressCode.CANCELED
    elif isinstance(error, exc.JobExpiredError):
        code = ProgressCode.EXPIRED
    else:
        raise error
    return {
        "JobId": job_id,
        "LocationCode": LocationCode.NOT_RECEIVED.value,
        "ProgressCode": code.value,
        "ProgressMessage": error.message,
    }
