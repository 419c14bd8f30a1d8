"""Request authentication for the emulator: the account table and signature checks.

Both services on the endpoint check signatures against the same accounts, so a job and a
bucket belong to the account whose keys signed the request that made them:

* the Import/Export API: SigV4 in the ``Authorization`` header or in a presigned query
  (scope service ``IngestionService``, botocore's signing name, or ``importexport``), and the
  query SigV2 signature the service's guide documents (with ``Timestamp`` or ``Expires``);
* S3: SigV4 as botocore's S3 signer sends it (the payload hash is ``x-amz-content-sha256``:
  a SHA-256 the body must match, ``UNSIGNED-PAYLOAD`` or a ``STREAMING-*`` value), presigned
  SigV4 URLs, and S3's own SigV2 (``Authorization: AWS key:signature`` and presigned
  ``AWSAccessKeyId``/``Expires``/``Signature`` URLs, which boto3's ``generate_presigned_url``
  makes by default).

SigV4 always requires ``host`` among the signed headers and a scope naming the right
service. The scope's **region** is not compared with anything: it is taken as the client
gave it to derive the signing key, so it must be the region the request was really signed
for, but any region is accepted, because one emulator endpoint serves every region (the
service itself has one global endpoint; a bucket's region is S3 data, not a signing matter).

Streaming payloads are taken like ``UNSIGNED-PAYLOAD``: the seed signature is verified, the
per-chunk signatures are not (the seed already proves the secret; the emulator is not a
defence against tampering in transit).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime as dt
import email.utils
import functools
import hashlib
import hmac
import re
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

from botocore.auth import HmacV1Auth
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials
from botocore.utils import normalize_url_path

from airflow_provider_importexport.exceptions import AuthenticationError

#: AWS's own documentation example key pair: an SDK with these in its environment works out of the box.
DEFAULT_ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
DEFAULT_SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
DEFAULT_ACCOUNT_ID = "123456789012"
#: Signing names accepted in the API's SigV4 scope (botocore signs as IngestionService).
SIGNING_NAMES = ("IngestionService", "importexport")
#: The signing name of S3 requests.
S3_SIGNING_NAMES = ("s3",)
#: How far a request's timestamp may be from the emulator's clock (AWS allows 15 minutes).
MAX_CLOCK_SKEW = dt.timedelta(minutes=15)
#: The longest a presigned SigV4 URL may be valid (AWS: 7 days).
MAX_PRESIGN_SECONDS = 7 * 24 * 3600

UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
#: x-amz-content-sha256 values of aws-chunked uploads; the body is not hashed as a whole.
STREAMING_PAYLOADS = frozenset(
    {
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
    }
)
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_STAMP = re.compile(r"\d{8}T\d{6}Z", re.ASCII)
_SIGV4 = "AWS4-HMAC-SHA256"
_QUERY_SIGNATURE = "X-Amz-Signature"


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


@dataclass(frozen=True)
class Failure:
    """One kind of authentication failure, as each service spells it (code, HTTP status)."""

    api_code: str
    api_status: int
    s3_code: str
    s3_status: int


MISSING = Failure("MissingAuthenticationToken", 403, "AccessDenied", 403)
UNKNOWN_KEY = Failure("InvalidClientTokenIdException", 403, "InvalidAccessKeyId", 403)
BAD_SIGNATURE = Failure("SignatureDoesNotMatch", 403, "SignatureDoesNotMatch", 403)
MALFORMED = Failure("IncompleteSignature", 400, "AuthorizationHeaderMalformed", 400)
MALFORMED_QUERY = Failure("IncompleteSignature", 400, "AuthorizationQueryParametersError", 400)
WRONG_SERVICE = Failure("SignatureDoesNotMatch", 403, "AuthorizationHeaderMalformed", 400)
MISSING_PARAMETER = Failure("MissingParameter", 400, "InvalidRequest", 400)
BAD_DATE = Failure("IncompleteSignature", 400, "AccessDenied", 403)
SKEWED = Failure("SignatureDoesNotMatch", 403, "RequestTimeTooSkewed", 403)
EXPIRED = Failure("RequestExpired", 400, "AccessDenied", 403)
BAD_PAYLOAD_HASH = Failure("InvalidParameterException", 400, "InvalidArgument", 400)
PAYLOAD_MISMATCH = Failure("InvalidParameterException", 400, "XAmzContentSHA256Mismatch", 400)
DENIED = Failure("AccessDenied", 403, "AccessDenied", 403)


class AuthError(AuthenticationError):
    """A request failed authentication; ``failure`` says what each service answers."""

    def __init__(self, failure: Failure, message: str) -> None:
        super().__init__(message, code=failure.api_code)
        self.failure = failure
        self.http_status = failure.api_status  # type: ignore[misc]


@dataclass(frozen=True)
class SignedRequest:
    """The parts of an HTTP request that a signature covers."""

    method: str
    host: str
    path: str  # as sent, still percent-encoded
    query: str  # as sent
    headers: dict[str, str]  # lower-case names
    body: bytes  # the API's body; S3 bodies are checked with check_payload
    form: dict[str, str]  # the API's form fields (SigV2 signs these on a POST)
    #: S3 SigV2 signs "/bucket/key" even when the bucket is in the host name.
    s3_resource: str = ""

    def query_params(self) -> dict[str, str]:
        return dict(query_pairs(self.query))


def query_pairs(query: str) -> list[tuple[str, str]]:
    """Decode a query string as SigV4 canonicalises it (``+`` stays a plus sign)."""
    pairs = []
    for part in query.split("&"):
        if part:
            name, _, value = part.partition("=")
            pairs.append((unquote(name), unquote(value)))
    return pairs


@dataclass(frozen=True)
class _SigV4:
    """What a SigV4 request says about its own signature."""

    access_key: str
    day: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str
    stamp: str
    presigned: bool
    expires: int = 0

    @property
    def scope(self) -> str:
        return f"{self.day}/{self.region}/{self.service}/aws4_request"


class Authenticator:
    """Verify who sent a request, against the emulator's account table."""

    def __init__(self, accounts: list[Account], *, max_skew: dt.timedelta = MAX_CLOCK_SKEW) -> None:
        self.accounts = {a.access_key: a for a in accounts}
        self.max_skew = max_skew

    def account_for_key(self, access_key: str) -> Account | None:
        return self.accounts.get(access_key)

    # --- entry points ---------------------------------------------------------------------------

    def authenticate(self, request: SignedRequest, now: dt.datetime | None = None) -> Account:
        """The signing account of an Import/Export API request, or AuthError."""
        now = now or _utcnow()
        header = request.headers.get("authorization", "")
        query = request.query_params()
        if header.startswith(_SIGV4):
            return self._sigv4(
                request, _parse_header(header, request.headers), SIGNING_NAMES, _sha256(request.body), now
            )
        if _QUERY_SIGNATURE in query or "X-Amz-Credential" in query:
            return self._sigv4(request, _parse_query(query), SIGNING_NAMES, _sha256(request.body), now)
        sigv2 = request.form if request.method == "POST" and "Signature" in request.form else query
        if "Signature" in sigv2 and "AWSAccessKeyId" in sigv2:
            return self._api_sigv2(request, sigv2, now)
        if header:
            raise AuthError(MALFORMED, f"Unsupported Authorization header; sign with {_SIGV4} (SigV4) or SigV2.")
        raise AuthError(MISSING, "Request is missing Authentication Token")

    def authenticate_s3(self, request: SignedRequest, now: dt.datetime | None = None) -> Account:
        """The signing account of an S3 request, or AuthError (anonymous requests are refused)."""
        now = now or _utcnow()
        header = request.headers.get("authorization", "")
        query = request.query_params()
        if header.startswith(_SIGV4):
            sig = _parse_header(header, request.headers)
            return self._sigv4(request, sig, S3_SIGNING_NAMES, s3_payload_hash(request.headers), now)
        if _QUERY_SIGNATURE in query or "X-Amz-Credential" in query:
            return self._sigv4(request, _parse_query(query), S3_SIGNING_NAMES, UNSIGNED_PAYLOAD, now)
        if header.startswith("AWS "):
            return self._s3_sigv2_header(request, header, now)
        if "Signature" in query and "AWSAccessKeyId" in query:
            return self._s3_sigv2_query(request, query, now)
        if header:
            raise AuthError(MALFORMED, f"Unsupported Authorization Type; sign with {_SIGV4} (SigV4) or AWS (SigV2).")
        raise AuthError(
            MISSING, "Anonymous access is not allowed: sign the request with the keys of an emulator account."
        )

    # --- shared checks ------------------------------------------------------------------------------

    def _known(self, access_key: str) -> Account:
        account = self.accounts.get(access_key)
        if account is None:
            # The spec's error table names it InvalidClientTokenIdException (HTTP 403);
            # S3 calls it InvalidAccessKeyId.
            raise AuthError(
                UNKNOWN_KEY,
                f"The access key id {access_key[:40]} is not one of the emulator's accounts; "
                "sign with an account's keys or add one with --account ACCESS_KEY:SECRET_KEY.",
            )
        return account

    def _check_skew(self, when: dt.datetime, now: dt.datetime) -> None:
        if abs(now - when) > self.max_skew:
            raise AuthError(
                SKEWED,
                f"Signature expired: {_stamp(when)} is now earlier or later than the allowed "
                f"{int(self.max_skew.total_seconds() // 60)} minutes of the server time {_stamp(now)}.",
            )

    @staticmethod
    def _check_expiry(expires: dt.datetime, now: dt.datetime) -> None:
        if now > expires:
            raise AuthError(EXPIRED, f"Request has expired: it expired at {_stamp(expires)}, now is {_stamp(now)}.")

    @staticmethod
    def _compare(expected: str, given: str) -> None:
        if not hmac.compare_digest(expected.encode(), given.encode()):
            raise AuthError(
                BAD_SIGNATURE,
                "The request signature we calculated does not match the signature you provided. "
                "Check your AWS Secret Access Key and signing method.",
            )

    # --- SigV4 ----------------------------------------------------------------------------------

    def _sigv4(
        self, request: SignedRequest, sig: _SigV4, services: tuple[str, ...], payload_hash: str, now: dt.datetime
    ) -> Account:
        account = self._known(sig.access_key)
        if sig.service not in services:
            raise AuthError(
                WRONG_SERVICE, f"Credential should be scoped to correct service: '{services[0]}', not '{sig.service}'."
            )
        if "host" not in sig.signed_headers:
            raise AuthError(BAD_SIGNATURE, "The host header must be signed: add host to SignedHeaders.")
        when = _parse_stamp(sig.stamp, sig.presigned)
        if sig.stamp[:8] != sig.day:
            raise AuthError(BAD_SIGNATURE, f"Credential date {sig.day} does not match X-Amz-Date {sig.stamp}.")
        if not sig.presigned:
            self._check_skew(when, now)
        elif when - self.max_skew > now:
            raise AuthError(EXPIRED, f"Request is not yet valid: it was signed for {_stamp(when)}.")
        else:
            self._check_expiry(when + dt.timedelta(seconds=sig.expires), now)
        canonical = _canonical_request(request, sig, payload_hash, s3=services == S3_SIGNING_NAMES)
        self._compare(_sigv4_signature(account.secret_key, sig, canonical), sig.signature)
        return account

    # --- SigV2 ----------------------------------------------------------------------------------

    def _api_sigv2(self, request: SignedRequest, params: dict[str, str], now: dt.datetime) -> Account:
        """The query API's SigV2: HMAC over verb, host, path and the sorted parameters."""
        account = self._known(params["AWSAccessKeyId"])
        if params.get("SignatureVersion") != "2" or params.get("SignatureMethod") not in ("HmacSHA256", "HmacSHA1"):
            raise AuthError(
                BAD_SIGNATURE, "Only SignatureVersion 2 with SignatureMethod HmacSHA256 or HmacSHA1 is supported."
            )
        timestamp, expires = params.get("Timestamp"), params.get("Expires")
        if timestamp is not None and expires is not None:
            raise AuthError(MALFORMED, "A SigV2 request takes Timestamp or Expires, not both; drop one of them.")
        if timestamp is None and expires is None:
            raise AuthError(MISSING_PARAMETER, "A SigV2 request needs a Timestamp or an Expires parameter.")
        if timestamp is not None:
            self._check_skew(_parse_iso(timestamp, "Timestamp"), now)
        else:
            self._check_expiry(_parse_iso(str(expires), "Expires"), now)
        self._compare(_api_sigv2_signature(request, params, account), params["Signature"])
        return account

    def _s3_sigv2_header(self, request: SignedRequest, header: str, now: dt.datetime) -> Account:
        access_key, _, signature = header[len("AWS ") :].strip().rpartition(":")
        if not access_key or not signature:
            raise AuthError(MALFORMED, "The Authorization header must read 'AWS ACCESS_KEY:SIGNATURE'.")
        account = self._known(access_key)
        amz_date = request.headers.get("x-amz-date")
        self._check_skew(_parse_http_date(amz_date or request.headers.get("date", "")), now)
        date_line = "" if amz_date else request.headers.get("date", "")
        amz_headers = {k: v for k, v in request.headers.items() if k.startswith("x-amz-")}
        standard = (request.headers.get("content-md5", ""), request.headers.get("content-type", ""), date_line)
        self._compare(_s3_sigv2_signature(request, account, standard, amz_headers), signature)
        return account

    def _s3_sigv2_query(self, request: SignedRequest, query: dict[str, str], now: dt.datetime) -> Account:
        """A presigned SigV2 URL: signed like a header request, with Expires (epoch seconds) as its date."""
        account = self._known(query["AWSAccessKeyId"])
        try:
            expires = dt.datetime.fromtimestamp(int(query.get("Expires", "")), dt.UTC)
        except (ValueError, OverflowError, OSError):
            raise AuthError(MALFORMED_QUERY, "A presigned URL needs Expires as seconds since 1970.") from None
        self._check_expiry(expires, now)
        amz_headers = {k: v for k, v in request.headers.items() if k.startswith("x-amz-")}
        amz_headers.update({k.lower(): v for k, v in query.items() if k.lower().startswith("x-amz-")})

        def standard(name: str) -> str:
            return query.get(name, request.headers.get(name, ""))

        fields = (standard("content-md5"), standard("content-type"), query["Expires"])
        self._compare(_s3_sigv2_signature(request, account, fields, amz_headers), query["Signature"])
        return account


