"""The state file: jobs, documents, the emulator's clock and its S3 data kept across restarts.

A change is made durable before it is answered, at a cost that does not grow with the
number of jobs: each change appends one journal line (the changed job, a purged id, a
document, the clock, or S3 when S3 changed since the last line). When the journal has
grown as long as the snapshot before it, or a write failed, the whole state is written
again as a new snapshot (temporary file, then rename), and the journal starts over.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_provider_importexport.emulator.state import Job

log = logging.getLogger(__name__)

#: Version of the state file's layout; 2 added the S3 snapshot, 3 the journal lines after it.
STATE_FORMAT = 3
#: The journal is folded into a new snapshot once it is this long and as long as the snapshot.
MIN_JOURNAL_BYTES = 1024 * 1024
Record = dict[str, Any]


@dataclass
class SavedState:
    """What survives a restart besides S3 (which the store restores into moto itself)."""

    jobs: list[Job] = field(default_factory=list)
    purged: set[str] = field(default_factory=set)
    documents: dict[str, bytes] = field(default_factory=dict)
    clock_offset: dt.timedelta = field(default_factory=dt.timedelta)


def job_record(job: Job) -> Record:
    return {"job": job.to_json()}


def purge_record(job_id: str) -> Record:
    return {"purged": job_id}


def document_record(name: str, data: bytes) -> Record:
    return {"document": [name, base64.b64encode(data).decode()]}


def clock_record(offset: dt.timedelta) -> Record:
    return {"clock_offset": offset.total_seconds()}


class StateFile:
    """The backend's state in a :class:`StateStore`: loaded once, then kept by records and snapshots."""

    def __init__(self, path: str) -> None:
        self.store = StateStore(path)
        #: A snapshot is due: none of this run's state is written yet, or a write failed.
        self._snapshot_due = True
        self._s3_changed = False

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

    def s3_changed(self) -> None:
        """S3 was written: the next record carries S3 along (called once the write is done)."""
        self._s3_changed = True

    def record(self, records: list[Record], whole: Callable[[], SavedState]) -> None:
        """Make changes durable: journal lines, or a snapshot of ``whole()`` when one is due.
        Raises OSError when neither could be written (the next change writes a snapshot)."""
        if not self._snapshot_due and not self.store.journal_full():
            try:
                if self._s3_changed:
                    self._s3_changed = False
                    records = [{"s3": self.store.s3_snapshot()}, *records]
                self.store.append(records)
                return
            except OSError as err:
                log.warning("could not append to the state file %s (%s); writing it whole", self.path, err)
        self.save(whole())

    def save(self, state: SavedState) -> None:
        """Write the whole state as a new snapshot; raises OSError when the file cannot be written."""
        self._snapshot_due, self._s3_changed = True, False
        self.store.save(
            {
                "jobs": [j.to_json() for j in state.jobs],
                "purged": sorted(state.purged),
                "documents": {k: base64.b64encode(v).decode() for k, v in state.documents.items()},
                "clock_offset": state.clock_offset.total_seconds(),
            }
        )
        self._snapshot_due = False


class StateFileError(ValueError):
    """The state file cannot be used; the message names the path and the fix."""


