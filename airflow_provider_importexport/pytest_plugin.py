"""pytest fixtures for testing DAGs and code against the emulator.

Enable with ``pytest -p airflow_provider_importexport.pytest_plugin`` or by listing
it in ``pytest_plugins``. Fixtures set fake credentials in the environment, never real ones.
Nothing is imported until a fixture is used, so a ``conftest.py`` can still set
``AIRFLOW_HOME`` and friends before Airflow loads its configuration.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from airflow_provider_importexport.emulator import ImportExportEmulator


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "importexport_emulator(**settings): settings for the importexport_emulator fixture, e.g. "
        "profile='fast', devices_dir=..., daily_create_quota=500 (ImportExportEmulator's keyword arguments)",
    )


@pytest.fixture
def importexport_emulator(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ImportExportEmulator]:
    """A fresh emulator (manual lifecycle) on a free 127.0.0.1 port, with AWS_* set to its default account.

    Settings come from the test's ``@pytest.mark.importexport_emulator(...)`` marker, if any.
    """
    from airflow_provider_importexport.emulator import DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY, ImportExportEmulator

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", DEFAULT_ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", DEFAULT_SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    marker = request.node.get_closest_marker("importexport_emulator")
    with ImportExportEmulator(**(marker.kwargs if marker else {})) as emulator:
        yield emulator
