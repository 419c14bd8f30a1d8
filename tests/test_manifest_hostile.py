"""Hostile and broken manifests (issue #11): alias bombs, deep nesting, size, problems in rounds, any-style secrets."""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
import yaml
from botocore.config import Config
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from airflow_provider_importexport import exceptions as exc
from airflow_provider_importexport.emulator import ImportExportEmulator
from airflow_provider_importexport.manifest import (
    MASK,
    MAX_LISTED_PROBLEMS,
    MAX_MANIFEST_BYTES,
    MAX_MANIFEST_DEPTH,
    MAX_MANIFEST_VALUES,
    SECRET_KEYS,
    Manifest,
    load_manifest,
    parse_manifest,
    redact_manifest_text,
    secret_values_in_text,
)
from airflow_provider_importexport.masking import manifest_secrets
from tests.helpers import address, export_manifest, import_manifest

FAST = 0.5  # seconds; the refusals below take well under a millisecond


def alias_bomb(levels: int = 9) -> str:
    """The "billion laughs": each level lists the previous one 9 times, so 9 levels stand for 9**9 values."""
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    names = "abcdefghijklmnop"
    for previous, name in itertools.pairwise(names[:levels]):
        lines.append(f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]")
    lines.append(f"manifestVersion: *{names[levels - 1]}")  # str() of this expands all of it
    return "\n".join(lines) + "\n"


BOMB = alias_bomb()


def refusal(source: Any, **kwargs: Any) -> tuple[exc.ManifestError, float]:
    started = time.perf_counter()
    with pytest.raises(exc.ManifestError) as raised:
        load_manifest(source, **kwargs)
    return raised.value, time.perf_counter() - started


# --- 1. aliases, anchors and size ------------------------------------------------------------------


def test_the_alias_bomb_is_refused_in_milliseconds() -> None:
    assert 400 <= len(BOMB.encode()) <= 500
    error, took = refusal(BOMB, job_type="Import")
    assert took < FAST, took
    assert isinstance(error, exc.MalformedManifestError)
    assert error.code == "MalformedManifestException"
    assert [p.field for p in error.problems] == ["manifest"]
    assert "anchor" in str(error) and "write each value out in full" in str(error)
    assert "line 1, column 4" in str(error)  # where the first anchor is


@pytest.mark.parametrize(
    "text",
    [
        "manifestVersion: 2.0\nbucket: *undefined\n",
        "manifestVersion: 2.0\nbucket: &b data\nlogBucket: data\n",
        "manifestVersion: 2.0\nreturnAddress: {name: &n Jane, company: *n}\n",
        "- &x [1, 2]\n- *x\n",
    ],
    ids=["alias", "anchor", "flow", "top-level list"],
)
def test_anchors_and_aliases_are_refused(text: str) -> None:
    error, took = refusal(text, job_type="Import")
    assert took < FAST
    assert isinstance(error, exc.MalformedManifestError)
    assert "anchors or aliases" in error.problems[0].message


def test_ampersands_and_stars_inside_values_are_fine() -> None:
    text = import_manifest("b", generator="Smith & *Sons*").to_yaml()
    text += "cacheControl: '&not *an alias'\ncontentDisposition: a &b *c\n"
    manifest = load_manifest(text, job_type="Import")
    assert manifest.generator == "Smith & *Sons*"
    assert manifest.cache_control == "&not *an alias"  # type: ignore[attr-defined]
    assert manifest.content_disposition == "a &b *c"  # type: ignore[attr-defined]


def test_size_is_capped_in_bytes() -> None:
    base = import_manifest("b").to_yaml()
    filler = MAX_MANIFEST_BYTES - len(base.encode()) - len("generator: ''\n")
    at_limit = f"{base}generator: '{'x' * filler}'\n"
    assert len(at_limit.encode()) == MAX_MANIFEST_BYTES
    assert load_manifest(at_limit, job_type="Import").generator == "x" * filler

    for over in (at_limit + "#", f"{base}generator: '{'ä' * (filler // 2 + 1)}'\n"):  # ä is 2 bytes
        error, took = refusal(over, job_type="Import")
        assert took < FAST
        assert isinstance(error, exc.MalformedManifestError)
        assert f"over the {MAX_MANIFEST_BYTES}-byte limit" in str(error)
        assert "remove unused entries" in str(error)


def test_a_huge_body_is_refused_without_being_read() -> None:
    error, took = refusal("a: b\n" * 5_000_000)
    assert took < FAST
    assert f"over the {MAX_MANIFEST_BYTES}-byte limit" in str(error)


