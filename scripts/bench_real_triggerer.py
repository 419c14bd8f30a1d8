"""A real ``airflow triggerer`` holding N deferred sensor waits (#12.3): its memory, and whether its loop blocked.

An Airflow stack on a throwaway PostgreSQL metadata DB (the tests' own set-up: tests/postgres.py on
tests/airflow_stack.py): API server, scheduler (LocalExecutor), DAG processor and one triggerer;
the emulator in its own process with N jobs that never move; a mapped deferrable
ImportExportJobSensor over them (tests/dags/importexport_mapped_waits.py). Once every wait is
deferred and has polled, it watches a window and reports: the triggerer's RSS (the supervisor and
its trigger runner, sampled every 2 s), GetStatus calls per second, and every "async thread was
blocked" warning in the triggerer's log, split into those while triggers were still arriving and
those after, each with the machine's load average then (on a busy machine the OS stops a loop
too). Run by ``scripts/bench_triggers.py --real-triggerer [--real-waits N]``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil
from script_env import fake_aws_environment

ROOT = Path(__file__).resolve().parents[1]
DAG_FILE = ROOT / "tests" / "dags" / "importexport_mapped_waits.py"
DAG_ID = "importexport_mapped_waits"
BLOCKED = re.compile(r"async thread was blocked for ([0-9.]+) seconds")


class RssSampler(threading.Thread):
    """The RSS of a process and its children (the triggerer and its trigger runner), every 2 s."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.samples: list[tuple[float, float, float]] = []  # (time, total MiB, largest process MiB)
        self.loads: list[tuple[float, float]] = []  # (time, the machine's 1-minute load average)
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(2.0):
            try:
                root = psutil.Process(self.pid)
                sizes = [p.memory_info().rss / 2**20 for p in [root, *root.children(recursive=True)]]
            except psutil.Error:
                continue
            self.samples.append((time.time(), sum(sizes), max(sizes)))
            self.loads.append((time.time(), os.getloadavg()[0]))

    def load_at(self, when: float) -> float:
        """The machine's load average nearest a moment: a busy machine also stops the loop."""
        return min(self.loads, key=lambda sample: abs(sample[0] - when))[1] if self.loads else float("nan")

    def peak(self, since: float = 0.0) -> tuple[float, float]:
        window = [(total, largest) for at, total, largest in self.samples if at >= since]
        return (max(t for t, _ in window), max(b for _, b in window)) if window else (0.0, 0.0)


def blocked_warnings(log: str) -> list[tuple[float, float]]:
    """(time, seconds) of each 'async thread was blocked' line of the triggerer's log."""
    found = []
    for line in log.splitlines():
        match = BLOCKED.search(line)
        if match:
            try:
                at = dt.datetime.fromisoformat(line.split()[0].replace("Z", "+00:00")).timestamp()
            except ValueError:
                at = 0.0
            found.append((at, float(match.group(1))))
    return found


def run_real_triggerer(waits: int, poll: float = 10.0, window: float = 120.0) -> int:
    sys.path.insert(0, str(ROOT))
    from bench_triggers import create_jobs

    from airflow_provider_importexport.emulator.client import spawn
    from tests.helpers import connection_json
    from tests.postgres import PostgresCluster, PostgresStack, postgres_bin

    bin_dir = postgres_bin()
    if bin_dir is None:
        print("PostgreSQL's initdb and pg_ctl not found: no real-triggerer run")
        return 1
    os.environ.update(fake_aws_environment())
    emulator, admin = spawn("--daily-create-quota", "1000000")
    try:
        admin.create_bucket("bench-bucket")
        jobs = create_jobs(admin.endpoint_url, waits)
        env = {
            "AIRFLOW_CONN_AWS_DEFAULT": connection_json(admin.endpoint_url),
            "IMPORTEXPORT_MAPPED_POLL_SECONDS": str(poll),
            "AIRFLOW__CORE__PARALLELISM": "8",
            "AIRFLOW__CORE__MAX_MAP_LENGTH": str(max(1024, waits)),
            "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "64",
        }
        with PostgresCluster(bin_dir) as db, tempfile.TemporaryDirectory(prefix="bench-real-triggerer-") as root:
            stack = PostgresStack.in_folder(Path(root), [DAG_FILE], db, env)
            try:
                result = measure(stack, admin, jobs, window)
            finally:
                stack.stop()
    finally:
        emulator.terminate()
        emulator.wait(timeout=30)
    print(json.dumps(result), flush=True)
    print(
        f"bench-real-triggerer: waits={result['waits']} rss_total_mib={result['rss_total_mib']} "
        f"rss_runner_mib={result['rss_runner_mib']} blocked_while_loading={result['blocked_while_loading']} "
        f"blocked_after={result['blocked_after']} getstatus_per_s={result['getstatus_per_s']}"
    )
    return 0


def measure(stack: Any, admin: Any, jobs: list[str], window: float) -> dict[str, Any]:
    started = time.time()
    stack.start()
    triggerer = stack.start_triggerer("triggerer", capacity=len(jobs) * 2)
    sampler = RssSampler(stack.processes["triggerer"].pid)
    sampler.start()
    stack.wait_for("the DAG to be parsed", lambda: stack.query("SELECT 1 FROM serialized_dag"), timeout=300)
    stack.airflow("dags", "trigger", DAG_ID, "--conf", json.dumps({"jobs": jobs}))
    held = "SELECT count(*) FROM trigger WHERE triggerer_id = %s"
    stack.wait_for(f"{len(jobs)} deferred waits", lambda: stack.query(held, triggerer)[0][0] >= len(jobs),
                   timeout=len(jobs) * 10, interval=5)  # fmt: skip
    admin.request("DELETE", "requests")  # so the check below reads one round of polls, not all of them
    stack.wait_for("every wait to poll", lambda: polled_jobs(admin) >= set(jobs), timeout=600, interval=5)
    loaded = time.time()
    calls_before = admin.fault_counts()["none"]
    time.sleep(window)
    calls = admin.fault_counts()["none"] - calls_before
    sampler.stopped.set()
    blocked = blocked_warnings(stack.log_text("triggerer"))
    total, runner = sampler.peak(since=loaded)
    return {
        "waits": len(jobs),
        "loading_s": round(loaded - started),
        "triggers_held": stack.query(held, triggerer)[0][0],
        "window_s": window,
        "rss_total_mib": round(total, 1),
        "rss_runner_mib": round(runner, 1),
        "getstatus_per_s": round(calls / window, 1),
        "blocked_while_loading": sum(1 for at, _ in blocked if at < loaded),
        "blocked_after": sum(1 for at, _ in blocked if at >= loaded),
        "blocked_max_s": max((seconds for _, seconds in blocked), default=0.0),
        "blocked": [(round(at - started), seconds, round(sampler.load_at(at), 1)) for at, seconds in blocked],
        "load_average": round(sum(load for _, load in sampler.loads) / max(len(sampler.loads), 1), 1),
    }


def polled_jobs(admin: Any) -> set[str]:
    return {str(r["job_id"]) for r in admin.requests(action="GetStatus")}


if __name__ == "__main__":
    sys.exit(run_real_triggerer(int(sys.argv[1]) if len(sys.argv) > 1 else 1000))
