"""The one status table: every documented code is there and classified."""

from __future__ import annotations

import pytest

from airflow_provider_importexport.status import (
    PROCESSING_FAILURES,
    PROGRESS,
    LocationCode,
    Outcome,
    ProgressCode,
    is_terminal,
    progress_info,
)

DOCUMENTED_PROGRESS = {
    "Pending", "InProgress", "Complete", "SuccessWithErrors", "Canceled", "Expired", "DeviceError",
    "InvalidSignature", "MissingSignature", "MissingDevice", "UnsupportedDeviceType", "UnsupportedFileFormat",
    "UnsupportedPowerSupply", "Success", "Started",
}  # fmt: skip


def test_every_documented_code_is_classified() -> None:
    assert {c.value for c in ProgressCode} == DOCUMENTED_PROGRESS
    assert set(PROGRESS) == set(ProgressCode)
    assert {c.value for c in LocationCode} == {"NotReceived", "AtAWS", "Returned"}


def test_classes() -> None:
    assert progress_info("Complete").outcome is progress_info("Success").outcome is Outcome.SUCCESS
    assert progress_info("SuccessWithErrors").outcome is Outcome.SUCCESS_WITH_ERRORS
    assert progress_info("Canceled").outcome is Outcome.CANCELED
    for code in ("Pending", "Started", "InProgress"):
        assert not is_terminal(code)
    for code in DOCUMENTED_PROGRESS - {"Pending", "Started", "InProgress"}:
        assert is_terminal(code)
    failures = {c.value for c in PROCESSING_FAILURES}
    assert "DeviceError" in failures and "Expired" not in failures and "Complete" not in failures


def test_unknown_codes_keep_a_poller_waiting_and_are_named() -> None:
    info = progress_info("Recalibrating")
    assert not info.terminal
    assert "Recalibrating" in info.message


def test_failures_say_what_to_do() -> None:
    for code, info in PROGRESS.items():
        if info.outcome in (Outcome.FAILURE, Outcome.SUCCESS_WITH_ERRORS):
            assert info.advice, code


def test_an_arrival_wait_succeeds_when_the_device_arrived_though_processing_failed() -> None:
    """Arrival is about the device reaching AWS; what processing made of it is the completion wait's news."""
    from airflow_provider_importexport.status import evaluate_wait

    status = {"JobId": "ABCDE", "LocationCode": "AtAWS", "ProgressCode": "DeviceError"}
    assert evaluate_wait(status, "arrival").state == "success"
    assert evaluate_wait(status, "completion").state == "failure"
    assert evaluate_wait({**status, "LocationCode": "NotReceived", "ProgressCode": "Canceled"}, "arrival").state == (
        "failure"
    )


def test_a_failure_without_a_service_message_says_the_tables_meaning() -> None:
    from airflow_provider_importexport.status import evaluate_wait

    status = {"JobId": "ABCDE", "LocationCode": "AtAWS", "ProgressCode": "MissingSignature"}
    message = evaluate_wait(status, "completion").message
    assert progress_info("MissingSignature").message in message
    assert "None" not in message
    told = evaluate_wait({**status, "ProgressMessage": "No SIGNATURE at the root."}, "completion").message
    assert "No SIGNATURE at the root." in told


def test_a_return_wait_keeps_waiting_for_a_failed_device_still_at_aws() -> None:
    """Failed devices are still shipped back: the return wait ends when they are, with the failure."""
    from airflow_provider_importexport.status import evaluate_wait

    status = {"JobId": "ABCDE", "LocationCode": "AtAWS", "ProgressCode": "DeviceError"}
    assert evaluate_wait(status, "return").state == "waiting"
    assert evaluate_wait({**status, "LocationCode": "Returned"}, "return").state == "failure"


def test_the_status_table_cannot_be_changed_by_one_of_its_readers() -> None:
    """The table is the one source of truth for operators, sensor, trigger and the emulator, often in one
    process (a triggerer, a test run): an entry one of them changed would change it for all."""
    import dataclasses

    info = progress_info("MissingDevice")
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.outcome = progress_info("Complete").outcome  # type: ignore[misc]