def test_the_number_of_values_is_capped() -> None:
    """Reading costs per value: 64 KB of ``1,`` would be 30,000 of them."""
    at_limit = "[" + "1, " * (MAX_MANIFEST_VALUES - 2) + "1]"  # the list, its items and nothing else
    with pytest.raises(exc.MalformedManifestError, match="must be a YAML mapping"):
        load_manifest(at_limit)
    error, took = refusal(f"{{a: {at_limit}}}")
    assert took < 2 * FAST  # the values before the limit are read: ~100 ms
    assert f"has more than {MAX_MANIFEST_VALUES} keys, values and list items" in str(error)
    assert "remove unused entries" in str(error)


# --- 2. nesting -------------------------------------------------------------------------------------


def nested(shape: str, depth: int) -> str:
    if shape == "flow list":
        return "[" * depth + "]" * depth
    if shape == "flow map":
        return "{a: " * depth + "x" + "}" * depth
    if shape == "block map":
        return "".join(" " * i + "a:\n" for i in range(depth)) + " " * depth + "x\n"
    if shape == "block list":
        return "- " * depth + "x\n"
    if shape == "mixed":  # block maps, then a block list, then flow lists and maps
        head = "manifestVersion: 2.0\nreturnAddress:\n  name:\n"
        return head + "    - - " + "[{a: " * depth + "x" + "}]" * depth + "\n"
    if shape == "json":
        return '{"manifestVersion": "2.0", "operations": ' + '[{"a": ' * depth + "1" + "}]" * depth + "}"
    raise AssertionError(shape)


SHAPES = ["flow list", "flow map", "block map", "block list", "mixed", "json"]


@pytest.mark.parametrize("depth", [500, 5000])
@pytest.mark.parametrize("shape", SHAPES)
def test_deep_nesting_is_refused_in_milliseconds(shape: str, depth: int) -> None:
    error, took = refusal(nested(shape, depth), job_type="Import")
    assert took < FAST, took
    assert isinstance(error, exc.MalformedManifestError)
    assert f"deeper than {MAX_MANIFEST_DEPTH} levels" in str(error)
    assert "flatten it" in str(error)
    # A block map this deep is also far over the size limit (its indentation alone): both are named.
    assert len(error.problems) == (2 if shape == "block map" else 1)


@pytest.mark.parametrize("shape", SHAPES)
def test_the_depth_limit_is_exact(shape: str) -> None:
    """Ten nested levels (the limit) are read; eleven are refused."""
    allowed = {"flow list": 10, "flow map": 10, "block map": 10, "block list": 10, "mixed": 3, "json": 4}[shape]
    try:
        load_manifest(nested(shape, allowed), job_type="Import")
    except exc.ManifestError as error:
        assert "deeper than" not in str(error)
    error, _ = refusal(nested(shape, allowed + 1), job_type="Import")
    assert f"deeper than {MAX_MANIFEST_DEPTH} levels" in str(error)


ADDRESS_REQUIRED = {f"returnAddress.{k}" for k in ("name", "street1", "city", "postalCode", "country", "phoneNumber")}


def test_deep_plain_data_is_no_recursion_error() -> None:
    deep: dict[str, Any] = {}
    inner = deep
    for _ in range(5000):
        inner["a"] = {}
        inner = inner["a"]
    inner["pinCode"] = "98765"
    data = {**import_manifest("b").to_dict(), "substitutions": deep, "returnAddress": deep}
    error, took = refusal(data, job_type="Import")
    assert took < FAST
    assert {p.field for p in error.problems} == {"substitutions", "returnAddress.a", *ADDRESS_REQUIRED}
    assert manifest_secrets(data) == ["98765"]


# --- 3. every problem at once -------------------------------------------------------------------------

DESCRIBED = (
    import_manifest("b", return_address=address(city=None)).to_yaml().replace("eraseDevice: yes", "eraseDevice: maybe")
)

MANY_KINDS = """\
bucket: b
eraseDevice: perhaps
acl: everyone
logbucket: typo
notificationEmail: not-an-address
returnAddress:
  name: Jane
  street1: PO Box 7
  city: Seattle
  stateOrProvince: WA
  country: US
  phoneNumber: call me
customs:
  dataDescription: photos
  encryptedData: perhaps
  deviceValue: lots
"""

