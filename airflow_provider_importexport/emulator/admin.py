"""The admin API under ``/_importexport/``: drive jobs, faults and the clock from tests.

Outside the AWS API, like moto's ``/moto-api/``. JSON in, JSON out. On loopback it needs
no credentials unless the emulator was given an admin token (``--admin-token`` or
``IMPORTEXPORT_EMULATOR_ADMIN_TOKEN``, required to listen beyond loopback); then every
route but ``health`` needs ``Authorization: Bearer TOKEN``. Bodies are checked field by
field: a wrong type, range or unknown field is a 400 naming the field.

Documents (shipping labels, job sheets) are reached through the signed links the API
hands out (``documents/SIGNATURE/NAME``, like an S3 presigned URL, no credentials); the
bare ``documents/NAME`` is an admin route.

=======  ==========================================  =====================================
Method   Path                                        Body / effect
=======  ==========================================  =====================================
GET      /_importexport/health                       ``{"status": "ok"}`` (never needs the token)
GET      /_importexport/jobs                         every job's status (secrets masked, StatusReads)
GET      /_importexport/jobs/ID                      one job's status (secrets masked)
POST     /_importexport/jobs                         ``{"manifest", "job_type", "count", "access_key"}``: that
                                                     many jobs through CreateJob's rules (to fill it)
POST     /_importexport/jobs/ID/ACTION               ship, receive, start, process
                                                     (``outcome``, ``error_count``), return
                                                     (``carrier``, ``tracking_number``),
                                                     expire, attach (``path``)
POST     /_importexport/tick                         apply the time profile to every job
GET/POST /_importexport/faults                       fault rates (FaultConfig fields)
POST     /_importexport/faults/queue                 ``{"faults": ["throttle", "drop_after@CreateJob"]}``
GET      /_importexport/requests                     every API request: action, job, fault, carried out, answered
DELETE   /_importexport/requests                     forget the request records
POST     /_importexport/clock                        ``{"advance_seconds": N}`` (0 to 100 years in all)
POST     /_importexport/profile                      ``{"name": "fast"}`` or profile fields
POST     /_importexport/buckets                      ``{"bucket", "region", "access_key"}``
GET      /_importexport/documents/SIGNATURE/NAME     a document through the link the API gave
GET      /_importexport/documents/NAME               any document (admin)
=======  ==========================================  =====================================
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import logging
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from airflow_provider_importexport import exceptions as exc
from airflow_provider_importexport.emulator import protocol
from airflow_provider_importexport.emulator.auth import Account, Authenticator
from airflow_provider_importexport.emulator.backend import ImportExportBackend
from airflow_provider_importexport.emulator.client import TOKEN_ENV
from airflow_provider_importexport.emulator.faults import FaultConfig, FaultInjector, RequestLog, parse_queued
from airflow_provider_importexport.emulator.lifecycle import PROFILES, LifecycleProfile
from airflow_provider_importexport.emulator.state import Job
from airflow_provider_importexport.manifest import redact_manifest_text

log = logging.getLogger(__name__)

PREFIX = "/_importexport/"
_ERROR_NAMES = {401: "Unauthorized", 404: "NotFound", 413: "PayloadTooLarge"}
#: How far the admin API may move the clock ahead in all (dates must stay representable).
MAX_CLOCK_OFFSET = dt.timedelta(days=100 * 365)
_MAX_SECONDS = MAX_CLOCK_OFFSET.total_seconds()
#: The most jobs one admin call creates.
MAX_CREATED_AT_ONCE = 100_000
#: Options each job action takes, and their JSON types.
ACTION_OPTIONS: dict[str, dict[str, tuple[type, ...]]] = {
    "ship": {},
    "receive": {},
    "start": {},
    "expire": {},
    "process": {"outcome": (str,), "error_count": (int,)},
    "return": {"carrier": (str,), "tracking_number": (str, type(None))},
    "attach": {"path": (str,)},
}
_MAX_ERROR_COUNT = 2**31 - 1
_BUCKET_NAME = re.compile(r"(?!xn--|sthree-)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}")
_JSON_NAMES = {str: "a string", int: "a whole number", float: "a number", list: "a list", type(None): "null"}


class BadRequest(Exception):
    """An admin request the emulator refuses; ``status`` and ``field`` go into the JSON answer."""

    def __init__(self, message: str, *, field: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.status = status


class DocumentLinks:
    """Signed document links: the API hands them out, anyone holding one may fetch that document.

    Like S3 presigned URLs, the signature (an HMAC of the name under a key made at start)
    sits in the path, so a link still ends in the document's file name.
    """

    def __init__(self, key: bytes) -> None:
        self._key = key

    def signature(self, name: str) -> str:
        return hmac.new(self._key, name.encode(), hashlib.sha256).hexdigest()[:40]

    def valid(self, signature: str, name: str) -> bool:
        return hmac.compare_digest(self.signature(name).encode(), signature.encode())

    def sign(self, url: str) -> str:
        """``.../_importexport/documents/NAME`` becomes ``.../_importexport/documents/SIGNATURE/NAME``."""
        head, marker, name = url.rpartition(f"{PREFIX}documents/")
        if not marker or not name or "/" in name:
            return url
        return f"{head}{marker}{self.signature(name)}/{name}"

    def sign_result(self, result: dict[str, Any]) -> dict[str, Any]:
        """An API result with its document links signed (the job's own records are left alone)."""
        signed = dict(result)
        if isinstance(signed.get("ShippingLabelURL"), str):
            signed["ShippingLabelURL"] = self.sign(signed["ShippingLabelURL"])
        if isinstance(signed.get("ArtifactList"), list):
            signed["ArtifactList"] = [
                {**item, "URL": self.sign(item["URL"])} if isinstance(item.get("URL"), str) else item
                for item in signed["ArtifactList"]
            ]
        return signed


@dataclass(frozen=True)
class AdminTargets:
    """What the admin API drives, handed over by whoever assembles the emulator."""

    backend: ImportExportBackend
    faults: FaultInjector
    requests: RequestLog
    authenticator: Authenticator
    links: DocumentLinks
    endpoint_url: str
    #: The account a bucket is made for when the admin names no access key.
    default_access_key: str


class AdminApp:
    """The WSGI app under /_importexport/: the admin routes and the document links."""

    def __init__(self, targets: AdminTargets, token: str | None = None) -> None:
        self.targets = targets
        self.links = targets.links
        self.token = token or None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        parts = environ.get("PATH_INFO", "/")[len(PREFIX) :].strip("/").split("/")
        headers: list[tuple[str, str]] = []
        try:
            if parts[0] == "documents":
                return self._document(environ, parts[1:], start_response)
            if parts != ["health"]:
                self._authorize(environ)
            body = _body(environ) if method in ("POST", "PUT", "PATCH") else {}
            status, payload = 200, self.route(method, parts, body)
        except BadRequest as err:
            status, payload = err.status, {"error": _ERROR_NAMES.get(err.status, "BadRequest"), "message": err.message}
            if err.field:
                payload["field"] = err.field
            if status == 401:
                headers.append(("WWW-Authenticate", 'Bearer realm="importexport-emulator admin API"'))
        except exc.JobNotFoundError as err:
            status, payload = 404, {"error": err.code, "message": err.message}
        except exc.ImportExportError as err:
            status, payload = (
                err.http_status if err.http_status < 500 else 400,
                {"error": err.code, "message": err.message},
            )
        except (ClientError, BotoCoreError, ValueError, TypeError) as err:
            status, payload = 400, {"error": type(err).__name__, "message": str(err)}
        except Exception:
            log.exception("the admin API failed on %s %s", method, environ.get("PATH_INFO"))
            status, payload = 500, {"error": "InternalError", "message": "The emulator failed; see its log."}
        data = json.dumps(payload, default=_json_default).encode()
        start_response(
            f"{status} {'OK' if status == 200 else 'Error'}",
            [("Content-Type", "application/json"), ("Content-Length", str(len(data))), *headers],
        )
        return [data]

    def _authorize(self, environ: dict[str, Any]) -> None:
        if self.token is None:
            return
        given = environ.get("HTTP_AUTHORIZATION", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
            raise BadRequest(
                "The admin API needs the emulator's admin token: send 'Authorization: Bearer TOKEN' "
                f"(EmulatorAdmin(token=...), or set {TOKEN_ENV} for the admin command).",
                status=401,
            )

    def route(self, method: str, parts: list[str], body: dict[str, Any]) -> Any:
        backend = self.targets.backend
        match (method, parts):
            case ("GET", ["health"]):
                return {"status": "ok", "endpoint_url": self.targets.endpoint_url}
            case ("GET", ["jobs"]):
                return [_admin_view(job) for job in backend.all_jobs()]
            case ("GET", ["jobs", job_id]):
                job = backend.job(job_id)
                if job is None:
                    raise exc.JobNotFoundError("No such job.", job_id=job_id)
                return _admin_view(job)
            case ("POST", ["jobs", job_id, action]):
                return _masked(backend.transition(job_id, action, **_action_options(action, body)))
            case ("POST", ["tick"]):
                _only(body, ())
                return {"jobs": len(backend.all_jobs())}
            case ("GET", ["faults"]):
                return {"config": self.targets.faults.config.to_dict(), "counts": self.targets.faults.counts}
            case ("POST", ["faults"]):
                self.targets.faults.configure(_fault_config(body))
                return {"config": self.targets.faults.config.to_dict()}
            case ("POST", ["faults", "queue"]):
                self.targets.faults.queue(*_fault_queue(body))
                return {"queued": self.targets.faults.queued_names()}
            case ("GET", ["requests"]):
                return self.targets.requests.query()
            case ("DELETE", ["requests"]):
                self.targets.requests.clear()
                return {"cleared": True}
            case ("POST", ["clock"]):
                return self._advance_clock(body)
            case ("POST", ["profile"]):
                backend.set_profile(_profile(body))
                return {"profile": dataclasses.asdict(backend.config.profile)}
            case ("POST", ["buckets"]):
                return self._create_bucket(body)
            case ("POST", ["jobs"]):
                return self._create_jobs(body)
        raise BadRequest(
            f"No admin route {method} {PREFIX}{'/'.join(parts)}; see the routes in the admin module's docstring.",
            status=404,
        )

    def _advance_clock(self, body: dict[str, Any]) -> dict[str, Any]:
        _only(body, ("advance_seconds",))
        seconds = _number(body, "advance_seconds", 0, _MAX_SECONDS)
        backend = self.targets.backend
        offset = backend.clock_offset + dt.timedelta(seconds=seconds)
        if offset > MAX_CLOCK_OFFSET:
            raise BadRequest(
                f"advance_seconds: the clock may run at most {int(_MAX_SECONDS)} seconds (100 years) ahead; "
                f"it is {int(backend.clock_offset.total_seconds())} seconds ahead now.",
                field="advance_seconds",
            )
        return {"now": backend.advance_clock(offset).isoformat()}

    def _create_bucket(self, body: dict[str, Any]) -> dict[str, Any]:
        _only(body, ("bucket", "region", "access_key"))
        bucket = _required_string(body, "bucket")
        if not _BUCKET_NAME.fullmatch(bucket) or ".." in bucket or re.fullmatch(r"[\d.]+", bucket):
            raise BadRequest(
                f"bucket: {bucket[:80]!r} is not a valid S3 bucket name; use 3 to 63 lower-case letters, "
                "digits, dots and hyphens, starting and ending with a letter or digit.",
                field="bucket",
            )
        region = _string(body, "region") or "us-east-1"
        if not _REGION.fullmatch(region):
            raise BadRequest(f"region: {region[:40]!r} is not an AWS region name such as eu-west-1.", field="region")
        account = self._account(body)
        self.targets.backend.storage.create_bucket(account.account_id, bucket, region)
        return {"bucket": bucket, "region": region, "account_id": account.account_id}

    def _create_jobs(self, body: dict[str, Any]) -> dict[str, Any]:
        _only(body, ("manifest", "job_type", "count", "access_key"))
        job_type = _string(body, "job_type") or "Import"
        if job_type not in ("Import", "Export"):
            raise BadRequest(f"job_type must be Import or Export, not {job_type[:40]!r}.", field="job_type")
        count = int(_number(body, "count", 1, MAX_CREATED_AT_ONCE))
        manifest, account = _required_string(body, "manifest"), self._account(body)
        job_ids = self.targets.backend.create_jobs(account, job_type, manifest, self.targets.endpoint_url, count)
        return {"job_ids": job_ids}

    def _account(self, body: dict[str, Any]) -> Account:
        """The account named by the body's ``access_key`` (default: the first account)."""
        access_key = _string(body, "access_key") or self.targets.default_access_key
        account = self.targets.authenticator.account_for_key(access_key)
        if account is None:
            raise BadRequest(f"access_key: no emulator account has access key {access_key!r}.", field="access_key")
        return account

    def _document(
        self, environ: dict[str, Any], parts: list[str], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        if len(parts) == 2 and self.links.valid(parts[0], parts[1]):
            name = parts[1]
        elif len(parts) == 1:
            self._authorize(environ)
            name = parts[0]
        else:
            raise BadRequest(
                "No such document link; ask the API (GetStatus, GetShippingLabel) for a fresh one.", status=404
            )
        data = self.targets.backend.document(name)
        if data is None:
            raise BadRequest(f"No document named {name!r}.", status=404)
        start_response("200 OK", [("Content-Type", "application/pdf"), ("Content-Length", str(len(data)))])
        return [data]


# --- request bodies ---------------------------------------------------------------------------------


def _body(environ: dict[str, Any]) -> dict[str, Any]:
    """The JSON object in a request body ({} when there is none)."""
    data = _json_object(protocol.read_body(environ, protocol.MAX_BODY_BYTES))
    return {} if data is None else data


def _json_object(raw: bytes) -> dict[str, Any] | None:
    """Decode a JSON object strictly (UTF-8, no NaN/Infinity, bounded nesting); None for an empty body."""
    if not raw.strip():
        return None
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except RecursionError:
        raise BadRequest("The body is not usable JSON: it is nested too deeply.") from None
    except (UnicodeDecodeError, ValueError) as err:
        raise BadRequest(f"The body is not valid UTF-8 JSON: {err}.") from None
    if not isinstance(data, dict):
        raise BadRequest(f"The body must be a JSON object, not {type(data).__name__}.")
    return data


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _only(body: dict[str, Any], allowed: Iterable[str]) -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        known = ", ".join(sorted(allowed)) or "none"
        raise BadRequest(f"{unknown[0]}: unknown field; this route takes: {known}.", field=unknown[0])


def _typed(body: dict[str, Any], name: str, types: tuple[type, ...]) -> Any:
    value = body.get(name)
    # JSON true/false are Python bools, which are ints: never accept them as numbers.
    if isinstance(value, bool) or not isinstance(value, types):
        wanted = " or ".join(_JSON_NAMES.get(t, t.__name__) for t in types)
        raise BadRequest(f"{name} must be {wanted}, got {json.dumps(value)[:60]}.", field=name)
    return value


def _string(body: dict[str, Any], name: str) -> str | None:
    """An optional string field (absent or null: None)."""
    return None if body.get(name) is None else _required_string(body, name)


def _required_string(body: dict[str, Any], name: str) -> str:
    if body.get(name) is None:
        raise BadRequest(f"{name} is required.", field=name)
    return str(_typed(body, name, (str,)))


def _number(body: dict[str, Any], name: str, low: float, high: float) -> float:
    if name not in body:
        raise BadRequest(f"{name} is required.", field=name)
    raw = _typed(body, name, (int, float))
    try:
        value = float(raw)
    except OverflowError:  # a JSON integer too large for a float
        value = math.inf
    if not math.isfinite(value) or not low <= value <= high:
        raise BadRequest(f"{name} must be from {low:g} to {high:g}, got {str(raw)[:40]}.", field=name)
    return value


def _action_options(action: str, body: dict[str, Any]) -> dict[str, Any]:
    if action not in ACTION_OPTIONS:
        raise BadRequest(f"Unknown job action {action!r}; use one of {', '.join(ACTION_OPTIONS)}.", status=404)
    fields = ACTION_OPTIONS[action]
    _only(body, fields)
    options = {name: _typed(body, name, types) for name, types in fields.items() if name in body}
    if action == "attach" and "path" not in options:
        raise BadRequest("path is required: the folder to use as the job's device.", field="path")
    if not 0 <= options.get("error_count", 0) <= _MAX_ERROR_COUNT:
        raise BadRequest(f"error_count must be from 0 to {_MAX_ERROR_COUNT}.", field="error_count")
    return options


def _fault_config(body: dict[str, Any]) -> FaultConfig:
    if "seed" in body:
        _typed(body, "seed", (int,))
    if "actions" in body:
        _typed(body, "actions", (list,))
    return FaultConfig.from_dict(body)


def _fault_queue(body: dict[str, Any]) -> list[str]:
    _only(body, ("faults",))
    faults = _typed(body, "faults", (list,))
    for entry in faults:
        if not isinstance(entry, str):
            raise BadRequest(f"faults must be a list of fault names, got {json.dumps(entry)[:60]}.", field="faults")
        parse_queued(entry)
    return list(faults)


def _profile(body: dict[str, Any]) -> LifecycleProfile:
    """A named profile, or stage durations in seconds (null leaves a stage to the admin API)."""
    if "name" in body:
        _only(body, ("name",))
        name = _required_string(body, "name")
        if name not in PROFILES:
            raise BadRequest(
                f"name: unknown lifecycle profile {name!r}; use one of {', '.join(PROFILES)}.", field="name"
            )
        return LifecycleProfile.named(name)
    stages = {f.name: f for f in dataclasses.fields(LifecycleProfile)}
    _only(body, stages)
    values: dict[str, Any] = {}
    for name, value in body.items():
        optional = stages[name].default is None
        values[name] = None if value is None and optional else _number(body, name, 0, _MAX_SECONDS)
    return LifecycleProfile(**values)


# --- answers ----------------------------------------------------------------------------------------


def _admin_view(job: Job) -> dict[str, Any]:
    return {**_masked(job.status()), "StatusReads": job.status_reads}


def _masked(status: dict[str, Any]) -> dict[str, Any]:
    return {**status, "CurrentManifest": redact_manifest_text(status["CurrentManifest"])}


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return str(value)
