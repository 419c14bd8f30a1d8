"""What AWS does with a device once it is at the data centre: check, copy, log.

An import copies the device folder's files into the manifest's bucket (prefix,
substitutions, ignore rules, content types); an export writes bucket objects onto the
device folder. Both write the documented comma-separated log (spec §6.2) to the log
bucket at ``logPrefix + import-log-/export-log- + JobId``.

Nothing a manifest, a key or a link on the device names may reach outside the device
folder: every path is resolved and checked against the device's root before it is read
or written. A problem with one file is a row in the log; a problem with the whole job
raises :class:`JobAborted`, which the backend turns into a failure ProgressCode.
"""

from __future__ import annotations

import csv
import datetime as dt
import errno
import hashlib
import io
import mimetypes
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from botocore.exceptions import ClientError

from airflow_provider_importexport.emulator.state import Job
from airflow_provider_importexport.emulator.storage import S3Storage, storage_classes
from airflow_provider_importexport.logs import LOG_COLUMNS
from airflow_provider_importexport.manifest import (
    INVALID,
    ExportOperation,
    GlacierImportManifest,
    Manifest,
    ManifestProblem,
    S3ExportManifest,
    S3ImportManifest,
    device_path_problem,
    manifest_error,
    parse_manifest,
)
from airflow_provider_importexport.status import ProgressCode

SIGNATURE_FILE = "SIGNATURE"
MAX_KEY_BYTES = 1024
DEFAULT_RECOVERY_DIRECTORY = "EXPORT-RECOVERY"

#: The ProgressCode of a job whose processing cannot go on. The status table has no code
#: for "the manifest turned out unusable" or "the emulator failed"; every other failure
#: code names one physical cause (signature, power supply, connectors, device type, file
#: system) that would send the user to the wrong fix. DeviceError ("the device did not
#: work") is the one generic abort, and the job's ProgressMessage gives the real cause.
ABORT_PROGRESS = ProgressCode.DEVICE_ERROR


class JobAborted(Exception):
    """Processing cannot go on: the job ends in ``progress`` with ``reason`` as its ProgressMessage."""

    def __init__(self, reason: str, progress: ProgressCode = ABORT_PROGRESS) -> None:
        super().__init__(reason)
        self.reason = reason
        self.progress = progress


class OutsideDeviceError(OSError):
    """A path on the device that resolves (through a link) to somewhere outside the device folder."""


@dataclass
class LogRow:
    file: str
    status: int
    code: str
    key: str = ""
    md5: str = ""
    size: int = 0
    content_type: str = ""
    when: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    @property
    def failed(self) -> bool:
        return self.status not in (200, 103)

    def cells(self) -> list[str]:
        stamp = self.when.strftime("%a %d %b %Y %H:%M:%S GMT")
        return [stamp, self.file, str(self.status), self.code, self.key, self.md5, str(self.size), self.content_type]


@dataclass
class ProcessResult:
    """How a transfer ended; ``reason`` is set when it aborted (the job's ProgressMessage)."""

    progress: ProgressCode
    error_count: int = 0
    log_bucket: str | None = None
    log_key: str | None = None
    reason: str | None = None


