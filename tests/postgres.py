"""A throwaway PostgreSQL cluster for tests: the machine's own binaries, a temporary folder, 127.0.0.1.

PostgreSQL refuses to run as root, so as root the cluster belongs to ``nobody`` and each command
runs as that user (``runuser``); the folder is made outside pytest's root-only temp tree so that
user can reach it. No password (trust, loopback only); fsync off: nothing here must survive.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
            self.port = _free_port()
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
