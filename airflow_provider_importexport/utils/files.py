"""Files the operators write on the worker: the SIGNATURE on a device and a downloaded label PDF.

The paths come from DAG authors and usually point at a mounted device, so writing is careful:
only a regular file (or a new one) is ever replaced; a missing folder is an error, never
created, because it usually means the device is not mounted (a SIGNATURE written anywhere
else ships a disk the service refuses); every refusal is an ``InvalidParameterError`` naming
the path and the fix, so Airflow fails the task at once instead of retrying it.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import secrets
import stat
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from airflow_provider_importexport import exceptions as exc

SIGNATURE_NAME = "SIGNATURE"
DEFAULT_LABEL_NAME = "shipping-label.pdf"
_TEMP_NAME_ROOM = 200  # of a file name's 255 bytes, what a temporary file borrows from the target's name


@dataclass(frozen=True)
class FileKind:
    """What is written, for messages, and how a path names it."""

    what: str
    #: Appended to "the folder X does not exist"; ``{folder}`` is filled in.
    missing_folder_hint: str = ". Create the folder (or correct the path), then clear the task"
    #: A path not ending in this name is a folder, even a missing one (``None``: any name is a file).
    required_name: str | None = None


SIGNATURE_FILE = FileKind(
    what="SIGNATURE file",
    missing_folder_hint=(
        ", so the device is probably not mounted. Mount the device at {folder} (or correct signature_path: "
        "the device's root folder, or a path ending in /SIGNATURE), then clear the task"
    ),
    required_name=SIGNATURE_NAME,
)
LABEL_FILE = FileKind(what="shipping label")
ANY_FILE = FileKind(what="file")


def _describe(mode: int) -> str:
    """What a non-regular file is, for messages."""
    kinds = (
        (stat.S_ISDIR, "folder"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISFIFO, "FIFO (named pipe)"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISLNK, "symbolic link"),
    )
    return next((name for test, name in kinds if test(mode)), "special file")


def _regular_or_new(target: str, kind: FileKind) -> Path:
    """``target`` itself if it is absent or a regular file, the file a symbolic link points at if
    that is a regular file; anything else is refused."""
    try:
        found = os.lstat(target)
    except FileNotFoundError:
        return Path(target)
    except OSError as err:
        raise exc.InvalidParameterError(f"Cannot write the {kind.what} to {target}: {err.strerror}.") from None
    if stat.S_ISREG(found.st_mode):
        return Path(target)
    if not stat.S_ISLNK(found.st_mode):
        raise exc.InvalidParameterError(
            f"Refusing to write the {kind.what} to {target}: it is a {_describe(found.st_mode)}, not a regular "
            "file. Give the folder the device is mounted on (e.g. /mnt/disk-001/) or a regular file's path."
        )
    try:
        pointed = os.stat(target)
    except OSError:
        raise exc.InvalidParameterError(
            f"Refusing to write the {kind.what} to {target}: it is a symbolic link to {os.readlink(target)!r}, "
            "which does not exist. Remove the link or give another path."
        ) from None
    if not stat.S_ISREG(pointed.st_mode):
        raise exc.InvalidParameterError(
            f"Refusing to write the {kind.what} to {target}: it is a symbolic link to a "
            f"{_describe(pointed.st_mode)} ({os.path.realpath(target)}), not to a regular file."
        )
    return Path(os.path.realpath(target))


def resolve_target(path: str | os.PathLike[str], default_name: str, kind: FileKind = ANY_FILE) -> Path:
    """The regular file a write to ``path`` would create or replace; checks, never writes.

    ``path`` is absolute: a file path or, when it ends in ``/``, is an existing folder or does
    not end in ``kind.required_name``, the folder that gets ``default_name``. The folder must
    exist already. Raises ``InvalidParameterError`` naming the path and the fix.
    """
    raw = os.fspath(path)
    if not raw.strip():
        raise exc.InvalidParameterError(
            f"The {kind.what} path is empty ({raw!r}): give an absolute path, such as a device's root folder."
        )
    if "\0" in raw:
        raise exc.InvalidParameterError(f"The {kind.what} path {raw!r} contains a NUL character.")
    if not os.path.isabs(raw):
        raise exc.InvalidParameterError(
            f"The {kind.what} path {raw!r} is relative, so it would land in the worker's working folder: "
            "give an absolute path, such as a device's root folder."
        )
    names_a_folder = (
        raw.endswith(os.sep)
        or os.path.isdir(raw)
        or (kind.required_name is not None and os.path.basename(raw) != kind.required_name)
    )
    folder, target = (raw, os.path.join(raw, default_name)) if names_a_folder else (os.path.dirname(raw), raw)
    if not os.path.isdir(folder):
        if os.path.lexists(folder.rstrip(os.sep)):
            raise exc.InvalidParameterError(
                f"Cannot write the {kind.what} to {raw!r}: {folder} is not a folder. "
                "Give a folder, or a file path in an existing folder."
            )
        hint = kind.missing_folder_hint.format(folder=folder)
        raise exc.InvalidParameterError(
            f"Cannot write the {kind.what} to {raw!r}: the folder {folder} does not exist{hint}."
        )
    return _regular_or_new(target, kind)


def _create_temporary(folder: Path, name: str) -> tuple[int, Path]:
    """A new, empty file beside the target; mode 0o666 minus the umask, as any new file."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
    for _ in range(100):
        temporary = folder / f".{name[:_TEMP_NAME_ROOM]}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(temporary, flags, 0o666), temporary
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary file name in {folder}")


