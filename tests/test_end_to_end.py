"""The import DAG through real Airflow components, not dag.test: an API server, a scheduler with
the LocalExecutor, a DAG processor and a triggerer, each its own process, on SQLite."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_importexport.emulator import DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY, ImportExportEmulator
from airflow_provider_importexport.utils.progress import stamp
from tests.airflow_stack import AirflowStack
from tests.helpers import import_manifest

EXAMPLES = Path(__file__).resolve().parents[1] / "dags_examples"
MIGRATION, DOWNSTREAM = "example_importexport_migration", "example_importexport_downstream"
RESTART_DAG = Path(__file__).resolve().parent / "dags" / "importexport_triggerer_restart.py"
RESTART_DAG_ID = "importexport_triggerer_restart"


@pytest.fixture
def importexport_emulator(tmp_path: Path) -> Any:
    devices = tmp_path / "devices"
    with ImportExportEmulator(devices_dir=str(devices), profile="manual") as emulator:
        for bucket in ("data-lake-raw", "data-lake-logs"):
            emulator.admin.create_bucket(bucket)
        yield emulator


@contextmanager
def running_stack(
    tmp_path: Path, dags: Path, emulator: ImportExportEmulator, extra_env: dict[str, str]
) -> Iterator[AirflowStack]:
    """An Airflow stack whose ``aws_default`` is the emulator; stopped however the test ends."""
    connection = {
        "conn_type": "aws",
        "login": DEFAULT_ACCESS_KEY,
        "password": DEFAULT_SECRET_KEY,
        "extra": {"endpoint_url": emulator.endpoint_url, "region_name": "us-east-1"},
    }
    home = tmp_path / "airflow-home"
    home.mkdir()
    airflow = AirflowStack(home, dags, {"AIRFLOW_CONN_AWS_DEFAULT": json.dumps(connection), **extra_env})
    try:
        airflow.start()
        yield airflow
    finally:
        airflow.stop()


@pytest.fixture
def stack(tmp_path: Path, emulator: ImportExportEmulator) -> Iterator[AirflowStack]:
    dags = tmp_path / "dags"
    shutil.copytree(EXAMPLES, dags, ignore=shutil.ignore_patterns("__pycache__"))
    device = tmp_path / "devices" / "disk-e2e"
    for relative, data in {"a/one.txt": b"one", "a/two.txt": b"two" * 100, "three.bin": bytes(range(200))}.items():
        (device / relative).parent.mkdir(parents=True, exist_ok=True)
        (device / relative).write_bytes(data)
    with running_stack(
        tmp_path,
        dags,
        emulator,
        {
            "IMPORTEXPORT_EXAMPLE_DEVICE_PATH": str(device),
            "IMPORTEXPORT_EXAMPLE_DEVICE_ID": "disk-e2e",
            "IMPORTEXPORT_EXAMPLE_POLL_SECONDS": "1",
        },
    ) as airflow:
        yield airflow


def wait_for_dags(stack: AirflowStack, *dag_ids: str) -> None:
    """Wait until the DAG processor has serialized these DAGs (the scheduler runs nothing before)."""
    marks = ", ".join("?" * len(dag_ids))
    stack.wait_for(
        f"the DAG processor to serialize {', '.join(dag_ids)}",
        lambda: (
            len(stack.query(f"SELECT dag_id FROM serialized_dag WHERE dag_id IN ({marks})", *dag_ids)) == len(dag_ids)
        ),
        timeout=180,
    )


def finished_run_state(stack: AirflowStack, dag_id: str, what: str, timeout: float) -> str:
    """Wait for the DAG's run to end; its final state."""
    return str(
        stack.wait_for(
            what,
            lambda: stack.query(
                "SELECT state FROM dag_run WHERE dag_id = ? AND state IN ('success', 'failed')", dag_id
            ),
            timeout,
        )[0][0]
    )


def wait_for_deferred(stack: AirflowStack, task_id: str) -> str:
    """Wait until the task is deferred; return the job id the create task pushed."""
    stack.wait_for(
        f"{task_id} to defer",
        lambda: stack.query(
            "SELECT 1 FROM task_instance WHERE dag_id = ? AND task_id = ? AND state = 'deferred'", MIGRATION, task_id
        ),
        timeout=240,
    )
    return str(
        stack.query(
            "SELECT value FROM xcom WHERE dag_id = ? AND task_id = 'create_job' AND key = 'return_value'", MIGRATION
        )[0][0]
    )


