"""Two triggerers on one PostgreSQL metadata DB; SIGKILL one while it holds deferred sensor waits.

Scale-out is Airflow's own machinery: triggerers share the trigger table, and a triggerer that
stops heartbeating loses its triggers to a live one. This test runs that for real — a throwaway
PostgreSQL cluster (tests/postgres.py), an API server, a scheduler (LocalExecutor), a DAG
processor and two triggerers — with a mapped deferrable sensor over N jobs of the emulator: the
waits spread over both triggerers, one is killed, its triggers move to the other, and every wait
ends exactly once: no task tried twice, no trigger fired twice, no job polled by two triggers.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_importexport.emulator import ImportExportEmulator
from tests.helpers import connection_json, import_manifest
from tests.postgres import PostgresCluster, PostgresStack, postgres_bin

pytestmark = [
    pytest.mark.slow,
    pytest.mark.integration,
    pytest.mark.skipif(
        postgres_bin() is None, reason="PostgreSQL's initdb and pg_ctl not found (Debian: apt-get install postgresql)"
    ),
]

DAG_FILE = Path(__file__).resolve().parent / "dags" / "importexport_mapped_waits.py"
DAG_ID = "importexport_mapped_waits"
#: Deferred waits, and the share the first triggerer may take (its --capacity), so both hold some.
WAITS = 20
FIRST_CAPACITY = WAITS // 2
#: The sensors' poll interval (s): a job polled twice within half of it had two pollers.
POLL_SECONDS = 2.0
#: Seconds without a heartbeat after which a triggerer is dead and its triggers go to another.
TAKEOVER_AFTER = 10
#: Polls to watch after the takeover before the jobs move: long enough that a second poller of a
#: job would show in the count.
WATCHED_POLLS = 5


@pytest.fixture
def stack(tmp_path: Path, emulator: ImportExportEmulator) -> Iterator[PostgresStack]:
    bin_dir = postgres_bin()
    assert bin_dir is not None
    env = {
        "AIRFLOW_CONN_AWS_DEFAULT": connection_json(emulator.endpoint_url),
        "IMPORTEXPORT_MAPPED_POLL_SECONDS": str(POLL_SECONDS),
        "AIRFLOW__CORE__PARALLELISM": "6",
        "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": str(TAKEOVER_AFTER),
        "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
    }
    with PostgresCluster(bin_dir) as db:
        airflow = PostgresStack.in_folder(tmp_path, [DAG_FILE], db, env)
        try:
            airflow.start()
            airflow.start_triggerer("triggerer-1", capacity=FIRST_CAPACITY)
            airflow.start_triggerer("triggerer-2", capacity=WAITS)
            yield airflow
        finally:
            airflow.stop()


@dataclass(frozen=True)
class Placement:
    """A sensor's row joined with its trigger's."""

    state: str
    tries: int
    trigger_id: int | None
    triggerer_id: int | None


def placements(stack: PostgresStack) -> dict[int, Placement]:
    rows = stack.query(
        "SELECT ti.map_index, ti.state, ti.try_number, t.id, t.triggerer_id FROM task_instance ti "
        "LEFT JOIN trigger t ON t.id = ti.trigger_id WHERE ti.dag_id = %s AND ti.task_id = 'wait'",
        DAG_ID,
    )
    return {
        index: Placement(str(state), int(tries), trigger, triggerer) for index, state, tries, trigger, triggerer in rows
    }


def polls(emulator: ImportExportEmulator, job_id: str) -> list[float]:
    """When the emulator answered each GetStatus of a job (its own records)."""
    return sorted(float(r["at"]) for r in emulator.admin.requests(action="GetStatus", job_id=job_id))


def all_polling(
    stack: PostgresStack, emulator: ImportExportEmulator, jobs: list[str], in_triggerer: set[int], since: float = 0.0
) -> dict[int, Placement] | None:
    """Every wait deferred with its trigger in one of ``in_triggerer``, polled since ``since`` and its
    progress line (naming the job) in that triggerer's log for it; else None."""
    found = placements(stack)
    if len(found) != len(jobs):
        return None
    logs = stack.mapped_trigger_logs(DAG_ID, "wait")
    for index, placement in found.items():
        if placement.state != "deferred" or placement.triggerer_id not in in_triggerer:
            return None
        if not any(at > since for at in polls(emulator, jobs[index])):
            return None
        if jobs[index] not in logs.get((index, placement.triggerer_id), ""):
            return None
    return found