# --- S3 payload ---------------------------------------------------------------------------------


def s3_payload_hash(headers: dict[str, str]) -> str:
    """The payload hash an S3 SigV4 request declares (and signs) in x-amz-content-sha256."""
    value = headers.get("x-amz-content-sha256")
    if value is None:
        raise AuthError(MISSING_PARAMETER, "Missing required header for this request: x-amz-content-sha256.")
    if value == UNSIGNED_PAYLOAD or value in STREAMING_PAYLOADS or _SHA256_HEX.fullmatch(value):
        return value
    raise AuthError(
        BAD_PAYLOAD_HASH,
        f"x-amz-content-sha256 must be the body's SHA-256 in lower-case hex, {UNSIGNED_PAYLOAD} "
        f"or one of {', '.join(sorted(STREAMING_PAYLOADS))}; got {value[:80]!r}.",
    )


def body_hash_to_check(headers: dict[str, str]) -> str | None:
    """The SHA-256 an S3 body must have, when its request declared one (SigV4 header auth)."""
    value = headers.get("x-amz-content-sha256", "")
    return value if _SHA256_HEX.fullmatch(value) and headers.get("authorization", "").startswith(_SIGV4) else None


def check_payload(expected_sha256: str, body: bytes) -> None:
    if not hmac.compare_digest(_sha256(body), expected_sha256):
        raise AuthError(
            PAYLOAD_MISMATCH, "The provided 'x-amz-content-sha256' header does not match what was computed."
        )


