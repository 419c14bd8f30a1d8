"""ImportExportHook against the emulator over HTTP, through a real Airflow AWS connection."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from typing import Any

import pytest
from botocore.config import Config
from botocore.loaders import create_loader

from airflow_provider_importexport import exceptions as exc
from airflow_provider_importexport.emulator import ImportExportEmulator
from airflow_provider_importexport.hooks.importexport import ImportExportHook, RetryPolicy
from tests.helpers import FAST_RETRIES, OTHER_ACCOUNT, address, connection_json, export_manifest, import_manifest


@pytest.fixture
def hook(aws_conn: str) -> ImportExportHook:
    return ImportExportHook(aws_conn_id=aws_conn)


def test_hook_is_thin_and_uses_the_connection(hook: ImportExportHook, emulator: ImportExportEmulator) -> None:
    assert hook.client_type == "importexport"
    assert hook.conn.meta.endpoint_url == emulator.endpoint_url
    assert hook.user_region == "us-east-1"
    assert hook.retry_policy == RetryPolicy(**FAST_RETRIES)
    # botocore must not retry underneath the hook's own policy
    assert hook.conn.meta.config.retries["total_max_attempts"] == 1


def test_region_argument_wins_over_connection(aws_conn: str) -> None:
    hook = ImportExportHook(aws_conn_id=aws_conn, region_name="eu-west-1")
    assert hook.user_region == "eu-west-1"
    assert hook.conn.meta.region_name == "eu-west-1"


def test_botocore_retries_in_config_turn_hook_retries_off(aws_conn: str) -> None:
    hook = ImportExportHook(aws_conn_id=aws_conn, config=Config(retries={"max_attempts": 3, "mode": "standard"}))
    assert hook.retry_policy.max_attempts == 1
    assert hook.conn.meta.config.retries["total_max_attempts"] == 4


def test_service_endpoint_only_for_importexport(
    emulator: ImportExportEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = json.loads(connection_json("http://127.0.0.1:9"))
    conn["extra"]["service_config"] = {"importexport": {"endpoint_url": emulator.endpoint_url}}
    monkeypatch.setenv("AIRFLOW_CONN_SPLIT", json.dumps(conn))
    hook = ImportExportHook(aws_conn_id="split")
    assert hook.conn.meta.endpoint_url == emulator.endpoint_url
    assert list(hook.list_jobs()) == []


def test_full_job_cycle(hook: ImportExportHook, bucket: str) -> None:
    created = hook.create_job("Import", import_manifest(bucket))
    job_id = created["JobId"]
    assert len(job_id) == 5
    assert created["SignatureFileContents"].startswith("version:2.0\nsigningMethod:HmacSHA1\n")
    assert f"jobId:{job_id}" in created["SignatureFileContents"]
    assert "ResponseMetadata" not in created
    (artifact,) = created["ArtifactList"]
    with urllib.request.urlopen(artifact["URL"]) as response:
        assert response.read().startswith(b"%PDF-")

    status = hook.get_status(job_id)
    assert (status["LocationCode"], status["ProgressCode"]) == ("NotReceived", "Pending")
    assert status["Signature"] == created["Signature"]
    assert "LogBucket" not in status

    updated = hook.update_job(job_id, "Import", import_manifest(bucket, prefix="incoming/"))
    assert updated["Success"] is True
    assert "prefix: incoming/" in hook.get_status(job_id)["CurrentManifest"]

    label = hook.get_shipping_label([job_id], address(name="Shipper"))
    assert label["ShippingLabelURL"].endswith(f"shipping-label-{job_id}.pdf")

    assert [j["JobId"] for j in hook.list_jobs()] == [job_id]
    assert hook.cancel_job(job_id)["Success"] is True
    assert next(hook.list_jobs())["IsCanceled"] is True


def test_validate_only_creates_nothing(hook: ImportExportHook, bucket: str) -> None:
    result = hook.create_job("Import", import_manifest(bucket), validate_only=True)
    assert result["JobType"] == "Import"
    assert list(hook.list_jobs()) == []


def test_manifest_as_dict_and_text(hook: ImportExportHook, bucket: str) -> None:
    as_dict = import_manifest(bucket).to_dict()
    first = hook.create_job("Import", as_dict)["JobId"]
    second = hook.create_job("Import", import_manifest(bucket).to_yaml())["JobId"]
    assert hook.get_status(first)["CurrentManifest"] == hook.get_status(second)["CurrentManifest"]


def test_pagination_walks_every_page(hook: ImportExportHook, bucket: str) -> None:
    ids = [hook.create_job("Import", import_manifest(bucket))["JobId"] for _ in range(7)]
    listed = [j["JobId"] for j in hook.list_jobs(page_size=3)]
    assert listed == list(reversed(ids))  # newest first, every job once

    first = hook.list_jobs_page(max_jobs=3)
    assert first["IsTruncated"] is True and len(first["Jobs"]) == 3
    rest = hook.list_jobs_page(max_jobs=10, marker=first["Jobs"][-1]["JobId"])
    assert rest["IsTruncated"] is False
    assert [j["JobId"] for j in first["Jobs"] + rest["Jobs"]] == listed


def _modeled_errors() -> set[str]:
    model = create_loader().load_service_model("importexport", "service-2")
    return {name for name, shape in model["shapes"].items() if name.endswith("Exception")}


def test_every_modeled_error_has_a_provider_exception() -> None:
    assert _modeled_errors() <= set(exc.ERRORS_BY_CODE)


class ErrorScenarios:
    """One way to make the service raise each modeled error, through the hook."""

    def __init__(self, hook: ImportExportHook, emulator: ImportExportEmulator, bucket: str, make_bucket: Any) -> None:
        self.hook, self.emulator, self.bucket, self.make_bucket = hook, emulator, bucket, make_bucket

    def job(self) -> str:
        return self.hook.create_job("Import", import_manifest(self.bucket))["JobId"]

    def create(self, manifest: Any) -> Any:
        return self.hook.create_job("Import", manifest)

    def MissingParameterException(self) -> Any:
        unvalidated = ImportExportHook(aws_conn_id=self.hook.aws_conn_id, config=Config(parameter_validation=False))
        return unvalidated._call("get_status")

    def InvalidParameterException(self) -> Any:
        return self.hook.list_jobs_page(max_jobs=5000)

    def InvalidAccessKeyIdException(self) -> Any:
        return self.create(import_manifest(self.bucket, access_key_id="AKIAOTHERKEY0000000"))

    def InvalidVersionException(self) -> Any:
        return self.hook.create_job("Import", import_manifest(self.bucket), api_version="not a version")

    def InvalidJobIdException(self) -> Any:
        return self.hook.get_status("ZZZZ9")

    def ExpiredJobIdException(self) -> Any:
        job_id = self.job()
        self.emulator.admin.act(job_id, "expire")
        return self.hook.cancel_job(job_id)

    def CanceledJobIdException(self) -> Any:
        job_id = self.job()
        self.hook.cancel_job(job_id)
        return self.hook.update_job(job_id, "Import", import_manifest(self.bucket))

    def UnableToCancelJobIdException(self) -> Any:
        job_id = self.job()
        self.emulator.admin.act(job_id, "receive")
        self.emulator.admin.act(job_id, "start")
        return self.hook.cancel_job(job_id)

    def UnableToUpdateJobIdException(self) -> Any:
        job_id = self.job()
        self.emulator.admin.act(job_id, "receive")
        self.emulator.admin.act(job_id, "process", outcome="DeviceError")
        return self.hook.update_job(job_id, "Import", import_manifest(self.bucket))

    def MalformedManifestException(self) -> Any:
        return self.create("manifestVersion: 2.0\nbucket: [unclosed\n")

    def MissingManifestFieldException(self) -> Any:
        return self.create(import_manifest(self.bucket).to_yaml().replace("deviceId: disk-001\n", ""))

    def InvalidManifestFieldException(self) -> Any:
        return self.create(import_manifest(self.bucket, acl="world-writable"))

    def InvalidAddressException(self) -> Any:
        return self.create(import_manifest(self.bucket, return_address=address(street1="PO Box 12")))

    def MissingCustomsException(self) -> Any:
        return self.create(import_manifest(self.bucket, return_address=address(country="JP", state_or_province=None)))

    def InvalidCustomsException(self) -> Any:
        text = import_manifest(self.bucket).to_yaml() + "customs:\n  dataDescription: photos\n  encryptedData: maybe\n"
        return self.create(text)

    def InvalidFileSystemException(self) -> Any:
        return self.hook.create_job("Export", export_manifest(self.bucket, self.bucket, file_system="ZFS"))

    def MultipleRegionsException(self) -> Any:
        eu_bucket = self.make_bucket("eu", region="eu-west-1")
        return self.hook.create_job("Export", export_manifest(self.bucket, eu_bucket))

    def NoSuchBucketException(self) -> Any:
        return self.create(import_manifest("no-such-bucket-anywhere"))

    def BucketPermissionException(self) -> Any:
        foreign = self.make_bucket("foreign", access_key="AKIAOTHERACCOUNT0001")
        return self.create(import_manifest(foreign))

    def CreateJobQuotaExceededException(self) -> Any:
        self.emulator.backend.config.daily_create_quota = 1
        self.job()
        return self.job()


@pytest.fixture
def scenarios(hook: ImportExportHook, emulator: ImportExportEmulator, bucket: str, make_bucket: Any) -> ErrorScenarios:
    return ErrorScenarios(hook, emulator, bucket, make_bucket)


@pytest.fixture
def importexport_emulator(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The default emulator plus a second account, for bucket-permission and isolation tests."""
    from airflow_provider_importexport.emulator import DEFAULT_ACCOUNT

    other = OTHER_ACCOUNT
    with ImportExportEmulator(accounts=[DEFAULT_ACCOUNT, other]) as emulator:
        yield emulator


