"""The service's errors: one class per error code, grouped so callers can catch by kind.

Part of the service core (plain Python, no Airflow): the emulator answers with these codes and
the provider raises these classes. Every exception carries the service's error ``code`` (as
sent on the wire, e.g. ``InvalidJobIdException``), its ``message`` and, when known, the
``job_id``. Inside Airflow tasks the provider raises them as Airflow exceptions too (see
``airflow_provider_importexport.utils.task_errors``), so ``except JobNotFoundError`` works
everywhere and a :class:`NonRetryableError` fails the task without retries.
"""

from __future__ import annotations

from typing import Any, ClassVar


class ImportExportError(Exception):
    """Base class of every error raised by this provider."""

    code: ClassVar[str] = ""
    http_status: ClassVar[int] = 400

    def __init__(self, message: str, *, job_id: str | None = None, code: str | None = None) -> None:
        self.message = message
        self.job_id = job_id
        if code:
            self.code = code  # type: ignore[misc]
        prefix = f"[{self.code}] " if self.code else ""
        suffix = f" (job {job_id})" if job_id else ""
        super().__init__(f"{prefix}{message}{suffix}")

    def __reduce__(self) -> tuple[Any, ...]:
        # The keyword-only constructor cannot be replayed from ``args``: restore the state instead.
        return (restore_error, (type(self), self.args, self.__dict__))


def restore_error(cls: type[ImportExportError], args: tuple[Any, ...], state: dict[str, Any]) -> ImportExportError:
    """Rebuild a pickled error from its class, ``args`` and attributes (message, job id, problems)."""
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class NonRetryableError(ImportExportError):
    """Retrying cannot help (bad input, wrong state, a failed job): in Airflow the task fails at once."""


# --- request and authentication --------------------------------------------------------------


class RequestError(NonRetryableError):
    """The request itself was wrong (parameters, version, access key)."""


class MissingParameterError(RequestError):
    """A required request parameter is absent."""

    code = "MissingParameterException"


class InvalidParameterError(RequestError):
    """A request parameter has a bad value."""

    code = "InvalidParameterException"


class InvalidVersionError(RequestError):
    """The client tool version (APIVersion) is not accepted."""

    code = "InvalidVersionException"


class InvalidAccessKeyIdError(RequestError):
    """The manifest's accessKeyId differs from the key that signed the request."""

    code = "InvalidAccessKeyIdException"


class AuthenticationError(RequestError):
    """The request was unsigned, signed with an unknown key, or signed wrongly (HTTP 403)."""

    code = "SignatureDoesNotMatch"
    http_status = 403


# --- job state ---------------------------------------------------------------------------------


class JobError(NonRetryableError):
    """The job id cannot be used for this call."""


class JobNotFoundError(JobError):
    """The job id is unknown or belongs to another account."""

    code = "InvalidJobIdException"


class JobExpiredError(JobError):
    """The job expired (no device arrived in time) and was purged."""

    code = "ExpiredJobIdException"


class JobCanceledError(JobError):
    """The job was canceled and is no longer valid."""

    code = "CanceledJobIdException"


class UnableToCancelJobError(JobError):
    """The job has started or finished and can no longer be canceled."""

    code = "UnableToCancelJobIdException"


class UnableToUpdateJobError(JobError):
    """The job's data transfer has started; its manifest can no longer be replaced."""

    code = "UnableToUpdateJobIdException"


class CreateJobQuotaExceededError(NonRetryableError):
    """The account's daily CreateJob quota is used up."""

    code = "CreateJobQuotaExceededException"


# --- manifest and buckets ------------------------------------------------------------------------


class ManifestError(NonRetryableError):
    """The manifest was refused, locally or by the service.

    ``problems`` lists every problem found (field, fix, service code); ``code`` is the
    service code of the first one, which is what the service itself would answer.
    """

    code = "InvalidManifestFieldException"

    def __init__(
        self,
        message: str,
        *,
        job_id: str | None = None,
        code: str | None = None,
        problems: list | None = None,
    ) -> None:
        self.problems = list(problems or [])
        super().__init__(message, job_id=job_id, code=code)


class MalformedManifestError(ManifestError):
    """The manifest is not YAML or not a mapping."""

    code = "MalformedManifestException"


class MissingManifestFieldError(ManifestError):
    """A required manifest field is absent."""

    code = "MissingManifestFieldException"


class InvalidManifestFieldError(ManifestError):
    """A manifest field has a wrong type, unknown value or is too long."""

    code = "InvalidManifestFieldException"


class InvalidAddressError(ManifestError):
    """The return (or label) address is invalid."""

    code = "InvalidAddressException"


class MissingCustomsError(ManifestError):
    """The device crosses a border but the manifest has no customs block."""

    code = "MissingCustomsException"


class InvalidCustomsError(ManifestError):
    """The customs block is invalid."""

    code = "InvalidCustomsException"


class InvalidFileSystemError(ManifestError):
    """The export file system is not supported."""

    code = "InvalidFileSystemException"


class MultipleRegionsError(ManifestError):
    """The manifest names buckets in more than one region."""

    code = "MultipleRegionsException"


class BucketError(NonRetryableError):
    """A bucket named in the manifest cannot be used."""


class NoSuchBucketError(BucketError):
    """A bucket named in the manifest does not exist."""

    code = "NoSuchBucketException"


class BucketPermissionError(BucketError):
    """The account lacks the needed permission on a bucket."""

    code = "BucketPermissionException"


# --- outcomes seen by sensors and operators -------------------------------------------------------


class ServiceUnavailableError(ImportExportError):
    """Throttling, HTTP 5xx or connection errors persisted past the retry policy."""

    code = "ServiceUnavailable"


class JobFailedError(NonRetryableError):
    """The job reached a failing ProgressCode (or could no longer be waited for)."""

    code = "JobFailed"


def _all_subclasses(cls: type[ImportExportError]) -> list[type[ImportExportError]]:
    found = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_all_subclasses(sub))
    return found


#: Service error code -> provider exception class (the codes botocore raises).
ERRORS_BY_CODE: dict[str, type[ImportExportError]] = {
    cls.code: cls
    for cls in _all_subclasses(ImportExportError)
    if cls.code.endswith("Exception") and "code" in cls.__dict__
}


def error_for_code(code: str, message: str, *, job_id: str | None = None) -> ImportExportError:
    """Build the provider exception for a service error code (unknown codes get the base class)."""
    cls = ERRORS_BY_CODE.get(code, ImportExportError)
    return cls(message, job_id=job_id, code=code)
