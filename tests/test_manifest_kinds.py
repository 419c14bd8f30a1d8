"""A manifest sent with the other JobType is named for what it is, before any field advice."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_importexport import exceptions as exc
from airflow_provider_importexport.manifest import load_manifest
from tests.helpers import export_manifest, import_manifest


def _problems(text: str, job_type: str) -> list[Any]:
    with pytest.raises(exc.ManifestError) as raised:
        load_manifest(text, job_type=job_type)
    return raised.value.problems


def test_an_export_manifest_sent_as_import_says_set_export_first() -> None:
    problems = _problems(export_manifest("data", "logs").to_yaml(), "Import")
    assert problems[0].field == "manifest"
    assert "this is a S3 export manifest but JobType is Import" in problems[0].message
    assert "job_type='Export'" in problems[0].message
    assert not [p for p in problems if p.field in ("fileSystem", "bucket")]  # no advice that turns it into an import


def test_an_import_manifest_sent_as_export_says_set_import_first() -> None:
    problems = _problems(import_manifest("data").to_yaml(), "Export")
    assert "this is a S3 import manifest but JobType is Export" in problems[0].message
    assert "job_type='Import'" in problems[0].message
    assert not [p for p in problems if p.field in ("fileSystem", "operations")]


def test_a_manifest_that_shows_no_kind_is_advised_as_the_job_type_asks() -> None:
    problems = _problems("manifestVersion: 2.0\ndeviceId: ABC\n", "Export")
    assert not [p for p in problems if "JobType is Export" in p.message]
    assert {"fileSystem", "operations"} <= {p.field for p in problems}


def test_the_emulator_answers_the_same_advice(client: Any) -> None:
    with pytest.raises(client.exceptions.InvalidManifestFieldException) as raised:
        client.create_job(JobType="Import", Manifest=export_manifest("data", "logs").to_yaml(), ValidateOnly=True)
    assert "use JobType=Export" in str(raised.value)


def test_the_kind_comes_first_even_before_a_field_that_could_not_be_read() -> None:
    text = export_manifest("data", "logs").to_yaml().replace("deviceId: disk-002", "deviceId: [1, 2]\nlogPrefix: [a]")
    problems = _problems(text, "Import")
    assert [p.field for p in problems[:3]] == ["manifest", "deviceId", "logPrefix"]
    assert "JobType is Import" in problems[0].message
