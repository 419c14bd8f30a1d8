"""The emulator's S3 half and admin side never let the wrong caller in: S3 signatures and
per-account buckets, SigV4's host and scope rules, the admin token, bind checks, admin
input validation and signed document links. Real clients over HTTP on 127.0.0.1."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore import UNSIGNED
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.exceptions import ClientError

from airflow_provider_importexport.emulator import DEFAULT_ACCOUNT, EmulatorSettings, ImportExportEmulator
from airflow_provider_importexport.emulator.client import AdminError, EmulatorAdmin, spawn
from airflow_provider_importexport.emulator.processing import SIGNATURE_FILE
from tests.helpers import import_manifest
from tests.test_emulator_wire import FORM, OTHER, Reply, api, send, sign, signed

TOKEN = "t0ken-for-tests"
TOKEN_ENV = "IMPORTEXPORT_EMULATOR_ADMIN_TOKEN"


@pytest.fixture
def importexport_emulator(devices: Path) -> Iterator[ImportExportEmulator]:
    with ImportExportEmulator(accounts=[DEFAULT_ACCOUNT, OTHER], devices_dir=str(devices)) as emulator:
        yield emulator


def s3_client(
    emulator: ImportExportEmulator,
    key: str = DEFAULT_ACCOUNT.access_key,
    secret: str = DEFAULT_ACCOUNT.secret_key,
    **config: Any,
) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=emulator.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(retries={"total_max_attempts": 1}, **config),
    )


def error_of(call: Callable[[], Any]) -> tuple[int, str]:
    with pytest.raises(ClientError) as caught:
        call()
    response = caught.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


@pytest.fixture
def owned(emulator: ImportExportEmulator, s3: Any) -> str:
    """A bucket of the default account holding one object, ``secret.txt``."""
    s3.create_bucket(Bucket="account-a-bucket")
    s3.put_object(Bucket="account-a-bucket", Key="secret.txt", Body=b"account A's data")
    return "account-a-bucket"


# --- S3: who may call ----------------------------------------------------------------------------------


def test_s3_refuses_unknown_keys_and_wrong_secrets(emulator: ImportExportEmulator, owned: str) -> None:
    nobody = s3_client(emulator, "AKIANOBODY0000000000", "whatever")
    assert error_of(nobody.list_buckets) == (403, "InvalidAccessKeyId")
    assert error_of(lambda: nobody.get_object(Bucket=owned, Key="secret.txt")) == (403, "InvalidAccessKeyId")
    wrong = s3_client(emulator, secret="not-the-secret")
    assert error_of(wrong.list_buckets) == (403, "SignatureDoesNotMatch")
    assert error_of(lambda: wrong.get_object(Bucket=owned, Key="secret.txt")) == (403, "SignatureDoesNotMatch")


def test_s3_refuses_anonymous_requests(emulator: ImportExportEmulator, owned: str) -> None:
    anonymous = s3_client(emulator, signature_version=UNSIGNED)
    assert error_of(anonymous.list_buckets) == (403, "AccessDenied")
    assert error_of(lambda: anonymous.get_object(Bucket=owned, Key="secret.txt")) == (403, "AccessDenied")
    status, body = fetch(f"{emulator.endpoint_url}/{owned}/secret.txt")
    assert status == 403 and b"<Code>AccessDenied</Code>" in body


def test_buckets_belong_to_their_account(emulator: ImportExportEmulator, owned: str) -> None:
    other = s3_client(emulator, OTHER.access_key, OTHER.secret_key)
    assert [b["Name"] for b in other.list_buckets()["Buckets"]] == []
    denied = (403, "AccessDenied")
    assert error_of(lambda: other.get_object(Bucket=owned, Key="secret.txt")) == denied
    assert error_of(lambda: other.list_objects_v2(Bucket=owned)) == denied
    assert error_of(lambda: other.put_object(Bucket=owned, Key="planted.txt", Body=b"x")) == denied
    assert error_of(lambda: other.delete_object(Bucket=owned, Key="secret.txt")) == denied
    assert error_of(lambda: other.delete_bucket(Bucket=owned)) == denied
    assert error_of(lambda: other.create_bucket(Bucket=owned))[1] == "BucketAlreadyExists"
    other.create_bucket(Bucket="account-b-bucket")
    assert [b["Name"] for b in other.list_buckets()["Buckets"]] == ["account-b-bucket"]
    mine = s3_client(emulator)
    assert error_of(lambda: mine.list_objects_v2(Bucket="account-b-bucket")) == denied
    assert mine.get_object(Bucket=owned, Key="secret.txt")["Body"].read() == b"account A's data"


# --- S3: payload hashes and presigned URLs ----------------------------------------------------------------


def test_s3_payload_hash_forms(emulator: ImportExportEmulator, owned: str) -> None:
    unsigned_payload = s3_client(emulator, s3={"payload_signing_enabled": False})
    unsigned_payload.put_object(Bucket=owned, Key="unsigned.txt", Body=b"body not hashed")
    assert s3_client(emulator).get_object(Bucket=owned, Key="unsigned.txt")["Body"].read() == b"body not hashed"
    wrong = s3_client(emulator, secret="not-the-secret", s3={"payload_signing_enabled": False})
    assert error_of(lambda: wrong.put_object(Bucket=owned, Key="x.txt", Body=b"x")) == (403, "SignatureDoesNotMatch")

    url = f"{emulator.endpoint_url}/{owned}/declared.txt"
    request = AWSRequest(method="PUT", url=url, data=b"what was signed")
    headers = sign(request, service="s3", signer=S3SigV4Auth)
    tampered = send(url, "PUT", b"what was sent!!", headers)
    assert (tampered.status, tampered.code) == (400, "XAmzContentSHA256Mismatch")


def test_s3_streaming_upload_with_trailing_checksum(emulator: ImportExportEmulator, owned: str) -> None:
    """What boto3 sends over TLS: aws-chunked, x-amz-content-sha256 STREAMING-UNSIGNED-PAYLOAD-TRAILER."""
    data = b"streamed in one chunk"
    crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big"))
    body = f"{len(data):x}\r\n".encode() + data + b"\r\n0\r\nx-amz-checksum-crc32:" + crc + b"\r\n\r\n"
    url = f"{emulator.endpoint_url}/{owned}/streamed.txt"

    def put(secret: str) -> Reply:
        request = AWSRequest(
            method="PUT",
            url=url,
            data=body,
            headers={
                "Content-Encoding": "aws-chunked",
                "X-Amz-Decoded-Content-Length": str(len(data)),
                "X-Amz-Trailer": "x-amz-checksum-crc32",
                "X-Amz-Content-SHA256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
            },
        )
        return send(url, "PUT", body, sign(request, service="s3", secret=secret))

    assert put(DEFAULT_ACCOUNT.secret_key).status == 200
    assert s3_client(emulator).get_object(Bucket=owned, Key="streamed.txt")["Body"].read() == data
    refused = put("not-the-secret")
    assert (refused.status, refused.code) == (403, "SignatureDoesNotMatch")


@pytest.mark.parametrize("signature_version", [None, "s3v4", "s3"])
def test_presigned_urls(emulator: ImportExportEmulator, owned: str, signature_version: str | None) -> None:
    """boto3 presigns with SigV2 by default; s3v4 gives SigV4 query URLs."""
    config = {"signature_version": signature_version} if signature_version else {}
    mine = s3_client(emulator, **config)
    url = mine.generate_presigned_url("get_object", Params={"Bucket": owned, "Key": "secret.txt"}, ExpiresIn=300)
    assert fetch(url) == (200, b"account A's data")
    assert fetch(url.replace("secret.txt", "other.txt"))[0] == 403  # the signature covers the key
    theirs = s3_client(emulator, OTHER.access_key, OTHER.secret_key, **config)
    foreign = theirs.generate_presigned_url("get_object", Params={"Bucket": owned, "Key": "secret.txt"})
    status, body = fetch(foreign)
    assert status == 403 and b"AccessDenied" in body
    nobody = s3_client(emulator, "AKIANOBODY0000000000", "whatever", **config)
    status, body = fetch(nobody.generate_presigned_url("get_object", Params={"Bucket": owned, "Key": "secret.txt"}))
    assert status == 403 and b"InvalidAccessKeyId" in body


@pytest.mark.parametrize("signature_version", [None, "s3v4"])
def test_expired_presigned_urls_are_refused(
    emulator: ImportExportEmulator, owned: str, signature_version: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    import botocore.auth

    hour_ago = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(hours=1)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: hour_ago)
    real_time = time.time
    monkeypatch.setattr(botocore.auth.time, "time", lambda: real_time() - 3600)
    config = {"signature_version": signature_version} if signature_version else {}
    url = s3_client(emulator, **config).generate_presigned_url(
        "get_object", Params={"Bucket": owned, "Key": "secret.txt"}, ExpiresIn=60
    )
    status, body = fetch(url)
    assert status == 403 and b"<Code>AccessDenied</Code>" in body and b"expired" in body


def test_sigv2_header_signed_s3_client(emulator: ImportExportEmulator, owned: str) -> None:
    assert s3_client(emulator, signature_version="s3").get_object(Bucket=owned, Key="secret.txt")["Body"].read()
    wrong = s3_client(emulator, secret="not-the-secret", signature_version="s3")
    assert error_of(lambda: wrong.get_object(Bucket=owned, Key="secret.txt")) == (403, "SignatureDoesNotMatch")


def test_the_emulator_writes_s3_as_the_job_owner(emulator: ImportExportEmulator, devices: Path) -> None:
    """Buckets made through the admin API and objects an import writes go through the emulator's
    own signed S3 clients, as the job's account."""
    emulator.admin.create_bucket("account-b-import", access_key=OTHER.access_key)
    other = boto3.client(
        "importexport",
        endpoint_url=emulator.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=OTHER.access_key,
        aws_secret_access_key=OTHER.secret_key,
    )
    manifest = import_manifest("account-b-import", device_id="disk-b")
    job = other.create_job(JobType="Import", Manifest=manifest.to_yaml(), ValidateOnly=False)
    (devices / "disk-b").mkdir()
    (devices / "disk-b" / "data.txt").write_bytes(b"imported for B")
    (devices / "disk-b" / SIGNATURE_FILE).write_text(job["SignatureFileContents"])
    for action in ("ship", "receive", "start", "process"):
        emulator.admin.act(job["JobId"], action)
    assert other.get_status(JobId=job["JobId"])["ProgressCode"] == "Complete"
    theirs = s3_client(emulator, OTHER.access_key, OTHER.secret_key)
    assert theirs.get_object(Bucket="account-b-import", Key="data.txt")["Body"].read() == b"imported for B"
    assert error_of(lambda: s3_client(emulator).get_object(Bucket="account-b-import", Key="data.txt"))[0] == 403


