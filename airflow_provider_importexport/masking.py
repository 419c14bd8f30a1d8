"""Keep manifest secrets (PIN codes, TrueCrypt passwords) out of logs, XCom and the UI."""

from __future__ import annotations

from typing import Any

from airflow.sdk.log import mask_secret

from airflow_provider_importexport.manifest import Manifest, secret_values_in_text


def manifest_secrets(manifest: Any) -> list[str]:
    """Secret values in a manifest given as a model, a dict or YAML text (unparseable text: by line)."""
    if isinstance(manifest, Manifest):
        return manifest.secret_values()
    if isinstance(manifest, str):
        return secret_values_in_text(manifest)
    if isinstance(manifest, dict):
        return [
            str(v)
            for k, v in manifest.items()
            if k in ("pinCode", "trueCryptPassword", "pin_code", "true_crypt_password") and v
        ]
    return []


def register_manifest_secrets(manifest: Any) -> None:
    """Register every secret of a manifest with Airflow's secret masker, before anything is logged."""
    for secret in manifest_secrets(manifest):
        mask_secret(secret)
