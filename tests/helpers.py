"""Builders shared by the tests (plain functions; fixtures live in conftest.py)."""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import faulthandler
import importlib.util
import json
import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from airflow_provider_importexport.emulator import DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY, Account
from airflow_provider_importexport.manifest import (
    ExportOperation,
    ReturnAddress,
    S3ExportManifest,
    S3ImportManifest,
)

#: A second emulator account, for isolation and permission tests.
OTHER_ACCOUNT = Account("AKIAOTHERACCOUNT0001", "other-secret", "210987654321")

#: Fast retries for tests that inject faults; the policy's shape is what is under test.
FAST_RETRIES = {"initial_delay": 0.01, "max_delay": 0.05, "jitter": 0.01, "max_attempts": 4, "total_timeout": 10}


def address(**overrides: Any) -> ReturnAddress:
    fields = {
        "name": "Jane Doe",
        "company": "Example Corp",
        "street1": "1 Main Street",
        "city": "Seattle",
        "state_or_province": "WA",
        "postal_code": "98101",
        "country": "USA",
        "phone_number": "206-555-0100",
    }
    fields.update(overrides)
    return ReturnAddress(**fields)


def import_manifest(bucket: str, **overrides: Any) -> S3ImportManifest:
    fields: dict[str, Any] = {"device_id": "disk-001", "bucket": bucket, "return_address": address()}
    fields.update(overrides)
    return S3ImportManifest(**fields)


def export_manifest(bucket: str, log_bucket: str, **overrides: Any) -> S3ExportManifest:
    fields: dict[str, Any] = {
        "device_id": "disk-002",
        "file_system": "NTFS",
        "operations": [ExportOperation(export_bucket=bucket)],
        "log_bucket": log_bucket,
        "true_crypt_password": "s3cr3t-Passw0rd",
        "return_address": address(),
    }
    fields.update(overrides)
    return S3ExportManifest(**fields)


def connection_json(endpoint_url: str, **extra: Any) -> str:
    return json.dumps(
        {
            "conn_type": "aws",
            "login": DEFAULT_ACCESS_KEY,
            "password": DEFAULT_SECRET_KEY,
            "extra": {"endpoint_url": endpoint_url, "region_name": "us-east-1", **extra},
        }
    )


# --- a hard time limit for code that could hang the test run -------------------------------------
#
# dag.test() cannot be stopped inside the pytest process: parsing the DAG file (Airflow's DAG
# importer) replaces the SIGALRM handler and clears ITIMER_REAL, which disarms pytest-timeout's
# signal method, and the task runner installs a SIGTERM handler that only calls on_kill() and is
# never restored, so the process ignores SIGTERM from then on. A child process can always be
# killed, so DAG runs go to one (conftest.py patches DAG.test for every test with the DB).

T = TypeVar("T")

#: The limit when pytest-timeout sets no deadline (``--timeout=0``, or its thread method).
DEFAULT_CHILD_LIMIT = 240.0
#: Kept back from pytest-timeout's deadline, so the child's limit fires first, with its stacks.
CHILD_LIMIT_MARGIN = 15.0
#: How long a child on its deadline gets to dump its stacks before SIGKILL.
STACK_DUMP_GRACE = 2.0
#: For a new worker process to start and import Airflow (not part of any test's limit).
WORKER_START_LIMIT = 180.0
_STREAMS = ("stdout", "stderr")


class ChildError(Exception):
    """The function raised in the child process (the message holds its traceback), or the child died."""


@dataclass(frozen=True)
class DagRunInfo:
    """What a dag.test() run in a child returns: enough for DagResult, which reads the rest from the DB."""

    dag_id: str
    run_id: str
    state: str


def time_left(default: float = DEFAULT_CHILD_LIMIT) -> float:
    """Seconds a child may run: up to pytest-timeout's alarm (signal method) minus a margin."""
    remaining = signal.getitimer(signal.ITIMER_REAL)[0]
    if remaining <= 0:
        return default
    return max(remaining - min(CHILD_LIMIT_MARGIN, remaining / 4), 0.5)


class _Worker:
    """A child process that runs one function call after another, as the pytest process did
    before (Airflow stays imported and warm), but that can be killed: one hung call costs one
    worker, and the next call starts a new one."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")  # not fork: pytest has the emulator's threads
        self.connection, theirs = context.Pipe()
        self.process = context.Process(target=_worker_main, args=(theirs,), name="test-child-worker")
        self.process.start()
        theirs.close()
        if not self.wait(WORKER_START_LIMIT):
            self.kill()
            raise ChildError(f"The test child worker did not start within {WORKER_START_LIMIT:.0f} s.")
        try:
            self.connection.recv()
        except EOFError:
            self.kill()
            raise ChildError(f"The test child worker died on start (exit code {self.process.exitcode}).") from None

    @property
    def pid(self) -> int:
        return int(self.process.pid or 0)

    def wait(self, timeout: float) -> bool:
        """Whether the worker answered (or died) within ``timeout`` seconds."""
        return bool(multiprocessing.connection.wait([self.connection, self.process.sentinel], timeout))

    def kill(self) -> None:
        """SIGKILL the worker's process group (it leads its own session) and the worker itself."""
        if self.process.is_alive():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
            self.process.kill()
        self.process.join(30)
        self.connection.close()


_worker: _Worker | None = None


def _current_worker() -> _Worker:
    global _worker
    if _worker is None or not _worker.process.is_alive():
        _worker = _Worker()
    return _worker


def _discard_worker() -> None:
    global _worker
    if _worker is not None:
        _worker.kill()
        _worker = None