# --- SigV4: host and scope -----------------------------------------------------------------------------


class _NoHostSigV4(SigV4Auth):
    """A signer that leaves host out of the signature altogether."""

    def headers_to_sign(self, request: AWSRequest) -> Any:
        headers = super().headers_to_sign(request)
        del headers["host"]
        return headers


def _without_host(headers: dict[str, str]) -> dict[str, str]:
    """A correct signature whose SignedHeaders list no longer names host."""
    head, _, rest = headers["Authorization"].partition("SignedHeaders=")
    signed, _, tail = rest.partition(",")
    kept = ";".join(name for name in signed.split(";") if name != "host")
    return {**headers, "Authorization": f"{head}SignedHeaders={kept},{tail}"}


def test_sigv4_must_sign_host(emulator: ImportExportEmulator, owned: str) -> None:
    body = b"Action=ListJobs"
    request = AWSRequest(method="POST", url=emulator.endpoint_url, data=body, headers={"Content-Type": FORM})
    headers = _without_host(sign(request))
    assert "host" not in headers["Authorization"].partition("SignedHeaders=")[2].partition(",")[0]
    reply = send(emulator.endpoint_url, "POST", body, headers)
    assert (reply.status, reply.code) == (403, "SignatureDoesNotMatch") and "host" in reply.text
    request = AWSRequest(method="POST", url=emulator.endpoint_url, data=body, headers={"Content-Type": FORM})
    reply = send(emulator.endpoint_url, "POST", body, sign(request, signer=_NoHostSigV4))
    assert (reply.status, reply.code) == (403, "SignatureDoesNotMatch") and "host" in reply.text

    url = f"{emulator.endpoint_url}/{owned}/secret.txt"
    s3_headers = _without_host(sign(AWSRequest(method="GET", url=url), service="s3", signer=S3SigV4Auth))
    reply = send(url, "GET", b"", s3_headers)
    assert (reply.status, reply.code) == (403, "SignatureDoesNotMatch") and b"account A" not in reply.body