@pytest.mark.parametrize("code", sorted(_modeled_errors()))
def test_each_service_error_maps_to_its_exception(scenarios: ErrorScenarios, code: str) -> None:
    with pytest.raises(exc.ImportExportError) as raised:
        getattr(scenarios, code)()
    assert raised.value.code == code
    assert type(raised.value).__mro__[1] is exc.ERRORS_BY_CODE[code]  # its Airflow twin (utils.task_errors)
    assert raised.value.message


def test_job_id_travels_with_job_errors(hook: ImportExportHook) -> None:
    with pytest.raises(exc.JobNotFoundError) as raised:
        hook.get_status("ZZZZ9")
    assert raised.value.job_id == "ZZZZ9"
    assert isinstance(raised.value, exc.JobError)


def test_retries_throttling_and_5xx_then_succeeds(hook: ImportExportHook, emulator: ImportExportEmulator) -> None:
    emulator.admin.queue_faults("throttle", "error_503", "error_500")
    assert list(hook.list_jobs()) == []
    assert emulator.admin.fault_counts()["throttle"] == 1
    assert emulator.admin.fault_counts()["error_500"] == 1


def test_retries_are_bounded(hook: ImportExportHook, emulator: ImportExportEmulator) -> None:
    emulator.admin.queue_faults(*["error_503"] * 10)
    with pytest.raises(exc.ServiceUnavailableError):
        hook.get_status("ABCDE")
    counts = emulator.admin.fault_counts()
    assert counts["error_503"] == FAST_RETRIES["max_attempts"]


