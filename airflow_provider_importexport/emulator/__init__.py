"""A local emulator of the AWS Import/Export service, with moto's S3 beside it.

Start it with ``importexport-emulator`` (or ``python -m airflow_provider_importexport.emulator``),
with :class:`ImportExportEmulator` as a context manager, or with the ``importexport_emulator``
pytest fixture. Point any SDK at its ``endpoint_url`` with the default account's keys
(AWS's documentation example pair) and it answers like the service.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_importexport.emulator.auth import (
        DEFAULT_ACCESS_KEY,
        DEFAULT_ACCOUNT,
        DEFAULT_ACCOUNT_ID,
        DEFAULT_SECRET_KEY,
        Account,
    )
    from airflow_provider_importexport.emulator.client import EmulatorAdmin
    from airflow_provider_importexport.emulator.faults import FaultConfig
    from airflow_provider_importexport.emulator.lifecycle import PROFILES, LifecycleProfile
    from airflow_provider_importexport.emulator.server import EmulatorServer, EmulatorSettings, ImportExportEmulator
    from airflow_provider_importexport.emulator.state import CancelRule

# Imported on first use, so the admin client starts without loading the server's
# dependencies (moto, boto3, uvicorn).
_EXPORTS = {
    "DEFAULT_ACCESS_KEY": "auth",
    "DEFAULT_ACCOUNT": "auth",
    "DEFAULT_ACCOUNT_ID": "auth",
    "DEFAULT_SECRET_KEY": "auth",
    "Account": "auth",
    "PROFILES": "lifecycle",
    "LifecycleProfile": "lifecycle",
    "EmulatorAdmin": "client",
    "FaultConfig": "faults",
    "EmulatorServer": "server",
    "EmulatorSettings": "server",
    "ImportExportEmulator": "server",
    "CancelRule": "state",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)


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
