"""Shared test set-up: fake credentials only, a throwaway AIRFLOW_HOME, the emulator on 127.0.0.1."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Before anything imports boto3 or Airflow: no real credentials, config or AWS endpoint can leak in.
_HOME = tempfile.mkdtemp(prefix="importexport-tests-")
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AIRFLOW_HOME": _HOME,
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": os.path.join(_HOME, "dags"),
    }
)
os.environ.pop("AWS_SESSION_TOKEN", None)
os.environ.pop("AWS_PROFILE", None)

import pytest  # noqa: E402

from airflow_provider_importexport.emulator import (  # noqa: E402
    DEFAULT_ACCESS_KEY,
    DEFAULT_SECRET_KEY,
    ImportExportEmulator,
)
from airflow_provider_importexport.manifest import (  # noqa: E402
    ExportOperation,
    ReturnAddress,
    S3ExportManifest,
    S3ImportManifest,
)

#: Fast retries for tests that inject faults; the policy's shape is what is under test.
FAST_RETRIES = {"initial_delay": 0.01, "max_delay": 0.05, "jitter": 0.01, "max_attempts": 4, "total_timeout": 10}


def address(**overrides: Any) -> ReturnAddress:
    fields = {
        "name": "Jane Doe",
        "company": "Example Corp",
        "street1": "1 Main Street",
        "city": "Seattle",
        "state_or_province": "WA",
        "postal_code": "98101",
        "country": "USA",
        "phone_number": "206-555-0100",
    }
    fields.update(overrides)
    return ReturnAddress(**fields)


def import_manifest(bucket: str, **overrides: Any) -> S3ImportManifest:
    fields: dict[str, Any] = {"device_id": "disk-001", "bucket": bucket, "return_address": address()}
    fields.update(overrides)
    return S3ImportManifest(**fields)


def export_manifest(bucket: str, log_bucket: str, **overrides: Any) -> S3ExportManifest:
    fields: dict[str, Any] = {
        "device_id": "disk-002",
        "file_system": "NTFS",
        "operations": [ExportOperation(export_bucket=bucket)],
        "log_bucket": log_bucket,
        "true_crypt_password": "s3cr3t-Passw0rd",
        "return_address": address(),
    }
    fields.update(overrides)
    return S3ExportManifest(**fields)


def connection_json(endpoint_url: str, **extra: Any) -> str:
    return json.dumps(
        {
            "conn_type": "aws",
            "login": DEFAULT_ACCESS_KEY,
            "password": DEFAULT_SECRET_KEY,
            "extra": {"endpoint_url": endpoint_url, "region_name": "us-east-1", **extra},
        }
    )


@pytest.fixture
def emulator(importexport_emulator: ImportExportEmulator) -> ImportExportEmulator:
    return importexport_emulator


@pytest.fixture
def aws_conn(emulator: ImportExportEmulator, monkeypatch: pytest.MonkeyPatch) -> str:
    """``aws_default`` pointing at the emulator, with fast retries."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_DEFAULT",
        connection_json(emulator.endpoint_url, service_config={"importexport": {"retry_policy": FAST_RETRIES}}),
    )
    return "aws_default"


@pytest.fixture
def s3(emulator: ImportExportEmulator) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=emulator.endpoint_url, region_name="us-east-1")


@pytest.fixture
def client(emulator: ImportExportEmulator) -> Any:
    import boto3

    return boto3.client("importexport", endpoint_url=emulator.endpoint_url, region_name="us-east-1")


_bucket_counter = iter(range(1_000_000))


@pytest.fixture
def make_bucket(emulator: ImportExportEmulator) -> Callable[..., str]:
    """Create a uniquely named bucket (moto's S3 is shared by every emulator in the process)."""

    def make(prefix: str = "bucket", region: str = "us-east-1", access_key: str | None = None) -> str:
        name = f"{prefix}-{os.getpid()}-{next(_bucket_counter)}"
        emulator.admin.create_bucket(name, region=region, access_key=access_key)
        return name

    return make


@pytest.fixture
def bucket(make_bucket: Callable[..., str]) -> str:
    return make_bucket()


@pytest.fixture
def device_dir(tmp_path: Path) -> Path:
    path = tmp_path / "device"
    path.mkdir()
    return path
