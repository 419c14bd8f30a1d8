"""Storage beside the emulator: moto's S3 for buckets, data and logs, and the state file.

Objects are read and written through a real boto3 S3 client against the emulator's own
endpoint (moto behind it), so content types, metadata and listings behave as S3's API
says. Only bucket ownership and region, which S3's API does not expose across accounts,
are read from moto's registry, and the state file snapshots and restores moto's store
directly (like a database dump, below the API: it runs before the server answers).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import json
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
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


# --- the state file ---------------------------------------------------------------------------

#: Version of the state file's layout; 2 added the S3 snapshot.
STATE_FORMAT = 2


class StateFileError(ValueError):
    """The state file cannot be used; the message names the path and the fix."""


class StateStore:
    """The emulator's state on disk: a JSON file, and beside it ``<file>.s3/`` with S3 object bodies.

    moto keeps S3 in memory, so the JSON lists every bucket (owner account, region, ACL)
    and object (metadata, content type and encoding, storage class, ACL), and each body is
    a file named by its SHA-256. A save writes new bodies first, then replaces the JSON in
    one rename, then removes bodies nothing names any more: a kill -9 at any moment leaves
    the old state or the new one, whole.
    """

    def __init__(self, path: str) -> None:
        self.path = Path(path).absolute()
        self.bodies = self.path.with_name(self.path.name + ".s3")
        #: body name by object identity, so a save does not re-read and re-hash unchanged objects
        self._digests: dict[tuple[Any, ...], str] = {}

    # -- start --
    def load(self) -> dict[str, Any] | None:
        """Check the file can be used and read it (None when it does not exist yet); StateFileError if not."""
        self._check_folder()
        for folder, prefix in ((self.path.parent, f".{self.path.name}."), (self.bodies, ".")):
            for stale in folder.iterdir() if folder.is_dir() else []:
                if stale.name.startswith(prefix) and stale.is_file():
                    stale.unlink()  # a temporary file of a save killed before its rename
        if not self.path.exists():
            return None
        data = self._read()
        try:
            missing = sorted(name for name in _body_names(data) if not (self.bodies / name).is_file())
        except (KeyError, TypeError, AttributeError) as err:
            raise self.invalid(f"its S3 part is damaged ({type(err).__name__}: {err})") from err
        if missing:
            raise self.invalid(
                f"it names {len(missing)} S3 object bodies missing from {self.bodies}, e.g. {missing[0]}"
            )
        return data

    def invalid(self, reason: str) -> StateFileError:
        return StateFileError(
            f"The state file {self.path} cannot be loaded: {reason}. Restore it (and {self.bodies.name}/ beside it) "
            "from a backup, or move it away to start with no jobs."
        )

    def _check_folder(self) -> None:
        folder = self.path.parent
        if not folder.is_dir():
            raise StateFileError(
                f"The state file {self.path} cannot be used: its folder {folder} does not exist. "
                f"Create it (mkdir -p {folder}) or choose a state file in an existing folder."
            )
        if self.path.is_dir():
            raise StateFileError(
                f"The state file {self.path} is a folder; name a file, e.g. {self.path / 'state.json'}."
            )
        if self.bodies.exists() and not self.bodies.is_dir():
            raise StateFileError(
                f"The state file {self.path} keeps S3 data in {self.bodies}, which is a file; move that file away."
            )
        try:
            handle, probe = tempfile.mkstemp(dir=folder, prefix=f".{self.path.name}.")
            os.close(handle)
            os.unlink(probe)
        except OSError as err:
            raise StateFileError(
                f"The state file {self.path} cannot be used: its folder {folder} is not writable "
                f"({err.strerror or err}). Make it writable or choose another folder."
            ) from err

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as err:
            raise self.invalid(f"it is not readable JSON ({err})") from err
        if not isinstance(data, dict) or not isinstance(data.get("jobs"), list):
            raise self.invalid("it is not an emulator state file (no list of jobs)")
        if data.get("format", 1) > STATE_FORMAT:
            raise self.invalid(f"it has format {data['format']}, newer than this emulator's {STATE_FORMAT}")
        return data

    def restore_s3(self, data: dict[str, Any]) -> None:
        """Put the saved buckets and objects back into moto (at start, before any request)."""
        try:
            for record in data.get("s3", []):
                self._restore_bucket(record)
        except (KeyError, TypeError, ValueError, OSError) as err:
            raise self.invalid(f"its S3 part is damaged ({type(err).__name__}: {err})") from err

    def _restore_bucket(self, record: dict[str, Any]) -> None:
        from moto.s3.models import s3_backends
        from moto.utilities.utils import get_partition

        backend = s3_backends[record["account_id"]][get_partition(record["region"])]
        bucket = backend.buckets.get(record["name"]) or backend.create_bucket(record["name"], record["region"])
        bucket.acl = _acl(record["acl"])
        for item in record["objects"]:
            body = (self.bodies / item["body"]).read_bytes()
            key = backend.put_object(
                bucket.name, item["key"], body, storage=item["storage_class"], etag=item["etag"],
                disable_notification=True,
            )  # fmt: skip
            key.set_metadata(dict(item["metadata"]))
            key.acl = _acl(item["acl"])
            key.last_modified = dt.datetime.fromisoformat(item["last_modified"])
            self._digests[_identity(record["account_id"], bucket.name, key)] = item["body"]

    # -- save --
    def save(self, state: dict[str, Any]) -> None:
        """Write ``state`` and a snapshot of S3 so that a crash at any moment leaves a whole state."""
        known, self._digests = self._digests, {}
        buckets = [self._bucket_record(account_id, bucket, known) for account_id, bucket in _buckets()]
        data = {**state, "format": STATE_FORMAT, "s3": buckets}
        _write_atomically(self.path, json.dumps(data).encode())
        named = _body_names(data)
        if self.bodies.is_dir():
            for body in self.bodies.iterdir():
                if body.name not in named and not body.name.startswith("."):
                    body.unlink(missing_ok=True)

    def _bucket_record(self, account_id: str, bucket: Any, known: dict[tuple[Any, ...], str]) -> dict[str, Any]:
        objects = [
            {
                "key": key.name,
                "body": self._body(_identity(account_id, bucket.name, key), key, known),
                "etag": key.etag.strip('"'),
                "metadata": dict(key.metadata),
                "storage_class": key.storage_class,
                "acl": _acl_record(key.acl),
                "last_modified": key.last_modified.isoformat(),
            }
            for key in _latest_keys(bucket)
        ]
        record = {"name": bucket.name, "account_id": account_id, "region": bucket.region_name}
        return {**record, "acl": _acl_record(bucket.acl), "objects": objects}

    def _body(self, identity: tuple[Any, ...], key: Any, known: dict[tuple[Any, ...], str]) -> str:
        """The name of the object's body file, written when not there yet (bodies never change)."""
        name = known.get(identity)
        if name is None or not (self.bodies / name).is_file():
            data = key.value
            name = hashlib.sha256(data).hexdigest()
            if not (self.bodies / name).is_file():
                self.bodies.mkdir(exist_ok=True)
                _write_atomically(self.bodies / name, data)
        self._digests[identity] = name
        return name


