"""Masking at its edges: empty secrets, values already masked, block-scalar markers, and the
re-rendering fallback. Found by `make mutate` (docs/mutation.md): each test fails if its rule is
loosened."""

from __future__ import annotations

from airflow_provider_importexport.manifest import (
    _read_yaml,
    _redact_by_rendering,
    redact_manifest_text,
    secret_values_in_data,
    secret_values_in_text,
)

WITH_AN_EMPTY_SECRET = """manifestVersion: 2.0
deviceId: ABC123
pinCode:
trueCryptPassword: s3cr3t-pass
generator: x
"""


def test_guesses_in_unreadable_text_skip_empty_masked_and_block_markers() -> None:
    """Registering "", "***" or "|" with the masker would star out every log line: only real values count."""
    unreadable = 'manifestVersion: 2.0\ndeviceId: "broken\npinCode:\ntrueCryptPassword: ***\npinCode: |\n  123456\n'
    assert secret_values_in_text(unreadable) == ["123456"]


def test_an_empty_secret_is_left_as_written_while_the_others_are_masked() -> None:
    assert redact_manifest_text(WITH_AN_EMPTY_SECRET) == WITH_AN_EMPTY_SECRET.replace("s3cr3t-pass", '"***"')


def test_the_rendering_fallback_keeps_block_style_and_every_value() -> None:
    rendered = _redact_by_rendering(_read_yaml(WITH_AN_EMPTY_SECRET), ["s3cr3t-pass"])
    assert rendered == (
        "manifestVersion: 2.0\ndeviceId: ABC123\npinCode: '***'\ntrueCryptPassword: '***'\ngenerator: x\n"
    )


def test_a_comment_on_the_first_line_that_copies_a_secret_is_masked() -> None:
    text = "# pin for this disk: 80417-first-line\nmanifestVersion: 2.0\ndeviceId: ABC123\npinCode: 80417-first-line\n"
    redacted = redact_manifest_text(text)
    assert "80417-first-line" not in redacted
    assert redacted.startswith("# pin for this disk: ***")


def test_secrets_are_found_after_a_part_the_data_uses_twice() -> None:
    """DAG code often reuses one dict (the same address for two fields): the walk skips the second
    visit, and must go on to the fields after it."""
    address = {"name": "Jane Doe", "city": "Seattle"}
    data = {"returnAddress": address, "notificationAddress": address, "pinCode": "5521-after-shared"}
    assert secret_values_in_data(data) == ["5521-after-shared"]