class StateStore:
    """The emulator's state on disk: a file of JSON lines, and beside it ``<file>.s3/`` with S3 object bodies.

    The first line is a snapshot of the whole state, each later line a journal record
    that changes it. moto keeps S3 in memory, so S3 is a list of every bucket (owner
    account, region, ACL) and object (metadata, content type and encoding, storage class,
    ACL), and each body is a file named by its SHA-256, written before any line names it.
    A snapshot replaces the file in one rename, then removes bodies nothing names any
    more; a record is one append, and a line cut short by a crash is ignored when read:
    a kill -9 at any moment leaves a whole state, with every change that was answered.
    """

    def __init__(self, path: str) -> None:
        self.path = Path(path).absolute()
        self.bodies = self.path.with_name(self.path.name + ".s3")
        #: body name by object identity, so a save does not re-read and re-hash unchanged objects
        self._digests: dict[tuple[Any, ...], str] = {}
        self._snapshot_bytes = 0
        self._journal_bytes = 0

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
        """The snapshot with every journal record applied (an older format is one JSON document)."""
        try:
            text = self.path.read_text(encoding="utf-8")
            first, _, journal = text.partition("\n")
            try:
                data = json.loads(first)
            except ValueError:
                data, journal = json.loads(text), ""
        except (OSError, UnicodeDecodeError, ValueError) as err:
            raise self.invalid(f"it is not readable JSON ({err})") from err
        if not isinstance(data, dict) or not isinstance(data.get("jobs"), list):
            raise self.invalid("it is not an emulator state file (no list of jobs)")
        if data.get("format", 1) > STATE_FORMAT:
            raise self.invalid(f"it has format {data['format']}, newer than this emulator's {STATE_FORMAT}")
        return self._replay(data, journal)

    def _replay(self, data: dict[str, Any], journal: str) -> dict[str, Any]:
        jobs = {job.get("job_id") if isinstance(job, dict) else None: job for job in data["jobs"]}
        purged, documents = set(data.get("purged", [])), dict(data.get("documents", {}))
        lines = journal.split("\n")
        for number, line in enumerate(lines, start=2):
            if not line:
                continue
            try:
                ((kind, value),) = json.loads(line).items()
            except (ValueError, AttributeError):
                if number == len(lines) + 1:
                    break  # the last line, cut short by a crash while it was written: never answered
                raise self.invalid(f"line {number} is not a journal record") from None
            try:
                _apply(kind, value, data, jobs, purged, documents)
            except (KeyError, TypeError, IndexError) as err:
                raise self.invalid(f"line {number} is a damaged journal record ({type(err).__name__}: {err})") from err
        return {**data, "jobs": list(jobs.values()), "purged": sorted(purged), "documents": documents}

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
        """Write ``state`` and a snapshot of S3 as the new first line, with no journal after it."""
        data = {**state, "format": STATE_FORMAT, "s3": self.s3_snapshot()}
        encoded = json.dumps(data).encode() + b"\n"
        _write_atomically(self.path, encoded)
        self._snapshot_bytes, self._journal_bytes = len(encoded), 0
        named = _body_names(data)
        if self.bodies.is_dir():
            for body in self.bodies.iterdir():
                if body.name not in named and not body.name.startswith("."):
                    body.unlink(missing_ok=True)

    def append(self, records: list[Record]) -> None:
        """Journal lines, on disk before this returns; OSError when the file is gone or unwritable
        (it is never made here: a journal without its snapshot would lose every job before it)."""
        encoded = b"".join(json.dumps(record).encode() + b"\n" for record in records)
        handle = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            written = os.write(handle, encoded)
            if written != len(encoded):
                raise OSError(f"only {written} of {len(encoded)} bytes were written")
            os.fsync(handle)
        finally:
            os.close(handle)
        self._journal_bytes += len(encoded)

    def journal_full(self) -> bool:
        """Whether the journal is long enough to fold into a new snapshot (amortised: each line
        pays for the next snapshot in proportion)."""
        return self._journal_bytes >= max(MIN_JOURNAL_BYTES, self._snapshot_bytes)

    def s3_snapshot(self) -> list[dict[str, Any]]:
        """Every bucket and object, their bodies written beside the file (only new ones)."""
        known, self._digests = self._digests, {}
        return [self._bucket_record(account_id, bucket, known) for account_id, bucket in _buckets()]

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


def _apply(
    kind: str,
    value: Any,
    data: dict[str, Any],
    jobs: dict[Any, dict[str, Any]],
    purged: set[str],
    documents: dict[str, str],
) -> None:
    """One journal record applied to the state read so far."""
    if kind == "job":
        jobs[value["job_id"]] = value
    elif kind == "purged":
        jobs.pop(value, None)
        purged.add(value)
    elif kind == "document":
        documents[value[0]] = value[1]
    elif kind in ("clock_offset", "s3"):
        data[kind] = value
    else:
        raise KeyError(f"unknown kind {kind!r}")


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