# --- parsing --------------------------------------------------------------------------------------


def _parse_header(header: str, headers: dict[str, str]) -> _SigV4:
    """``AWS4-HMAC-SHA256 Credential=K/D/R/S/aws4_request, SignedHeaders=a;b, Signature=hex``."""
    fields = {}
    for item in header[len(_SIGV4) :].split(","):
        name, _, value = item.strip().partition("=")
        fields[name] = value
    missing = [name for name in ("Credential", "SignedHeaders", "Signature") if not fields.get(name)]
    if missing:
        raise AuthError(
            MALFORMED,
            f"The Authorization header requires Credential, SignedHeaders and Signature; {', '.join(missing)} missing.",
        )
    return _sigv4_parts(
        fields["Credential"],
        fields["SignedHeaders"],
        fields["Signature"],
        headers.get("x-amz-date", ""),
        presigned=False,
    )


def _parse_query(query: dict[str, str]) -> _SigV4:
    """A presigned SigV4 URL's X-Amz-* parameters."""
    names = (
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        _QUERY_SIGNATURE,
    )
    missing = [name for name in names if not query.get(name)]
    if missing:
        raise AuthError(MALFORMED_QUERY, f"A presigned URL needs {', '.join(names)}; {', '.join(missing)} missing.")
    if query["X-Amz-Algorithm"] != _SIGV4:
        raise AuthError(MALFORMED_QUERY, f"X-Amz-Algorithm must be {_SIGV4}, not {query['X-Amz-Algorithm']!r}.")
    expires = query["X-Amz-Expires"]
    if not expires.isdigit() or not 1 <= int(expires) <= MAX_PRESIGN_SECONDS:
        raise AuthError(MALFORMED_QUERY, f"X-Amz-Expires must be 1 to {MAX_PRESIGN_SECONDS} seconds, not {expires!r}.")
    sig = _sigv4_parts(
        query["X-Amz-Credential"],
        query["X-Amz-SignedHeaders"],
        query[_QUERY_SIGNATURE],
        query["X-Amz-Date"],
        presigned=True,
    )
    return dataclasses.replace(sig, expires=int(expires))


