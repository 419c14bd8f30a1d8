"""How the emulator is served: kept-alive connections, dropped answers, streamed S3 bodies, a clean
stop, and the fast paths (answers written from the model, cached signing keys) saying exactly what
the slow ones said. Over HTTP on 127.0.0.1 with real boto3 clients and raw sockets."""

from __future__ import annotations

import datetime as dt
import http.client
import io
import json
import logging
import os
import signal
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from moto.core.serialize import QuerySerializer, SerializationContext

from airflow_provider_importexport.emulator import DEFAULT_ACCOUNT, ImportExportEmulator, protocol
from airflow_provider_importexport.emulator.client import spawn
from tests.helpers import import_manifest


def signed_get_status(endpoint_url: str, job_id: str) -> tuple[bytes, dict[str, str]]:
    """A GetStatus request signed by botocore, as body and headers for a raw HTTP connection."""
    body = f"Action=GetStatus&Version=2010-06-01&JobId={job_id}".encode()
    request = AWSRequest(
        method="POST",
        url=f"{endpoint_url}/",
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    credentials = Credentials(DEFAULT_ACCOUNT.access_key, DEFAULT_ACCOUNT.secret_key)
    SigV4Auth(credentials, "IngestionService", "us-east-1").add_auth(request)
    return body, dict(request.headers.items())


def test_a_second_request_is_served_on_the_same_connection(emulator: ImportExportEmulator, bucket: str) -> None:
    client = boto3.client("importexport", endpoint_url=emulator.endpoint_url, region_name="us-east-1")
    manifest = import_manifest(bucket).to_yaml()
    job_id = client.create_job(JobType="Import", Manifest=manifest, ValidateOnly=False)["JobId"]
    connection = http.client.HTTPConnection(emulator.endpoint_url.removeprefix("http://"), timeout=30)
    try:
        answers, sockets = [], []
        for _ in range(2):
            body, headers = signed_get_status(emulator.endpoint_url, job_id)
            connection.request("POST", "/", body=body, headers=headers)
            answer = connection.getresponse()
            answers.append((answer.status, answer.getheader("Connection"), job_id.encode() in answer.read()))
            sockets.append(connection.sock)
        assert answers == [(200, None, True), (200, None, True)]  # no "Connection: close"
        assert sockets[0] is not None and sockets[1] is sockets[0]  # http.client reopens a closed one
    finally:
        connection.close()


def test_a_dropped_answer_closes_only_that_connection(
    emulator: ImportExportEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    emulator.admin.queue_faults("drop@GetStatus")
    connection = http.client.HTTPConnection(emulator.endpoint_url.removeprefix("http://"), timeout=30)
    body, headers = signed_get_status(emulator.endpoint_url, "ABCDE")
    connection.request("POST", "/", body=body, headers=headers)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
        connection.getresponse()
    connection.close()
    client = boto3.client("importexport", endpoint_url=emulator.endpoint_url, region_name="us-east-1")
    with pytest.raises(client.exceptions.InvalidJobIdException):
        client.get_status(JobId="ABCDE")
    assert [r["answered"] for r in emulator.admin.requests(action="GetStatus")] == [False, True]
    # a drop on purpose is no error (access lines, when uvicorn.access propagates, are fine)
    assert [
        r.getMessage() for r in caplog.records if r.name.startswith("uvicorn") and r.levelno >= logging.WARNING
    ] == []


def test_large_s3_bodies_stream_both_ways(emulator: ImportExportEmulator, s3: Any, bucket: str) -> None:
    body = os.urandom(3 * 1024 * 1024 + 17)  # over the API's whole-body limit: streamed, not read whole
    s3.put_object(Bucket=bucket, Key="big/blob.bin", Body=body)
    assert s3.get_object(Bucket=bucket, Key="big/blob.bin")["Body"].read() == body
    s3.upload_fileobj(io.BytesIO(body * 3), bucket, "big/multipart.bin")  # multipart, chunked
    assert s3.head_object(Bucket=bucket, Key="big/multipart.bin")["ContentLength"] == 3 * len(body)


def test_a_cached_signing_key_never_accepts_another_secret(emulator: ImportExportEmulator) -> None:
    good = boto3.client("importexport", endpoint_url=emulator.endpoint_url, region_name="eu-west-1")
    with pytest.raises(good.exceptions.InvalidJobIdException):
        good.get_status(JobId="ABCDE")  # signed with the right secret: the key for today is cached
    bad = boto3.client(
        "importexport",
        endpoint_url=emulator.endpoint_url,
        region_name="eu-west-1",
        aws_access_key_id=DEFAULT_ACCOUNT.access_key,
        aws_secret_access_key="not-the-secret",
    )
    with pytest.raises(ClientError) as refused:
        bad.get_status(JobId="ABCDE")
    assert refused.value.response["Error"]["Code"] == "SignatureDoesNotMatch"


def test_the_command_line_emulator_stops_on_sigterm_with_a_whole_state(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    process, admin = spawn("--state-file", str(state))
    try:
        admin.create_bucket("sigterm-bucket")
        client = boto3.client("importexport", endpoint_url=admin.endpoint_url, region_name="us-east-1")
        manifest = import_manifest("sigterm-bucket").to_yaml()
        job_id = client.create_job(JobType="Import", Manifest=manifest, ValidateOnly=False)["JobId"]
        client.cancel_job(JobId=job_id)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    lines = state.read_text().splitlines()
    assert len(lines) == 1  # the stop wrote one snapshot, with every change in it
    assert [(j["job_id"], j["progress"]) for j in json.loads(lines[0])["jobs"]] == [(job_id, "Canceled")]


# --- answers written from the model are what moto's serializer writes -------------------------------------

WHEN = dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=dt.UTC)
TRICKY = "a<b> & \"c\" 'd'\r\ne\x01 ü 🚚"
ARTIFACTS = [{"Description": TRICKY, "URL": "http://127.0.0.1/x?a=1&b=2"}, {"Description": "", "URL": "u"}]
RESULTS: list[tuple[str, dict[str, Any]]] = [
    ("CreateJob", {"JobId": "ABCDE", "JobType": "Import", "Signature": "s+/=", "SignatureFileContents": TRICKY,
                   "WarningMessage": None, "ArtifactList": ARTIFACTS}),
    ("CreateJob", {"JobId": "ABCDE", "JobType": "Export", "Signature": "", "SignatureFileContents": "c",
                   "WarningMessage": "w", "ArtifactList": []}),
    ("UpdateJob", {"Success": True, "WarningMessage": TRICKY, "ArtifactList": ARTIFACTS}),
    ("CancelJob", {"Success": False}),
    ("GetStatus", {"JobId": "ABCDE", "JobType": "Import", "LocationCode": "AtAWS", "LocationMessage": TRICKY,
                   "ProgressCode": "Pending", "ProgressMessage": "", "Carrier": "UPS", "TrackingNumber": None,
                   "LogBucket": "b", "LogKey": "k/€", "ErrorCount": 12, "Signature": "s", "SignatureFileContents": "x",
                   "CurrentManifest": "m: 1\r\n", "CreationDate": WHEN, "ArtifactList": ARTIFACTS}),
    ("GetStatus", {"JobId": "ABCDE", "CreationDate": WHEN.replace(microsecond=250), "ErrorCount": 0}),
    ("ListJobs", {"Jobs": [{"JobId": "A", "CreationDate": WHEN, "IsCanceled": True, "JobType": "Import"}] * 3,
                  "IsTruncated": True}),
    ("ListJobs", {"Jobs": [], "IsTruncated": False}),
    ("GetShippingLabel", {"ShippingLabelURL": "http://x/y.pdf", "Warning": TRICKY}),
]  # fmt: skip


@pytest.mark.parametrize(("action", "result"), RESULTS)
def test_answers_are_written_as_moto_would(action: str, result: dict[str, Any]) -> None:
    request_id = protocol.new_request_id()
    ours = protocol.success(protocol.ApiCall(action, {}, request_id), result).body
    operation = protocol.service_model().operation_model(action)
    theirs = QuerySerializer(operation, SerializationContext(request_id)).serialize(result)["body"]
    assert ours == protocol.xml_text(theirs.decode() if isinstance(theirs, bytes) else theirs)
