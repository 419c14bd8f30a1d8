"""The emulator's S3: moto holds buckets, data and logs; jobs reach them as the account that owns them.

Objects are read and written through a real boto3 S3 client against the emulator's own
endpoint (moto behind it), so content types, metadata and listings behave as S3's API
says. Only bucket ownership and region, which S3's API does not expose across accounts,
are read from moto's registry.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

from airflow_provider_importexport.emulator.auth import Account

CLIENT_CONFIG = Config(retries={"total_max_attempts": 3, "mode": "standard"}, s3={"addressing_style": "path"})


@dataclass(frozen=True)
class BucketInfo:
    name: str
    owner_account_id: str
    region: str


def bucket_info(name: str) -> BucketInfo | None:
    """Owner account and region of a bucket held by moto, or None when it does not exist."""
    from moto.s3.models import s3_backends

    located = s3_backends.bucket_accounts.get(name)
    if located is None:
        return None
    partition, account_id = located
    bucket = s3_backends[account_id][partition].buckets.get(name)
    if bucket is None:
        return None
    return BucketInfo(name, account_id, bucket.region_name)


@functools.cache
def storage_classes() -> tuple[str, ...]:
    """The storage classes the emulator's S3 stores; PutObject refuses any other."""
    from moto.s3.utils import STORAGE_CLASS

    return tuple(STORAGE_CLASS)


def reset_s3() -> None:
    """Forget every bucket and object: moto's S3 state is process-wide, an emulator's S3 is not."""
    from moto.s3.models import s3_backends

    for account_backend in list(s3_backends.values()):
        account_backend.reset()
    s3_backends.bucket_accounts.clear()


class S3Storage:
    """S3 clients acting as a given emulator account."""

    def __init__(self, endpoint_url: str, accounts: dict[str, Account]) -> None:
        self.endpoint_url = endpoint_url
        self.accounts = accounts  # account id -> account
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def client(self, account_id: str) -> Any:
        """One S3 client per account, made once (boto3 sessions are not thread-safe to create)."""
        with self._lock:
            if account_id not in self._clients:
                account = self.accounts[account_id]
                self._clients[account_id] = boto3.session.Session().client(
                    "s3",
                    endpoint_url=self.endpoint_url,
                    region_name="us-east-1",
                    aws_access_key_id=account.access_key,
                    aws_secret_access_key=account.secret_key,
                    config=CLIENT_CONFIG,
                )
            return self._clients[account_id]

    def put(self, account_id: str, bucket: str, key: str, body: bytes, **extra: Any) -> dict[str, Any]:
        extra = {k: v for k, v in extra.items() if v}
        return self.client(account_id).put_object(Bucket=bucket, Key=key, Body=body, **extra)

    def get(self, account_id: str, bucket: str, key: str) -> bytes:
        return self.client(account_id).get_object(Bucket=bucket, Key=key)["Body"].read()

    def keys(self, account_id: str, bucket: str, prefix: str = "") -> list[dict[str, Any]]:
        """Every object under a prefix, in S3's (binary UTF-8) key order."""
        paginator = self.client(account_id).get_paginator("list_objects_v2")
        found: list[dict[str, Any]] = []
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            found.extend(page.get("Contents", []))
        return found

    def create_bucket(self, account_id: str, bucket: str, region: str = "us-east-1") -> None:
        kwargs: dict[str, Any] = {"Bucket": bucket}
        if region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        client = self.client(account_id)
        with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
            client.create_bucket(**kwargs)
