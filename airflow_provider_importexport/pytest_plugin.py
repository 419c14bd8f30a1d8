"""pytest fixtures and helpers for testing DAGs and code against the emulator.

Enable with ``pytest -p airflow_provider_importexport.pytest_plugin`` or by listing
it in ``pytest_plugins`` (``pip install "airflow-provider-importexport[testing]"`` brings
what it needs). Fixtures set fake credentials in the environment, never real ones.
Nothing is imported until a fixture is used, so a ``conftest.py`` can still set
``AIRFLOW_HOME`` and friends before Airflow loads its configuration.

- ``importexport_airflow_db``: a migrated Airflow metadata DB for ``dag.test()`` (set
  ``AIRFLOW_HOME`` to a temporary folder first).
- ``importexport_emulator``: a fresh emulator per test; ``AWS_*`` and
  ``AIRFLOW_CONN_AWS_DEFAULT`` point at it. Choose its settings with the marker
  ``@pytest.mark.importexport_emulator(profile="fast", ...)``.
- ``importexport_devices``: ask for it and the emulator reads devices from this fresh folder
  (``importexport_devices / "disk-001"`` is the device ``disk-001``).
- ``drive_lifecycle(admin, ...)``: moves a job through its lifecycle in a background thread
  while ``dag.test()`` blocks on a sensor.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from airflow_provider_importexport.emulator import EmulatorAdmin, ImportExportEmulator

#: The admin actions in lifecycle order; ``drive_lifecycle`` takes any of them, in any order.
LIFECYCLE = ("ship", "receive", "process", "return")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "importexport_emulator(**settings): settings for the importexport_emulator fixture, e.g. "
        "profile='manual' (the default: jobs move only through admin.act or drive_lifecycle), 'fast' or 'demo', "
        "devices_dir=..., daily_create_quota=500 (ImportExportEmulator's keyword arguments)",
    )


def connection_uri(emulator: ImportExportEmulator, **extra: Any) -> str:
    """An Airflow AWS connection (JSON) to the emulator's default account, for ``AIRFLOW_CONN_<ID>``."""
    from airflow_provider_importexport.emulator import DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY

    return json.dumps(
        {
            "conn_type": "aws",
            "login": DEFAULT_ACCESS_KEY,
            "password": DEFAULT_SECRET_KEY,
            "extra": {"endpoint_url": emulator.endpoint_url, "region_name": "us-east-1", **extra},
        }
    )


@pytest.fixture(scope="session")
def importexport_airflow_db() -> None:
    """A migrated Airflow metadata database for ``dag.test()``: ``airflow db migrate``, once per session.

    It migrates the database ``AIRFLOW_HOME``'s configuration names, so set ``AIRFLOW_HOME`` to a
    temporary folder in ``conftest.py`` (before Airflow is imported); without it this fails.
    """
    import os
    import subprocess
    import sys

    if not os.environ.get("AIRFLOW_HOME"):
        pytest.fail("importexport_airflow_db: set AIRFLOW_HOME to a temporary folder in conftest.py first", False)
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True, timeout=600)


@pytest.fixture
def importexport_devices(tmp_path: Path) -> Path:
    """A fresh devices folder the ``importexport_emulator`` reads devices from (one sub-folder per deviceId)."""
    path = tmp_path / "importexport-devices"
    path.mkdir()
    return path


@pytest.fixture
def importexport_emulator(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ImportExportEmulator]:
    """A fresh emulator (manual lifecycle) on a free 127.0.0.1 port.

    ``AWS_*`` hold its default account's keys and ``AIRFLOW_CONN_AWS_DEFAULT`` points at it,
    so hooks, operators, sensors and ``dag.test()`` reach it with no connection set-up.
    Settings come from the test's ``@pytest.mark.importexport_emulator(...)`` marker, if any;
    a test that asks for ``importexport_devices`` gets an emulator reading devices from it.
    """
    from airflow_provider_importexport.emulator import DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY, ImportExportEmulator

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", DEFAULT_ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", DEFAULT_SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    marker = request.node.get_closest_marker("importexport_emulator")
    settings = dict(marker.kwargs) if marker else {}
    if "importexport_devices" in request.fixturenames and "devices_dir" not in settings:
        settings["devices_dir"] = str(request.getfixturevalue("importexport_devices"))
    with ImportExportEmulator(**settings) as emulator:
        monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", connection_uri(emulator))
        yield emulator


