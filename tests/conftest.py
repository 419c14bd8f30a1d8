"""Shared test set-up: fake credentials only, a throwaway AIRFLOW_HOME, the emulator on 127.0.0.1."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# Before anything imports boto3 or Airflow: no real credentials, config or AWS endpoint can leak in.
_HOME = os.environ.get("IMPORTEXPORT_TESTS_HOME") or tempfile.mkdtemp(prefix="importexport-tests-")
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        "IMPORTEXPORT_TESTS_HOME": _HOME,
        "AIRFLOW_HOME": _HOME,
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": os.path.join(_HOME, "dags"),
    }
)
os.environ.pop("AWS_SESSION_TOKEN", None)
os.environ.pop("AWS_PROFILE", None)

import pytest  # noqa: E402

from airflow_provider_importexport.emulator import (  # noqa: E402
    ImportExportEmulator,
)
from tests.helpers import FAST_RETRIES, connection_json  # noqa: E402


@pytest.fixture
def emulator(importexport_emulator: ImportExportEmulator) -> ImportExportEmulator:
    return importexport_emulator


@pytest.fixture
def aws_conn(emulator: ImportExportEmulator, monkeypatch: pytest.MonkeyPatch) -> str:
    """``aws_default`` pointing at the emulator, with fast retries."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_DEFAULT",
        connection_json(emulator.endpoint_url, service_config={"importexport": {"retry_policy": FAST_RETRIES}}),
    )
    return "aws_default"


@pytest.fixture
def s3(emulator: ImportExportEmulator) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=emulator.endpoint_url, region_name="us-east-1")


@pytest.fixture
def client(emulator: ImportExportEmulator) -> Any:
    import boto3

    return boto3.client("importexport", endpoint_url=emulator.endpoint_url, region_name="us-east-1")


_bucket_counter = iter(range(1_000_000))


@pytest.fixture
def make_bucket(emulator: ImportExportEmulator) -> Callable[..., str]:
    """Create a uniquely named bucket (moto's S3 is shared by every emulator in the process)."""

    def make(prefix: str = "bucket", region: str = "us-east-1", access_key: str | None = None) -> str:
        name = f"{prefix}-{os.getpid()}-{next(_bucket_counter)}"
        emulator.admin.create_bucket(name, region=region, access_key=access_key)
        return name

    return make


@pytest.fixture
def bucket(make_bucket: Callable[..., str]) -> str:
    return make_bucket()


@pytest.fixture
def devices(tmp_path: Path) -> Path:
    """A folder of devices: each sub-folder, named by a manifest's deviceId, is one device."""
    path = tmp_path / "devices"
    path.mkdir()
    return path


@pytest.fixture
def emulator_with_devices(devices: Path) -> Iterator[ImportExportEmulator]:
    with ImportExportEmulator(devices_dir=str(devices)) as emulator:
        yield emulator


@pytest.fixture
def device_dir(tmp_path: Path) -> Path:
    path = tmp_path / "device"
    path.mkdir()
    return path


# --- real Airflow task execution ------------------------------------------------------------------

DAGS_FOLDER = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """A migrated metadata DB (SQLite in the session's AIRFLOW_HOME)."""
    import subprocess
    import sys

    DAGS_FOLDER.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True, timeout=300)


class DagResult:
    """What a dag.test() run left in the metadata DB."""

    def __init__(self, dag_run: Any) -> None:
        self.dag_run = dag_run
        self.run_id = dag_run.run_id
        self.dag_id = dag_run.dag_id

    def ti(self, task_id: str) -> Any:
        from airflow.models.taskinstance import TaskInstance
        from airflow.settings import Session
        from sqlalchemy import select

        with Session() as session:
            return session.scalars(
                select(TaskInstance).where(
                    TaskInstance.dag_id == self.dag_id,
                    TaskInstance.run_id == self.run_id,
                    TaskInstance.task_id == task_id,
                )
            ).one()

    def state(self, task_id: str) -> str:
        return str(self.ti(task_id).state)

    def xcom(self, task_id: str, key: str = "return_value") -> Any:
        from airflow.models.xcom import XComModel
        from airflow.settings import Session

        with Session() as session:
            row = session.scalars(
                XComModel.get_many(run_id=self.run_id, key=key, task_ids=task_id, dag_ids=self.dag_id)
            ).first()
            return None if row is None else XComModel.deserialize_value(row)

    def xcoms(self, task_id: str) -> dict[str, Any]:
        from airflow.models.xcom import XComModel
        from airflow.settings import Session

        with Session() as session:
            rows = session.scalars(XComModel.get_many(run_id=self.run_id, task_ids=task_id, dag_ids=self.dag_id)).all()
            return {row.key: XComModel.deserialize_value(row) for row in rows}

    def rendered(self, task_id: str) -> dict[str, Any]:
        from airflow.models.renderedtifields import RenderedTaskInstanceFields

        return RenderedTaskInstanceFields.get_templated_fields(self.ti(task_id)) or {}


_dag_counter = iter(range(1_000_000))


