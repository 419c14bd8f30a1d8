"""Files the operators write on the worker: the SIGNATURE on a device and a downloaded label PDF."""

from __future__ import annotations

import os
import tempfile
import urllib.request
from pathlib import Path

from airflow_provider_importexport import exceptions as exc


def write_atomically(path: str, default_name: str, data: bytes) -> Path:
    """Write ``data`` to ``path`` (a folder gets ``default_name``): a temporary file in the same
    folder, flushed to disk, then renamed, so readers never see a half-written file."""
    target = Path(path)
    if target.is_dir():
        target = target / default_name
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


def write_signature_file(path: str, contents: str) -> Path:
    """SIGNATURE at a device's root folder (or at the given file path), never half-written."""
    return write_atomically(path, "SIGNATURE", contents.encode("utf-8"))


def download(url: str, path: str, timeout: float = 60) -> Path:
    """Fetch the label PDF to ``path`` (a folder gets the URL's file name), never half-written."""
    if not url.startswith(("https://", "http://")):
        raise exc.InvalidParameterError(f"Cannot download the shipping label from {url!r}: not an http(s) URL.")
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - scheme checked above
        data = response.read()
    if not data.startswith(b"%PDF-"):
        raise exc.ImportExportError(f"The shipping label at {url} is not a PDF.")
    return write_atomically(path, url.rsplit("/", 1)[-1], data)
