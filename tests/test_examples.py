"""The example DAGs: they parse, and run against the emulator unchanged (only the connection points at it)."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_importexport.emulator import ImportExportEmulator
from tests.conftest import DAGS_FOLDER, DagResult, load_dag

EXAMPLES = Path(__file__).resolve().parents[1] / "dags_examples"
EXPORT_PASSWORD = "Tr0ub4dor&3-export"


def device_files() -> dict[str, bytes]:
    return {
        "sales/2025/01.csv": b"date,amount\n2025-01-01,10\n",
        "sales/2025/02.csv": b"date,amount\n2025-02-01,20\n",
        "scans/scan-001.bin": bytes(range(256)) * 8,
        ".Trash/old.txt": b"ignored by the manifest",
    }


@pytest.fixture(scope="module")
def example_devices(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The examples' settings, and their files in the dags folder (settings are read at parse time)."""
    devices = tmp_path_factory.mktemp("example-devices")
    os.environ.update(
        {
            "IMPORTEXPORT_EXAMPLE_DEVICE_PATH": str(devices / "disk-001"),
            "IMPORTEXPORT_EXAMPLE_EXPORT_DEVICE_PATH": str(devices / "disk-002"),
            "IMPORTEXPORT_EXAMPLE_POLL_SECONDS": "0.5",
            "AIRFLOW_VAR_IMPORTEXPORT_EXPORT_PASSWORD": EXPORT_PASSWORD,
        }
    )
    DAGS_FOLDER.mkdir(parents=True, exist_ok=True)
    for source in EXAMPLES.glob("*.py"):
        shutil.copy(source, DAGS_FOLDER / source.name)
    if str(DAGS_FOLDER) not in sys.path:
        sys.path.insert(0, str(DAGS_FOLDER))
    return devices


@pytest.fixture
def importexport_emulator(example_devices: Path) -> Any:
    with ImportExportEmulator(devices_dir=str(example_devices), profile="fast") as emulator:
        for bucket in ("data-lake-raw", "data-lake-logs"):
            emulator.admin.create_bucket(bucket)
        yield emulator


def write_device(root: Path, files: dict[str, bytes]) -> None:
    shutil.rmtree(root, ignore_errors=True)
    for relative, data in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(data)


def run_example(name: str) -> DagResult:
    return DagResult(load_dag(DAGS_FOLDER / f"{name}.py").test())


def test_example_dags_parse_without_errors(example_devices: Path) -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(EXAMPLES), bundle_path=EXAMPLES)
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {
        "example_importexport_migration",
        "example_importexport_export",
        "example_importexport_downstream",
    }


def test_migration_then_downstream(
    run_dag: Any, emulator: ImportExportEmulator, example_devices: Path, s3: Any
) -> None:
    write_device(example_devices / "disk-001", device_files())
    result = run_example("example_importexport_migration")
    for task in ("build_manifest", "validate_with_service", "create_job", "shipping_label", "wait_for_device",
                 "wait_for_import", "verify_import"):  # fmt: skip
        assert result.state(task) == "success", task
    report = result.xcom("verify_import")
    assert report["ok"] is True
    assert report["files_checked"] == 3
    stored = json.loads(s3.get_object(Bucket="data-lake-logs", Key=report["report"].split("/", 3)[3])["Body"].read())
    assert stored["files_checked"] == 3
    assert (example_devices / "disk-001-shipping-label.pdf").read_bytes().startswith(b"%PDF-")

    downstream = run_example("example_importexport_downstream")
    assert downstream.state("catalogue") == "success"
    assert downstream.xcom("catalogue")["objects"] == 3


def test_export_reports_the_tracking_number(
    run_dag: Any, emulator: ImportExportEmulator, example_devices: Path, s3: Any, capfd: Any
) -> None:
    s3.put_object(Bucket="data-lake-raw", Key="migrated/report.csv", Body=b"a,b\n1,2\n")
    (example_devices / "disk-002").mkdir(exist_ok=True)
    result = run_example("example_importexport_export")
    assert result.state("report_tracking") == "success"
    message = result.xcom("report_tracking")
    assert "tracking number 1Z" in message
    assert (example_devices / "disk-002" / "data-lake-raw" / "migrated" / "report.csv").read_bytes() == b"a,b\n1,2\n"
    output = capfd.readouterr()
    assert EXPORT_PASSWORD not in output.out + output.err
    assert EXPORT_PASSWORD not in json.dumps(result.rendered("create_export_job"))
