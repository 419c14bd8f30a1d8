"""A throwaway PostgreSQL cluster for tests, and an Airflow stack on it with several triggerers.

The cluster: the machine's own binaries, a temporary folder, 127.0.0.1.

PostgreSQL refuses to run as root, so as root the cluster belongs to ``nobody`` and each command
runs as that user (``runuser``); the folder is made outside pytest's root-only temp tree so that
user can reach it. No password (trust, loopback only); fsync off: nothing here must survive.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.airflow_stack import COMPONENTS, AirflowStack, free_port

UNPRIVILEGED_USER = "nobody"


def postgres_bin() -> Path | None:
    """The folder of initdb and pg_ctl: on PATH, or Debian's /usr/lib/postgresql/<version>/bin (newest)."""
    on_path = shutil.which("initdb")
    if on_path and (Path(on_path).resolve().parent / "pg_ctl").exists():
        return Path(on_path).resolve().parent
    folders = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda path: int(path.split("/")[-2].split(".")[0]), reverse=True
    )
    for folder in folders:
        if (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists():
            return Path(folder)
    return None


class PostgresCluster:
    """``initdb`` + ``pg_ctl start`` in a new temporary folder; :meth:`stop` removes it all."""

    def __init__(self, bin_dir: Path, user: str = "airflow", database: str = "airflow") -> None:
        self.bin_dir = bin_dir
        self.user = user
        self.database = database
        self.root = Path(tempfile.mkdtemp(prefix="importexport-pg-"))
        self.data = self.root / "data"
        self.port = 0
        self._as_root = os.geteuid() == 0
        if self._as_root:
            shutil.chown(self.root, user=UNPRIVILEGED_USER)

    def __enter__(self) -> PostgresCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of the database (psycopg2)."""
        return f"postgresql+psycopg2://{self.user}@127.0.0.1:{self.port}/{self.database}"

    def _run(self, tool: str, *args: str, timeout: float = 120) -> str:
        command = [str(self.bin_dir / tool), *args]
        if self._as_root:
            command = ["runuser", "-u", UNPRIVILEGED_USER, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=self.root)
        if result.returncode:
            raise RuntimeError(
                f"{tool} failed ({result.returncode}):\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
            )
        return result.stdout

    def start(self, attempts: int = 3) -> None:
        self._run("initdb", "-D", str(self.data), "-U", self.user, "--auth=trust", "-E", "UTF8", "--no-instructions")
        for attempt in range(attempts):  # a free port can be taken between finding it and binding it
            self.port = free_port()
            options = (
                f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c max_connections=200 "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            )
            try:
                self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "server.log"), "-w",
                          "-t", "60", "start")  # fmt: skip
                break
            except RuntimeError:
                if attempt == attempts - 1:
                    raise RuntimeError(f"PostgreSQL did not start:\n{self.log()[-3000:]}") from None
        self.create_database()

    def create_database(self) -> None:
        import psycopg2

        connection = psycopg2.connect(host="127.0.0.1", port=self.port, user=self.user, dbname="postgres")
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{self.database}"')
        finally:
            connection.close()

    def log(self) -> str:
        path = self.root / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.data.exists() and self.port:
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):  # not running: the folder goes anyway
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)


class PostgresStack(AirflowStack):
    """The Airflow stack on a PostgreSQL metadata DB, with triggerers started by name and capacity.

    Several triggerers share the DB (SQLite cannot host that); :meth:`start` starts every component
    but the triggerers, which a caller starts with :meth:`start_triggerer`.
    """

    def __init__(self, home: Path, dags: Path, extra_env: dict[str, str], db: PostgresCluster) -> None:
        super().__init__(home, dags, {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db.url, **extra_env})
        self.db = db
        self._connection: Any = None
        #: Triggerer job ids by name, in the order they started.
        self.triggerers: dict[str, int] = {}

    @classmethod
    def in_folder(
        cls, root: Path, dag_files: list[Path], db: PostgresCluster, extra_env: dict[str, str]
    ) -> PostgresStack:
        """A stack whose AIRFLOW_HOME and DAGs folder (holding copies of ``dag_files``) are under ``root``."""
        dags, home = root / "dags", root / "airflow-home"
        dags.mkdir()
        home.mkdir()
        for dag_file in dag_files:
            shutil.copy(dag_file, dags)
        return cls(home, dags, extra_env, db)

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """A query on the metadata DB (``%s`` placeholders), each seeing everything committed before it."""
        import psycopg2

        if self._connection is None:
            self._connection = psycopg2.connect(host="127.0.0.1", port=self.db.port, user=self.db.user,
                                                dbname=self.db.database)  # fmt: skip
            self._connection.autocommit = True
        with self._connection.cursor() as cursor:
            cursor.execute(sql, params)
            return list(cursor.fetchall())

    def start(self) -> None:
        self.airflow("db", "migrate")
        for component in COMPONENTS:
            if component != "triggerer":
                self.start_component(component)

    def start_triggerer(self, name: str, capacity: int) -> int:
        """Start ``airflow triggerer --capacity`` under ``name`` (a key for :meth:`kill`); its job id."""
        log = open(self.home / f"{name}.log", "wb")  # noqa: SIM115 - closed in stop()
        self.logs[name], self.log_names[name] = log, name
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "airflow", "triggerer", "--capacity", str(capacity)],
            # each serves its trigger logs on a port of its own
            env={**self.env, "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port())},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

        def registered() -> int | None:
            rows = self.query("SELECT id FROM job WHERE job_type = 'TriggererJob' ORDER BY id")
            new = [job_id for (job_id,) in rows if job_id not in self.triggerers.values()]
            return new[0] if new else None

        self.triggerers[name] = int(self.wait_for(f"{name} to register", registered, timeout=180))
        return self.triggerers[name]

    def stop(self) -> None:
        super().stop()
        if self._connection is not None:
            self._connection.close()

    def mapped_trigger_logs(self, dag_id: str, task_id: str) -> dict[tuple[int, int], str]:
        """Each map index's trigger log per triggerer job id (each triggerer that ran it writes one)."""
        found = {}
        for path in (self.home / "logs" / f"dag_id={dag_id}").glob(
            f"run_id=*/task_id={task_id}/map_index=*/*.trigger.*.log"
        ):
            map_index = int(path.parent.name.removeprefix("map_index="))
            found[(map_index, int(path.name.rsplit(".", 2)[-2]))] = path.read_text(errors="replace")
        return found
