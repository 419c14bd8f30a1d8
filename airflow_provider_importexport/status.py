"""The one table of AWS Import/Export status codes.

Sensor, trigger, operators and the emulator all read this module, so the meaning of a
code (and whether it ends a job) is decided in exactly one place.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class LocationCode(enum.StrEnum):
    """Where the device is (GetStatus ``LocationCode``)."""

    NOT_RECEIVED = "NotReceived"
    AT_AWS = "AtAWS"
    RETURNED = "Returned"


class Outcome(enum.StrEnum):
    """How a ProgressCode classifies a job."""

    ACTIVE = "active"
    SUCCESS = "success"
    SUCCESS_WITH_ERRORS = "success_with_errors"
    CANCELED = "canceled"
    FAILURE = "failure"


class ProgressCode(enum.StrEnum):
    """How far the job got (GetStatus ``ProgressCode``)."""

    PENDING = "Pending"
    STARTED = "Started"
    IN_PROGRESS = "InProgress"
    COMPLETE = "Complete"
    SUCCESS = "Success"
    SUCCESS_WITH_ERRORS = "SuccessWithErrors"
    CANCELED = "Canceled"
    EXPIRED = "Expired"
    DEVICE_ERROR = "DeviceError"
    INVALID_SIGNATURE = "InvalidSignature"
    MISSING_SIGNATURE = "MissingSignature"
    MISSING_DEVICE = "MissingDevice"
    UNSUPPORTED_DEVICE_TYPE = "UnsupportedDeviceType"
    UNSUPPORTED_FILE_FORMAT = "UnsupportedFileFormat"
    UNSUPPORTED_POWER_SUPPLY = "UnsupportedPowerSupply"


@dataclass(frozen=True)
class ProgressInfo:
    """What a ProgressCode means and what a user should do about it."""

    outcome: Outcome
    message: str
    advice: str = ""

    @property
    def terminal(self) -> bool:
        return self.outcome is not Outcome.ACTIVE


LOCATION_MESSAGES: dict[LocationCode, str] = {
    LocationCode.NOT_RECEIVED: "AWS has not received your device.",
    LocationCode.AT_AWS: "Your device is at AWS.",
    LocationCode.RETURNED: "Your device was returned by {carrier}. Tracking number: {tracking_number}.",
}

PROGRESS: dict[ProgressCode, ProgressInfo] = {
    ProgressCode.PENDING: ProgressInfo(Outcome.ACTIVE, "The specified job has not started."),
    ProgressCode.STARTED: ProgressInfo(Outcome.ACTIVE, "The specified job has started."),
    ProgressCode.IN_PROGRESS: ProgressInfo(Outcome.ACTIVE, "The data transfer is in progress."),
    ProgressCode.COMPLETE: ProgressInfo(
        Outcome.SUCCESS,
        "The data transfer completed successfully. See log {log_key} in bucket {log_bucket}.",
    ),
    ProgressCode.SUCCESS: ProgressInfo(
        Outcome.SUCCESS,
        "The data transfer completed successfully. See log {log_key} in bucket {log_bucket}.",
    ),
    ProgressCode.SUCCESS_WITH_ERRORS: ProgressInfo(
        Outcome.SUCCESS_WITH_ERRORS,
        "The data transfer completed with {error_count} errors. See log {log_key} in bucket {log_bucket}.",
        "Read the log for the files that failed and import them in a follow-up job.",
    ),
    ProgressCode.CANCELED: ProgressInfo(
        Outcome.CANCELED,
        "The job was canceled.",
        "Create a new job if the data still needs to move.",
    ),
    ProgressCode.EXPIRED: ProgressInfo(
        Outcome.FAILURE,
        "The job expired: no device arrived within 30 days of its creation.",
        "Create a new job and ship the device within 30 days.",
    ),
    ProgressCode.DEVICE_ERROR: ProgressInfo(
        Outcome.FAILURE,
        "The job was aborted because the device did not work.",
        "Check the device on another machine, then ship a working device with a new job.",
    ),
    ProgressCode.INVALID_SIGNATURE: ProgressInfo(
        Outcome.FAILURE,
        "The job was aborted because the SIGNATURE file on the device is invalid.",
        "Write this job's SignatureFileContents to a file named SIGNATURE in the device's root.",
    ),
    ProgressCode.MISSING_SIGNATURE: ProgressInfo(
        Outcome.FAILURE,
        "The job was aborted because the SIGNATURE file is missing from the device.",
        "Write this job's SignatureFileContents to a file named SIGNATURE in the device's root.",
    ),
    ProgressCode.MISSING_DEVICE: ProgressInfo(
        Outcome.FAILURE,
        "The job was aborted because the device, power supply or connectors are missing.",
        "Ship the device with its power supply and connectors.",
    ),
    ProgressCode.UNSUPPORTED_DEVICE_TYPE: ProgressInfo(
        Outcome.FAILURE,
        "The job was aborted because the device type or connector is not supported.",
        "Use a USB 2.0/3.0 or eSATA device, or a 2.5 or 3.5 inch SATA drive.",
    ),
    ProgressCode.UNSUPPORTED_FILE_FORMAT: ProgressInfo(
        Outcome.FAILURE,
        "The job was aborted because the device's file system or format is not supported.",
        "Format the device with NTFS, EXT2/3/4, FAT32 or HFS+.",
    ),
    ProgressCode.UNSUPPORTED_POWER_SUPPLY: ProgressInfo(
        Outcome.FAILURE,
        "The job was aborted because the power supply is not supported.",
        "Ship a power supply for the facility's mains (US: 120 V/60 Hz, EU: 230 V/50 Hz).",
    ),
}

#: ProgressCodes the emulator can end processing with (besides success).
PROCESSING_FAILURES: frozenset[ProgressCode] = frozenset(
    code for code, info in PROGRESS.items() if info.outcome is Outcome.FAILURE
) - {ProgressCode.EXPIRED}


def progress_info(code: str) -> ProgressInfo:
    """Classify a ProgressCode; an unknown code is active so a poller keeps waiting and shows it."""
    try:
        return PROGRESS[ProgressCode(code)]
    except ValueError:
        return ProgressInfo(Outcome.ACTIVE, f"Unknown progress code {code!r}.")


def is_terminal(code: str) -> bool:
    """Whether the ProgressCode ends the data transfer."""
    return progress_info(code).terminal


# --- waiting on a job -----------------------------------------------------------------------------


class WaitFor(enum.StrEnum):
    """What a sensor waits for."""

    ARRIVAL = "arrival"  # the device reached AWS (LocationCode AtAWS)
    COMPLETION = "completion"  # the transfer ended (a terminal ProgressCode)
    RETURN = "return"  # the device was shipped back (LocationCode Returned)


class SuccessWithErrorsPolicy(enum.StrEnum):
    """What a finished job with failed files means for the waiting task."""

    SUCCEED = "succeed"
    WARN = "warn"
    FAIL = "fail"


#: GetStatus members a waiting task hands on (never CurrentManifest: it holds the secrets).
STATUS_KEYS = (
    "JobId", "JobType", "LocationCode", "LocationMessage", "ProgressCode", "ProgressMessage",
    "ErrorCount", "Carrier", "TrackingNumber", "LogBucket", "LogKey",
)  # fmt: skip


@dataclass(frozen=True)
class Verdict:
    """Whether the wait is over and how it ended: ``state`` is waiting, success, warning or failure."""

    state: str
    message: str

    @property
    def done(self) -> bool:
        return self.state != "waiting"


def public_status(status: dict) -> dict:
    """The status members safe to log and push to XCom."""
    return {key: status.get(key) for key in STATUS_KEYS if status.get(key) is not None}


def evaluate_wait(
    status: dict,
    wait_for: WaitFor | str,
    on_success_with_errors: SuccessWithErrorsPolicy | str = SuccessWithErrorsPolicy.WARN,
) -> Verdict:
    """Decide a wait from one GetStatus answer; sensor and trigger both ask this function."""
    wait_for = WaitFor(wait_for)
    policy = SuccessWithErrorsPolicy(on_success_with_errors)
    job = status.get("JobId", "?")
    location = status.get("LocationCode", "")
    progress = status.get("ProgressCode", "")
    info = progress_info(progress)
    where = f"job {job} is LocationCode {location}, ProgressCode {progress}"
    failed = info.outcome in (Outcome.CANCELED, Outcome.FAILURE)
    never_arrives = location == LocationCode.NOT_RECEIVED.value
    if failed and (wait_for is WaitFor.COMPLETION or never_arrives):
        return Verdict("failure", _failure_message(status, info, where))
    reached = {
        WaitFor.ARRIVAL: location in (LocationCode.AT_AWS.value, LocationCode.RETURNED.value),
        WaitFor.COMPLETION: info.terminal,
        WaitFor.RETURN: location == LocationCode.RETURNED.value,
    }[wait_for]
    if not reached:
        return Verdict("waiting", f"Waiting for {wait_for.value}: {where}.")
    if wait_for is WaitFor.ARRIVAL:
        return Verdict("success", f"The device of job {job} has arrived: {where}.")
    if failed:
        # Failed devices are still shipped back; waiting for the return ends with the failure.
        return Verdict("failure", _failure_message(status, info, where))
    if info.outcome is Outcome.SUCCESS_WITH_ERRORS:
        message = (
            f"Job {job} finished with {status.get('ErrorCount', '?')} failed file(s); "
            f"see s3://{status.get('LogBucket')}/{status.get('LogKey')}. {info.advice}"
        )
        state = {"succeed": "success", "warn": "warning", "fail": "failure"}[policy.value]
        return Verdict(state, message)
    return Verdict("success", f"Done waiting for {wait_for.value}: {where}.")


def _failure_message(status: dict, info: ProgressInfo, where: str) -> str:
    text = status.get("ProgressMessage") or info.message
    tail = f" Next: {info.advice}" if info.advice else ""
    returned = ""
    if status.get("TrackingNumber"):
        returned = f" The device was returned by {status.get('Carrier')}, tracking {status['TrackingNumber']}."
    return f"AWS Import/Export {where}: {text}{returned}{tail}"
