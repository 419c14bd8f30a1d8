"""Apache Airflow provider for AWS Import/Export: hook, operators, sensor, trigger, emulator."""

from __future__ import annotations

#: The one version source: pyproject.toml reads it statically, get_provider_info() from here.
__version__ = "0.1.0"

from airflow_provider_importexport.get_provider_info import get_provider_info

__all__ = ["__version__", "get_provider_info"]
