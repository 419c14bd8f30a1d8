"""The main job: the example import DAG end to end against the embedded emulator.

1. a fresh Airflow home (SQLite) with ``dags_examples/`` as its DAGs folder;
2. the emulator in its own process, with the ``demo`` lifecycle (a few seconds per stage)
   and a sample device folder;
3. ``airflow dags test example_importexport_migration``: manifest, job, SIGNATURE file,
   label, the deferrable sensors (their trigger runs in line), verification, report;
4. an independent check that every file on the device landed in S3 with its size and MD5.

Prints each state change of the job and the final XCom. Exits 0 only if the data landed and
the DAG's own verification passed. Everything it writes goes to ``demo-output/``.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from airflow_provider_importexport.emulator.client import AdminError, EmulatorAdmin, spawn

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "demo-output"
DAG_ID = "example_importexport_migration"
ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
BUCKET, PREFIX, LOG_BUCKET, DEVICE_ID = "data-lake-raw", "migrated/", "data-lake-logs", "disk-001"
PROGRESS_LINES = re.compile(
    r"Created Import job|Wrote the SIGNATURE|Downloaded the shipping label|Deferring to the triggerer|"
    r"Done waiting|has arrived|end task task_id|Marking run|Import verification|ERROR|Traceback"
)


def say(text: str) -> None:
    print(f"==> {text}", flush=True)


def make_device(root: Path) -> dict[str, bytes]:
    """A sample device: nested folders, text and binary files, and files the manifest ignores."""
    rng = random.Random(7)
    files: dict[str, bytes] = {}
    for month in range(1, 7):
        rows = "\n".join(f"2025-{month:02d}-{day:02d},{rng.randint(0, 10_000)}" for day in range(1, 29))
        files[f"sales/2025/{month:02d}.csv"] = f"date,amount\n{rows}\n".encode()
    for index in range(8):
        files[f"scans/batch-{index // 4}/scan-{index:03d}.bin"] = rng.randbytes(rng.randint(1_000, 50_000))
    files["README.txt"] = b"Archive of the Seattle office file server, 2025.\n"
    files["config/settings.json"] = json.dumps({"retention_years": 7, "owner": "data-platform"}).encode()
    ignored = {".Trash/old-draft.txt": b"deleted", "scans/Thumbs.db": b"\x00" * 64}
    if root.exists():
        shutil.rmtree(root)
    for relative, data in {**files, **ignored}.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(data)
    return files


def watch_jobs(admin: EmulatorAdmin, stop: threading.Event) -> None:
    """Print every state change the emulator's jobs go through."""
    seen: dict[str, tuple[str, str]] = {}
    while not stop.wait(0.3):
        try:
            jobs = admin.jobs()
        except (OSError, AdminError):
            continue
        for job in jobs:
            state = (job["LocationCode"], job["ProgressCode"])
            if seen.get(job["JobId"]) != state:
                seen[job["JobId"]] = state
                extra = f" (log s3://{job['LogBucket']}/{job['LogKey']})" if job.get("LogKey") else ""
                say(f"job {job['JobId']}: LocationCode {state[0]}, ProgressCode {state[1]}{extra}")


