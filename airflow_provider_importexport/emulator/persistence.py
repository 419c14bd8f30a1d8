"""The state file: jobs, documents, the emulator's clock and its S3 data kept across restarts.

:class:`StateFile` turns the backend's state into records and back; :class:`StateStore` is
the file itself, written so that a kill -9 at any moment leaves a whole state.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_provider_importexport.emulator.state import Job


@dataclass
class SavedState:
    """What survives a restart besides S3 (which the store restores into moto itself)."""

    jobs: list[Job] = field(default_factory=list)
    purged: set[str] = field(default_factory=set)
    documents: dict[str, bytes] = field(default_factory=dict)
    clock_offset: dt.timedelta = field(default_factory=dt.timedelta)


class StateFile:
    """The backend's state in a :class:`StateStore`."""

    def __init__(self, path: str) -> None:
        self.store = StateStore(path)

    @property
    def path(self) -> Path:
        return self.store.path

    def load(self) -> SavedState | None:
        """The saved state (None without a file), S3 put back into moto; StateFileError says what to fix."""
        data = self.store.load()
        if data is None:
            return None
        try:
            state = SavedState(
                jobs=[Job.from_json(j) for j in data["jobs"]],
                purged=set(data.get("purged", [])),
                documents={k: base64.b64decode(v) for k, v in data.get("documents", {}).items()},
                clock_offset=dt.timedelta(seconds=data.get("clock_offset", 0)),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise self.store.invalid(f"a job record is damaged ({type(err).__name__}: {err})") from err
        self.store.restore_s3(data)
        return state

    def save(self, state: SavedState) -> None:
        """Write the whole state; raises OSError when the file cannot be written."""
        self.store.save(
            {
                "jobs": [j.to_json() for j in state.jobs],
                "purged": sorted(state.purged),
                "documents": {k: base64.b64encode(v).decode() for k, v in state.documents.items()},
                "clock_offset": state.clock_offset.total_seconds(),
            }
        )


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