@pytest.mark.parametrize("service", ["sts", "execute-api", "ec2"])
def test_sigv4_scope_must_name_the_service(emulator: ImportExportEmulator, owned: str, service: str) -> None:
    reply = api(emulator.endpoint_url, {"Action": "ListJobs"}, service=service)
    assert (reply.status, reply.code) == (403, "SignatureDoesNotMatch")
    assert "IngestionService" in reply.text
    s3_read = signed(f"{emulator.endpoint_url}/{owned}/secret.txt", "GET", service=service)
    assert s3_read.status == 403 and b"account A" not in s3_read.body


def test_a_request_signed_for_s3_is_not_an_api_call(emulator: ImportExportEmulator) -> None:
    reply = api(emulator.endpoint_url, {"Action": "ListJobs"}, service="s3")
    assert "ListJobsResponse" not in reply.text and reply.status >= 400


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-3", "local"])
def test_any_scope_region_works_if_it_is_the_one_signed(
    emulator: ImportExportEmulator, owned: str, region: str
) -> None:
    """The region is used to derive the signing key, not compared with anything."""
    assert api(emulator.endpoint_url, {"Action": "ListJobs"}, region=region).status == 200
    url = f"{emulator.endpoint_url}/{owned}/secret.txt"
    reply = send(
        url, "GET", b"", sign(AWSRequest(method="GET", url=url), service="s3", region=region, signer=S3SigV4Auth)
    )
    assert (reply.status, reply.body) == (200, b"account A's data")
    body = b"Action=ListJobs"
    headers = sign(
        AWSRequest(method="POST", url=emulator.endpoint_url, data=body, headers={"Content-Type": FORM}), region=region
    )
    headers["Authorization"] = headers["Authorization"].replace(f"/{region}/", "/ap-south-2/")
    assert send(emulator.endpoint_url, "POST", body, headers).code == "SignatureDoesNotMatch"


