"""What a user installs: one version, the declared Python, the license and type marker shipped,
a changelog entry for the version, and a clear word when the emulator's extra is missing.

The built artifacts themselves are checked by ``make wheel-check`` (scripts/check_wheel.py), which
installs the wheel into a fresh virtualenv; these are the quick checks of the sources.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_importexport import __version__, get_provider_info

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "airflow_provider_importexport"


@pytest.fixture(scope="module")
def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_version_is_written_once(pyproject: dict[str, Any]) -> None:
    project = pyproject["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {
        "attr": "airflow_provider_importexport.__version__"
    }
    assert get_provider_info()["versions"][0] == __version__
    assert re.fullmatch(r"\d+\.\d+\.\d+([ab]\d+|rc\d+)?", __version__)
    written = [
        p for p in PACKAGE.rglob("*.py") if f'"{__version__}"' in p.read_text() or f"'{__version__}'" in p.read_text()
    ]
    assert written == [PACKAGE / "__init__.py"]


def test_the_package_init_imports_no_airflow() -> None:
    """setuptools reads ``__version__`` without importing; Airflow must not be needed to build."""
    source = (PACKAGE / "__init__.py").read_text() + (PACKAGE / "get_provider_info.py").read_text()
    assert not re.search(r"^\s*(import|from)\s+airflow\b", source, re.MULTILINE)


def test_python_requirement_and_classifiers_match_what_is_tested(pyproject: dict[str, Any]) -> None:
    project = pyproject["project"]
    assert project["requires-python"] == ">=3.11"
    running = f"Programming Language :: Python :: {sys.version_info.major}.{sys.version_info.minor}"
    assert running in project["classifiers"], "the Python the suite runs on is not a classifier"
    listed = [c for c in project["classifiers"] if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)]
    assert all(tuple(map(int, c.rsplit(" ", 1)[1].split("."))) >= (3, 11) for c in listed)
    assert any(c.startswith("Development Status ::") for c in project["classifiers"])
    assert set(project["urls"]) >= {"Homepage", "Documentation", "Changelog", "Issues"}


def test_no_aws_sdk_bounds_beyond_the_amazon_providers(pyproject: dict[str, Any]) -> None:
    names = {re.split(r"[<>=\[; ]", d, maxsplit=1)[0].lower() for d in pyproject["project"]["dependencies"]}
    assert not names & {"boto3", "botocore", "aiobotocore"}
    assert "apache-airflow-providers-amazon" in names


def test_license_and_type_marker_ship(pyproject: dict[str, Any]) -> None:
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
    assert pyproject["project"]["license"] == "Apache-2.0"
    assert (PACKAGE / "py.typed").is_file()
    assert "py.typed" in pyproject["tool"]["setuptools"]["package-data"]["airflow_provider_importexport"]


def test_the_changelog_has_the_version_and_an_unreleased_section() -> None:
    text = (ROOT / "CHANGELOG.md").read_text()
    headings = re.findall(r"^## \[([^\]]+)\]", text, re.MULTILINE)
    assert headings[0] == "Unreleased"
    assert __version__ in headings
    for heading in headings:
        assert re.search(rf"^\[{re.escape(heading)}\]: https://", text, re.MULTILINE), f"no link for {heading}"


def test_the_emulator_without_its_extra_names_the_extra() -> None:
    """As in a virtualenv without ``[emulator]``: fpdf2 cannot be imported (make wheel-check does it for real)."""
    code = (
        "import sys; sys.modules['fpdf'] = None; sys.argv = ['importexport-emulator', '--help']\n"
        "from airflow_provider_importexport.emulator.__main__ import main\nsys.exit(main())"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=dict(os.environ), check=False
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "The emulator needs the [emulator] extra: pip install 'airflow-provider-importexport[emulator]' (missing: fpdf)"
    )
    assert done.stdout == ""


def test_the_slow_marker_table_names_tests_that_exist() -> None:
    """tests/conftest.py marks tests by node id prefix: a renamed test must not silently turn fast."""
    from tests.conftest import SLOW_TESTS

    for prefix in SLOW_TESTS:
        file, _, name = prefix.partition("::")
        path = ROOT / file
        assert path.is_file(), f"SLOW_TESTS names a missing file: {prefix}"
        if name:
            assert re.search(rf"^(async )?def {re.escape(name)}", path.read_text(), re.MULTILINE), (
                f"SLOW_TESTS names no test in {file}: {prefix}"
            )
