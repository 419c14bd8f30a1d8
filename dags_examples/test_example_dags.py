"""Testing a DAG against the emulator: a test of the example import DAG to copy next to your own.

What it needs (docs/testing.md):

- ``pip install "airflow-provider-importexport[testing]"``;
- a ``conftest.py`` like the one beside this file: the plugin, a temporary ``AIRFLOW_HOME``, and
  ``AIRFLOW__CORE__DAGS_FOLDER`` naming the folder of the DAGs under test (``dag.test()`` runs a
  DAG from Airflow's dags folder), set before anything imports Airflow;
- the plugin's fixtures: ``importexport_airflow_db`` (a migrated metadata DB for ``dag.test()``),
  ``importexport_emulator`` (the emulator, with ``AIRFLOW_CONN_AWS_DEFAULT`` pointing at it) and
  ``importexport_devices`` (the folder the emulator reads devices from).

The device is a folder; ``drive_lifecycle`` plays AWS (the device arrives, its data is imported)
in a background thread while ``dag.test()`` waits on the DAG's sensors.
"""

from __future__ import annotations

# [START testing_example_dag_test]
import importlib.util
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest

from airflow_provider_importexport.pytest_plugin import drive_lifecycle

FILES = {"sales/2025/01.csv": b"date,amount\n2025-01-01,10\n", "scans/scan-001.bin": bytes(range(256)) * 8}


def load_dag(path: Path) -> Any:
    """Import a DAG file afresh (its settings are read when it is parsed)."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


@pytest.fixture
def dags_folder() -> Path:
    """Airflow's dags folder, where the DAGs under test are (conftest.py names it)."""
    from airflow.settings import DAGS_FOLDER

    return Path(DAGS_FOLDER)


@pytest.fixture
def device(importexport_devices: Path, dags_folder: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The device ``disk-001`` with two files, and the example DAGs' settings pointing at it."""
    root = importexport_devices / "disk-001"
    for relative, data in FILES.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(data)
    monkeypatch.setenv("IMPORTEXPORT_EXAMPLE_DEVICE_PATH", str(root))
    monkeypatch.setenv("IMPORTEXPORT_EXAMPLE_POLL_SECONDS", "0.5")  # the sensors' interval: 15 minutes in production
    monkeypatch.syspath_prepend(str(dags_folder))  # the example DAGs import importexport_example_config
    monkeypatch.delitem(sys.modules, "importexport_example_config", raising=False)  # read with these settings
    return root


@pytest.mark.importexport_emulator(profile="manual")  # jobs move only when the test moves them
def test_the_migration_dag_imports_every_file(
    importexport_airflow_db: None, importexport_emulator: Any, device: Path, dags_folder: Path
) -> None:
    admin = importexport_emulator.admin
    for bucket in ("data-lake-raw", "data-lake-logs"):
        admin.create_bucket(bucket)
    dag = load_dag(dags_folder / "example_importexport_migration.py")

    with drive_lifecycle(admin, steps=("receive", "process"), every=0.5) as aws:  # drives the job the DAG creates
        run = dag.test()

    assert run.state == "success"
    assert aws.done == ["receive", "process"]
    job = admin.job(aws.job_id)
    assert (job["LocationCode"], job["ProgressCode"]) == ("AtAWS", "Complete")
    assert (device / "SIGNATURE").is_file()  # the create task wrote it onto the device
    s3 = boto3.client("s3", endpoint_url=importexport_emulator.endpoint_url, region_name="us-east-1")
    for relative, data in FILES.items():
        assert s3.get_object(Bucket="data-lake-raw", Key=f"migrated/{relative}")["Body"].read() == data


# [END testing_example_dag_test]
