"""A real Airflow deployment for end-to-end tests: API server, scheduler (LocalExecutor),
DAG processor and triggerer as separate processes on one SQLite metadata DB."""

from __future__ import annotations

import os
import secrets
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class AirflowStack:
    def __init__(self, home: Path, dags_folder: Path, extra_env: dict[str, str]) -> None:
        self.home = home
        port = free_port()
        self.env = {
            **os.environ,
            **extra_env,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
        }
        self.env.pop("AIRFLOW__CORE__UNIT_TEST_MODE", None)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: dict[str, IO[Any]] = {}

    def airflow(self, *args: str, timeout: float = 300) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "airflow", *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if result.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        return result.stdout

    def start(self) -> None:
        self.airflow("db", "migrate")
        for component in COMPONENTS:
            log = open(self.home / f"{component}.log", "wb")  # noqa: SIM115 - closed in stop()
            self.logs[component] = log
            self.processes[component] = subprocess.Popen(
                [sys.executable, "-m", "airflow", component], env=self.env, stdout=log, stderr=subprocess.STDOUT
            )

    def log_text(self, component: str) -> str:
        self.logs[component].flush()
        return (self.home / f"{component}.log").read_text(errors="replace")

    def task_logs(self, dag_id: str, task_id: str) -> dict[str, str]:
        """The task's own log and its trigger's log (the triggerer writes the latter)."""
        found = {"task": "", "trigger": ""}
        for path in (self.home / "logs" / f"dag_id={dag_id}").glob(f"run_id=*/task_id={task_id}/*.log"):
            found["trigger" if ".trigger." in path.name else "task"] += path.read_text(errors="replace")
        return found

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.home / "airflow.db", timeout=30) as db:
            return db.execute(sql, params).fetchall()

    def wait_for(self, what: str, check: Any, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"airflow {name} exited ({process.returncode}):\n{self.log_text(name)[-3000:]}")
            try:
                value = check()
            except sqlite3.OperationalError:
                value = None
            if value:
                return value
            time.sleep(1)
        raise TimeoutError(f"timed out waiting for {what}")

    def stop(self) -> None:
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        for log in self.logs.values():
            log.close()