# --- the admin token ----------------------------------------------------------------------------------------


@pytest.fixture
def guarded() -> Iterator[ImportExportEmulator]:
    with ImportExportEmulator(admin_token=TOKEN) as emulator:
        yield emulator


def test_admin_api_needs_the_token_when_one_is_set(guarded: ImportExportEmulator) -> None:
    base = f"{guarded.endpoint_url}/_importexport"
    assert guarded.admin.jobs() == []  # the emulator's own admin client sends the token
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        status, body = fetch(f"{base}/jobs", headers)
        assert status == 401 and b"Authorization: Bearer" in body
    request = urllib.request.Request(f"{base}/jobs/ANYID/attach", data=b'{"path": "/"}', method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 401
    assert fetch(f"{base}/health")[0] == 200  # health checks need no token
    assert fetch(f"{base}/jobs", {"Authorization": f"Bearer {TOKEN}"}) == (200, b"[]")
    with pytest.raises(AdminError) as caught:
        EmulatorAdmin(guarded.endpoint_url, token="").jobs()
    assert caught.value.status == 401


def test_without_a_token_loopback_admin_needs_none(emulator: ImportExportEmulator) -> None:
    assert fetch(f"{emulator.endpoint_url}/_importexport/jobs") == (200, b"[]")


def test_listening_beyond_loopback_needs_a_token() -> None:
    with pytest.raises(ValueError, match="--admin-token"):
        EmulatorSettings(host="0.0.0.0")
    assert EmulatorSettings(host="0.0.0.0", admin_token=TOKEN).admin_token == TOKEN
    assert EmulatorSettings(host="localhost").admin_token is None


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "airflow_provider_importexport.emulator", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False, env=env)


def test_cli_refuses_to_listen_beyond_loopback_without_a_token() -> None:
    env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
    result = _cli("--host", "0.0.0.0", "--port", "0", env=env)
    assert result.returncode == 2
    assert "--admin-token" in result.stderr and "IMPORTEXPORT_EMULATOR_ADMIN_TOKEN" in result.stderr