STRUCTURE = """\
manifestVersion: 2.0
deviceId: d
returnAddress: [Jane, 1 Main St]
ignore: {a: b}
substitutions: [x]
"""

EXPORT = """\
manifestVersion: 2.0
deviceId: d
fileSystem: ZFS
operations:
- just a string
- prefix: x
returnAddress:
  name: Jane
  street1: 1 Main St
  city: Seattle
  stateOrProvince: WA
  postalCode: '98101'
  country: US
  phoneNumber: 206-555-0100
"""

COMBINATIONS = [
    ("described", DESCRIBED, "Import", ["eraseDevice", "returnAddress.city"]),
    (
        "many kinds",
        MANY_KINDS,
        "Import",
        [
            # what could not be read, in the order written
            "manifestVersion",
            "eraseDevice",
            "logbucket",
            "customs.encryptedData",
            "customs.deviceValue",
            # then what validation finds (a field the reader refused is not reported again as missing)
            "deviceId",
            "returnAddress.postalCode",
            "customs.encryptionClassification",
            "customs.exportCertifierName",
            "customs.requiresExportLicense",
            "customs.deviceCountryOfOrigin",
            "customs.deviceType",
            "customs.typeOfExport",
            "acl",
            "notificationEmail",
            "returnAddress.street1",
            "returnAddress.phoneNumber",
        ],
    ),
    ("structure", STRUCTURE, "Import", ["returnAddress", "ignore", "substitutions", "bucket"]),
    (
        "export",
        EXPORT,
        "Export",
        ["operations[0]", "operations[1].exportBucket", "logBucket", "fileSystem", "trueCryptPassword"],
    ),
]


@pytest.mark.parametrize(
    ("text", "job_type", "fields"), [c[1:] for c in COMBINATIONS], ids=[c[0] for c in COMBINATIONS]
)
def test_every_problem_of_every_kind_in_one_error(text: str, job_type: str, fields: list[str]) -> None:
    for read in (parse_manifest, load_manifest):  # the emulator parses first, then validates
        with pytest.raises(exc.ManifestError) as raised:
            read(text, job_type=job_type)
        assert [p.field for p in raised.value.problems] == fields, read.__name__
        assert f"has {len(fields)} problems" in str(raised.value)


def test_the_described_manifest_reports_both_problems() -> None:
    with pytest.raises(exc.InvalidManifestFieldError) as raised:
        parse_manifest(DESCRIBED, job_type="Import")
    assert {(p.field, p.code) for p in raised.value.problems} == {
        ("eraseDevice", "InvalidManifestFieldException"),
        ("returnAddress.city", "InvalidAddressException"),
    }
    assert "'maybe' is not yes or no" in str(raised.value)
    assert "add city" in str(raised.value)


def test_region_problems_join_the_rest_with_a_region_lookup() -> None:
    text = export_manifest("us", "eu", file_system="ZFS").to_yaml()
    regions = {"us": "us-east-1", "eu": "eu-west-1"}
    for lookup in (regions, regions.get):
        with pytest.raises(exc.ManifestError) as raised:
            load_manifest(text, job_type="Export", bucket_regions=lookup)
        assert [p.field for p in raised.value.problems] == ["fileSystem", "bucket"]


def test_a_long_list_of_problems_is_listed_in_part_but_kept_whole() -> None:
    text = import_manifest("b").to_yaml() + "".join(f"unknown{i}: x\n" for i in range(120))
    error, _ = refusal(text, job_type="Import")
    assert len(error.problems) == 120
    assert f"and {120 - MAX_LISTED_PROBLEMS} more" in str(error)
    assert str(error).count("unknown field") == MAX_LISTED_PROBLEMS


def test_hostile_values_do_not_swell_messages() -> None:
    text = import_manifest("b").to_yaml().replace("eraseDevice: yes", f"eraseDevice: {'y' * 50_000}")
    error, _ = refusal(text, job_type="Import")
    assert len(str(error)) < 300
    assert "is not yes or no" in str(error)


# --- 4. secrets in any style ----------------------------------------------------------------------

PIN, PASSWORD = "48a39Z20", "correct horse battery staple"