def test_import_dag_with_scheduler_triggerer_and_executor(stack: AirflowStack, emulator: ImportExportEmulator) -> None:
    wait_for_dags(stack, MIGRATION, DOWNSTREAM)
    stack.airflow("dags", "trigger", MIGRATION)
    # The device moves only once each sensor is deferred, so both waits really happen in the triggerer.
    job_id = json.loads(wait_for_deferred(stack, "wait_for_device"))
    emulator.admin.act(job_id, "receive")
    wait_for_deferred(stack, "wait_for_import")
    emulator.admin.act(job_id, "process")
    state = finished_run_state(stack, MIGRATION, "the import DAG run to finish", timeout=300)
    assert state == "success", stack.log_text("scheduler")[-3000:]

    # the sensors really deferred, and the triggerer process ran their serialized triggers
    for task_id, line in (
        ("wait_for_device", f"The device of job {job_id} has arrived"),
        ("wait_for_import", f"Done waiting for completion: job {job_id}"),
    ):
        task_logs = stack.task_logs(MIGRATION, task_id)
        assert "Pausing task as DEFERRED" in task_logs["task"]
        assert line in task_logs["trigger"]
        assert "Trigger fired event" in task_logs["trigger"]

    # ... and resumed with the XCom values
    xcom = dict(stack.query("SELECT key, value FROM xcom WHERE dag_id = ? AND task_id = 'wait_for_import'", MIGRATION))
    assert json.loads(xcom["LogBucket"]) == "data-lake-logs"
    assert json.loads(xcom["LogKey"]) == f"importexport/import-log-{job_id}"
    report = json.loads(
        stack.query(
            "SELECT value FROM xcom WHERE dag_id = ? AND task_id = 'verify_import' AND key = 'return_value'", MIGRATION
        )[0][0]
    )
    assert report["ok"] is True and report["files_checked"] == 3

    # the import's asset event scheduled the downstream DAG
    downstream = finished_run_state(stack, DOWNSTREAM, "the asset-scheduled downstream run", timeout=180)
    assert downstream == "success"
    catalogue = json.loads(
        stack.query(
            "SELECT value FROM xcom WHERE dag_id = ? AND task_id = 'catalogue' AND key = 'return_value'", DOWNSTREAM
        )[0][0]
    )
    assert catalogue == {"jobs": [job_id], "objects": 3}


# --- a triggerer crash in the middle of the waits ---------------------------------------------------


@dataclass(frozen=True)
class Wait:
    """One deferred sensor of the restart test: how it waits, the admin actions that end its wait
    (run only after the restart), and the XCom values it must then push."""

    wait_for: str
    timeout: float
    actions: tuple[tuple[str, dict[str, Any]], ...] = ()
    xcom: dict[str, Any] = field(default_factory=dict)


#: Seconds from the short wait's deferral to its deadline: past the kill, the new triggerer's start
#: and its takeover of the dead one's triggers (TAKEOVER_AFTER) even on a busy machine, since the
#: deadline must fall after the restart; the test waits it out, so no longer than that.
SHORT_TIMEOUT = 50
#: Seconds without a heartbeat after which a triggerer is dead and its triggers go to another.
TAKEOVER_AFTER = 10
RECEIVE = ("receive", {})
PROCESS = ("process", {"outcome": "Complete"})
RETURN = ("return", {"carrier": "UPS", "tracking_number": "1ZRESTART0000001"})
WAITS = {
    "wait_arrival": Wait("arrival", 3600, (RECEIVE,), {"LocationCode": "AtAWS", "ProgressCode": "Pending"}),
    "wait_completion": Wait(
        "completion", 3600, (RECEIVE, PROCESS), {"LocationCode": "AtAWS", "ProgressCode": "Complete"}
    ),
    "wait_return": Wait(
        "return",
        3600,
        (RECEIVE, PROCESS, RETURN),
        {
            "LocationCode": "Returned",
            "ProgressCode": "Complete",
            "Carrier": "UPS",
            "TrackingNumber": "1ZRESTART0000001",
        },
    ),
    "wait_short_timeout": Wait("arrival", SHORT_TIMEOUT),
}
SHORT = "wait_short_timeout"


