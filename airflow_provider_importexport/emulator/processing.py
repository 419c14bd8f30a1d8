"""What AWS does with a device once it is at the data centre: check, copy, log.

An import copies the device folder's files into the manifest's bucket (prefix,
substitutions, ignore rules, content types); an export writes bucket objects onto the
device folder. Both write the documented comma-separated log (spec §6.2) to the log
bucket at ``logPrefix + import-log-/export-log- + JobId``.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import mimetypes
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from airflow_provider_importexport.emulator.state import Job
from airflow_provider_importexport.emulator.storage import S3Storage
from airflow_provider_importexport.logs import LOG_COLUMNS
from airflow_provider_importexport.manifest import (
    GlacierImportManifest,
    Manifest,
    S3ExportManifest,
    S3ImportManifest,
    parse_manifest,
)
from airflow_provider_importexport.status import ProgressCode

SIGNATURE_FILE = "SIGNATURE"
MAX_KEY_BYTES = 1024
MAX_NAME_BYTES = 255
DEFAULT_RECOVERY_DIRECTORY = "EXPORT-RECOVERY"


@dataclass
class LogRow:
    file: str
    status: int
    code: str
    key: str = ""
    md5: str = ""
    size: int = 0
    content_type: str = ""
    when: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))

    @property
    def failed(self) -> bool:
        return self.status not in (200, 103)

    def cells(self) -> list[str]:
        stamp = self.when.strftime("%a %d %b %Y %H:%M:%S GMT")
        return [stamp, self.file, str(self.status), self.code, self.key, self.md5, str(self.size), self.content_type]


@dataclass
class ProcessResult:
    progress: ProgressCode
    error_count: int = 0
    log_bucket: str | None = None
    log_key: str | None = None


def render_log(rows: list[LogRow]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(LOG_COLUMNS)
    writer.writerows(row.cells() for row in rows)
    return out.getvalue().encode()


def signature_problem(job: Job, root: Path) -> ProgressCode | None:
    """MissingSignature / InvalidSignature when the device's SIGNATURE file is not this job's."""
    path = root / SIGNATURE_FILE
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
        manifest = parse_manifest(job.manifest_text, job_type=job.job_type)
        root = Path(job.device_path) if job.device_path else None
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
            data = (root / name).read_bytes()
            mtime = (root / name).stat().st_mtime
        except OSError as err:
            return LogRow(name, 500, f"DeviceReadError: {err.strerror or err}")
        content_type, encoding = _content_type(manifest, name, data)
        metadata = dict(manifest.static_metadata)
        if manifest.disk_timestamp_metadata_key:
            metadata[manifest.disk_timestamp_metadata_key] = dt.datetime.fromtimestamp(
                mtime, dt.timezone.utc
            ).isoformat()
        assert manifest.bucket
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
        return LogRow(name, 200, "OK", f"{manifest.bucket}/{key}", _md5(data), len(data), content_type)

    # -- S3 export --
    def _export(self, job: Job, manifest: S3ExportManifest, root: Path) -> list[LogRow]:
        rows: list[LogRow] = []
        recovery = RecoveryNamer(root / (manifest.recovery_directory or DEFAULT_RECOVERY_DIRECTORY))
        for op in manifest.operations:
            assert op.export_bucket
            for obj in self.storage.keys(job.account_id, op.export_bucket, op.prefix or ""):
                key = obj["Key"]
                if not _in_marker_range(key, op.begin_marker, op.end_marker):
                    continue
                data = self.storage.get(job.account_id, op.export_bucket, key)
                relative = _apply(
                    manifest.substitutions, "/".join(filter(None, [op.target_directory, op.export_bucket, key]))
                )
                target = root / relative if _valid_path(relative) else recovery.next()
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
                content_type = mimetypes.guess_type(key)[0] or "binary/octet-stream"
                device_file = "/" + target.relative_to(root).as_posix()
                rows.append(
                    LogRow(device_file, 200, "OK", f"{op.export_bucket}/{key}", _md5(data), len(data), content_type)
                )
        return rows

    # -- EBS / Glacier image --
    def _image(self, job: Job, manifest: Manifest, root: Path) -> bytes:
        digest = hashlib.md5(usedforsecurity=False)
        size = 0
        for raw in _device_files(root):
            data = (root / os.fsdecode(raw)).read_bytes()
            digest.update(data)
            size += len(data)
        now = dt.datetime.now(dt.timezone.utc)
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
    parts = relative.split("/")
    return all(p not in ("", ".", "..") and "\x00" not in p and len(p.encode()) <= MAX_NAME_BYTES for p in parts)


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()
