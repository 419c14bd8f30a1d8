"""Wire fidelity of the emulator's API: request ids, parameter checks, GET and query-string
requests, SigV2 and presigned SigV4 queries, exact text, no tracebacks, no stalls.

Raw requests go out through http.client, signed with botocore's own signers, so each test
sees exactly what the emulator answers. The helpers here are shared with
test_emulator_security.py.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import hmac
import http.client
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import boto3
import pytest
from botocore.auth import S3SigV4Auth, SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from airflow_provider_importexport.emulator import (
    DEFAULT_ACCESS_KEY,
    DEFAULT_ACCOUNT,
    DEFAULT_SECRET_KEY,
    ImportExportEmulator,
)
from tests.helpers import OTHER_ACCOUNT, import_manifest

OTHER = OTHER_ACCOUNT
FORM = "application/x-www-form-urlencoded; charset=utf-8"
NO_RETRIES = Config(retries={"total_max_attempts": 1})


@pytest.fixture
def importexport_emulator() -> Iterator[ImportExportEmulator]:
    with ImportExportEmulator(accounts=[DEFAULT_ACCOUNT, OTHER]) as emulator:
        yield emulator


# --- raw HTTP helpers (shared with test_emulator_security.py) ----------------------------------------


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    @property
    def code(self) -> str:
        match = re.search(r"<Code>(.*?)</Code>", self.text)
        return match.group(1) if match else ""


def send(url: str, method: str = "GET", body: bytes = b"", headers: dict[str, str] | None = None) -> Reply:
    """One request exactly as given (http.client adds only Host and Content-Length)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.netloc, timeout=30)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        connection.request(method, target, body=body or None, headers=headers or {})
        response = connection.getresponse()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        connection.close()


def sign(
    request: AWSRequest,
    *,
    service: str = "IngestionService",
    key: str = DEFAULT_ACCESS_KEY,
    secret: str = DEFAULT_SECRET_KEY,
    region: str = "us-east-1",
    signer: type[SigV4Auth] = SigV4Auth,
) -> dict[str, str]:
    """Sign with one of botocore's SigV4 signers; the headers to send."""
    signer(Credentials(key, secret), service, region).add_auth(request)
    return dict(request.headers.items())


def signed(
    url: str, method: str = "POST", body: bytes = b"", headers: dict[str, str] | None = None, **signing: Any
) -> Reply:
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    return send(url, method, body, sign(request, **signing))


def api(url: str, form: dict[str, str], **signing: Any) -> Reply:
    """A SigV4-signed query-protocol POST, like botocore sends."""
    return signed(url, "POST", urlencode(form).encode(), {"Content-Type": FORM}, **signing)


def presign(
    url: str,
    *,
    service: str = "IngestionService",
    key: str = DEFAULT_ACCESS_KEY,
    secret: str = DEFAULT_SECRET_KEY,
    expires: int = 300,
    region: str = "us-east-1",
) -> str:
    request = AWSRequest(method="GET", url=url)
    SigV4QueryAuth(Credentials(key, secret), service, region, expires=expires).add_auth(request)
    return str(request.url)


def sigv2_query(endpoint: str, method: str, params: dict[str, str], secret: str = DEFAULT_SECRET_KEY) -> str:
    """The guide's query SigV2: the encoded parameters, with Signature appended."""
    host = urlsplit(endpoint).netloc
    query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(params.items()))
    digest = hmac.new(secret.encode(), f"{method}\n{host}\n/\n{query}".encode(), hashlib.sha256).digest()
    return f"{query}&Signature={quote(base64.b64encode(digest).decode(), safe='')}"


def sigv2_params(action: str, **time_field: str) -> dict[str, str]:
    return {
        "Action": action,
        "Version": "2010-06-01",
        "AWSAccessKeyId": DEFAULT_ACCESS_KEY,
        "SignatureVersion": "2",
        "SignatureMethod": "HmacSHA256",
        **time_field,
    }


def iso(offset_seconds: float = 0) -> str:
    when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=offset_seconds)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def body_request_id(reply: Reply) -> str:
    match = re.search(r"<RequestId>(.*?)</RequestId>", reply.text)
    return match.group(1) if match else ""


# --- request ids --------------------------------------------------------------------------------------