def render_log(rows: list[LogRow]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(LOG_COLUMNS)
    writer.writerows(row.cells() for row in rows)
    return out.getvalue().encode()


def signature_problem(job: Job, root: Path) -> ProgressCode | None:
    """MissingSignature / InvalidSignature when the device's SIGNATURE file is not this job's."""
    try:
        path = inside_device(root, root / SIGNATURE_FILE)
    except OSError:
        return ProgressCode.MISSING_SIGNATURE
    if not path.is_file():
        return ProgressCode.MISSING_SIGNATURE
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ProgressCode.INVALID_SIGNATURE
    if text.strip().splitlines() != job.signature_file_contents.strip().splitlines():
        return ProgressCode.INVALID_SIGNATURE
    return None


class Processor:
    """Runs a job's data transfer against S3 and the job's device folder."""

    def __init__(self, storage: S3Storage) -> None:
        self.storage = storage

    def run(self, job: Job) -> ProcessResult:
        """Transfer the job's data; raises JobAborted when the job as a whole cannot be done."""
        manifest = parse_manifest(job.manifest_text, job_type=job.job_type)
        problems = processing_problems(manifest)
        if problems:
            raise JobAborted(f"The job was aborted before any data moved. {manifest_error(problems).message}")
        root = Path(job.device_path).resolve() if job.device_path else None
        if root is None or not root.is_dir():
            if isinstance(manifest, S3ExportManifest) and root is not None:
                root.mkdir(parents=True, exist_ok=True)
            else:
                return ProcessResult(ProgressCode.MISSING_DEVICE)
        if isinstance(manifest, (S3ImportManifest, S3ExportManifest)):
            problem = signature_problem(job, root)
            if problem is not None:
                return ProcessResult(problem)
        rows: list[LogRow] | bytes
        if isinstance(manifest, S3ImportManifest):
            rows = self._import(job, manifest, root)
        elif isinstance(manifest, S3ExportManifest):
            rows = self._export(job, manifest, root)
        else:
            rows = self._image(job, manifest, root)
        return self._finish(job, manifest, rows)

    def _finish(self, job: Job, manifest: Manifest, rows: list[LogRow] | bytes) -> ProcessResult:
        log_bucket = manifest.effective_log_bucket
        log_key = manifest.log_key(job.job_id)
        body = rows if isinstance(rows, bytes) else render_log(rows)
        errors = 0 if isinstance(rows, bytes) else sum(row.failed for row in rows)
        if log_bucket:
            self.storage.put(job.account_id, log_bucket, log_key, body, ContentType="text/csv")
        progress = ProgressCode.SUCCESS_WITH_ERRORS if errors else ProgressCode.COMPLETE
        return ProcessResult(progress, errors, log_bucket, log_key)

    # -- S3 import --
    def _import(self, job: Job, manifest: S3ImportManifest, root: Path) -> list[LogRow]:
        assert manifest.bucket
        ignore = [re.compile(p) for p in manifest.ignore]
        rows = []
        for raw in _device_files(root):
            rows.append(self._import_file(job, manifest, root, raw, ignore))
        return rows

    def _import_file(
        self, job: Job, manifest: S3ImportManifest, root: Path, raw: bytes, ignore: list[re.Pattern[str]]
    ) -> LogRow:
        try:
            name = raw.decode("utf-8")
        except UnicodeDecodeError:
            return LogRow(raw.decode("utf-8", "replace"), 400, "InvalidFileName")
        if name == SIGNATURE_FILE or any(p.search(name) for p in ignore):
            return LogRow(name, 103, "Ignored")
        key = _apply(manifest.substitutions, (manifest.prefix or "") + name)
        if not key:
            return LogRow(name, 400, "InvalidSubstitution")
        if len(key.encode()) > MAX_KEY_BYTES:
            return LogRow(name, 400, "KeyTooLongError", f"{manifest.bucket}/{key[:64]}...")
        try:
            path = inside_device(root, root / name)
            data, mtime = path.read_bytes(), path.stat().st_mtime
        except OSError as err:
            return LogRow(name, 500, f"DeviceReadError: {err.strerror or err}")
        content_type, encoding = _content_type(manifest, name, data)
        metadata = dict(manifest.static_metadata)
        if manifest.disk_timestamp_metadata_key:
            metadata[manifest.disk_timestamp_metadata_key] = dt.datetime.fromtimestamp(mtime, dt.UTC).isoformat()
        assert manifest.bucket
        try:
            self.storage.put(
                job.account_id,
                manifest.bucket,
                key,
                data,
                ContentType=content_type,
                ContentEncoding=encoding,
                ACL=manifest.acl,
                CacheControl=manifest.cache_control,
                ContentDisposition=manifest.content_disposition,
                ContentLanguage=manifest.content_language,
                StorageClass=manifest.storage_class,
                Metadata=metadata,
            )
        except ClientError as err:
            return _s3_error_row(name, f"{manifest.bucket}/{key}", err)
        return LogRow(name, 200, "OK", f"{manifest.bucket}/{key}", _md5(data), len(data), content_type)

    # -- S3 export --
    def _export(self, job: Job, manifest: S3ExportManifest, root: Path) -> list[LogRow]:
        rows: list[LogRow] = []
        recovery = RecoveryNamer(recovery_folder(root, manifest))
        for op in manifest.operations:
            assert op.export_bucket
            for obj in self.storage.keys(job.account_id, op.export_bucket, op.prefix or ""):
                if _in_marker_range(obj["Key"], op.begin_marker, op.end_marker):
                    rows.append(self._export_object(job, manifest, op, obj["Key"], root, recovery))
        return rows

    def _export_object(
        self, job: Job, manifest: S3ExportManifest, op: ExportOperation, key: str, root: Path, recovery: RecoveryNamer
    ) -> LogRow:
        """One object onto the device; a key that cannot be a file there goes to the recovery folder."""
        assert op.export_bucket
        source = f"{op.export_bucket}/{key}"
        try:
            data = self.storage.get(job.account_id, op.export_bucket, key)
        except ClientError as err:
            return _s3_error_row("", source, err)
        parts = [(op.target_directory or "").rstrip("/"), op.export_bucket, key]
        relative = _apply(manifest.substitutions, "/".join(filter(None, parts)))
        target = write_inside(root, root / relative, data) if _valid_path(relative) else None
        target = target or write_inside(root, recovery.next(), data)
        if target is None:
            return LogRow("", 500, "DeviceWriteError: no place on the device could take this object", source)
        content_type = mimetypes.guess_type(key)[0] or "binary/octet-stream"
        device_file = "/" + target.relative_to(root).as_posix()
        return LogRow(device_file, 200, "OK", source, _md5(data), len(data), content_type)

    # -- EBS / Glacier image --
    def _image(self, job: Job, manifest: Manifest, root: Path) -> bytes:
        digest = hashlib.md5(usedforsecurity=False)
        size = 0
        for raw in _device_files(root):
            data = _image_bytes(root / os.fsdecode(raw))
            digest.update(data)
            size += len(data)
        now = dt.datetime.now(dt.UTC)
        if isinstance(manifest, GlacierImportManifest):
            op = manifest.operations[0]
            archive_id = hashlib.sha256(f"{job.job_id}{digest.hexdigest()}".encode()).hexdigest()
            archive = f"/{job.account_id}/vaults/{op.vault_name}/archives/{archive_id}"
            line = f"{now:%a %d %b %Y %H:%M:%S GMT},{op.vault_name},{archive},{op.archive_comment}"
            return f"DateTime,Vault Name,Archive,Archive Comment\n{line}\n".encode()
        snapshot = f"snap-{digest.hexdigest()[:17]}"
        return render_log([LogRow("/", 200, "OK", snapshot, digest.hexdigest(), size, "application/octet-stream", now)])


class RecoveryNamer:
    """Names under recoveryDirectory for keys that cannot be file names: NNNN/NNNN."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.count = 0

    def next(self) -> Path:
        folder, index = divmod(self.count, 10000)
        self.count += 1
        return self.base / f"{folder:04d}" / f"{index:04d}"


def _device_files(root: Path) -> list[bytes]:
    """Relative paths (as bytes, so non-UTF-8 names survive) of every file, sorted."""
    found = []
    base = os.fsencode(root)
    for folder, _dirs, files in os.walk(base):
        for name in files:
            found.append(os.path.relpath(os.path.join(folder, name), base))
    return sorted(found)


def _apply(substitutions: dict[str, str], text: str) -> str:
    for old, new in substitutions.items():
        text = text.replace(old, new)
    return text


def _content_type(manifest: S3ImportManifest, name: str, data: bytes) -> tuple[str, str | None]:
    encoding = None
    lookup = name
    if manifest.set_content_encoding_for_gz_files and data[:2] == b"\x1f\x8b":
        encoding = "gzip"
        lookup = re.sub(r"\.(gz|gzip)$", "", name)
    extension = lookup.rsplit(".", 1)[-1] if "." in lookup else ""
    mapped = manifest.content_types.get(extension) or manifest.content_types.get(f".{extension}")
    guessed = mimetypes.guess_type(lookup)[0]
    return mapped or guessed or manifest.default_content_type or "binary/octet-stream", encoding


def _in_marker_range(key: str, begin: str | None, end: str | None) -> bool:
    encoded = key.encode()
    if begin is not None and encoded <= begin.encode():
        return False
    return end is None or encoded <= end.encode()


def _valid_path(relative: str) -> bool:
    return device_path_problem(relative) is None


def storage_class_problems(manifest: Manifest) -> list[ManifestProblem]:
    """An import storageClass the emulator's S3 cannot store.

    The service's list of valid values is not documented (spec §4.5), so CreateJob does
    not refuse it; processing checks it before the first object is written, so a bad
    value aborts the job instead of failing every file.
    """
    value = getattr(manifest, "storage_class", None)
    if value is None or value in storage_classes():
        return []
    choices = ", ".join(storage_classes())
    return [ManifestProblem(INVALID, "storageClass", f"{value!r} is not an S3 storage class; use one of {choices}")]


def processing_problems(manifest: Manifest) -> list[ManifestProblem]:
    """What makes a job impossible to process, found before any data moves."""
    return manifest.device_folder_problems() + storage_class_problems(manifest)


def inside_device(root: Path, path: Path) -> Path:
    """``path`` with every link resolved; OutsideDeviceError when that leaves ``root`` (itself resolved)."""
    where = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
    try:
        resolved = path.resolve()
    except RuntimeError as err:  # Python < 3.13 reports a link loop this way
        raise OSError(errno.ELOOP, f"{where} is a loop of links") from err
    if not resolved.is_relative_to(root):
        raise OutsideDeviceError(f"{where} leads outside the device through a link")
    return resolved


def write_inside(root: Path, path: Path, data: bytes) -> Path | None:
    """Write a file inside the device; None when the path leaves it or the device refuses it.

    A refusal covers a key that is both a file and a folder (``a/b`` and ``a/b/c``): the
    service sends keys that cannot become file names to the recovery folder.
    """
    try:
        target = inside_device(root, path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    except OSError:
        return None
    return path


def recovery_folder(root: Path, manifest: S3ExportManifest) -> Path:
    """The device's recovery folder, checked before the export writes anything."""
    name = (manifest.recovery_directory or DEFAULT_RECOVERY_DIRECTORY).rstrip("/")
    try:
        inside_device(root, root / name)
    except OSError as err:
        raise JobAborted(
            f"The job was aborted before any data moved: the recovery folder {err}; "
            "remove that link from the device or choose another recoveryDirectory."
        ) from err
    return root / name


def _image_bytes(path: Path) -> bytes:
    """What a block image holds for one file: its bytes, or a link's own target text (never what it points at)."""
    try:
        return os.fsencode(os.readlink(path)) if path.is_symlink() else path.read_bytes()
    except OSError as err:
        raise JobAborted(f"The job was aborted: the device could not be read at {path.name!r} ({err}).") from err


def _s3_error_row(file: str, key: str, err: ClientError) -> LogRow:
    """A file S3 refused: the log shows S3's HTTP status and error code (spec §6.3)."""
    status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 500)
    return LogRow(file, int(status), err.response.get("Error", {}).get("Code", "S3Error"), key)


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()