STYLES = {
    "flow": f"{{manifestVersion: 2.0, pinCode: {PIN}, trueCryptPassword: {PASSWORD}}}",
    "json": json.dumps({"manifestVersion": "2.0", "pinCode": PIN, "trueCryptPassword": PASSWORD}, indent=2),
    "json escaped": json.dumps({"pinCode": PIN, "trueCryptPassword": PASSWORD}).replace("a", "\\u0061"),
    "quoted keys": f"'pinCode': {PIN}\n\"trueCryptPassword\": '{PASSWORD}'\n",
    "literal": f"pinCode: |\n  {PIN}\ntrueCryptPassword: |-\n  {PASSWORD}\nbucket: b\n",
    "folded": f"pinCode: >\n  {PIN}\ntrueCryptPassword: >-\n  correct horse\n  battery staple\nbucket: b\n",
    "plain folded": f"pinCode: {PIN}\ntrueCryptPassword: correct horse\n  battery staple\nbucket: b\n",
    "double quoted folded": f'pinCode: "{PIN}"\ntrueCryptPassword: "correct horse\\\n  \\ battery staple"\nbucket: b\n',
    "escaped": 'pinCode: "\\x34\\x38a39Z20"\ntrueCryptPassword: "correct\\x20horse battery\\u0020staple"\n',
    "tagged": f"pinCode: !!str {PIN}\ntrueCryptPassword: !!str '{PASSWORD}'\n",
    "no space": f"manifestVersion:2.0;\npinCode:{PIN}\ntrueCryptPassword:{PASSWORD.replace(' ', '-')}\n",
    "duplicate keys": f"pinCode: {PIN}\npinCode: other-{PIN}\ntrueCryptPassword: '{PASSWORD}'\n",
    "misspelt keys": f"pin_code: {PIN}\nTrueCryptPassword: {PASSWORD}\n",
    "complex key": f"? pinCode\n: {PIN}\n? trueCryptPassword\n: {PASSWORD}\n",
    "list value": f"pinCode:\n- {PIN}\n- x\ntrueCryptPassword: [{PASSWORD}]\nbucket: b\n",
    "map value": f"pinCode:\n  code: {PIN}\ntrueCryptPassword: {{a: {PASSWORD}}}\nbucket: b\n",
    "copies": f"pinCode: {PIN}\ngenerator: 'built with {PIN}'\n# the old password was {PASSWORD}\n"
    f"trueCryptPassword: {PASSWORD} # {PIN}\n{PIN}: key\n",
    "in a list": f"operations:\n- pinCode: {PIN}\n  trueCryptPassword: {PASSWORD}\n",
}


@pytest.mark.parametrize("style", list(STYLES))
def test_every_style_is_masked(style: str) -> None:
    text = STYLES[style]
    secrets = [PIN, PASSWORD.replace(" ", "-") if style == "no space" else PASSWORD]
    masked = redact_manifest_text(text)
    for secret in [*secrets, "correct horse", "battery staple", "48a39"]:
        assert secret not in masked
    read = yaml.safe_load(masked)  # still YAML (the mask is quoted: a bare *** would be an alias)
    assert read is not None
    found = secret_values_in_text(text)
    for secret in secrets:
        assert secret in found, (secret, found)
    assert MASK not in found


def test_masking_keeps_the_text_around_the_secrets() -> None:
    masked = redact_manifest_text(STYLES["copies"])
    assert masked == (
        'pinCode: "***"\ngenerator: "built with ***"\n# the old password was ***\n'
        'trueCryptPassword: "***" # ***\n"***": key\n'
    )
    masked = redact_manifest_text(STYLES["literal"])
    assert masked == 'pinCode: "***"\ntrueCryptPassword: "***"\nbucket: b\n'
    assert redact_manifest_text(STYLES["list value"]) == 'pinCode:\n  "***"\ntrueCryptPassword: "***"\nbucket: b\n'


UNREADABLE = {
    "unterminated": f"pinCode: '{PIN}\nbucket: b\n",
    "alias": f"x: &a {PIN}\npinCode: *a\n",  # the secret sits where the anchor is
    "oversize": f"pinCode: {PIN}\n" + "generator: x\n" * 6000,
    "too deep": f"{{pinCode: {PIN}, trueCryptPassword: [[[[[[[[[[[{PASSWORD}]]]]]]]]]]]}}",
    "bad indentation": f"trueCryptPassword: {PASSWORD}\n  bad: indentation\n",
}


@pytest.mark.parametrize("name", list(UNREADABLE))
def test_unreadable_text_is_masked_conservatively(name: str) -> None:
    text = UNREADABLE[name]
    started = time.perf_counter()
    masked = redact_manifest_text(text)
    assert time.perf_counter() - started < FAST
    assert PIN not in masked and "horse" not in masked
    if name != "too deep":  # block text keeps the model's keys, so its shape is still recognisable
        assert re.search(r"^(pinCode|trueCryptPassword): \"\*\*\*\"$", masked, re.MULTILINE)
    if name != "alias":  # best guesses for the masker: what follows a secret key
        assert set(secret_values_in_text(text)) & {PIN, PASSWORD}