def at_most_polls(answered: list[float]) -> float:
    """The most polls one poller makes in the time these span: every 0.9 to 1 interval, plus slack
    for the emulator's answer times (when it finished, not when the poll was sent)."""
    return (answered[-1] - answered[0]) / (0.9 * POLL_SECONDS) + 2 if answered else 0


def fired_events(log: str) -> int:
    return sum("Trigger fired event" in line for line in log.splitlines())


def test_killed_triggerers_waits_move_to_the_other_and_each_ends_once(
    stack: PostgresStack, emulator: ImportExportEmulator, client: Any, bucket: str
) -> None:
    first, second = stack.triggerers["triggerer-1"], stack.triggerers["triggerer-2"]
    jobs = [
        client.create_job(
            JobType="Import", Manifest=import_manifest(bucket, device_id=f"disk-{n}").to_yaml(), ValidateOnly=False
        )["JobId"]
        for n in range(WAITS)
    ]
    parsed = "SELECT 1 FROM serialized_dag WHERE dag_id = %s"
    stack.wait_for("the DAG to be parsed", lambda: stack.query(parsed, DAG_ID), timeout=180)
    stack.airflow("dags", "trigger", DAG_ID, "--conf", json.dumps({"jobs": jobs}))

    before = stack.wait_for(
        "every wait to defer and poll", lambda: all_polling(stack, emulator, jobs, {first, second}), timeout=300
    )
    held = Counter(p.triggerer_id for p in before.values())
    assert held[first] and held[second], f"the waits should spread over both triggerers: {held}"

    killed = stack.kill("triggerer-1")
    killed_at = time.time()
    assert len(killed) >= 2, f"the triggerer and its trigger runner should both die, killed only {killed}"
    after = stack.wait_for(
        "the other triggerer to take over",
        lambda: all_polling(stack, emulator, jobs, {second}, since=killed_at),
        timeout=120,
    )
    # The same triggers moved: none re-deferred, none recreated.
    assert {i: p.trigger_id for i, p in after.items()} == {i: p.trigger_id for i, p in before.items()}

    time.sleep(WATCHED_POLLS * POLL_SECONDS)
    for job in jobs:
        emulator.admin.act(job, "receive")
        emulator.admin.act(job, "process", outcome="Complete")
    state = stack.wait_for(
        "the run to finish",
        lambda: stack.query("SELECT state FROM dag_run WHERE dag_id = %s AND state IN ('success', 'failed')", DAG_ID),
        timeout=240,
    )[0][0]

    final = placements(stack)
    assert state == "success" and {p.state for p in final.values()} == {"success"}, final
    assert {p.tries for p in final.values()} == {1}, "a wait was retried"
    assert stack.query("SELECT count(*) FROM task_instance_history WHERE dag_id = %s", DAG_ID) == [(0,)]
    pushes = stack.query(
        "SELECT map_index, count(*) FROM xcom WHERE dag_id = %s AND task_id = 'wait' AND key = 'return_value' "
        "GROUP BY map_index",
        DAG_ID,
    )
    assert dict(pushes) == dict.fromkeys(range(WAITS), 1)

    logs = stack.mapped_trigger_logs(DAG_ID, "wait")
    for index, placement in before.items():
        fired = {triggerer: fired_events(text) for (i, triggerer), text in logs.items() if i == index}
        assert fired.get(second) == 1 and sum(fired.values()) == 1, f"wait {index} fired {fired}"
        if placement.triggerer_id == first:
            assert jobs[index] in logs.get((index, first), ""), f"wait {index} never polled in the first triggerer"

    # One poller per job, before the kill and after it: a second one would double the count.
    for job in jobs:
        answered = polls(emulator, job)
        for part in ([at for at in answered if at <= killed_at], [at for at in answered if at > killed_at]):
            assert len(part) <= at_most_polls(part), f"job {job} had more than one poller: {part}"