def load_dag(path: Path) -> Any:
    """Import a DAG file from the dags folder the way the DAG processor would."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


@pytest.fixture
def run_dag(airflow_db: None, aws_conn: str) -> Callable[..., DagResult]:
    """Write a DAG file into the dags folder and run it with ``dag.test()`` (triggers run inline)."""
    import string

    def run(source: str, dag_id: str | None = None, **values: Any) -> DagResult:
        dag_id = dag_id or f"test_dag_{os.getpid()}_{next(_dag_counter)}"
        text = string.Template(source).substitute(dag_id=dag_id, **{k: str(v) for k, v in values.items()})
        path = DAGS_FOLDER / f"{dag_id}.py"
        path.write_text(text)
        return DagResult(load_dag(path).test())

    return run


@pytest.fixture(autouse=True)
def _dag_test_in_child(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every ``dag.test()`` of a test that has the metadata DB runs in a child process that is
    killed at the test's deadline, so a hung DAG fails its test instead of hanging the run.

    In the pytest process it cannot be stopped: Airflow's DAG importer disarms pytest-timeout's
    SIGALRM and the task runner leaves SIGTERM ignored (see ``tests.helpers.run_in_child``).
    ``@pytest.mark.dag_in_process`` keeps a test's DAG runs in-process, without that limit.
    """
    if "airflow_db" not in request.fixturenames or request.node.get_closest_marker("dag_in_process"):
        return
    from airflow.sdk import DAG

    from tests.helpers import dag_test_in_child

    monkeypatch.setattr(DAG, "test", dag_test_in_child)


# --- fast feedback: `make test-fast` runs `pytest -m "not slow"` ---------------------------------
#
# A test is `slow` and `integration` when it runs real Airflow task execution (it uses one of
# AIRFLOW_FIXTURES: the metadata DB and dag.test() in a child), and gets the markers SLOW_TESTS
# gives it; of a parametrized test, the cases after the first FAST_CASES are `slow`. A test
# file may also mark its own tests; nothing here removes a marker.

#: Fixtures that mean a whole DAG run or a migrated metadata DB.
AIRFLOW_FIXTURES = frozenset({"airflow_db", "run_dag"})
#: Node id prefixes (a file, or file::test) and their markers: tests that start processes (an
#: Airflow stack, the airflow CLI, the emulator's command line, a test child) or take long.
SLOW_TESTS: dict[str, tuple[str, ...]] = {
    "tests/test_end_to_end.py": ("slow", "integration"),  # API server, scheduler, DAG processor, triggerer
    "tests/test_layers.py": ("slow", "integration"),  # the emulator in a process that cannot import Airflow
    "tests/test_openlineage_optional.py": ("slow", "integration"),  # a Python without the extra
    "tests/test_provider.py::test_airflow_lists_the_provider": ("slow", "integration"),
    "tests/test_trigger.py::test_provider_lists_the_trigger": ("slow", "integration"),
    "tests/test_emulator_hardening.py::test_kill_9_during_saves_leaves_a_whole_state": ("slow", "integration"),
    "tests/test_emulator_hardening.py::test_command_line_refuses_": ("slow", "integration"),
    "tests/test_emulator_protocol.py::test_command_line_start": ("slow", "integration"),
    "tests/test_emulator_protocol.py::test_bad_account_option_is_explained": ("slow", "integration"),
    "tests/test_emulator_protocol.py::test_aws_cli": ("slow", "integration"),
    "tests/test_emulator_security.py::test_cli_": ("slow", "integration"),
    "tests/test_emulator_security.py::test_spawned_emulator_and_admin_command_use_the_token": ("slow", "integration"),
    "tests/test_files.py::test_a_hung_child_is_killed_and_fails_the_test": ("slow",),
    "tests/test_files.py::test_a_child_returns_raises_and_prints_into_the_test": ("slow",),
    # Scale: thousands of waits or jobs, bounds under load.
    "tests/test_trigger_scale.py": ("slow",),
    "tests/test_emulator_scale.py": ("slow",),
    # Real waits of several seconds (polls, backoff, read timeouts, spread first polls).
    "tests/test_trigger.py::test_first_polls_spread_over_the_interval": ("slow",),
    "tests/test_trigger.py::test_survives_transient_faults": ("slow",),
    "tests/test_trigger.py::test_persistent_faults_are_bounded": ("slow",),
    "tests/test_trigger.py::test_missing_connection_is_a_clear_error": ("slow",),
    "tests/test_lost_answers.py::test_read_timeouts_become_the_providers_error": ("slow",),
    "tests/test_progress_week.py::test_a_week_long_wait_reads_as_a_short_story": ("slow",),
    # Property tests with hundreds of generated examples.
    "tests/test_manifest_hostile.py::test_no_secret_survives_masking_in_any_style": ("slow",),
}
#: The quick loop runs this many cases of each parametrized test (the first ones); make test runs all.
FAST_CASES = 1


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers this file assigns, unless pyproject.toml already does."""
    registered = {line.split(":", 1)[0].strip() for line in config.getini("markers")}
    descriptions = {
        "slow": "a whole DAG run, an Airflow stack or a process started (make test-fast skips these)",
        "integration": "needs a real Airflow (metadata DB, task runner, CLI) or the emulator as its own process",
    }
    for name, description in descriptions.items():
        if name not in registered:
            config.addinivalue_line("markers", f"{name}: {description}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Add the `slow` and `integration` markers by the rules above (never removes a marker)."""
    cases: dict[str, int] = {}
    for item in items:
        names: set[str] = set()
        if hasattr(item, "callspec"):  # a parametrized case: past the first FAST_CASES, slow
            function = item.nodeid.split("[", 1)[0]
            cases[function] = cases.get(function, 0) + 1
            if cases[function] > FAST_CASES:
                names.add("slow")
        if AIRFLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            names.update(("slow", "integration"))
        for prefix, markers in SLOW_TESTS.items():
            if item.nodeid.startswith(prefix):
                names.update(markers)
        for name in sorted(names - {mark.name for mark in item.iter_markers()}):
            item.add_marker(name)