JobChoice = str | Callable[[dict[str, Any]], bool] | None
#: An admin action, or an action with its options: ``("process", {"outcome": "SuccessWithErrors", "error_count": 2})``.
Step = str | tuple[str, dict[str, Any]]


class LifecycleDriver(threading.Thread):
    """Takes a job through admin actions in the background; see :func:`drive_lifecycle`."""

    def __init__(
        self, admin: EmulatorAdmin, job: JobChoice, steps: Sequence[Step], every: float, reads_between: int
    ) -> None:
        super().__init__(name="importexport-lifecycle-driver", daemon=True)
        self.admin, self.job, self.steps = admin, job, tuple(steps)
        self.every, self.reads_between = every, reads_between
        self.job_id: str | None = None
        #: the steps taken so far, in order
        self.done: list[str] = []
        self.error: BaseException | None = None
        self._halt = threading.Event()
        # Taken here, in the caller's thread, before the block runs: under load the thread may
        # start only after the DAG (or the test) created the job it is meant to drive.
        self._existing = {job["JobId"] for job in admin.jobs()} if job is None else set()

    def stop(self) -> None:
        self._halt.set()

    def finish(self, timeout: float = 60) -> list[str]:
        """Block until every step was taken or the driver failed (for tests that drive a job
        without a DAG); the steps taken."""
        self.join(timeout)
        if self.error is not None:
            raise self.error
        return self.done

    def run(self) -> None:
        try:
            reads = self._wait_for_job()
            for step in self.steps:
                action, options = (step, {}) if isinstance(step, str) else step
                if self._halt.wait(self.every) or not self._await_reads(reads):
                    return
                self.admin.act(self._job_id, action, **options)
                self.done.append(action)
                reads = self._reads()
        except BaseException as error:  # handed to the test when the driver stops
            self.error = error

    @property
    def _job_id(self) -> str:
        assert self.job_id is not None
        return self.job_id

    def _wait_for_job(self) -> int:
        """The chosen job's status reads once it exists (the DAG under test may create it)."""
        while not self._halt.is_set():
            for job in reversed(self.admin.jobs()):  # newest first
                if self._chosen(job, self._existing):
                    self.job_id = str(job["JobId"])
                    return int(job.get("StatusReads", 0))
            self._halt.wait(min(self.every, 0.1))
        return 0

    def _chosen(self, job: dict[str, Any], existing: set[str]) -> bool:
        if self.job is None:
            return job["JobId"] not in existing  # created after the driver started: the DAG's
        if isinstance(self.job, str):
            return bool(job["JobId"] == self.job)
        return bool(self.job(job))

    def _reads(self) -> int:
        return int(self.admin.job(self._job_id).get("StatusReads", 0))

    def _await_reads(self, since: int) -> bool:
        """Whether someone (the sensor) read the job's status ``reads_between`` times since the last step."""
        while not self._halt.is_set():
            if self._reads() >= since + self.reads_between:
                return True
            self._halt.wait(min(self.every, 0.1))
        return False


class drive_lifecycle:  # used like a function: ``with drive_lifecycle(admin) as driver:``
    """Move a job through its lifecycle in a background thread while the test blocks on ``dag.test()``.

    ``job`` is a JobId, a predicate over the entries of ``admin.jobs()``, or None for the
    first job created after the driver started (the one the DAG under test creates). Each
    step (``ship``, ``receive``, ``process``, ``return``, or any admin action, alone or with its
    options: ``("process", {"outcome": "Complete"})``) comes ``every``
    seconds after the previous one and after the job's status was read ``reads_between``
    times since (so a sensor saw every state). On leaving the ``with`` block the driver stops
    and joins; an error in it (a refused step) is raised there::

        with drive_lifecycle(importexport_emulator.admin, steps=("receive", "process")) as driver:
            run = dag.test()
        assert driver.done == ["receive", "process"]
    """

    def __init__(
        self,
        admin: EmulatorAdmin,
        job: JobChoice = None,
        *,
        steps: Sequence[Step] = LIFECYCLE,
        every: float = 0.5,
        reads_between: int = 1,
    ) -> None:
        self.driver = LifecycleDriver(admin, job, steps, every, reads_between)

    def __enter__(self) -> LifecycleDriver:
        self.driver.start()
        return self.driver

    def __exit__(self, *exc_info: object) -> None:
        self.driver.stop()
        self.driver.join(timeout=30)
        if self.driver.error is not None and exc_info[0] is None:
            raise self.driver.error