def _write_atomically(path: Path, data: bytes) -> None:
    """A temporary file beside ``path``, flushed to disk, then renamed over it: a reader, or a
    restart after kill -9, sees the old file or the new one, never part of one."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _identity(account_id: str, bucket: str, key: Any) -> tuple[Any, ...]:
    return account_id, bucket, key.name, key.version_id, key.last_modified, key.size


def _body_names(data: dict[str, Any]) -> set[str]:
    return {item["body"] for record in data.get("s3", []) for item in record.get("objects", [])}


def _buckets() -> list[tuple[str, Any]]:
    """(owner account id, moto bucket) of every bucket, from moto's registry."""
    from moto.s3.models import s3_backends

    found = []
    for name, (partition, account_id) in list(s3_backends.bucket_accounts.items()):
        bucket = s3_backends[account_id][partition].buckets.get(name)
        if bucket is not None:
            found.append((account_id, bucket))
    return found


def _latest_keys(bucket: Any) -> list[Any]:
    """The current version of every object (a versioned bucket's history and delete markers are not kept)."""
    from moto.s3.models import FakeKey

    latest = [versions[-1] for versions in list(dict.values(bucket.keys)) if versions]
    return [key for key in latest if isinstance(key, FakeKey)]


def _acl_record(acl: Any) -> list[dict[str, Any]] | None:
    if acl is None:
        return None
    return [
        {"grantees": [[g.id, g.uri, g.display_name] for g in grant.grantees], "permissions": list(grant.permissions)}
        for grant in acl.grants
    ]


def _acl(record: list[dict[str, Any]] | None) -> Any:
    from moto.s3.models import FakeAcl, FakeGrant, FakeGrantee

    if record is None:
        return None
    return FakeAcl([FakeGrant([FakeGrantee(*g) for g in grant["grantees"]], grant["permissions"]) for grant in record])