@pytest.fixture
def restart_stack(tmp_path: Path, emulator: ImportExportEmulator) -> Iterator[AirflowStack]:
    dags = tmp_path / "dags"
    dags.mkdir()
    shutil.copy(RESTART_DAG, dags)
    plan = {task_id: {"wait_for": wait.wait_for, "timeout": wait.timeout} for task_id, wait in WAITS.items()}
    with running_stack(
        tmp_path,
        dags,
        emulator,
        {
            "IMPORTEXPORT_RESTART_WAITS": json.dumps(plan),
            "AIRFLOW__CORE__PARALLELISM": str(len(WAITS)),
            "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": str(TAKEOVER_AFTER),
            # The scheduler's own trigger timeout would end the short wait too (checked every 15 s) and
            # hide a trigger that missed its deadline: only the trigger's deadline may end it here.
            "AIRFLOW__SCHEDULER__TRIGGER_TIMEOUT_CHECK_INTERVAL": "3600",
        },
    ) as airflow:
        yield airflow


@dataclass(frozen=True)
class Deferral:
    """A sensor task's row joined with its trigger's, from the metadata DB."""

    state: str
    try_number: int
    trigger_id: int | None
    triggerer_id: int | None
    deadline: str | None


def deferrals(stack: AirflowStack) -> dict[str, Deferral]:
    rows = stack.query(
        "SELECT ti.task_id, ti.state, ti.try_number, t.id, t.triggerer_id, t.kwargs FROM task_instance ti "
        "LEFT JOIN trigger t ON t.id = ti.trigger_id WHERE ti.dag_id = ?",
        RESTART_DAG_ID,
    )
    return {
        task_id: Deferral(
            str(state),
            int(tries),
            trigger_id,
            triggerer_id,
            stack.trigger_kwargs(kwargs)["deadline"] if kwargs else None,
        )
        for task_id, state, tries, trigger_id, triggerer_id, kwargs in rows
    }


def wait_for_waits_in(
    stack: AirflowStack, what: str, triggerer: Callable[[int], bool], timeout: float
) -> dict[str, Deferral]:
    """Wait until every sensor is deferred and its trigger is polling in a triggerer that
    ``triggerer(job_id)`` accepts (its first GetStatus logged in that triggerer's trigger log)."""

    def check() -> dict[str, Deferral] | None:
        found = deferrals(stack)
        if set(found) != set(WAITS):
            return None
        for task_id, deferral in found.items():
            if deferral.state != "deferred" or deferral.triggerer_id is None or not triggerer(deferral.triggerer_id):
                return None
            if "Waiting for" not in stack.trigger_logs(RESTART_DAG_ID, task_id).get(deferral.triggerer_id, ""):
                return None
        return found

    try:
        return stack.wait_for(what, check, timeout, interval=0.5)
    except TimeoutError:
        states = {task_id: (d.state, d.triggerer_id) for task_id, d in deferrals(stack).items()}
        raise AssertionError(f"timed out waiting for {what}; (state, triggerer) by task: {states}") from None


def fired_events(log: str) -> list[dict[str, Any]]:
    """The 'Trigger fired event' records of a trigger log (JSON lines)."""
    events = []
    for line in log.splitlines():
        if "Trigger fired event" in line:
            events.append(json.loads(line))
    return events