def test_cli_warns_when_listening_beyond_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    command = [sys.executable, "-m", "airflow_provider_importexport.emulator", "--host", "0.0.0.0", "--port", "0"]
    monkeypatch.setenv(TOKEN_ENV, TOKEN)  # the server and the admin client both read it
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None and process.stdout is not None
        warning = process.stderr.readline()
        ready = process.stdout.readline()
        assert warning.startswith("warning:") and "0.0.0.0" in warning and "beyond this machine" in warning
        port = ready.strip().rsplit(":", 1)[1].split()[0]
        assert fetch(f"http://127.0.0.1:{port}/_importexport/jobs")[0] == 401
        assert EmulatorAdmin(f"http://127.0.0.1:{port}").jobs() == []
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_spawned_emulator_and_admin_command_use_the_token() -> None:
    process, admin = spawn("--admin-token", TOKEN)
    try:
        assert admin.jobs() == []
        assert fetch(f"{admin.endpoint_url}/_importexport/jobs")[0] == 401
        env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
        refused = _cli("admin", "--endpoint-url", admin.endpoint_url, "jobs", env=env)
        assert refused.returncode == 1 and "admin token" in refused.stderr
        allowed = _cli("admin", "--endpoint-url", admin.endpoint_url, "jobs", env={**env, TOKEN_ENV: TOKEN})
        assert allowed.returncode == 0 and json.loads(allowed.stdout) == []
    finally:
        process.terminate()
        process.wait(timeout=10)


# --- admin input ----------------------------------------------------------------------------------------------


BAD_ADMIN_BODIES = [
    ("clock", b'{"advance_seconds": "soon"}', 400, "advance_seconds"),
    ("clock", b'{"advance_seconds": 1e308}', 400, "advance_seconds"),
    ("clock", b'{"advance_seconds": 1e12}', 400, "advance_seconds"),
    ("clock", b'{"advance_seconds": 1' + b"0" * 400 + b"}", 400, "advance_seconds"),
    ("clock", b'{"advance_seconds": -5}', 400, "advance_seconds"),
    ("clock", b'{"advance_seconds": NaN}', 400, None),
    ("clock", b'{"advance_seconds": true}', 400, "advance_seconds"),
    ("clock", b"{}", 400, "advance_seconds"),
    ("clock", b'{"advance_seconds": 5, "when": 1}', 400, "when"),
    ("clock", b"[" * 100_000 + b"]" * 100_000, 400, None),
    ("clock", b"\xff\xfe{}", 400, None),
    ("clock", b"[1, 2]", 400, None),
    ("clock", b"{" + b" " * (2 * 1024 * 1024) + b"}", 413, None),
    ("buckets", b'{"bucket": "A_B"}', 400, "bucket"),
    ("buckets", b'{"bucket": "ab"}', 400, "bucket"),
    ("buckets", b'{"bucket": "' + b"x" * 64 + b'"}', 400, "bucket"),
    ("buckets", b'{"bucket": "192.168.1.1"}', 400, "bucket"),
    ("buckets", b'{"bucket": 5}', 400, "bucket"),
    ("buckets", b"{}", 400, "bucket"),
    ("buckets", b'{"bucket": "fine-name", "region": "mars"}', 400, "region"),
    ("buckets", b'{"bucket": "fine-name", "access_key": "AKIANOBODY"}', 400, "access_key"),
    ("buckets", b'{"bucket": "fine-name", "acl": "public"}', 400, "acl"),
    ("profile", b'{"arrive_after": "soon"}', 400, "arrive_after"),
    ("profile", b'{"arrive_after": -1}', 400, "arrive_after"),
    ("profile", b'{"expire_after": null}', 400, "expire_after"),
    ("profile", b'{"name": "turbo"}', 400, "name"),
    ("profile", b'{"name": 3}', 400, "name"),
    ("profile", b'{"warp_after": 1}', 400, "warp_after"),
    ("faults", b'{"throttle_rate": "often"}', 400, None),
    ("faults", b'{"seed": [1]}', 400, "seed"),
    ("faults", b'{"flood_rate": 0.1}', 400, None),
    ("faults/queue", b'{"faults": "throttle"}', 400, "faults"),
    ("faults/queue", b'{"faults": [1]}', 400, "faults"),
    ("faults/queue", b'{"faults": ["meteor"]}', 400, None),
    ("tick", b'{"now": 1}', 400, "now"),
]


