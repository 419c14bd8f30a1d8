"""Builders shared by the tests (plain functions; fixtures live in conftest.py)."""

from __future__ import annotations

import json
from typing import Any

from airflow_provider_importexport.emulator import DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY
from airflow_provider_importexport.manifest import (
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