def run_airflow(args: list[str], env: dict[str, str], log_name: str, echo: bool = False) -> int:
    with open(OUT / log_name, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "airflow", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        assert process.stdout is not None
        for line in process.stdout:
            log.write(line)
            if echo and PROGRESS_LINES.search(line):
                print(f"    {line.strip()[:200]}", flush=True)
        return process.wait()


def read_xcom(home: Path, task_id: str) -> dict[str, Any]:
    with sqlite3.connect(home / "airflow.db") as db:
        rows = db.execute("SELECT key, value FROM xcom WHERE dag_id = ? AND task_id = ?", (DAG_ID, task_id)).fetchall()
    return {key: json.loads(value) if isinstance(value, (str, bytes)) else value for key, value in rows}


def dag_run_state(home: Path) -> str:
    with sqlite3.connect(home / "airflow.db") as db:
        row = db.execute("SELECT state FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", (DAG_ID,)).fetchone()
    return row[0] if row else "missing"


def check_s3(endpoint: str, files: dict[str, bytes]) -> list[str]:
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )
    problems = []
    for relative, data in files.items():
        try:
            head = s3.head_object(Bucket=BUCKET, Key=PREFIX + relative)
        except s3.exceptions.ClientError:
            problems.append(f"missing: s3://{BUCKET}/{PREFIX}{relative}")
            continue
        if head["ContentLength"] != len(data) or head["ETag"].strip('"') != hashlib.md5(data).hexdigest():
            problems.append(f"differs: s3://{BUCKET}/{PREFIX}{relative}")
    return problems


def main() -> int:
    started = time.monotonic()
    if OUT.exists():
        shutil.rmtree(OUT)
    home, devices = OUT / "airflow-home", OUT / "devices"
    home.mkdir(parents=True)
    files = make_device(devices / DEVICE_ID)
    say(f"sample device {devices / DEVICE_ID}: {len(files)} files to import (+2 the manifest ignores)")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags_examples"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "IMPORTEXPORT_EXAMPLE_DEVICE_PATH": str(devices / DEVICE_ID),
        "IMPORTEXPORT_EXAMPLE_DEVICE_ID": DEVICE_ID,
        "IMPORTEXPORT_EXAMPLE_POLL_SECONDS": "1",
    }
    state_file = str(OUT / "emulator-state.json")
    emulator, admin = spawn("--profile", "demo", "--devices-dir", str(devices), "--state-file", state_file, env=env)
    endpoint = admin.endpoint_url
    stop = threading.Event()
    try:
        say(f"emulator ready on {endpoint} (moto S3 on the same endpoint, 'demo' lifecycle profile)")
        for bucket in (BUCKET, LOG_BUCKET):
            admin.create_bucket(bucket)
        say(f"buckets {BUCKET} and {LOG_BUCKET} created")
        env["AIRFLOW_CONN_AWS_DEFAULT"] = json.dumps(
            {
                "conn_type": "aws",
                "login": ACCESS_KEY,
                "password": SECRET_KEY,
                "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"},
            }
        )
        if run_airflow(["db", "migrate"], env, "airflow-db-migrate.log") != 0:
            say("airflow db migrate failed; see demo-output/airflow-db-migrate.log")
            return 1
        say("Airflow metadata DB ready; running the DAG (sensors defer, their triggers run in line)")
        watcher = threading.Thread(target=watch_jobs, args=(admin, stop), daemon=True)
        watcher.start()
        code = run_airflow(["dags", "test", DAG_ID], env, "airflow-dags-test.log", echo=True)
        stop.set()
        watcher.join(timeout=5)
        state = dag_run_state(home)
        say(f"`airflow dags test` exited {code}; DAG run state: {state}")
        status = read_xcom(home, "wait_for_import")
        report = read_xcom(home, "verify_import").get("return_value") or {}
        say(
            "final XCom of wait_for_import: "
            + json.dumps(
                {
                    k: status.get(k)
                    for k in ("JobId", "ProgressCode", "ErrorCount", "LogBucket", "LogKey", "log_summary")
                }
            )
        )
        say(f"verification report: {json.dumps(report)}")
        problems = check_s3(endpoint, files)
        say(f"independent S3 check: {len(files) - len(problems)}/{len(files)} files landed with the right size and MD5")
        for problem in problems:
            say(f"  {problem}")
        ok = state == "success" and report.get("ok") is True and not problems
        say(f"{'DEMO PASSED' if ok else 'DEMO FAILED'} in {time.monotonic() - started:.0f} s (logs in demo-output/)")
        return 0 if ok else 1
    finally:
        stop.set()
        emulator.terminate()
        emulator.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
