"""Provider registration: the metadata Airflow reads, validated by Airflow's own schema and CLI."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from importlib import metadata, resources

import jsonschema
import pytest

from airflow_provider_importexport import __version__, get_provider_info


def test_provider_info_matches_airflows_schema() -> None:
    schema = json.loads((resources.files("airflow") / "provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), schema)


def test_entry_point_and_package_name() -> None:
    (entry,) = [
        e
        for e in metadata.entry_points(group="apache_airflow_provider")
        if e.dist and e.dist.name == "airflow-provider-importexport"
    ]
    assert entry.load() is get_provider_info
    info = get_provider_info()
    assert info["package-name"] == "airflow-provider-importexport"
    assert info["versions"][0] == __version__ == metadata.version("airflow-provider-importexport")


def _declared_classes() -> list[str]:
    info = get_provider_info()
    paths = list(info.get("extra-links", []))
    for section in ("hooks", "operators", "sensors", "triggers"):
        for entry in info.get(section, []):
            paths.extend(entry["python-modules"] if "python-modules" in entry else [entry["python-module"]])
    return paths


@pytest.mark.parametrize("path", _declared_classes())
def test_every_declared_module_or_class_imports(path: str) -> None:
    try:
        importlib.import_module(path)
    except ModuleNotFoundError:
        module, _, name = path.rpartition(".")
        assert hasattr(importlib.import_module(module), name)


def _airflow(*args: str) -> str:
    env = {**os.environ, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    result = subprocess.run(
        [sys.executable, "-m", "airflow", *args], capture_output=True, text=True, timeout=300, env=env, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_airflow_lists_the_provider() -> None:
    out = _airflow("providers", "list", "--output", "json")
    listed = {p["package_name"]: p for p in json.loads(out[out.index("[") :])}
    assert listed["airflow-provider-importexport"]["version"] == __version__
