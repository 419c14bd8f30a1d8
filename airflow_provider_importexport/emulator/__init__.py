"""A local emulator of the AWS Import/Export service, with moto's S3 beside it.

Start it with ``importexport-emulator`` (or ``python -m airflow_provider_importexport.emulator``),
with :class:`ImportExportEmulator` as a context manager, or with the ``importexport_emulator``
pytest fixture. Point any SDK at its ``endpoint_url`` with the default account's keys
(AWS's documentation example pair) and it answers like the service.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_importexport.emulator.auth import (
    DEFAULT_ACCESS_KEY,
    DEFAULT_ACCOUNT,
    DEFAULT_ACCOUNT_ID,
    DEFAULT_SECRET_KEY,
    Account,
)
from airflow_provider_importexport.emulator.backend import PROFILES, LifecycleProfile
from airflow_provider_importexport.emulator.client import EmulatorAdmin
from airflow_provider_importexport.emulator.faults import FaultConfig
from airflow_provider_importexport.emulator.server import EmulatorServer, EmulatorSettings
from airflow_provider_importexport.emulator.state import CancelRule


class ImportExportEmulator(EmulatorServer):
    """The emulator on a free port in a background thread: ``with ImportExportEmulator() as emu:``.

    Keyword arguments are :class:`EmulatorSettings` fields; ``profile`` may be a profile
    name (``manual``, ``demo``, ``fast``).
    """

    def __init__(self, **settings: Any) -> None:
        if isinstance(settings.get("profile"), str):
            settings["profile"] = LifecycleProfile.named(settings["profile"])
        super().__init__(EmulatorSettings(**settings))
        self.admin = EmulatorAdmin(self.endpoint_url)

    def __enter__(self) -> ImportExportEmulator:
        self.start()
        return self


__all__ = [
    "DEFAULT_ACCESS_KEY",
    "DEFAULT_ACCOUNT",
    "DEFAULT_ACCOUNT_ID",
    "DEFAULT_SECRET_KEY",
    "PROFILES",
    "Account",
    "CancelRule",
    "EmulatorAdmin",
    "EmulatorServer",
    "EmulatorSettings",
    "FaultConfig",
    "ImportExportEmulator",
    "LifecycleProfile",
]