def utc(text: str) -> dt.datetime:
    """A time from the metadata DB or a log (naive means UTC)."""
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def test_triggerer_crash_loses_no_wait(
    restart_stack: AirflowStack, emulator: ImportExportEmulator, client: Any
) -> None:
    """SIGKILL the triggerer (and its trigger runner) while four sensors wait in it; a new one must
    take every wait over and end it exactly once: three when their jobs move (only after the
    restart, so only the new triggerer can see it) and one at its first deadline, not a later one."""
    stack = restart_stack
    jobs = {
        task_id: client.create_job(
            JobType="Import",
            Manifest=import_manifest("data-lake-raw", device_id=f"disk-restart-{n}").to_yaml(),
            ValidateOnly=False,
        )["JobId"]
        for n, task_id in enumerate(WAITS)
    }
    wait_for_dags(stack, RESTART_DAG_ID)
    stack.airflow("dags", "trigger", RESTART_DAG_ID, "--conf", json.dumps({"jobs": jobs}))

    before = wait_for_waits_in(stack, "every wait to poll in the first triggerer", lambda _: True, timeout=180)
    (first,) = {d.triggerer_id for d in before.values()}
    assert all(d.deadline for d in before.values()), before
    short_deadline = utc(str(before[SHORT].deadline))

    killed = stack.kill("triggerer")
    killed_at = time.monotonic()
    assert len(killed) >= 2, f"the triggerer and its trigger runner should both die, killed only {killed}"
    stack.start_component("triggerer", log_name="triggerer-2")
    after = wait_for_waits_in(
        stack, "the new triggerer to take over every wait", lambda job_id: job_id != first, timeout=120
    )
    took = time.monotonic() - killed_at
    (second,) = {d.triggerer_id for d in after.values()}
    if dt.datetime.now(dt.UTC) >= short_deadline:
        pytest.fail(
            f"inconclusive: the takeover took {took:.0f} s, past the short wait's deadline; raise SHORT_TIMEOUT"
        )

    # The same triggers, with the same absolute deadlines, in the new triggerer.
    for task_id, deferral in after.items():
        assert deferral.trigger_id == before[task_id].trigger_id, f"{task_id} deferred again"
        assert deferral.deadline == before[task_id].deadline, f"{task_id}'s deadline was reset"

    # Only now can the waits end, and only through the new triggerer.
    for task_id, wait in WAITS.items():
        for action, options in wait.actions:
            emulator.admin.act(jobs[task_id], action, **options)
    left = (short_deadline - dt.datetime.now(dt.UTC)).total_seconds()
    finished_run_state(stack, RESTART_DAG_ID, "the run to finish", timeout=max(left, 0) + 120)

    tasks = {
        task_id: (state, int(tries), utc(end))
        for task_id, state, tries, end in stack.query(
            "SELECT task_id, state, try_number, end_date FROM task_instance WHERE dag_id = ?", RESTART_DAG_ID
        )
    }
    assert {task_id: state for task_id, (state, _, _) in tasks.items()} == {
        **{task_id: "success" for task_id in WAITS if task_id != SHORT},
        SHORT: "failed",
    }, {task_id: stack.task_logs(RESTART_DAG_ID, task_id)["task"][-2000:] for task_id in tasks}
    # one try each, never retried or cleared, each deferred once and resumed once
    assert {task_id: tries for task_id, (_, tries, _) in tasks.items()} == dict.fromkeys(WAITS, 1)
    assert stack.query("SELECT count(*) FROM task_instance_history WHERE dag_id = ?", RESTART_DAG_ID) == [(0,)]
    for task_id in WAITS:
        assert stack.task_logs(RESTART_DAG_ID, task_id)["task"].count("Pausing task as DEFERRED") == 1, task_id
        logs = stack.trigger_logs(RESTART_DAG_ID, task_id)
        assert set(logs) == {first, second}, f"{task_id}'s trigger ran in triggerers {sorted(logs)}"
        assert "Waiting for" in logs[first] and not fired_events(logs[first]), f"{task_id} fired before the kill"
        assert len(fired_events(logs[second])) == 1, f"{task_id}'s trigger fired {fired_events(logs[second])}"

    for task_id, wait in WAITS.items():
        if task_id == SHORT:
            continue
        xcom = {key: json.loads(value) if isinstance(value, str) else value for key, value in stack.query(
            "SELECT key, value FROM xcom WHERE dag_id = ? AND task_id = ?", RESTART_DAG_ID, task_id
        )}  # fmt: skip
        assert xcom["JobId"] == jobs[task_id]
        assert {key: xcom.get(key) for key in wait.xcom} == wait.xcom, task_id
        assert xcom["return_value"]["JobId"] == jobs[task_id]

    # The short wait ended at the deadline set when it first deferred, not one counted from the restart.
    (event,) = fired_events(stack.trigger_logs(RESTART_DAG_ID, SHORT)[second])
    fired_late = (utc(event["timestamp"]) - short_deadline).total_seconds()
    assert 0 <= fired_late < 5, f"the short wait fired {fired_late:.1f} s after its deadline"
    assert "Gave up waiting for arrival" in event["result"]
    assert f"deadline {stamp(short_deadline)} passed" in event["result"]  # the first deferral's deadline
    ended_late = (tasks[SHORT][2] - short_deadline).total_seconds()
    assert 0 <= ended_late < 60, f"the short wait's task ended {ended_late:.1f} s after its deadline"
    assert "AirflowSensorTimeout" in stack.task_logs(RESTART_DAG_ID, SHORT)["task"]
    print(
        f"killed {killed}; takeover {took:.1f} s; "
        f"the short wait fired {fired_late:.2f} s and ended {ended_late:.1f} s after its deadline"
    )
