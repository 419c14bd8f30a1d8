"""Request authentication for the emulator: the account table and signature checks.

SigV4 signatures are recomputed with botocore's own signer (so the emulator and every SDK
agree on canonicalisation) and compared in constant time. Query SigV2 form signatures,
which the service's guide documents, are accepted too.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
from dataclasses import dataclass
from urllib.parse import quote

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from airflow_provider_importexport.exceptions import AuthenticationError

#: AWS's own documentation example key pair: an SDK with these in its environment works out of the box.
DEFAULT_ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
DEFAULT_SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
DEFAULT_ACCOUNT_ID = "123456789012"
#: Signing names accepted in the SigV4 scope (botocore signs as IngestionService).
SIGNING_NAMES = ("IngestionService", "importexport")
#: How far a request's timestamp may be from the emulator's clock (AWS allows 15 minutes).
MAX_CLOCK_SKEW = dt.timedelta(minutes=15)

_AUTH_HEADER = re.compile(
    r"AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+),\s*"
    r"SignedHeaders=(?P<signed>[^,\s]+),\s*Signature=(?P<signature>[0-9a-f]+)"
)


@dataclass(frozen=True)
class Account:
    """An emulated AWS account: one access key pair and the account id that owns its jobs."""

    access_key: str
    secret_key: str
    account_id: str

    @classmethod
    def parse(cls, text: str, index: int = 0) -> Account:
        """Parse ``ACCESS_KEY:SECRET_KEY[:ACCOUNT_ID]`` (the CLI's ``--account`` value)."""
        parts = text.split(":")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"--account takes ACCESS_KEY:SECRET_KEY[:ACCOUNT_ID], got {text!r}")
        account_id = parts[2] if len(parts) == 3 else f"{100000000000 + index:012d}"
        if not re.fullmatch(r"\d{12}", account_id):
            raise ValueError(f"account id must be 12 digits, got {account_id!r}")
        return cls(parts[0], parts[1], account_id)


DEFAULT_ACCOUNT = Account(DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY, DEFAULT_ACCOUNT_ID)


class AuthError(AuthenticationError):
    """A request failed authentication; ``code`` is what a real AWS endpoint answers."""


def _fail(code: str, message: str) -> AuthError:
    return AuthError(message, code=code)


@dataclass(frozen=True)
class SignedRequest:
    """The parts of an HTTP request that a signature covers."""

    method: str
    host: str
    path: str
    query: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    form: dict[str, str]


class Authenticator:
    """Verify who sent a request, against the emulator's account table."""

    def __init__(self, accounts: list[Account], *, max_skew: dt.timedelta = MAX_CLOCK_SKEW) -> None:
        self.accounts = {a.access_key: a for a in accounts}
        self.max_skew = max_skew

    def account_for_key(self, access_key: str) -> Account | None:
        return self.accounts.get(access_key)

    def authenticate(self, request: SignedRequest, now: dt.datetime | None = None) -> Account:
        """Return the signing account or raise AuthError with AWS's code for the failure."""
        now = now or dt.datetime.now(dt.timezone.utc)
        header = request.headers.get("authorization", "")
        if header.startswith("AWS4-HMAC-SHA256"):
            return self._sigv4(request, header, now)
        if "Signature" in request.form and "AWSAccessKeyId" in request.form:
            return self._sigv2(request, now)
        raise _fail("MissingAuthenticationToken", "Request is missing Authentication Token")

    def _known(self, access_key: str) -> Account:
        account = self.accounts.get(access_key)
        if account is None:
            # The spec's error table names it InvalidClientTokenIdException (HTTP 403);
            # generic AWS endpoints spell the same error InvalidClientTokenId.
            raise _fail("InvalidClientTokenIdException", "The security token included in the request is invalid.")
        return account

    def _check_skew(self, when: dt.datetime, now: dt.datetime) -> None:
        if abs(now - when) > self.max_skew:
            stamp = when.strftime("%Y%m%dT%H%M%SZ")
            raise _fail(
                "SignatureDoesNotMatch",
                f"Signature expired: {stamp} is now earlier or later than the allowed "
                f"{int(self.max_skew.total_seconds() // 60)} minutes of the server time "
                f"{now.strftime('%Y%m%dT%H%M%SZ')}.",
            )

    def _sigv4(self, request: SignedRequest, header: str, now: dt.datetime) -> Account:
        match = _AUTH_HEADER.match(header)
        if not match:
            raise _fail("IncompleteSignature", "Authorization header requires Credential, SignedHeaders and Signature")
        scope = match["credential"].split("/")
        if len(scope) != 5 or scope[4] != "aws4_request":
            raise _fail("IncompleteSignature", f"Credential scope is malformed: {match['credential']}")
        access_key, day, region, service, _ = scope
        account = self._known(access_key)
        if service not in SIGNING_NAMES:
            raise _fail(
                "SignatureDoesNotMatch",
                f"Credential should be scoped to correct service: '{SIGNING_NAMES[0]}', not '{service}'.",
            )
        stamp = request.headers.get("x-amz-date", "")
        try:
            when = dt.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)
        except ValueError:
            raise _fail("IncompleteSignature", "X-Amz-Date header is missing or malformed") from None
        if stamp[:8] != day:
            raise _fail("SignatureDoesNotMatch", "Credential date does not match X-Amz-Date")
        self._check_skew(when, now)
        expected = _sigv4_signature(request, account, match["signed"].split(";"), stamp, region, service)
        if not hmac.compare_digest(expected, match["signature"]):
            raise _fail(
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided. "
                "Check your AWS Secret Access Key and signing method.",
            )
        return account

    def _sigv2(self, request: SignedRequest, now: dt.datetime) -> Account:
        form = request.form
        account = self._known(form["AWSAccessKeyId"])
        if form.get("SignatureVersion") != "2" or form.get("SignatureMethod") not in ("HmacSHA256", "HmacSHA1"):
            raise _fail("SignatureDoesNotMatch", "Only SignatureVersion 2 with HmacSHA256 or HmacSHA1 is supported")
        try:
            when = dt.datetime.fromisoformat(form.get("Timestamp", "").replace("Z", "+00:00"))
        except ValueError:
            raise _fail("MissingParameter", "SigV2 requests need a Timestamp parameter") from None
        self._check_skew(when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc), now)
        if not hmac.compare_digest(_sigv2_signature(request, account), form["Signature"]):
            raise _fail(
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )
        return account


def _sigv4_signature(
    request: SignedRequest, account: Account, signed: list[str], stamp: str, region: str, service: str
) -> str:
    headers = {name: request.headers.get(name, "") for name in signed}
    url = f"http://{request.host}{request.path}" + (f"?{request.query}" if request.query else "")
    aws_request = AWSRequest(method=request.method, url=url, headers=headers, data=request.body)
    aws_request.context["timestamp"] = stamp
    signer = SigV4Auth(Credentials(account.access_key, account.secret_key), service, region)
    canonical = signer.canonical_request(aws_request)
    return signer.signature(signer.string_to_sign(aws_request, canonical), aws_request)


def _sigv2_signature(request: SignedRequest, account: Account) -> str:
    params = sorted((k, v) for k, v in request.form.items() if k != "Signature")
    query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in params)
    to_sign = f"{request.method}\n{request.host.lower()}\n{request.path or '/'}\n{query}"
    digest = hashlib.sha256 if request.form.get("SignatureMethod") == "HmacSHA256" else hashlib.sha1
    mac = hmac.new(account.secret_key.encode(), to_sign.encode(), digest)
    return base64.b64encode(mac.digest()).decode()