def _sigv4_parts(credential: str, signed: str, signature: str, stamp: str, *, presigned: bool) -> _SigV4:
    failure = MALFORMED_QUERY if presigned else MALFORMED
    scope = credential.split("/")
    if len(scope) != 5 or scope[4] != "aws4_request" or not all(scope):
        raise AuthError(
            failure, f"Credential must read ACCESS_KEY/YYYYMMDD/REGION/SERVICE/aws4_request, not {credential[:200]!r}."
        )
    access_key, day, region, service, _ = scope
    return _SigV4(access_key, day, region, service, tuple(signed.lower().split(";")), signature, stamp, presigned)


def _parse_stamp(stamp: str, presigned: bool) -> dt.datetime:
    """X-Amz-Date; years far from now are refused here, so date arithmetic cannot overflow."""
    when = None
    if _STAMP.fullmatch(stamp):  # what strptime("%Y%m%dT%H%M%SZ") takes, at a tenth of its cost
        with contextlib.suppress(ValueError):
            year, month, day = int(stamp[0:4]), int(stamp[4:6]), int(stamp[6:8])
            when = dt.datetime(year, month, day, int(stamp[9:11]), int(stamp[11:13]), int(stamp[13:15]), tzinfo=dt.UTC)
    if when is None or not 1970 <= when.year <= 9000:
        raise AuthError(
            MALFORMED_QUERY if presigned else BAD_DATE,
            f"X-Amz-Date must be the signing time in UTC as YYYYMMDDTHHMMSSZ, not {stamp[:40]!r}.",
        )
    return when