def test_dict_secrets_are_found_at_any_depth_and_spelling() -> None:
    data = {"pinCode": PIN, "operations": [{"true_crypt_password": PASSWORD}], "self": None}
    data["self"] = data  # cycles end the walk
    assert manifest_secrets(data) == [PIN, PASSWORD]


def test_secret_keys_come_from_the_model() -> None:
    assert set(SECRET_KEYS) == {"pinCode", "trueCryptPassword"}


# --- the property: any manifest, any YAML style, no secret survives masking ------------------------

# Printable characters the YAML reader accepts; line separators left out (YAML reads them as breaks).
SECRET_CHARS = st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Cn", "Zl", "Zp")) | st.sampled_from(
    " :#-'\"{}[],&*!|>%@`\\"
)
SECRETS = st.text(SECRET_CHARS, min_size=4, max_size=80).filter(lambda s: any(c.isalnum() for c in s))
LONG_TEXT = st.text(SECRET_CHARS, min_size=1, max_size=150)  # long enough to be folded over lines
STR = "tag:yaml.org,2002:str"


def as_text(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): as_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_text(v) for v in value]
    return str(value)


def node_for(value: Any, draw: Any) -> yaml.Node:
    if isinstance(value, dict):
        pairs = [
            (yaml.ScalarNode(STR, k, style=draw(st.sampled_from([None, "'", '"']))), node_for(v, draw))
            for k, v in value.items()
        ]
        return yaml.MappingNode("tag:yaml.org,2002:map", pairs, flow_style=draw(st.booleans()))
    if isinstance(value, list):
        return yaml.SequenceNode(
            "tag:yaml.org,2002:seq", [node_for(v, draw) for v in value], flow_style=draw(st.booleans())
        )
    return yaml.ScalarNode(STR, value, style=draw(st.sampled_from([None, "'", '"', "|", ">"])))


def comment_lines(text: str, draw: Any, comments: list[str]) -> str:
    """Full-line comments before top-level lines (never inside a multi-line scalar), plus a head and a tail."""
    out = ["# note\n"]
    for line in text.splitlines(keepends=True):
        if line[:1] not in ("", " ", "\t", "\n") and draw(st.booleans()):
            out.append(f"# {draw(st.sampled_from(comments))}\n")
        out.append(line)
    return "".join(out) + f"\n# {draw(st.sampled_from(comments))}\n"


@st.composite
def rendered_manifests(draw: Any) -> tuple[Manifest, str, list[str], str]:
    pin, password = draw(st.none() | SECRETS), draw(st.none() | SECRETS)
    assume(pin or password)
    fields = {"pin_code": pin, "true_crypt_password": password, "generator": draw(st.none() | LONG_TEXT)}
    if draw(st.booleans()):
        manifest: Manifest = import_manifest("data-bucket", **fields)
    else:
        manifest = export_manifest("data-bucket", "log-bucket", **fields)
    secrets = [s for s in (pin, password) if s]
    data = as_text(manifest.to_dict())
    style = draw(st.sampled_from(["nodes", "json", "dump"]))
    if style == "json":
        ascii_only = draw(st.booleans())
        # PyYAML reads JSON's \ud83d\ude00 as two characters: keep such text to YAML's own escapes.
        assume(not ascii_only or all(ord(c) <= 0xFFFF for s in strings_in(data) for c in s))
        text = json.dumps(data, indent=draw(st.sampled_from([None, 0, 2, 4])), ensure_ascii=ascii_only)
        text = "\n".join(f"{line} # note" if draw(st.booleans()) else line for line in text.splitlines())
    elif style == "dump":
        text = yaml.dump(
            data,
            sort_keys=draw(st.booleans()),
            default_flow_style=draw(st.sampled_from([None, True, False])),
            default_style=draw(st.sampled_from([None, "'", '"', "|", ">"])),
            width=draw(st.integers(10, 100)),
            allow_unicode=draw(st.booleans()),
        )
    else:
        text = yaml.serialize(
            node_for(data, draw),
            width=draw(st.integers(10, 100)),
            indent=draw(st.integers(2, 5)),
            canonical=draw(st.booleans()),
            explicit_start=draw(st.booleans()),
            allow_unicode=draw(st.booleans()),
        )
    text = comment_lines(text, draw, ["note", *(f"old secret: {s}" for s in secrets), *secrets])
    assert yaml.load(text, Loader=yaml.BaseLoader) == data, text  # the rendering is faithful
    return manifest, text, secrets, style