def test_client_errors_are_not_retried(hook: ImportExportHook, emulator: ImportExportEmulator) -> None:
    with pytest.raises(exc.JobNotFoundError):
        hook.get_status("ZZZZ9")
    assert emulator.admin.fault_counts()["none"] == 1


def test_create_job_is_not_resent_after_an_ambiguous_failure(
    hook: ImportExportHook, emulator: ImportExportEmulator, bucket: str
) -> None:
    emulator.admin.queue_faults("error_500")
    with pytest.raises(exc.ServiceUnavailableError):
        hook.create_job("Import", import_manifest(bucket))
    assert emulator.admin.fault_counts()["error_500"] == 1
    assert emulator.admin.fault_counts()["none"] == 0  # never resent


def test_create_job_is_resent_after_throttling(
    hook: ImportExportHook, emulator: ImportExportEmulator, bucket: str
) -> None:
    emulator.admin.queue_faults("throttle", "error_503")
    job_id = hook.create_job("Import", import_manifest(bucket))["JobId"]
    assert [j["JobId"] for j in hook.list_jobs()] == [job_id]


def test_dropped_connection_is_retried_for_reads(hook: ImportExportHook, emulator: ImportExportEmulator) -> None:
    emulator.admin.queue_faults("drop")
    assert list(hook.list_jobs()) == []
    assert emulator.admin.fault_counts()["drop"] == 1


def test_async_get_status(hook: ImportExportHook, bucket: str) -> None:
    job_id = hook.create_job("Import", import_manifest(bucket))["JobId"]

    async def fetch() -> dict[str, Any]:
        return await hook.get_status_async(job_id)

    status = asyncio.run(fetch())
    assert status["JobId"] == job_id
    assert status["ProgressCode"] == "Pending"


def test_shipping_label_is_a_pdf(hook: ImportExportHook, bucket: str) -> None:
    job_id = hook.create_job("Import", import_manifest(bucket))["JobId"]
    url = hook.get_shipping_label([job_id])["ShippingLabelURL"]
    with urllib.request.urlopen(url) as response:
        body = response.read()
    assert body.startswith(b"%PDF-")


def test_get_status_registers_the_manifest_secrets(hook: ImportExportHook, bucket: str) -> None:
    from airflow.sdk.log import redact

    pin = "55aa77bb-pin"
    job_id = hook.create_job("Import", import_manifest(bucket, pin_code=pin))["JobId"]
    status = hook.get_status(job_id)
    assert pin in status["CurrentManifest"]  # the caller still gets the service's answer ...
    assert pin not in str(redact(status))  # ... and the masker now hides it anywhere it is logged