def _parse_iso(value: str, name: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise AuthError(
            MALFORMED, f"{name} must be an ISO 8601 time such as 2010-06-01T12:00:00Z, not {value[:40]!r}."
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _parse_http_date(value: str) -> dt.datetime:
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        raise AuthError(BAD_DATE, "AWS authentication requires a valid Date or x-amz-date header.") from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


# --- signatures -----------------------------------------------------------------------------------


def _canonical_request(request: SignedRequest, sig: _SigV4, payload_hash: str, *, s3: bool) -> str:
    """SigV4's canonical request, built from exactly what the client declared it signed."""
    path = request.path if s3 else quote(normalize_url_path(request.path), safe="/~")
    pairs = [(k, v) for k, v in query_pairs(request.query) if not (sig.presigned and k == _QUERY_SIGNATURE)]
    query = "&".join(f"{k}={v}" for k, v in sorted((_uri(k), _uri(v)) for k, v in pairs))
    headers = "".join(f"{name}:{' '.join(request.headers.get(name, '').split())}\n" for name in sig.signed_headers)
    return "\n".join((request.method.upper(), path, query, headers, ";".join(sig.signed_headers), payload_hash))


def _sigv4_signature(secret: str, sig: _SigV4, canonical_request: str) -> str:
    string_to_sign = "\n".join((_SIGV4, sig.stamp, sig.scope, _sha256(canonical_request.encode())))
    key = _signing_key(secret, sig.day, sig.region, sig.service)
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


@functools.lru_cache(maxsize=256)
def _signing_key(secret: str, day: str, region: str, service: str) -> bytes:
    """SigV4's signing key, four HMACs deep; it changes once a day per region and service, as
    clients cache it too."""
    key = f"AWS4{secret}".encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def _api_sigv2_signature(request: SignedRequest, params: dict[str, str], account: Account) -> str:
    query = "&".join(f"{_uri(k)}={_uri(v)}" for k, v in sorted(params.items()) if k != "Signature")
    to_sign = f"{request.method.upper()}\n{request.host.lower()}\n{request.path or '/'}\n{query}"
    digest = hashlib.sha256 if params.get("SignatureMethod") == "HmacSHA256" else hashlib.sha1
    return base64.b64encode(hmac.new(account.secret_key.encode(), to_sign.encode(), digest).digest()).decode()


def _s3_sigv2_signature(
    request: SignedRequest, account: Account, standard: tuple[str, str, str], amz_headers: dict[str, str]
) -> str:
    """S3's SigV2 string to sign (verb, Content-MD5, Content-Type, date, x-amz-* headers, resource),
    with botocore's own canonicalisation of the x-amz-* headers and the resource."""
    signer = HmacV1Auth(Credentials(account.access_key, account.secret_key))
    headers = HTTPHeaders()
    for name, value in amz_headers.items():
        headers[name] = value
    custom = signer.canonical_custom_headers(headers)
    split = urlsplit(f"{request.path}?{request.query}")
    resource = signer.canonical_resource(split, auth_path=request.s3_resource or None)
    to_sign = "\n".join((request.method.upper(), *standard)) + "\n" + (f"{custom}\n" if custom else "") + resource
    return signer.sign_string(to_sign)


def _uri(text: str) -> str:
    return quote(text, safe="-_.~")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _stamp(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