SYNTAX = (yaml.TagToken, yaml.DirectiveToken, yaml.DocumentStartToken, yaml.DocumentEndToken)


def strings_in(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from strings_in(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings_in(v)
    elif value is not None:
        yield str(value)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(rendered_manifests())
def test_no_secret_survives_masking_in_any_style(case: tuple[Manifest, str, list[str], str]) -> None:
    manifest, text, secrets, style = case
    event(style)
    event("folded over lines" if any(s not in text for s in secrets) else "each secret written on one line")
    masked = redact_manifest_text(text)
    for secret in secrets:
        assert secret not in masked
    read = yaml.load(masked, Loader=yaml.BaseLoader)  # still parses
    assert not any(secret in s for s in strings_in(read) for secret in secrets)
    syntax = [text[t.start_mark.index : t.end_mark.index] for t in yaml.scan(text) if isinstance(t, SYNTAX)]
    if not any(secret in written for secret in secrets for written in syntax):
        assert "# note" in masked  # masked where written: comments and layout stay
    assert set(secrets) <= set(secret_values_in_text(text))
    # Every copy of a secret is masked, even inside a key ("Code" in "pinCode"); without copies
    # nothing but the secrets changed.
    others = [s for s in strings_in(manifest.to_dict(mask_secrets=True)) if s != MASK]
    if not any(secret in other or secret.strip() in other for secret in secrets for other in others):
        for key, attr in (("pinCode", "pin_code"), ("trueCryptPassword", "true_crypt_password")):
            assert read.get(key) == (MASK if getattr(manifest, attr) else None)
        assert parse_manifest(masked, job_type=manifest.job_type).to_dict() == manifest.to_dict(mask_secrets=True)


# --- the emulator over HTTP -----------------------------------------------------------------------


def quick_client(emulator: ImportExportEmulator) -> Any:
    config = Config(retries={"total_max_attempts": 1}, read_timeout=5, connect_timeout=5)
    return boto3.client("importexport", endpoint_url=emulator.endpoint_url, region_name="us-east-1", config=config)


def test_emulator_refuses_the_alias_bomb_and_keeps_answering(emulator: ImportExportEmulator, bucket: str) -> None:
    bomber, other = quick_client(emulator), quick_client(emulator)
    job_id = other.create_job(JobType="Import", Manifest=import_manifest(bucket).to_yaml(), ValidateOnly=False)["JobId"]
    stop = threading.Event()

    def send_bombs() -> list[tuple[float, dict[str, Any]]]:
        answers = []
        while not stop.is_set() or len(answers) < 3:
            started = time.perf_counter()
            with pytest.raises(ClientError) as raised:
                bomber.create_job(JobType="Import", Manifest=BOMB, ValidateOnly=False)
            answers.append((time.perf_counter() - started, raised.value.response))
        return answers

    with ThreadPoolExecutor(1) as pool:
        bombs = pool.submit(send_bombs)
        others = []
        try:
            while len(others) < 10 and not bombs.done():
                started = time.perf_counter()
                if len(others) % 2:
                    assert other.get_status(JobId=job_id)["JobId"] == job_id
                else:
                    assert job_id in [j["JobId"] for j in other.list_jobs()["Jobs"]]
                others.append(time.perf_counter() - started)
        finally:
            stop.set()
        answers = bombs.result(timeout=30)
    assert len(others) == 10  # the other client was answered all along
    assert max(others) < 1, others
    for took, response in answers:
        assert took < 1, took
        assert response["Error"]["Code"] == "MalformedManifestException"
        assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert "anchors or aliases" in response["Error"]["Message"]


def test_emulator_reports_every_problem_in_one_answer(client: Any) -> None:
    with pytest.raises(ClientError) as raised:
        client.create_job(JobType="Import", Manifest=DESCRIBED, ValidateOnly=True)
    message = raised.value.response["Error"]["Message"]
    assert raised.value.response["Error"]["Code"] == "InvalidManifestFieldException"
    assert "has 2 problems" in message
    assert re.search(r"eraseDevice: .* not yes or no", message)
    assert "returnAddress.city: required" in message