def test_every_api_answer_carries_its_request_id_header(emulator: ImportExportEmulator, client: Any) -> None:
    replies = [
        api(emulator.endpoint_url, {"Action": "ListJobs"}),  # success
        api(emulator.endpoint_url, {"Action": "GetStatus", "JobId": "NOPE1"}),  # service error
        api(emulator.endpoint_url, {"Action": "ListJobs"}, secret="wrong"),  # authentication error
        send(emulator.endpoint_url, "POST", b"Action=ListJobs", {"Content-Type": FORM}),  # unsigned
        send(emulator.endpoint_url, "POST", b"x" * (2 * 1024 * 1024), {"Content-Type": FORM}),  # too large
    ]
    assert [r.status for r in replies] == [200, 400, 403, 403, 413]
    for reply in replies:
        assert reply.headers.get("x-amzn-requestid"), reply.headers
        assert reply.headers["x-amzn-requestid"] == body_request_id(reply)
    answer = client.list_jobs()["ResponseMetadata"]
    assert answer["HTTPHeaders"]["x-amzn-requestid"] == answer["RequestId"]


# --- parameter values ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["abc", "", "1.5", "99999999999999999999", "0x10"])
def test_max_jobs_must_be_a_number(emulator: ImportExportEmulator, value: str) -> None:
    reply = api(emulator.endpoint_url, {"Action": "ListJobs", "MaxJobs": value})
    assert (reply.status, reply.code) == (400, "InvalidParameterException"), reply.text
    assert "MaxJobs" in reply.text


@pytest.mark.parametrize("value", ["yes", "maybe", "1", "0", ""])
def test_validate_only_must_be_true_or_false(
    emulator: ImportExportEmulator, client: Any, bucket: str, value: str
) -> None:
    form = {
        "Action": "CreateJob",
        "JobType": "Import",
        "Manifest": import_manifest(bucket).to_yaml(),
        "ValidateOnly": value,
    }
    reply = api(emulator.endpoint_url, form)
    assert (reply.status, reply.code) == (400, "InvalidParameterException"), reply.text
    assert "ValidateOnly" in reply.text
    assert client.list_jobs()["Jobs"] == []  # nothing was created


def test_booleans_in_any_case_are_accepted(emulator: ImportExportEmulator, client: Any, bucket: str) -> None:
    form = {
        "Action": "CreateJob",
        "JobType": "Import",
        "Manifest": import_manifest(bucket).to_yaml(),
        "ValidateOnly": "TRUE",
    }
    assert api(emulator.endpoint_url, form).status == 200
    assert client.list_jobs()["Jobs"] == []


def test_a_request_without_action_is_missing_action(emulator: ImportExportEmulator) -> None:
    reply = api(emulator.endpoint_url, {"Version": "2010-06-01"})
    assert (reply.status, reply.code) == (400, "MissingAction")
    assert "Action" in reply.text


def test_a_parameter_given_twice_differently_is_refused(emulator: ImportExportEmulator) -> None:
    url = f"{emulator.endpoint_url}/?Action=GetStatus"
    reply = signed(url, "POST", b"Action=ListJobs", {"Content-Type": FORM})
    assert (reply.status, reply.code) == (400, "InvalidParameterException")
    assert "Action" in reply.text


# --- GET, query strings, SigV2 and presigned queries ---------------------------------------------------


def test_get_with_parameters_in_the_query_string(emulator: ImportExportEmulator) -> None:
    reply = signed(f"{emulator.endpoint_url}/?Action=ListJobs&Version=2010-06-01", "GET")
    assert reply.status == 200, reply.text
    assert "<ListJobsResult>" in reply.text


def test_post_with_parameters_in_the_query_string(emulator: ImportExportEmulator) -> None:
    reply = signed(f"{emulator.endpoint_url}/?Action=ListJobs&MaxJobs=5", "POST", b"", {"Content-Type": FORM})
    assert reply.status == 200, reply.text
    assert "<ListJobsResult>" in reply.text


def test_sigv2_get_goes_to_the_api(emulator: ImportExportEmulator, s3: Any) -> None:
    s3.create_bucket(Bucket="not-an-api-answer")
    query = sigv2_query(emulator.endpoint_url, "GET", sigv2_params("ListJobs", Timestamp=iso()))
    reply = send(f"{emulator.endpoint_url}/?{query}")
    assert reply.status == 200, reply.text
    assert reply.text.startswith("<ListJobsResponse") and "not-an-api-answer" not in reply.text
    bad = send(f"{emulator.endpoint_url}/?{query.replace('ListJobs', 'GetStatus', 1)}")
    assert (bad.status, bad.code) == (403, "SignatureDoesNotMatch")


