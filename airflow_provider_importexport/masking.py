"""Keep manifest secrets (PIN codes, TrueCrypt passwords) out of logs, XCom and the UI."""

from __future__ import annotations

from typing import Any

from airflow.sdk.log import mask_secret

from airflow_provider_importexport.manifest import (
    SECRET_FIELD_NAMES,
    Manifest,
    secret_values_in_data,
    secret_values_in_text,
)

#: Secret fields as a dict may name them: the service's keys or the model's attribute names.
SECRET_NAMES = SECRET_FIELD_NAMES


def manifest_secrets(manifest: Any) -> list[str]:
    """Secret values in a manifest given as a model, a dict or YAML text.

    Text and dicts are searched the way the model reads them (any YAML style, any depth),
    so whatever the model would send as a secret is registered.
    """
    if isinstance(manifest, Manifest):
        return manifest.secret_values()
    if isinstance(manifest, str):
        return secret_values_in_text(manifest)
    if isinstance(manifest, dict):
        return secret_values_in_data(manifest)
    return []


def register_manifest_secrets(manifest: Any) -> None:
    """Register every secret of a manifest with Airflow's secret masker, before anything is logged."""
    for secret in manifest_secrets(manifest):
        mask_secret(secret)
