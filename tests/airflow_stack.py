"""A real Airflow deployment for end-to-end tests: API server, scheduler (LocalExecutor),
DAG processor and triggerer as separate processes on one SQLite metadata DB."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path
from typing import IO, Any

import psutil
from cryptography.fernet import Fernet

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class AirflowStack:
    """``extra_env`` is added last, so a test may also override the defaults below."""

    def __init__(self, home: Path, dags_folder: Path, extra_env: dict[str, str]) -> None:
        self.home = home
        port = free_port()
        # Known, so the test can read what Airflow encrypts in the metadata DB (trigger kwargs).
        self.fernet_key = Fernet.generate_key().decode()
        self.env = {
            **os.environ,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__FERNET_KEY": self.fernet_key,
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
            # The log servers' fixed default ports would clash with another stack on the machine.
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            **extra_env,
        }
        self.env.pop("AIRFLOW__CORE__UNIT_TEST_MODE", None)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        #: Open log files by log name (the component's name, or the name given to start_component).
        self.logs: dict[str, IO[Any]] = {}
        #: Each running component's log name.
        self.log_names: dict[str, str] = {}

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
            self.start_component(component)

    def start_component(self, component: str, log_name: str | None = None) -> subprocess.Popen[bytes]:
        """Start one component in its own session, so it and the processes it forks form one
        process group that :meth:`kill` can end at once."""
        if component in self.processes:
            raise RuntimeError(f"airflow {component} is already running")
        log_name = log_name or component
        log = open(self.home / f"{log_name}.log", "wb")  # noqa: SIM115 - closed in stop()
        self.logs[log_name] = log
        process = subprocess.Popen(
            [sys.executable, "-m", "airflow", component],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes[component] = process
        self.log_names[component] = log_name
        return process

    def kill(self, component: str, timeout: float = 30) -> list[int]:
        """SIGKILL a component and every process it started: a crash, with no clean-up of any kind.

        Returns the pids that were killed; raises if any of them is still alive after ``timeout``.
        """
        process = self.processes.pop(component)
        try:
            tree = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            tree = []
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        for member in tree:  # any that left the group
            with suppress(psutil.NoSuchProcess):
                member.kill()
        process.wait(timeout=timeout)
        deadline = time.monotonic() + timeout
        while alive := [member.pid for member in tree if _alive(member)]:
            if time.monotonic() > deadline:
                raise RuntimeError(f"airflow {component}: processes {alive} survived SIGKILL")
            time.sleep(0.1)
        return [member.pid for member in tree]

    def log_text(self, name: str) -> str:
        if name in self.logs and not self.logs[name].closed:
            self.logs[name].flush()
        return (self.home / f"{name}.log").read_text(errors="replace")

    def task_logs(self, dag_id: str, task_id: str) -> dict[str, str]:
        """The task's own log and its trigger's log (the triggerer writes the latter)."""
        found = {"task": "", "trigger": ""}
        for path in (self.home / "logs" / f"dag_id={dag_id}").glob(f"run_id=*/task_id={task_id}/*.log"):
            found["trigger" if ".trigger." in path.name else "task"] += path.read_text(errors="replace")
        return found

    def trigger_logs(self, dag_id: str, task_id: str) -> dict[int, str]:
        """The task's trigger log per triggerer job id (each triggerer that ran it writes its own file)."""
        found: dict[int, str] = {}
        for path in (self.home / "logs" / f"dag_id={dag_id}").glob(f"run_id=*/task_id={task_id}/*.trigger.*.log"):
            found[int(path.name.rsplit(".", 2)[-2])] = path.read_text(errors="replace")
        return found

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.home / "airflow.db", timeout=30) as db:
            return db.execute(sql, params).fetchall()

    def trigger_kwargs(self, encrypted: str) -> dict[str, Any]:
        """A ``trigger.kwargs`` value from the metadata DB, decrypted and deserialized."""
        from airflow.sdk.serde import deserialize

        text = encrypted if encrypted.startswith("{") else Fernet(self.fernet_key.encode()).decrypt(encrypted).decode()
        kwargs = deserialize(json.loads(text))
        assert isinstance(kwargs, dict)
        return kwargs

    def wait_for(self, what: str, check: Any, timeout: float, interval: float = 1) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    log = self.log_text(self.log_names[name])[-3000:]
                    raise RuntimeError(f"airflow {name} exited ({process.returncode}):\n{log}")
            try:
                value = check()
            except sqlite3.OperationalError:
                value = None
            if value:
                return value
            time.sleep(interval)
        raise TimeoutError(f"timed out waiting for {what}")

    def stop(self) -> None:
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)
            # what the component left behind (task runners, workers) goes too
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
        self.processes.clear()
        for log in self.logs.values():
            log.close()


def _alive(process: psutil.Process) -> bool:
    """Running and not a zombie (an orphan's zombie waits for a reaper that may never come)."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