atexit.register(_discard_worker)  # an idle worker waits for work: multiprocessing's exit join would wait forever


def run_in_child(function: Callable[..., T], *args: Any, limit: float | None = None, what: str = "") -> T:
    """``function(*args)`` in a child process, killed after ``limit`` seconds (default: ``time_left()``).

    The function, its arguments and its result must pickle. The child gets the test's current
    environment and sys.path; its output is replayed into the test's stdout and stderr (so
    capfd sees it) when it ends. At the limit the child dumps its threads' stacks, is killed
    with SIGKILL (SIGTERM may be ignored) and the test fails with the stacks and the end of the
    child's output. An exception in the child raises ``ChildError`` with the child's traceback.
    """
    what = what or f"{function.__module__}.{function.__qualname__}()"
    worker = _current_worker()  # a new worker's start-up is not part of the limit
    limit = time_left() if limit is None else limit
    with tempfile.TemporaryDirectory(prefix="test-child-") as folder:
        worker.connection.send((folder, pickle.dumps((function, args, dict(os.environ), list(sys.path)))))
        started = time.monotonic()
        answered = False
        try:
            answered = worker.wait(limit)
            if not answered:
                _dump_stacks(worker.pid, Path(folder))
        finally:  # also when pytest-timeout or ^C interrupts the wait
            if not answered:
                _discard_worker()
        output = {name: _read_text(Path(folder, name)) for name in _STREAMS}
        sys.stdout.write(output["stdout"])
        sys.stderr.write(output["stderr"])
    if not answered:
        pytest.fail(
            f"{what} did not finish within {limit:.1f} s (ran {time.monotonic() - started:.1f} s): killed the "
            f"child process (pid {worker.pid}) and its process group with SIGKILL.\n"
            f"--- end of its stderr (its threads' stacks at the deadline last) ---\n{_tail(output['stderr'], 80)}\n"
            f"--- end of its stdout ---\n{_tail(output['stdout'], 40)}",
            pytrace=False,
        )
    try:
        outcome, value = worker.connection.recv()
    except EOFError:
        _discard_worker()
        raise ChildError(
            f"{what}: the child process died (exit code {worker.process.exitcode}).\n"
            f"--- end of its stderr ---\n{_tail(output['stderr'], 80)}"
        ) from None
    if outcome == "error":
        raise ChildError(f"{what} raised in the child process:\n{value}")
    return value  # type: ignore[no-any-return]


def _dump_stacks(pid: int, folder: Path) -> None:
    """Ask the child for its threads' stacks (faulthandler: even a thread stuck in C answers)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + STACK_DUMP_GRACE
    while time.monotonic() < deadline and "most recent call first" not in _read_text(folder / "stderr"):
        time.sleep(0.05)


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _worker_main(connection: Any) -> None:
    """The child's loop: own session (killed as a group), dies with pytest, stacks on SIGUSR1."""
    os.setsid()
    _die_with_parent()
    faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=True)
    import airflow.sdk  # noqa: F401 - the slow import, before "ready" and outside any test's limit

    # pytest's filterwarnings do not reach this process: the provider's own deprecations fail here too.
    warnings.filterwarnings("error", category=DeprecationWarning, module=r"airflow_provider_importexport")
    _redirect_output(os.devnull, os.devnull)
    connection.send("ready")
    while True:
        try:
            folder, request = connection.recv()
        except EOFError:
            return
        # Output first: unpickling imports the function's module, which counts against the limit.
        _redirect_output(os.path.join(folder, "stdout"), os.path.join(folder, "stderr"))
        try:
            function, args, environ, path = pickle.loads(request)
            os.environ.clear()
            os.environ.update(environ)
            sys.path[:] = path
            outcome: tuple[str, Any] = ("ok", function(*args))
        except BaseException:
            outcome = ("error", traceback.format_exc())
        _redirect_output(os.devnull, os.devnull)  # background threads' late output goes nowhere
        try:
            connection.send(outcome)
        except Exception as err:  # the result did not pickle
            connection.send(("error", f"its result cannot be sent back: {err!r}"))


def _redirect_output(stdout: str, stderr: str) -> None:
    """Point file descriptors 1 and 2 (and so sys.stdout, sys.stderr and faulthandler) at files."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    for fd, name in ((1, stdout), (2, stderr)):
        handle = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(handle, fd)
        os.close(handle)
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # SIGKILL loses buffers


def _die_with_parent() -> None:
    """Linux: the child gets SIGKILL when pytest dies, so a killed run leaves no hung child behind."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def dag_test_in_child(dag: Any, /, **kwargs: Any) -> DagRunInfo:
    """``dag.test(**kwargs)`` in a child process with a hard time limit (see ``run_in_child``).

    The child imports the DAG's file again and runs the DAG with that ``dag_id`` from it.
    """
    return run_in_child(_dag_test, str(dag.fileloc), dag.dag_id, kwargs, what=f"dag.test() of {dag.dag_id}")


def _dag_test(fileloc: str, dag_id: str, kwargs: dict[str, Any]) -> DagRunInfo:
    from airflow.sdk import DAG

    path = Path(fileloc)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dags = [value for value in vars(module).values() if isinstance(value, DAG) and value.dag_id == dag_id]
    if not dags:
        raise LookupError(
            f"DAG {dag_id!r} is not a module-level name in {fileloc}, so it cannot run in a child process: "
            "mark the test @pytest.mark.dag_in_process."
        )
    run = dags[0].test(**kwargs)
    return DagRunInfo(dag_id=run.dag_id, run_id=run.run_id, state=str(getattr(run.state, "value", run.state)))