@pytest.mark.parametrize(("route", "body", "status", "field"), BAD_ADMIN_BODIES)
def test_admin_refuses_bad_input_naming_the_field(
    emulator: ImportExportEmulator, route: str, body: bytes, status: int, field: str | None
) -> None:
    reply = send(f"{emulator.endpoint_url}/_importexport/{route}", "POST", body, {"Content-Type": "application/json"})
    assert reply.status == status, reply.text
    answer = json.loads(reply.body)
    assert answer["message"]
    if field is not None:
        assert answer.get("field", field) == field and field in answer["message"]
    assert emulator.admin.health()["status"] == "ok"
    assert api(emulator.endpoint_url, {"Action": "ListJobs"}).status == 200  # the clock still works


@pytest.mark.parametrize(
    ("action", "body", "field"),
    [
        ("process", {"error_count": "x"}, "error_count"),
        ("process", {"error_count": -1}, "error_count"),
        ("process", {"outcome": 5}, "outcome"),
        ("return", {"carrier": ["UPS"]}, "carrier"),
        ("attach", {}, "path"),
        ("attach", {"path": 7}, "path"),
        ("ship", {"force": True}, "force"),
    ],
)
def test_job_actions_refuse_bad_options(
    emulator: ImportExportEmulator, client: Any, bucket: str, action: str, body: dict[str, Any], field: str
) -> None:
    job_id = client.create_job(JobType="Import", Manifest=import_manifest(bucket).to_yaml(), ValidateOnly=False)[
        "JobId"
    ]
    with pytest.raises(AdminError) as caught:
        emulator.admin.act(job_id, action, **body)
    assert caught.value.status == 400 and field in str(caught.value)
    assert client.get_status(JobId=job_id)["ProgressCode"] == "Pending"


def test_admin_accepts_good_input(emulator: ImportExportEmulator) -> None:
    assert emulator.admin.advance_clock(3600)["now"]
    assert emulator.admin.set_profile(arrive_after=1.5, start_after=None)["profile"]["arrive_after"] == 1.5
    assert emulator.admin.set_profile("fast")["profile"]["arrive_after"] == 0.3
    assert emulator.admin.create_bucket("good.name-1", region="eu-west-1")["region"] == "eu-west-1"


# --- document links -------------------------------------------------------------------------------------------


def test_document_links_are_signed(guarded: ImportExportEmulator) -> None:
    guarded.admin.create_bucket("label-bucket")
    client = boto3.client("importexport", endpoint_url=guarded.endpoint_url, region_name="us-east-1")
    created = client.create_job(
        JobType="Import", Manifest=import_manifest("label-bucket").to_yaml(), ValidateOnly=False
    )
    label_url = client.get_shipping_label(jobIds=[created["JobId"]])["ShippingLabelURL"]
    artifact_urls = [a["URL"] for a in created["ArtifactList"]]
    artifact_urls += [a["URL"] for a in client.get_status(JobId=created["JobId"])["ArtifactList"]]
    for url in [label_url, *artifact_urls]:
        status, data = fetch(url)  # no credentials: the link is the permission
        assert status == 200 and data.startswith(b"%PDF-")
    name = label_url.rsplit("/", 1)[1]
    assert name == f"shipping-label-{created['JobId']}.pdf"
    signature = label_url.rsplit("/", 2)[1]
    bare = f"{guarded.endpoint_url}/_importexport/documents/{name}"
    assert fetch(bare)[0] == 401
    assert fetch(bare, {"Authorization": f"Bearer {TOKEN}"})[0] == 200
    forged = label_url.replace(signature, "0" * len(signature))
    assert fetch(forged)[0] == 404
    other_name = artifact_urls[0].rsplit("/", 1)[1]
    assert fetch(label_url.replace(name, other_name))[0] == 404  # a signature is for one document