def test_presigned_sigv4_get_goes_to_the_api(emulator: ImportExportEmulator) -> None:
    reply = send(presign(f"{emulator.endpoint_url}/?Action=ListJobs&Version=2010-06-01"))
    assert reply.status == 200, reply.text
    assert reply.text.startswith("<ListJobsResponse")
    other_key = send(presign(f"{emulator.endpoint_url}/?Action=ListJobs", key="AKIANOBODY0000000000"))
    assert (other_key.status, other_key.code) == (403, "InvalidClientTokenIdException")


def test_presigned_sigv4_expiry(emulator: ImportExportEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    import botocore.auth

    earlier = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(minutes=10)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: earlier)
    expired = send(presign(f"{emulator.endpoint_url}/?Action=ListJobs", expires=60))
    assert (expired.status, expired.code) == (400, "RequestExpired")
    assert send(presign(f"{emulator.endpoint_url}/?Action=ListJobs", expires=3600)).status == 200


def test_sigv2_with_expires(emulator: ImportExportEmulator) -> None:
    def post(params: dict[str, str]) -> Reply:
        body = sigv2_query(emulator.endpoint_url, "POST", params).encode()
        return send(emulator.endpoint_url, "POST", body, {"Content-Type": FORM})

    assert post(sigv2_params("ListJobs", Expires=iso(600))).status == 200
    expired = post(sigv2_params("ListJobs", Expires=iso(-60)))
    assert (expired.status, expired.code) == (400, "RequestExpired")
    both = post(sigv2_params("ListJobs", Expires=iso(600), Timestamp=iso()))
    assert both.status == 400 and "Timestamp or Expires" in both.text
    neither = post(sigv2_params("ListJobs"))
    assert neither.status == 400 and "Timestamp" in neither.text


# --- exact text -----------------------------------------------------------------------------------------


def test_crlf_manifest_comes_back_byte_identical(emulator: ImportExportEmulator, client: Any, bucket: str) -> None:
    manifest = import_manifest(bucket).to_yaml().replace("\n", "\r\n")
    assert "\r\n" in manifest
    job_id = client.create_job(JobType="Import", Manifest=manifest, ValidateOnly=False)["JobId"]
    assert client.get_status(JobId=job_id)["CurrentManifest"] == manifest
    raw = api(emulator.endpoint_url, {"Action": "GetStatus", "JobId": job_id})
    assert "&#13;" in raw.text and "\r" not in raw.text


# --- hostile requests -------------------------------------------------------------------------------------


HOSTILE = [
    ("POST", "/", {"Authorization": "AWS4-HMAC-SHA256 " + "Credential=" * 5000, "Content-Type": FORM}, b""),
    (
        "POST",
        "/",
        {
            "Authorization": "AWS4-HMAC-SHA256 Credential=a/b/c/d/aws4_request, SignedHeaders=host, Signature=00",
            "X-Amz-Date": "not-a-date",
            "Content-Type": FORM,
        },
        b"Action=ListJobs",
    ),
    ("GET", "/?X-Amz-Credential=%ff%fe&X-Amz-Signature=1&X-Amz-Expires=-1", {}, b""),
    ("GET", "/?AWSAccessKeyId=" + DEFAULT_ACCESS_KEY + "&Signature=x&Expires=99999999999999999999", {}, b""),
    (
        "GET",
        "/?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=" + DEFAULT_ACCESS_KEY + "%2F99991231%2Fus-east-1"
        "%2FIngestionService%2Faws4_request&X-Amz-Date=99991231T235959Z&X-Amz-Expires=604800&X-Amz-SignedHeaders=host"
        "&X-Amz-Signature=00&Action=ListJobs",
        {},
        b"",
    ),
    (
        "GET",
        "/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=" + DEFAULT_ACCESS_KEY + "%2F00010101%2Fus-east-1"
        "%2Fs3%2Faws4_request&X-Amz-Date=00010101T000000Z&X-Amz-Expires=1&X-Amz-SignedHeaders=host&X-Amz-Signature=00",
        {},
        b"",
    ),
    ("POST", "/", {"Content-Type": FORM, "Content-Length": "12abc"}, b"Action=ListJobs"),
    (
        "POST",
        "/?Action=ListJobs&SignatureVersion=2&AWSAccessKeyId=" + DEFAULT_ACCESS_KEY + "&Signature=x"
        "&Timestamp=9999-99-99",
        {},
        b"",
    ),
    ("PUT", "/some-bucket/key", {"Authorization": "AWS " + ":" * 300}, b"data"),
    ("GET", "/%00%ff/../../etc/passwd", {"Host": "[" + "1:" * 40 + "]"}, b""),
    ("POST", "/_importexport/clock", {"Content-Type": "application/json"}, b"[" * 200_000),
    ("POST", "/_importexport/jobs/X/attach", {"Content-Type": "application/json"}, b'{"path": {"a": 1}}'),
    ("DELETE", "/_importexport/documents/a/b/c", {}, b""),
]