def _keep_metadata(handle: int, old: os.stat_result) -> None:
    """Give the new file the replaced file's permission bits (and owner, where allowed)."""
    # File systems without Unix permissions (FAT, exFAT on many devices) refuse: nothing to keep there.
    with contextlib.suppress(OSError):
        os.fchmod(handle, stat.S_IMODE(old.st_mode))
    new = os.fstat(handle)
    if (new.st_uid, new.st_gid) != (old.st_uid, old.st_gid):
        with contextlib.suppress(OSError):
            os.fchown(handle, old.st_uid, old.st_gid)


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable; some file systems cannot sync a folder, which is fine."""
    with contextlib.suppress(OSError):
        handle = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(handle)
        finally:
            os.close(handle)


def write_atomically(path: str | os.PathLike[str], default_name: str, data: bytes, kind: FileKind = ANY_FILE) -> Path:
    """Write ``data`` to ``path`` (see ``resolve_target``) and return the file written.

    A temporary file in the same folder is flushed to disk, then renamed over the target, so
    readers never see a half-written file and a failed write leaves the old file as it was.
    A replaced file keeps its permission bits. I/O errors (full or read-only device) raise a
    retryable ``ImportExportError``.
    """
    target = resolve_target(path, default_name, kind)
    try:
        old: os.stat_result | None = os.stat(target)
    except FileNotFoundError:
        old = None
    try:
        handle, temporary = _create_temporary(target.parent, target.name)
    except OSError as err:
        raise exc.ImportExportError(f"Could not write the {kind.what} to {target}: {err}") from err
    try:
        with os.fdopen(handle, "wb") as stream:
            if old is not None:
                _keep_metadata(stream.fileno(), old)
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        _regular_or_new(str(target), kind)  # nothing else appeared there meanwhile
        os.replace(temporary, target)
    except BaseException as err:
        temporary.unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise exc.ImportExportError(f"Could not write the {kind.what} to {target}: {err}") from err
        raise
    _fsync_folder(target.parent)
    return target


def check_signature_path(path: str | os.PathLike[str]) -> Path:
    """Where ``write_signature_file`` would write, or the error it would raise; writes nothing.

    Lets the create operator refuse an unmounted device before it creates a job.
    """
    return resolve_target(path, SIGNATURE_NAME, SIGNATURE_FILE)


def write_signature_file(path: str | os.PathLike[str], contents: str) -> Path:
    """SIGNATURE in a device's root folder (``/mnt/disk-001`` or ``/mnt/disk-001/SIGNATURE``).

    A path not ending in SIGNATURE is the device's root folder even while it is missing, so an
    unmounted device fails the task instead of getting a stray file in ``/mnt``.
    """
    return write_atomically(path, SIGNATURE_NAME, contents.encode("utf-8"), SIGNATURE_FILE)


def label_file_name(url: str) -> str:
    """The label's file name: the last part of the URL's path (no query string), or a default."""
    name = posixpath.basename(urllib.parse.urlsplit(url).path)
    return name if name not in ("", ".", "..") else DEFAULT_LABEL_NAME


def download(url: str, path: str | os.PathLike[str], timeout: float = 60) -> Path:
    """Fetch the label PDF to ``path`` (a folder gets the URL's file name), never half-written.

    The path is checked before the download, so a bad path costs no transfer.
    """
    if not url.startswith(("https://", "http://")):
        raise exc.InvalidParameterError(f"Cannot download the shipping label from {url!r}: not an http(s) URL.")
    name = label_file_name(url)
    resolve_target(path, name, LABEL_FILE)
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - scheme checked above
        data = response.read()
    if not data.startswith(b"%PDF-"):
        raise exc.ImportExportError(f"The shipping label at {url} is not a PDF.")
    return write_atomically(path, name, data, LABEL_FILE)
