"""What the scripts share: the emulator's default keys, a fake-AWS environment, a sample manifest."""

from __future__ import annotations

import os

from airflow_provider_importexport.emulator import DEFAULT_ACCESS_KEY as ACCESS_KEY
from airflow_provider_importexport.emulator import DEFAULT_SECRET_KEY as SECRET_KEY

__all__ = ["ACCESS_KEY", "SECRET_KEY", "fake_aws_environment", "sample_manifest"]


def fake_aws_environment(**extra: str) -> dict[str, str]:
    """Fake credentials and no AWS config files, so nothing a script runs can reach real AWS."""
    return {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        **extra,
    }


def sample_manifest(device_id: str, bucket: str) -> str:
    """A small valid S3 import manifest."""
    return f"""manifestVersion: 2.0
deviceId: {device_id}
bucket: {bucket}
returnAddress:
  name: Bench
  street1: 1 Main Street
  city: Seattle
  stateOrProvince: WA
  postalCode: '98101'
  country: US
  phoneNumber: 206-555-0100
"""