@pytest.mark.parametrize(("method", "target", "headers", "body"), HOSTILE)
def test_no_request_leaks_a_traceback(
    emulator: ImportExportEmulator, method: str, target: str, headers: dict[str, str], body: bytes
) -> None:
    reply = send(emulator.endpoint_url + target, method, body, headers)
    assert reply.status < 500, reply.text
    for trace in ("Traceback", 'File "', "line ", "Error:"):
        assert trace not in reply.text
    assert api(emulator.endpoint_url, {"Action": "ListJobs"}).status == 200


@pytest.mark.parametrize(
    ("method", "target", "body", "code"),
    [
        ("PUT", "?tagging", b"<Tagging><TagSet><Tag><Key>", "MalformedXML"),
        ("POST", "?delete", b"<Delete><Object>", "MalformedXML"),
        ("GET", "?list-type=2&max-keys=abc", b"", "InvalidArgument"),
        ("PUT", "/k?partNumber=x&uploadId=nope", b"x", "InvalidArgument"),
    ],
)
def test_bad_s3_input_is_a_client_error_not_a_crash(
    emulator: ImportExportEmulator, s3: Any, method: str, target: str, body: bytes, code: str
) -> None:
    """moto raises on these; S3 answers 400 (a 500 would make every SDK retry it)."""
    s3.create_bucket(Bucket="hostile-bodies")
    url = f"{emulator.endpoint_url}/hostile-bodies{target}"
    reply = send(
        url, method, body, sign(AWSRequest(method=method, url=url, data=body), service="s3", signer=S3SigV4Auth)
    )
    assert (reply.status, reply.code) == (400, code), reply.text
    assert "Traceback" not in reply.text and 'File "' not in reply.text


def _hold_open(port: int, data: bytes) -> socket.socket:
    """A client that sends part of a request and then nothing."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(data)
    return sock


def _hammer(port: int, request: bytes, stop: threading.Event) -> None:
    """A client that sends one hostile request after another until stopped."""
    while not stop.is_set():
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(request)
            sock.recv(64)


#: A 64 KB Authorization header of "Credential=" repeated: quadratic for a naive scope regex.
SCOPE_BOMB = (
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 0\r\n"
    b"Authorization: AWS4-HMAC-SHA256 " + b"Credential=" * 5900 + b"\r\n\r\n"
)
DEEP_JSON = b"POST /_importexport/clock HTTP/1.1\r\nHost: x\r\nContent-Length: 500000\r\n\r\n" + b"[" * 500_000


def test_hostile_clients_do_not_stall_others(emulator: ImportExportEmulator, bucket: str) -> None:
    port = emulator.port
    stuck = [
        _hold_open(port, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Ty"),  # headers never end
        _hold_open(
            port,
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: "
            + FORM.encode()
            + b"\r\nContent-Length: 1000000\r\n\r\nAction=Lis",
        ),  # body never ends
        _hold_open(port, b"PUT /_importexport/clock HTTP/1.1\r\nContent-Length: 500\r\n\r\n{"),
        _hold_open(port, b"PUT /" + bucket.encode() + b"/k HTTP/1.1\r\nHost: x\r\nContent-Length: 99999\r\n\r\nab"),
        *(_hold_open(port, b"GET / HTTP/1.1\r\n") for _ in range(200)),
    ]
    stop = threading.Event()
    hammers = [threading.Thread(target=_hammer, args=(port, bomb, stop)) for bomb in [SCOPE_BOMB] * 6 + [DEEP_JSON] * 2]
    for hammer in hammers:
        hammer.start()
    try:
        quick = boto3.client(
            "importexport", endpoint_url=emulator.endpoint_url, region_name="us-east-1", config=NO_RETRIES
        )
        time.sleep(0.5)
        for _ in range(5):
            started = time.monotonic()
            quick.list_jobs()
            assert emulator.admin.health()["status"] == "ok"
            assert time.monotonic() - started < 1.0
    finally:
        stop.set()
        for sock in stuck:
            sock.close()
        for hammer in hammers:
            hammer.join(timeout=30)
