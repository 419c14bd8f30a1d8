"""The emulator's signature checks at their edges: half-presigned URLs, the X-Amz-Expires range,
malformed scopes and dates answered with the right code (never a 500). Found by `make mutate`
(docs/mutation.md): each test fails if its check is loosened or its error code swapped."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import boto3
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config

from airflow_provider_importexport.emulator import ImportExportEmulator
from tests.test_emulator_wire import presign, send, sign

LIST_JOBS = "/?Action=ListJobs&Version=2010-06-01"


def _with_query(url: str, **changes: str | None) -> str:
    """The URL with query parameters replaced (a None value drops the parameter)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    for name, value in changes.items():
        if value is None:
            query.pop(name.replace("_", "-"), None)
        else:
            query[name.replace("_", "-")] = value
    return urlunsplit(parts._replace(query=urlencode(query)))


@pytest.fixture
def object_url(emulator: ImportExportEmulator) -> str:
    s3 = boto3.client(
        "s3", endpoint_url=emulator.endpoint_url, region_name="us-east-1", config=Config(signature_version="s3v4")
    )
    s3.create_bucket(Bucket="edges-bucket")
    s3.put_object(Bucket="edges-bucket", Key="data.txt", Body=b"edge data")
    return str(s3.generate_presigned_url("get_object", Params={"Bucket": "edges-bucket", "Key": "data.txt"}))


def test_s3_url_with_a_credential_but_no_signature_is_malformed_not_anonymous(object_url: str) -> None:
    assert send(object_url).status == 200
    reply = send(_with_query(object_url, X_Amz_Signature=None))
    assert (reply.status, reply.code) == (400, "AuthorizationQueryParametersError")
    assert "X-Amz-Signature missing" in reply.text


@pytest.mark.parametrize(("expires", "accepted"), [(0, False), (1, True), (604800, True), (604801, False)])
def test_presign_lifetime_is_one_second_to_seven_days(
    emulator: ImportExportEmulator, monkeypatch: pytest.MonkeyPatch, expires: int, accepted: bool
) -> None:
    """A 1-second URL is signed 10 s ahead (within the allowed skew) so it is still valid when it arrives."""
    import datetime as dt

    import botocore.auth

    ahead = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(seconds=10)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: ahead)
    reply = send(presign(emulator.endpoint_url + LIST_JOBS, expires=expires))
    if accepted:
        assert reply.status == 200, reply.text
    else:
        assert (reply.status, reply.code) == (400, "IncompleteSignature")
        assert "X-Amz-Expires must be 1 to 604800 seconds" in reply.text


@pytest.mark.parametrize(
    "credential",
    ["AKIA/20260101/us-east-1/IngestionService", "AKIA/20260101/us-east-1/IngestionService/aws4_request/x"],
)
def test_a_credential_scope_of_the_wrong_length_is_refused_clearly(
    emulator: ImportExportEmulator, credential: str
) -> None:
    reply = send(_with_query(presign(emulator.endpoint_url + LIST_JOBS), X_Amz_Credential=credential))
    assert (reply.status, reply.code) == (400, "IncompleteSignature")
    assert "Credential must read ACCESS_KEY/YYYYMMDD/REGION/SERVICE/aws4_request" in reply.text


def test_an_unreadable_date_in_a_presigned_url_is_a_malformed_query(object_url: str) -> None:
    reply = send(_with_query(object_url, X_Amz_Date="yesterday"))
    assert (reply.status, reply.code) == (400, "AuthorizationQueryParametersError")
    assert "X-Amz-Date must be the signing time in UTC" in reply.text


def test_an_unreadable_date_in_a_signed_header_is_a_bad_date(object_url: str) -> None:
    """S3 tells the two apart: a header's bad date is AccessDenied (403), a URL's is a malformed query (400)."""
    url = urlunsplit(urlsplit(object_url)._replace(query=""))
    headers: dict[str, Any] = sign(AWSRequest(method="GET", url=url), service="s3", signer=S3SigV4Auth)
    headers["X-Amz-Date"] = "yesterday"
    reply = send(url, "GET", b"", headers)
    assert (reply.status, reply.code) == (403, "AccessDenied")
    assert "X-Amz-Date must be the signing time in UTC" in reply.text
