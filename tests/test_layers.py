"""The house's layers hold at run time: the emulator starts and serves a whole job with Airflow unimportable.

import-linter (``make lint``) checks the static import graph; these tests check what really
gets imported, including lazy imports the graph cannot see, in a process where any
``import airflow`` fails and is written down.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import boto3
import pytest

from airflow_provider_importexport.emulator.client import spawn
from tests.helpers import import_manifest

BLOCKER = """
import sys

class _NoAirflow:
    '''Refuse ``airflow`` and write down who asked, so a test can name the import.'''

    def find_spec(self, name, path=None, target=None):
        if name == "airflow" or name.startswith("airflow."):
            with open({record!r}, "a") as record:
                record.write(name + "\\n")
            raise ImportError(f"the emulator must not import {{name}}")
        return None

sys.meta_path.insert(0, _NoAirflow())
"""


@pytest.fixture
def no_airflow_env(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """An environment whose interpreter refuses to import Airflow (via sitecustomize)."""
    record = tmp_path / "airflow-imports.txt"
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(textwrap.dedent(BLOCKER.format(record=str(record))))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    return env, record


def _airflow_imports(record: Path) -> list[str]:
    return record.read_text().split() if record.exists() else []


def test_blocker_really_blocks_airflow(no_airflow_env: tuple[dict[str, str], Path]) -> None:
    env, record = no_airflow_env
    done = subprocess.run([sys.executable, "-c", "import airflow"], env=env, capture_output=True, timeout=60)
    assert done.returncode != 0
    assert _airflow_imports(record) == ["airflow"]


def test_emulator_help_loads_no_airflow(no_airflow_env: tuple[dict[str, str], Path]) -> None:
    env, record = no_airflow_env
    done = subprocess.run(
        [sys.executable, "-m", "airflow_provider_importexport.emulator", "--help"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "--port" in done.stdout
    assert _airflow_imports(record) == []


def test_emulator_serves_a_whole_job_without_airflow(no_airflow_env: tuple[dict[str, str], Path]) -> None:
    env, record = no_airflow_env
    process, admin = spawn(env=env)
    try:
        admin.create_bucket("layers-bucket")
        client: Any = boto3.client("importexport", endpoint_url=admin.endpoint_url, region_name="us-east-1")
        job_id = client.create_job(
            JobType="Import", Manifest=import_manifest("layers-bucket").to_yaml(), ValidateOnly=False
        )["JobId"]
        assert client.get_shipping_label(jobIds=[job_id])["ShippingLabelURL"]
        for step in ("ship", "receive", "process", "return"):
            admin.act(job_id, step)
        status = client.get_status(JobId=job_id)
        assert status["ProgressCode"] != "Pending", status
        assert [job["JobId"] for job in client.list_jobs()["Jobs"]] == [job_id]
        with pytest.raises(client.exceptions.InvalidJobIdException):
            client.get_status(JobId="NOSUCH")
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert _airflow_imports(record) == []
