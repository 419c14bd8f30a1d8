"""Masking at its edges: empty secrets, values already masked, block-scalar markers, and the
re-rendering fallback. Found by `make mutate` (docs/mutation.md): each test fails if its rule is
loosened."""

from __future__ import annotations

from airflow_provider_importexport.manifest import (
    _read_yaml,
    _redact_by_rendering,
    redact_manifest_text,
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
