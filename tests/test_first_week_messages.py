"""Mistakes that explain themselves (#16): the user's own names, the valid values, the closest one."""

from __future__ import annotations

import pytest

from airflow_provider_importexport import exceptions as exc
from airflow_provider_importexport.manifest import ReturnAddress, S3ImportManifest
from airflow_provider_importexport.operators.importexport import ImportExportCreateJobOperator
from tests.helpers import import_manifest


def test_a_missing_field_names_its_python_argument_beside_its_yaml_key() -> None:
    address = ReturnAddress(name="Jane", street1="1 Main Street", city="Seattle", state_or_province="WA",
                            postal_code="98101", country="US")  # fmt: skip
    with pytest.raises(exc.ManifestError) as raised:
        S3ImportManifest(device_id="disk-001", bucket="raw", return_address=address).validate()
    assert "returnAddress.phoneNumber: required; add phoneNumber (phone_number= in Python)" in str(raised.value)


def test_a_missing_field_whose_names_agree_names_it_once() -> None:
    with pytest.raises(exc.ManifestError) as raised:
        import_manifest("").validate()
    assert "bucket: required; add bucket [" in str(raised.value)


@pytest.mark.parametrize(("job_type", "hint"), [("import", " (did you mean 'Import'?)"), ("Transfer", "")])
def test_job_type_lists_the_valid_values_and_suggests_the_closest(job_type: str, hint: str) -> None:
    create = ImportExportCreateJobOperator(task_id="create", manifest=import_manifest("raw"), job_type=job_type)
    with pytest.raises(exc.InvalidParameterError) as raised:
        create.execute({})  # type: ignore[arg-type]  # refused before anything reads the context
    assert raised.value.message == (
        f"job_type must be 'Import' or 'Export', got {job_type!r}{hint}; fix the operator's job_type argument."
    )
