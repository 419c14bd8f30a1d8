"""The kit for testing one's own DAGs (#16): the plugin's fixtures and helper, and the page that documents them."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_importexport import pytest_plugin
from airflow_provider_importexport.emulator import ImportExportEmulator
from airflow_provider_importexport.emulator.client import AdminError, EmulatorAdmin
from airflow_provider_importexport.hooks.importexport import ImportExportHook
from airflow_provider_importexport.pytest_plugin import drive_lifecycle
from tests.helpers import import_manifest

ROOT = Path(__file__).resolve().parents[1]
PAGE = (ROOT / "docs" / "testing.md").read_text()


@pytest.mark.importexport_emulator(profile="manual")
def test_the_fixture_points_aws_default_and_the_devices_folder_at_the_emulator(
    importexport_emulator: ImportExportEmulator, importexport_devices: Path, bucket: str
) -> None:
    assert importexport_emulator.settings.devices_dir == str(importexport_devices)
    job = ImportExportHook(aws_conn_id="aws_default").create_job("Import", import_manifest(bucket))  # no set-up
    assert importexport_emulator.admin.job(job["JobId"])["LocationCode"] == "NotReceived"


def test_drive_lifecycle_takes_the_steps_in_order_with_their_options(
    importexport_emulator: ImportExportEmulator, bucket: str
) -> None:
    admin = importexport_emulator.admin
    hook = ImportExportHook(aws_conn_id="aws_default")
    hook.create_job("Import", import_manifest(bucket))  # there before the driver: not the one it drives
    steps: list[Any] = ["receive", ("process", {"outcome": "SuccessWithErrors", "error_count": 2}), "return"]
    with drive_lifecycle(admin, steps=steps, every=0.05, reads_between=0) as driver:
        job_id = hook.create_job("Import", import_manifest(bucket))["JobId"]
        assert driver.finish(timeout=30) == ["receive", "process", "return"]
    assert driver.job_id == job_id
    job = admin.job(job_id)
    assert (job["LocationCode"], job["ProgressCode"], job["ErrorCount"]) == ("Returned", "SuccessWithErrors", 2)


def test_drive_lifecycle_raises_a_refused_step_when_the_block_ends(
    importexport_emulator: ImportExportEmulator, bucket: str
) -> None:
    job_id = ImportExportHook(aws_conn_id="aws_default").create_job("Import", import_manifest(bucket))["JobId"]
    driving = drive_lifecycle(importexport_emulator.admin, job_id, steps=("return",), every=0.01, reads_between=0)
    driving.__enter__().join(30)
    with pytest.raises(AdminError, match="return"):
        driving.__exit__(None, None, None)


def test_drive_lifecycle_waits_until_someone_saw_each_state(
    importexport_emulator: ImportExportEmulator, bucket: str
) -> None:
    hook = ImportExportHook(aws_conn_id="aws_default")
    job_id = hook.create_job("Import", import_manifest(bucket))["JobId"]
    with drive_lifecycle(importexport_emulator.admin, job_id, steps=("receive", "start"), every=0.01) as driver:
        time.sleep(0.5)
        assert driver.done == []  # nobody read the job's status yet
        hook.get_status(job_id)
        until(lambda: driver.done == ["receive"])
        time.sleep(0.5)
        assert driver.done == ["receive"]  # the arrival was not seen yet
        hook.get_status(job_id)
        assert driver.finish(timeout=30) == ["receive", "start"]


def until(condition: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_the_page_documents_every_admin_method_fixture_and_marker_setting() -> None:
    methods = [name for name, _ in inspect.getmembers(EmulatorAdmin, inspect.isfunction) if not name.startswith("_")]
    for name in methods:
        assert re.search(rf"^\| `{name}\(", PAGE, re.MULTILINE), f"docs/testing.md: no row for EmulatorAdmin.{name}"
    for name in ("importexport_emulator", "importexport_devices", "importexport_airflow_db"):
        assert hasattr(pytest_plugin, name)
        assert f"| `{name}` |" in PAGE, f"docs/testing.md: no row for the fixture {name}"
    for setting in ("profile", "devices_dir", "daily_create_quota"):
        assert f"`{setting}`" in PAGE


def test_the_testing_extra_brings_pytest_and_the_emulator() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert "airflow-provider-importexport[emulator]" in extras["testing"]
    assert any(requirement.startswith("pytest") for requirement in extras["testing"])


def emulator_help(*args: str) -> str:
    command = [sys.executable, "-m", "airflow_provider_importexport.emulator", "admin", *args, "--help"]
    return subprocess.run(command, capture_output=True, text=True, check=True, timeout=60).stdout


def test_every_admin_command_and_argument_has_a_help_text() -> None:
    listing = emulator_help()
    commands = re.search(r"\{([\w,-]+)\}", listing)
    assert commands is not None
    for command in commands.group(1).split(","):
        assert re.search(rf"^    {command} +\S", listing, re.MULTILINE), f"admin {command} has no help text"
    assert "status              one job's status" in listing
    assert "create-bucket       create an S3 bucket" in listing
    for command, argument in (("status", "job_id"), ("create-bucket", "bucket"), ("create-bucket", "--region")):
        assert re.search(rf"^  {argument}( \w+)? +\S", emulator_help(command), re.MULTILINE), (command, argument)


def test_process_before_receive_states_the_real_precondition_and_the_next_command(
    importexport_emulator: ImportExportEmulator, bucket: str
) -> None:
    admin = importexport_emulator.admin
    job_id = ImportExportHook(aws_conn_id="aws_default").create_job("Import", import_manifest(bucket))["JobId"]
    with pytest.raises(AdminError) as raised:
        admin.act(job_id, "process", outcome="Complete")
    assert str(raised.value) == (
        f"Cannot process job {job_id}: it needs LocationCode AtAWS with ProgressCode Pending or InProgress "
        f"(receive it first: importexport-emulator admin receive {job_id}, or admin.act({job_id!r}, 'receive') in "
        "Python), but is LocationCode NotReceived / ProgressCode Pending."
    )
    admin.act(job_id, "receive")
    assert admin.act(job_id, "process", outcome="Complete")["ProgressCode"] == "Complete"  # from AtAWS/Pending
    with pytest.raises(AdminError) as again:
        admin.act(job_id, "process")
    assert "receive it first" not in str(again.value)  # at AWS already: no such advice
