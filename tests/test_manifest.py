"""The manifest model: round trips, every error code, random input, masking, and the emulator agreeing."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_importexport import exceptions as exc
from airflow_provider_importexport.manifest import (
    MASK,
    Customs,
    DeviceOperation,
    EbsImportManifest,
    ExportOperation,
    GlacierImportManifest,
    Manifest,
    S3ExportManifest,
    S3ImportManifest,
    load_manifest,
    parse_manifest,
    redact_manifest_text,
    secret_values_in_text,
)
from tests.helpers import address, export_manifest, import_manifest

CUSTOMS = Customs(
    data_description="Scanned archive photos",
    encrypted_data=True,
    encryption_classification="5D992",
    export_certifier_name="Jane Doe",
    requires_export_license=False,
    device_value=Decimal("250.00"),
    device_country_of_origin="China",
    device_type="externalStorageDevice",
    type_of_export="return",
)


def every_kind() -> list[Manifest]:
    return [
        S3ImportManifest(
            device_id="01234",
            bucket="data-bucket",
            log_bucket="log-bucket",
            log_prefix="logs/",
            generator="airflow test",
            notification_email="ops@example.com;data@example.com",
            service_level="expeditedShipping",
            return_address=address(street2="Floor 2"),
            acl="private",
            prefix="incoming/",
            substitutions={" ": "_"},
            ignore=[r"^\.Trash", r"\.tmp$"],
            content_types={"log": "text/plain"},
            default_content_type="binary/octet-stream",
            set_content_encoding_for_gz_files=True,
            cache_control="max-age=60",
            static_metadata={"team": "data"},
            pin_code="483920",
            true_crypt_password="correct horse",
        ),
        S3ExportManifest(
            device_id="exp-1",
            file_system="EXT4",
            operations=[
                ExportOperation(
                    export_bucket="a-bucket", prefix="images/", begin_marker="images/a", end_marker="images/m"
                ),
                ExportOperation(export_bucket="a-bucket", target_directory="docs"),
            ],
            log_bucket="log-bucket",
            recovery_directory="RECOVERED",
            pin_code="1234",
            return_address=address(country="DE", state_or_province=None),
            customs=CUSTOMS,
        ),
        EbsImportManifest(
            device_id="ebs-1",
            log_bucket="log-bucket",
            operations=[DeviceOperation(destination="ebs-snapshot", region="us-east-1")],
            return_address=address(),
        ),
        GlacierImportManifest(
            device_id="gl-1",
            log_bucket="log-bucket",
            operations=[
                DeviceOperation(
                    destination="glacier", region="us-east-1", vault_name="vault", archive_comment="2009 scans"
                )
            ],
            return_address=address(),
        ),
    ]


@pytest.mark.parametrize("manifest", every_kind(), ids=lambda m: m.kind_name)
def test_round_trip_every_kind(manifest: Manifest) -> None:
    text = manifest.to_yaml()
    parsed = parse_manifest(text, job_type=manifest.job_type)
    assert parsed == manifest
    assert type(parsed) is type(manifest)
    assert parsed.to_yaml() == text  # deterministic
    assert load_manifest(parsed.to_dict(), job_type=manifest.job_type) == manifest
    assert text.startswith(f"manifestVersion: {manifest.version}\n")


def test_rendering_matches_the_service_examples() -> None:
    text = every_kind()[0].to_yaml()
    assert "deviceId: '01234'" in text  # stays a string, never an octal number
    assert "eraseDevice: yes\n" in text
    assert "setContentEncodingForGzFiles: yes\n" in text
    assert list(yaml.safe_load(text))[:3] == ["manifestVersion", "deviceId", "generator"]


def test_tolerant_spellings_from_aws_examples() -> None:
    text = "manifestVersion:2.0;\ndeviceId:ABCDE\nbucket:my-bucket\nreturnAddress:\n  name: Jane\n"
    with pytest.raises(exc.ManifestError) as raised:
        load_manifest(text, job_type="Import")
    fields = {p.field for p in raised.value.problems}
    assert "manifestVersion" not in fields and "bucket" not in fields
    assert "returnAddress.street1" in fields


def test_the_example_spellings_leave_block_scalars_alone() -> None:
    """``key:value`` is fixed only when the text does not read as a mapping without the fix."""
    text = import_manifest("b").to_yaml() + "generator: |\n  built:by the nightly job\n  cacheControl:x\n"
    assert load_manifest(text, job_type="Import").generator == "built:by the nightly job\ncacheControl:x\n"
    assert load_manifest(text.replace("bucket: b", "bucket:b"), job_type="Import").bucket == "b"


def problems_of(source: Any, job_type: str = "Import", **kwargs: Any) -> dict[str, str]:
    with pytest.raises(exc.ManifestError) as raised:
        load_manifest(source, job_type=job_type, **kwargs)
    return {p.field: p.code for p in raised.value.problems}


BASE = import_manifest("data-bucket")


BAD_MANIFESTS = [
    ("just text", "Import", None, "MalformedManifestException", "manifest"),
    ("a: [unclosed", "Import", None, "MalformedManifestException", "manifest"),
    ("- a\n- b\n", "Import", None, "MalformedManifestException", "manifest"),
    (BASE.to_yaml().replace("deviceId: disk-001\n", ""), "Import", None, "MissingManifestFieldException", "deviceId"),
    (
        BASE.to_yaml().replace("manifestVersion: 2.0\n", ""),
        "Import",
        None,
        "MissingManifestFieldException",
        "manifestVersion",
    ),
    (import_manifest("b", acl="everyone"), "Import", None, "InvalidManifestFieldException", "acl"),
    (import_manifest("b", manifest_version="3.0"), "Import", None, "InvalidManifestFieldException", "manifestVersion"),
    (import_manifest("b", log_prefix="x" * 1020), "Import", None, "InvalidManifestFieldException", "logPrefix"),
    (import_manifest("b", ignore=["(unclosed"]), "Import", None, "InvalidManifestFieldException", "ignore[0]"),
    (import_manifest("b", erase_device=False), "Import", None, "InvalidManifestFieldException", "eraseDevice"),
    (
        import_manifest("b", notification_email="not-an-address"),
        "Import",
        None,
        "InvalidManifestFieldException",
        "notificationEmail",
    ),
    (BASE.to_yaml() + "logbucket: typo\n", "Import", None, "InvalidManifestFieldException", "logbucket"),
    (
        import_manifest("b", return_address=address(street1="P.O. Box 7")),
        "Import",
        None,
        "InvalidAddressException",
        "returnAddress.street1",
    ),
    (
        import_manifest("b", return_address=address(state_or_province=None)),
        "Import",
        None,
        "InvalidAddressException",
        "returnAddress.stateOrProvince",
    ),
    (
        import_manifest("b", return_address=address(city=None)),
        "Import",
        None,
        "InvalidAddressException",
        "returnAddress.city",
    ),
    (
        import_manifest("b", return_address=address(country="JP", state_or_province=None)),
        "Import",
        {"b": "us-east-1"},
        "MissingCustomsException",
        "customs",
    ),
    (
        BASE.to_yaml() + "customs:\n  dataDescription: x\n  deviceValue: lots\n",
        "Import",
        None,
        "InvalidCustomsException",
        "customs.deviceValue",
    ),
    (export_manifest("b", "l", file_system="ZFS"), "Export", None, "InvalidFileSystemException", "fileSystem"),
    (
        export_manifest("b", "l", true_crypt_password=None),
        "Export",
        None,
        "MissingManifestFieldException",
        "trueCryptPassword",
    ),
    (export_manifest("b", "l"), "Export", {"b": "us-east-1", "l": "eu-west-1"}, "MultipleRegionsException", "bucket"),
]


@pytest.mark.parametrize(("source", "job_type", "regions", "code", "field"), BAD_MANIFESTS)
def test_each_error_code(source: Any, job_type: str, regions: Any, code: str, field: str) -> None:
    found = problems_of(source, job_type, bucket_regions=regions)
    assert found.get(field) == code, found


def test_every_problem_is_reported_at_once() -> None:
    text = "manifestVersion: 2.0\nbucket: b\nlogbucket: x\nacl: nope\neraseDevice: maybe\nreturnAddress:\n  name: J\n"
    expected = ["eraseDevice", "logbucket", "deviceId", *(f"returnAddress.{k}" for k in ADDRESS_FIELDS), "acl"]
    for read in (parse_manifest, load_manifest):  # parsing alone already reports everything, not just what it met
        with pytest.raises(exc.ManifestError) as raised:
            read(text, job_type="Import")
        assert sorted(p.field for p in raised.value.problems) == sorted(expected)


ADDRESS_FIELDS = ("street1", "city", "postalCode", "country", "phoneNumber")


def test_errors_name_the_field_and_the_fix() -> None:
    with pytest.raises(exc.InvalidManifestFieldError) as raised:
        load_manifest(BASE.to_yaml() + "logbucket: typo\n", job_type="Import")
    assert "logbucket" in str(raised.value)
    assert "did you mean 'logBucket'" in str(raised.value)


def test_eu_addresses_ship_to_ireland_without_customs() -> None:
    manifest = import_manifest("b", return_address=address(country="DE", state_or_province=None))
    assert load_manifest(manifest, job_type="Import", bucket_regions={"b": "eu-west-1"})
    assert problems_of(manifest, bucket_regions={"b": "us-east-1"})["customs"] == "MissingCustomsException"


def test_glacier_needs_vault_and_comment() -> None:
    manifest = GlacierImportManifest(
        device_id="g", log_bucket="l", operations=[DeviceOperation(destination="glacier")], return_address=address()
    )
    found = problems_of(manifest)
    assert found["operations[0].vaultName"] == "MissingManifestFieldException"
    assert found["operations[0].archiveComment"] == "MissingManifestFieldException"


def test_job_type_must_match_the_kind() -> None:
    found = problems_of(every_kind()[2], job_type="Export")
    assert found["manifest"] == "InvalidManifestFieldException"


# --- secrets -----------------------------------------------------------------------------------


def test_masked_rendering_hides_every_secret() -> None:
    for manifest in every_kind():
        masked = manifest.to_yaml(mask_secrets=True)
        for secret in manifest.secret_values():
            assert secret not in masked
        assert parse_manifest(masked, job_type=manifest.job_type).to_dict() == manifest.to_dict(mask_secrets=True)
    assert every_kind()[0].secret_values() == ["483920", "correct horse"]


def test_redacting_service_text_keeps_its_shape() -> None:
    text = "manifestVersion: 2.0\npinCode: '483920'\ntrueCryptPassword:hunter2\nbucket: b\n"
    redacted = redact_manifest_text(text)
    assert "483920" not in redacted and "hunter2" not in redacted
    assert redacted.count(MASK) == 2
    assert redacted.endswith("bucket: b\n")
    assert secret_values_in_text(text) == ["483920", "hunter2"]


# --- random and mutated input never escapes as another exception --------------------------------

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=10), inner, max_size=3)),
    max_leaves=10,
)
KEYS = sorted({*S3ImportManifest.yaml_keys(), *S3ExportManifest.yaml_keys(), *GlacierImportManifest.yaml_keys()})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(KEYS), values, max_size=8), st.sampled_from(["Import", "Export", None]))
def test_random_manifests_validate_or_fail_clearly(data: dict[str, Any], job_type: str | None) -> None:
    try:
        load_manifest(data, job_type=job_type)
    except exc.ManifestError as error:
        assert error.problems
        assert all(p.field and p.message and p.code.endswith("Exception") for p in error.problems)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_random_text_fails_clearly(text: str) -> None:
    try:
        load_manifest(text, job_type="Import")
    except exc.ManifestError as error:
        assert error.problems


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(every_kind()), st.data())
def test_mutated_valid_manifests(manifest: Manifest, data: st.DataObject) -> None:
    tree = manifest.to_dict()
    key = data.draw(st.sampled_from(sorted(tree)))
    tree[key] = data.draw(values)
    try:
        load_manifest(tree, job_type=manifest.job_type)
    except exc.ManifestError as error:
        assert error.problems


# --- the emulator gives the same verdict over HTTP ------------------------------------------------


def _as_text(source: Any) -> str:
    return source if isinstance(source, str) else source.to_yaml()


@pytest.mark.parametrize(("source", "job_type", "code"), [(s, j, c) for s, j, r, c, _f in BAD_MANIFESTS if r is None])
def test_emulator_rejects_with_the_same_code(client: Any, source: Any, job_type: str, code: str) -> None:
    with pytest.raises(client.exceptions.ClientError) as raised:
        client.create_job(JobType=job_type, Manifest=_as_text(source), ValidateOnly=True)
    assert raised.value.response["Error"]["Code"] == code


def test_emulator_knows_bucket_regions(client: Any, make_bucket: Any) -> None:
    us_bucket = make_bucket("us")
    abroad = import_manifest(us_bucket, return_address=address(country="JP", state_or_province=None))
    with pytest.raises(client.exceptions.MissingCustomsException):
        client.create_job(JobType="Import", Manifest=abroad.to_yaml(), ValidateOnly=False)
    eu_bucket = make_bucket("eu", region="eu-west-1")
    with pytest.raises(client.exceptions.MultipleRegionsException):
        client.create_job(
            JobType="Export", Manifest=export_manifest(us_bucket, eu_bucket).to_yaml(), ValidateOnly=False
        )
    from_germany = import_manifest(eu_bucket, return_address=address(country="DE", state_or_province=None))
    assert client.create_job(JobType="Import", Manifest=from_germany.to_yaml(), ValidateOnly=False)["JobId"]


def test_emulator_checks_the_manifest_access_key(client: Any, bucket: str) -> None:
    with pytest.raises(client.exceptions.InvalidAccessKeyIdException):
        client.create_job(
            JobType="Import", Manifest=import_manifest(bucket, access_key_id="AKIAOTHER").to_yaml(), ValidateOnly=False
        )
    ok = import_manifest(bucket, access_key_id="AKIAIOSFODNN7EXAMPLE")
    assert client.create_job(JobType="Import", Manifest=ok.to_yaml(), ValidateOnly=False)["JobId"]


@pytest.mark.parametrize("folder", ["/srv/out", "../out", "a/../../b", "ok/./x"])
def test_export_folders_must_stay_on_the_device_reported_with_everything_else(folder: str) -> None:
    """Checked by the model (before any call, and by the emulator with the same rule), in the same
    round as every other problem."""
    from airflow_provider_importexport.manifest import ExportOperation, load_manifest

    manifest = export_manifest(
        "data",
        "logs",
        recovery_directory=folder,
        operations=[ExportOperation(export_bucket="data", target_directory=folder)],
        return_address=address(city=None),
    )
    with pytest.raises(exc.ManifestError) as raised:
        load_manifest(manifest.to_dict(), job_type="Export")
    fields = {p.field for p in raised.value.problems}
    assert {"recoveryDirectory", "operations[0].targetDirectory", "returnAddress.city"} <= fields
