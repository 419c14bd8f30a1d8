"""The emulator's wire protocol and authentication, seen by real clients and raw HTTP."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import http.client
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from airflow_provider_importexport.emulator import (
    DEFAULT_ACCESS_KEY,
    DEFAULT_ACCOUNT,
    DEFAULT_SECRET_KEY,
    ImportExportEmulator,
)
from tests.helpers import OTHER_ACCOUNT, import_manifest

OTHER = OTHER_ACCOUNT


@pytest.fixture
def importexport_emulator() -> Any:
    with ImportExportEmulator(accounts=[DEFAULT_ACCOUNT, OTHER]) as emulator:
        yield emulator


def raw_post(url: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, data=body, method="POST", headers=headers or {})
    request.add_header("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def signed_post(
    url: str, form: dict[str, str], *, key: str = DEFAULT_ACCESS_KEY, secret: str = DEFAULT_SECRET_KEY
) -> tuple[int, str]:
    body = urlencode(form).encode()
    request = AWSRequest(
        method="POST", url=url, data=body, headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
    )
    SigV4Auth(Credentials(key, secret), "IngestionService", "us-east-1").add_auth(request)
    return raw_post(url, body, dict(request.headers.items()))


def code_of(body: str) -> str:
    match = re.search(r"<Code>(.*?)</Code>", body)
    return match.group(1) if match else ""


def test_boto3_round_trip_and_xml_shape(emulator: ImportExportEmulator, client: Any, bucket: str) -> None:
    job_id = client.create_job(JobType="Import", Manifest=import_manifest(bucket).to_yaml(), ValidateOnly=False)[
        "JobId"
    ]
    assert re.fullmatch(r"[1-9A-NP-Z]{5}", job_id)
    status, body = signed_post(emulator.endpoint_url, {"Action": "ListJobs", "Version": "2010-06-01"})
    assert status == 200
    assert body.startswith('<ListJobsResponse xmlns="http://importexport.amazonaws.com/doc/2010-06-01/">')
    assert f"<Jobs><member><JobId>{job_id}</JobId>" in body
    assert re.search(r"<CreationDate>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ</CreationDate>", body)
    assert "</Jobs><IsTruncated>false</IsTruncated></ListJobsResult>" in body


def test_query_string_on_path_is_ignored(emulator: ImportExportEmulator) -> None:
    status, body = signed_post(f"{emulator.endpoint_url}/?Operation=CreateJob", {"Action": "ListJobs"})
    assert status == 200 and "<ListJobsResult>" in body


@pytest.mark.parametrize(
    ("form", "code"),
    [
        ({"Action": "DescribeEverything"}, "InvalidAction"),
        ({"Version": "2010-06-01"}, "MissingAction"),
        ({"Action": "GetStatus"}, "MissingParameterException"),
        ({"Action": "CreateJob", "JobType": "Import"}, "MissingParameterException"),
        ({"Action": "CreateJob", "JobType": "Transfer", "Manifest": "x"}, "InvalidParameterException"),
        ({"Action": "ListJobs", "MaxJobs": "1001"}, "InvalidParameterException"),
        ({"Action": "ListJobs", "Marker": "NOPE1"}, "InvalidParameterException"),
        ({"Action": "ListJobs", "Version": "2099-01-01"}, "InvalidParameterException"),
        ({"Action": "GetShippingLabel"}, "MissingParameterException"),
    ],
)
def test_bad_requests_get_service_errors(emulator: ImportExportEmulator, form: dict[str, str], code: str) -> None:
    status, body = signed_post(emulator.endpoint_url, form)
    assert status == 400
    assert code_of(body) == code
    assert "<Type>Sender</Type>" in body


def test_garbage_and_oversize_bodies(emulator: ImportExportEmulator) -> None:
    status, body = raw_post(emulator.endpoint_url, b"\xff\xfe\x00garbage")
    assert status == 400 and code_of(body) == "MissingParameterException"
    # Announce 2 MiB and send a little: the emulator refuses before reading, so the answer comes
    # at once (sending the whole body races the early answer and can end in a reset).
    connection = http.client.HTTPConnection(urlsplit(emulator.endpoint_url).netloc, timeout=30)
    try:
        connection.putrequest("POST", "/")
        connection.putheader("Content-Type", "application/x-www-form-urlencoded")
        connection.putheader("Content-Length", str(2 * 1024 * 1024))
        connection.endheaders(b"Action=ListJobs&Manifest=xxxx")
        answer = connection.getresponse()
        status, body = answer.status, answer.read().decode()
    finally:
        connection.close()
    assert status == 413 and code_of(body) == "RequestEntityTooLarge"
    # still serving afterwards
    status, _ = signed_post(emulator.endpoint_url, {"Action": "ListJobs"})
    assert status == 200


def test_unsigned_request_is_rejected(emulator: ImportExportEmulator) -> None:
    status, body = raw_post(emulator.endpoint_url, b"Action=ListJobs&Version=2010-06-01")
    assert (status, code_of(body)) == (403, "MissingAuthenticationToken")


def test_unknown_key_is_rejected(emulator: ImportExportEmulator) -> None:
    status, body = signed_post(emulator.endpoint_url, {"Action": "ListJobs"}, key="AKIANOBODY0000000000")
    assert (status, code_of(body)) == (403, "InvalidClientTokenIdException")


def test_wrong_secret_is_rejected(emulator: ImportExportEmulator) -> None:
    status, body = signed_post(emulator.endpoint_url, {"Action": "ListJobs"}, secret="not-the-secret")
    assert (status, code_of(body)) == (403, "SignatureDoesNotMatch")


def test_tampered_body_is_rejected(emulator: ImportExportEmulator) -> None:
    body = b"Action=ListJobs&MaxJobs=1"
    request = AWSRequest(method="POST", url=emulator.endpoint_url, data=body,
                         headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})  # fmt: skip
    SigV4Auth(Credentials(DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY), "IngestionService", "us-east-1").add_auth(request)
    status, text = raw_post(emulator.endpoint_url, b"Action=ListJobs&MaxJobs=2", dict(request.headers.items()))
    assert (status, code_of(text)) == (403, "SignatureDoesNotMatch")


def test_skewed_clock_is_rejected(emulator: ImportExportEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    import botocore.auth

    late = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(minutes=20)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: late)
    status, body = signed_post(emulator.endpoint_url, {"Action": "ListJobs"})
    assert (status, code_of(body)) == (403, "SignatureDoesNotMatch")
    assert "Signature expired" in body


def test_sigv2_form_signature_is_accepted(emulator: ImportExportEmulator) -> None:
    host = urlsplit(emulator.endpoint_url).netloc
    form = {
        "Action": "ListJobs",
        "Version": "2010-06-01",
        "AWSAccessKeyId": DEFAULT_ACCESS_KEY,
        "SignatureVersion": "2",
        "SignatureMethod": "HmacSHA256",
        "Timestamp": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(form.items()))
    digest = hmac.new(DEFAULT_SECRET_KEY.encode(), f"POST\n{host}\n/\n{query}".encode(), hashlib.sha256).digest()
    form["Signature"] = base64.b64encode(digest).decode()
    status, body = raw_post(emulator.endpoint_url, urlencode(form).encode())
    assert status == 200, body
    form["Signature"] = base64.b64encode(b"x" * 32).decode()
    status, body = raw_post(emulator.endpoint_url, urlencode(form).encode())
    assert (status, code_of(body)) == (403, "SignatureDoesNotMatch")


def test_jobs_belong_to_their_account(emulator: ImportExportEmulator, client: Any, bucket: str) -> None:
    job_id = client.create_job(JobType="Import", Manifest=import_manifest(bucket).to_yaml(), ValidateOnly=False)[
        "JobId"
    ]
    other = boto3.client("importexport", endpoint_url=emulator.endpoint_url, region_name="us-east-1",
                         aws_access_key_id=OTHER.access_key, aws_secret_access_key=OTHER.secret_key)  # fmt: skip
    assert other.list_jobs()["Jobs"] == []
    for call in (other.get_status, other.cancel_job):
        with pytest.raises(other.exceptions.InvalidJobIdException):
            call(JobId=job_id)
    assert client.get_status(JobId=job_id)["ProgressCode"] == "Pending"


def test_list_jobs_limits(client: Any, bucket: str) -> None:
    for _ in range(3):
        client.create_job(JobType="Import", Manifest=import_manifest(bucket).to_yaml(), ValidateOnly=False)
    empty = client.list_jobs(MaxJobs=0)
    assert empty["Jobs"] == [] and empty["IsTruncated"] is True
    pages = list(client.get_paginator("list_jobs").paginate(PaginationConfig={"PageSize": 2}))
    assert [len(p["Jobs"]) for p in pages] == [2, 1]


def test_validate_only_answers_without_creating(client: Any, bucket: str) -> None:
    answer = client.create_job(JobType="Import", Manifest=import_manifest(bucket).to_yaml(), ValidateOnly=True)
    assert answer["JobType"] == "Import" and answer["SignatureFileContents"]
    assert client.list_jobs()["Jobs"] == []


def test_aiobotocore_client(emulator: ImportExportEmulator, client: Any, bucket: str) -> None:
    from aiobotocore.session import get_session

    job_id = client.create_job(JobType="Import", Manifest=import_manifest(bucket).to_yaml(), ValidateOnly=False)[
        "JobId"
    ]

    async def status() -> dict[str, Any]:
        async with get_session().create_client(
            "importexport", endpoint_url=emulator.endpoint_url, region_name="us-east-1"
        ) as aio:
            return await aio.get_status(JobId=job_id)

    assert asyncio.run(status())["JobId"] == job_id


def test_aws_cli(emulator: ImportExportEmulator, client: Any, bucket: str) -> None:
    job_id = client.create_job(JobType="Import", Manifest=import_manifest(bucket).to_yaml(), ValidateOnly=False)[
        "JobId"
    ]
    aws = os.path.join(os.path.dirname(sys.executable), "aws")
    result = subprocess.run(
        [aws, "importexport", "get-status", "--job-id", job_id, "--endpoint-url", emulator.endpoint_url,
         "--region", "us-east-1", "--output", "json"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert '"ProgressCode": "Pending"' in result.stdout


def test_s3_and_importexport_share_one_endpoint(emulator: ImportExportEmulator, s3: Any, client: Any) -> None:
    s3.create_bucket(Bucket="shared-endpoint-bucket")
    s3.put_object(Bucket="shared-endpoint-bucket", Key="a.txt", Body=b"hello")
    assert s3.get_object(Bucket="shared-endpoint-bucket", Key="a.txt")["Body"].read() == b"hello"
    client.create_job(
        JobType="Import", Manifest=import_manifest("shared-endpoint-bucket").to_yaml(), ValidateOnly=False
    )


def test_command_line_start() -> None:
    from airflow_provider_importexport.emulator.client import spawn

    process, admin = spawn()  # reads the one "ready on URL" line the CLI prints
    try:
        assert admin.health()["status"] == "ok"
        status, _ = signed_post(admin.endpoint_url, {"Action": "ListJobs"})
        assert status == 200
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_bad_account_option_is_explained() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "airflow_provider_importexport.emulator", "--account", "only-a-key"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "ACCESS_KEY:SECRET_KEY[:ACCOUNT_ID]" in result.stderr


def test_update_and_cancel_answer_success_true(client: Any, bucket: str) -> None:
    """The model's only sign that UpdateJob and CancelJob did their work; SDK users check it. An update
    with ValidateOnly only checks the manifest."""
    manifest = import_manifest(bucket).to_yaml()
    job_id = client.create_job(JobType="Import", Manifest=manifest, ValidateOnly=False)["JobId"]
    changed = import_manifest(bucket, device_id="disk-after-update").to_yaml()
    checked = client.update_job(JobId=job_id, JobType="Import", Manifest=changed, ValidateOnly=True)
    assert checked["Success"] is True
    assert "disk-after-update" not in client.get_status(JobId=job_id)["CurrentManifest"]  # only checked
    updated = client.update_job(JobId=job_id, JobType="Import", Manifest=changed, ValidateOnly=False)
    assert updated["Success"] is True
    assert "disk-after-update" in client.get_status(JobId=job_id)["CurrentManifest"]
    assert client.cancel_job(JobId=job_id)["Success"] is True
