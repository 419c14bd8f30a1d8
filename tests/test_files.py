"""Client-side file writes (SIGNATURE, label PDF) and the tests' hard time limit for child processes.

Every path here is under tmp_path: special files are a FIFO and a socket made there, never /dev.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_importexport import exceptions as exc
from airflow_provider_importexport.emulator import ImportExportEmulator
from airflow_provider_importexport.hooks.importexport import ImportExportHook
from airflow_provider_importexport.utils import files
from airflow_provider_importexport.utils.files import (
    check_signature_path,
    download,
    label_file_name,
    write_atomically,
    write_signature_file,
)
from tests.helpers import STACK_DUMP_GRACE, ChildError, import_manifest, run_in_child

CONTENTS = "version:2.0\njobId:ABCDE\n"


def leftovers(folder: Path) -> list[str]:
    """Temporary files a write left behind."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return path


@pytest.fixture
def unix_socket(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "sock"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        yield path


# --- where a path leads -------------------------------------------------------------------------------


def test_a_device_folder_gets_signature_inside(tmp_path: Path) -> None:
    device = tmp_path / "disk-001"
    device.mkdir()
    for path in (str(device), f"{device}/", str(device / "SIGNATURE")):
        assert write_signature_file(path, CONTENTS) == device / "SIGNATURE"
        assert (device / "SIGNATURE").read_text() == CONTENTS
    assert leftovers(device) == []


def test_an_unmounted_device_fails_and_creates_nothing(tmp_path: Path) -> None:
    """/mnt/disk-001 with nothing mounted: not a green task with a stray file named disk-001."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    for path in (mnt / "disk-001", f"{mnt / 'disk-001'}/", mnt / "disk-001" / "SIGNATURE"):
        with pytest.raises(exc.InvalidParameterError) as failure:
            write_signature_file(str(path), CONTENTS)
        message = str(failure.value)
        assert repr(str(path)) in message
        assert f"the folder {mnt / 'disk-001'}" in message
        assert "does not exist, so the device is probably not mounted" in message
        assert "Mount the device" in message
    assert list(mnt.iterdir()) == []


def test_missing_parents_are_not_created(tmp_path: Path) -> None:
    with pytest.raises(exc.InvalidParameterError, match="does not exist"):
        write_atomically(str(tmp_path / "a" / "b" / "label.pdf"), "x.pdf", b"%PDF-")
    with pytest.raises(exc.InvalidParameterError, match="does not exist"):
        write_atomically(f"{tmp_path / 'newdev'}/", "label.pdf", b"%PDF-")
    assert list(tmp_path.iterdir()) == []


def test_a_trailing_slash_or_a_folder_gets_the_default_name(tmp_path: Path) -> None:
    assert write_atomically(f"{tmp_path}/", "label.pdf", b"1") == tmp_path / "label.pdf"
    assert write_atomically(str(tmp_path), "label.pdf", b"2") == tmp_path / "label.pdf"
    assert write_atomically(str(tmp_path / "mine.pdf"), "label.pdf", b"3") == tmp_path / "mine.pdf"
    assert (tmp_path / "label.pdf").read_bytes() == b"2"


def test_a_file_where_the_folder_should_be(tmp_path: Path) -> None:
    (tmp_path / "disk-001").write_text("")
    with pytest.raises(exc.InvalidParameterError, match="is not a folder"):
        write_signature_file(str(tmp_path / "disk-001"), CONTENTS)
    with pytest.raises(exc.InvalidParameterError, match="is not a folder"):
        write_signature_file(str(tmp_path / "disk-001" / "SIGNATURE"), CONTENTS)
    assert (tmp_path / "disk-001").read_text() == ""


@pytest.mark.parametrize("path", ["", "   ", "SIGNATURE", "disk-001/", "./mnt/disk-001"])
def test_empty_and_relative_paths_are_refused(path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "disk-001").mkdir()
    with pytest.raises(exc.InvalidParameterError, match=r"is empty|is relative") as failure:
        write_signature_file(path, CONTENTS)
    assert repr(path) in str(failure.value)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["disk-001"]


# --- what may be replaced ------------------------------------------------------------------------------


def test_an_existing_file_is_replaced_atomically_and_keeps_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "SIGNATURE"
    target.write_text("old")
    target.chmod(0o640)
    before = target.stat()
    write_signature_file(str(target), CONTENTS)
    after = target.stat()
    assert target.read_text() == CONTENTS
    assert stat.S_IMODE(after.st_mode) == 0o640
    assert after.st_ino != before.st_ino  # a new file renamed over the old, not rewritten in place
    assert leftovers(tmp_path) == []


def test_a_new_file_gets_the_usual_mode(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        write_atomically(str(tmp_path / "label.pdf"), "x", b"%PDF-")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "label.pdf").stat().st_mode) == 0o644


@pytest.mark.parametrize("special", ["fifo", "unix_socket"])
def test_special_files_are_refused(special: str, request: pytest.FixtureRequest) -> None:
    path: Path = request.getfixturevalue(special)
    kind = {"fifo": "FIFO", "unix_socket": "socket"}[special]
    with pytest.raises(exc.InvalidParameterError, match=f"it is a {kind}") as failure:
        write_atomically(str(path), "x", b"data")
    assert str(path) in str(failure.value)
    assert not stat.S_ISREG(path.lstat().st_mode)
    assert leftovers(path.parent) == []


def test_a_fifo_named_signature_in_the_device_folder_is_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "SIGNATURE")
    with pytest.raises(exc.InvalidParameterError, match="FIFO"):
        write_signature_file(str(tmp_path), CONTENTS)
    assert stat.S_ISFIFO((tmp_path / "SIGNATURE").lstat().st_mode)


def test_a_symlink_to_a_fifo_is_refused(tmp_path: Path, fifo: Path) -> None:
    link = tmp_path / "SIGNATURE"
    link.symlink_to(fifo)
    with pytest.raises(exc.InvalidParameterError, match="symbolic link to a FIFO") as failure:
        write_signature_file(str(link), CONTENTS)
    assert str(link) in str(failure.value)
    assert link.is_symlink()
    assert stat.S_ISFIFO(fifo.lstat().st_mode)


def test_a_dangling_symlink_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "label.pdf"
    link.symlink_to(tmp_path / "nowhere" / "label.pdf")
    with pytest.raises(exc.InvalidParameterError, match="which does not exist"):
        write_atomically(str(link), "x", b"%PDF-")
    assert link.is_symlink()


def test_a_symlink_to_a_regular_file_writes_that_file(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (real / "SIGNATURE").write_text("old")
    link = tmp_path / "SIGNATURE"
    link.symlink_to(real / "SIGNATURE")
    assert write_signature_file(str(link), CONTENTS) == real / "SIGNATURE"
    assert link.is_symlink()
    assert (real / "SIGNATURE").read_text() == CONTENTS


def test_a_folder_named_like_the_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "SIGNATURE").mkdir()
    with pytest.raises(exc.InvalidParameterError, match="it is a folder"):
        write_signature_file(str(tmp_path), CONTENTS)


def test_refusals_fail_the_task_without_retries(tmp_path: Path) -> None:
    with pytest.raises(exc.NonRetryableError):
        write_signature_file(str(tmp_path / "missing" / "SIGNATURE"), CONTENTS)


def test_check_signature_path_writes_nothing(tmp_path: Path) -> None:
    assert check_signature_path(str(tmp_path)) == tmp_path / "SIGNATURE"
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(exc.InvalidParameterError, match="not mounted"):
        check_signature_path(str(tmp_path / "disk-001"))


# --- atomic: never half-written ---------------------------------------------------------------------


def test_a_failed_write_keeps_the_old_file_and_removes_the_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "SIGNATURE"
    target.write_text("old")

    def full_device(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", full_device)
    with pytest.raises(exc.ImportExportError, match="No space left") as failure:
        write_signature_file(str(tmp_path), CONTENTS)
    assert not isinstance(failure.value, exc.NonRetryableError)  # a full device may be freed: retry
    assert target.read_text() == "old"
    assert leftovers(tmp_path) == []


def test_something_appearing_at_the_target_during_the_write_is_not_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "SIGNATURE"
    create_temporary = files._create_temporary

    def and_a_fifo_appears(folder: Path, name: str) -> tuple[int, Path]:
        created = create_temporary(folder, name)
        os.mkfifo(target)
        return created

    monkeypatch.setattr(files, "_create_temporary", and_a_fifo_appears)
    with pytest.raises(exc.InvalidParameterError, match="FIFO"):
        write_signature_file(str(tmp_path), CONTENTS)
    assert stat.S_ISFIFO(target.lstat().st_mode)
    assert leftovers(tmp_path) == []


# --- the label download ------------------------------------------------------------------------------


def test_download_checks_the_path_before_fetching(tmp_path: Path) -> None:
    # Nothing listens on port 9: reaching the network would raise URLError, not this.
    with pytest.raises(exc.InvalidParameterError, match="does not exist"):
        download("http://127.0.0.1:9/labels/label.pdf", f"{tmp_path / 'missing'}/")


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("https://example.com/labels/label-1.pdf?X-Amz-Signature=abc", "label-1.pdf"),
        ("https://example.com/labels/", "shipping-label.pdf"),
        ("https://example.com", "shipping-label.pdf"),
    ],
)
def test_label_file_name(url: str, name: str) -> None:
    assert label_file_name(url) == name


# --- through the create operator (dag.test) ------------------------------------------------------

CREATE_DAG = """
import datetime
from airflow.sdk import DAG
from airflow_provider_importexport.operators.importexport import ImportExportCreateJobOperator

with DAG("$dag_id", schedule=None, start_date=datetime.datetime(2026, 1, 1), catchup=False) as dag:
    ImportExportCreateJobOperator(
        task_id="create", manifest=$manifest, signature_path="$device", retries=2,
        retry_delay=datetime.timedelta(seconds=0),
    )
"""


def test_create_task_fails_at_once_for_an_unmounted_device(
    run_dag: Any, bucket: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    result = run_dag(CREATE_DAG, manifest=repr(import_manifest(bucket).to_yaml()), device=mnt / "disk-001")
    assert result.state("create") == "failed"
    assert result.ti("create").try_number == 1  # not retried
    assert f"the folder {mnt / 'disk-001'} does not exist, so the device is probably not mounted" in (
        capfd.readouterr().out
    )
    assert list(mnt.iterdir()) == []


def test_an_unmounted_device_gets_no_job(
    run_dag: Any, bucket: str, tmp_path: Path, emulator: ImportExportEmulator
) -> None:
    result = run_dag(CREATE_DAG, manifest=repr(import_manifest(bucket).to_yaml()), device=tmp_path / "disk-001")
    assert result.state("create") == "failed"
    assert list(ImportExportHook(aws_conn_id="aws_default").list_jobs()) == []


# --- the tests' hard time limit (tests/helpers.py run_in_child) ---------------------------------------


def _hang_ignoring_sigterm() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print("child is up and ignores SIGTERM", flush=True)
    while True:
        time.sleep(0.1)


def _warm_up() -> None:
    pass


def _fail() -> None:
    print("about to fail")
    raise ValueError("boom in the child")


def test_a_hung_child_is_killed_and_fails_the_test() -> None:
    run_in_child(_warm_up)  # a worker is up, this module imported: neither counts below
    started = time.monotonic()
    with pytest.raises(pytest.fail.Exception) as failure:
        run_in_child(_hang_ignoring_sigterm, limit=4)  # time enough to be inside the function on a busy machine
    assert time.monotonic() - started < 4 + STACK_DUMP_GRACE + 5
    message = str(failure.value)
    assert "_hang_ignoring_sigterm() did not finish within 4.0 s" in message
    assert "in _hang_ignoring_sigterm" in message  # its stack at the deadline
    assert "child is up and ignores SIGTERM" in message  # and its output
    pid = int(re.search(r"pid (\d+)", message).group(1))  # type: ignore[union-attr]
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_child_returns_raises_and_prints_into_the_test(capfd: pytest.CaptureFixture[str]) -> None:
    assert run_in_child(os.getpid) != os.getpid()
    with pytest.raises(ChildError, match=r"(?s)raised in the child process.*ValueError: boom in the child"):
        run_in_child(_fail)
    assert "about to fail" in capfd.readouterr().out
