"""Routing: one HTTP endpoint for the Import/Export API, moto's S3, and the admin API.

``/_importexport/...`` is the admin API, outside the AWS API (like moto's ``/moto-api/``).
Every other request is told apart by what it is signed for, then by its parameters:

1. a SigV4 credential scope (``Authorization`` header or presigned ``X-Amz-Credential``)
   naming ``s3`` goes to S3, any other scope to the Import/Export API;
2. an S3 SigV2 ``Authorization: AWS ...`` header goes to S3;
3. an ``Action`` or ``SignatureVersion`` parameter (query string), or a form-encoded POST,
   goes to the API (the query protocol allows GET and parameters in the query string);
4. anything else goes to S3.

S3 requests are authenticated against the emulator's accounts like API requests, run in
moto as the signing account, and may only touch that account's buckets. So one
``endpoint_url`` in an Airflow AWS connection serves both services, and "jobs and buckets
belong to the account that made them" holds on both.
"""

from __future__ import annotations

import dataclasses
import io
import ipaddress
import logging
import secrets
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any
from xml.parsers.expat import ExpatError

from airflow_provider_importexport import exceptions as exc
from airflow_provider_importexport.emulator import protocol
from airflow_provider_importexport.emulator.admin import AdminApp, AdminTargets, DocumentLinks
from airflow_provider_importexport.emulator.admission import DAILY_CREATE_QUOTA
from airflow_provider_importexport.emulator.auth import (
    DEFAULT_ACCOUNT,
    DENIED,
    Account,
    Authenticator,
    AuthError,
    SignedRequest,
    body_hash_to_check,
    check_payload,
)
from airflow_provider_importexport.emulator.backend import BackendConfig, ImportExportBackend
from airflow_provider_importexport.emulator.client import EmulatorAdmin
from airflow_provider_importexport.emulator.faults import (
    FAULTS,
    HTML_ERROR_PAGE,
    FaultConfig,
    FaultInjector,
    RequestLog,
)
from airflow_provider_importexport.emulator.lifecycle import LifecycleProfile
from airflow_provider_importexport.emulator.serving import DROP, AsgiFront, HttpServer, listening_socket
from airflow_provider_importexport.emulator.state import CancelRule
from airflow_provider_importexport.emulator.storage import S3Storage, bucket_info, reset_s3

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
ADMIN_PREFIX = "/_importexport/"
#: The largest S3 body read to check its SHA-256 (S3's limit for one PUT).
S3_MAX_BODY_BYTES = 5 * 1024**3


@dataclass
class EmulatorSettings:
    """Everything the emulator can be started with (CLI flags map one to one)."""

    host: str = "127.0.0.1"
    port: int = 0
    accounts: list[Account] = field(default_factory=lambda: [DEFAULT_ACCOUNT])
    profile: LifecycleProfile = field(default_factory=LifecycleProfile)
    cancel_rule: CancelRule = CancelRule.BEFORE_TRANSFER
    devices_dir: str | None = None
    state_file: str | None = None
    faults: FaultConfig = field(default_factory=FaultConfig)
    daily_create_quota: int = DAILY_CREATE_QUOTA
    ended_job_status: str = "progress"
    verbose: bool = False
    #: Token the admin API requires (``Authorization: Bearer TOKEN``); required beyond loopback.
    admin_token: str | None = None

    def __post_init__(self) -> None:
        self.cancel_rule = CancelRule(self.cancel_rule)
        if self.ended_job_status not in ("progress", "error"):
            raise ValueError(f"ended_job_status must be 'progress' or 'error', not {self.ended_job_status!r}")
        if not self.accounts:
            raise ValueError("the emulator needs at least one account")
        if not self.admin_token and not is_loopback(self.host):
            raise ValueError(
                f"the emulator would listen on {self.host}, beyond this machine, with an admin API anyone "
                "could use (lifecycle, faults, attaching local folders): set an admin token with "
                "--admin-token or IMPORTEXPORT_EMULATOR_ADMIN_TOKEN (admin_token=... in Python), "
                "or listen on 127.0.0.1"
            )


def is_loopback(host: str) -> bool:
    """True when ``host`` (an address or a name) only reaches this machine."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None) if host else []
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback for info in infos)


def exposure_warning(host: str) -> str | None:
    """What to tell the user when the emulator listens beyond loopback (None on loopback)."""
    if is_loopback(host):
        return None
    return (
        f"warning: the importexport emulator listens on {host or 'every interface'}, beyond this machine. "
        "Anyone who can reach it can use its accounts (the default account's keys are AWS's public "
        "documentation example) and its S3 data; the admin API needs the admin token. "
        "It is a test tool: keep it on a trusted network."
    )


class EmulatorApp:
    """The WSGI application behind the emulator's one endpoint."""

    def __init__(self, settings: EmulatorSettings, endpoint_url: str) -> None:
        from moto.moto_server.werkzeug_app import create_backend_app

        self.settings = settings
        self.endpoint_url = endpoint_url
        accounts = {a.account_id: a for a in settings.accounts}
        self.authenticator = Authenticator(settings.accounts)
        self.faults = FaultInjector(settings.faults)
        #: Every authenticated API request: what was carried out and whether its answer arrived.
        self.requests = RequestLog()
        self.backend = ImportExportBackend(
            settings.accounts,
            S3Storage(endpoint_url, accounts),
            BackendConfig(
                profile=settings.profile,
                cancel_rule=settings.cancel_rule,
                daily_create_quota=settings.daily_create_quota,
                devices_dir=settings.devices_dir,
                ended_job_status=settings.ended_job_status,
                state_file=settings.state_file,
            ),
        )
        #: Document links the API hands out are signed with a key made at start.
        self.links = DocumentLinks(secrets.token_bytes(32))
        targets = AdminTargets(
            backend=self.backend,
            faults=self.faults,
            requests=self.requests,
            authenticator=self.authenticator,
            links=self.links,
            endpoint_url=endpoint_url,
            default_access_key=settings.accounts[0].access_key,
        )
        self.admin = AdminApp(targets, settings.admin_token)
        self.s3_app = create_backend_app("s3")
        self.operations: dict[str, Callable[[Account, dict[str, Any], str], dict[str, Any]]] = {
            "CreateJob": self.backend.create_job,
            "UpdateJob": lambda a, p, _u: self.backend.update_job(a, p),
            "CancelJob": lambda a, p, _u: self.backend.cancel_job(a, p),
            "GetStatus": lambda a, p, _u: self.backend.get_status(a, p),
            "ListJobs": lambda a, p, _u: self.backend.list_jobs(a, p),
            "GetShippingLabel": self.backend.get_shipping_label,
        }

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        route = request_route(environ)
        if route == "admin":
            return self.admin(environ, start_response)
        if route == "api":
            response = self.handle_api(environ)
            if response is None:
                _drop(environ)
                return []
        else:
            try:
                return self._s3(environ, start_response)
            except AuthError as err:
                response = _s3_error_from(err, environ)
            except exc.RequestError as err:  # the body: too large, or a bad Content-Length
                code = "EntityTooLarge" if isinstance(err, protocol.PayloadTooLarge) else "InvalidArgument"
                response = protocol.s3_error(code, err.message, 400, with_body=_has_body(environ))
            except Exception as err:  # moto raised instead of answering: never a traceback
                response = _s3_failure(err, environ)
        start_response(f"{response.status} {_REASONS.get(response.status, 'Error')}", response.headers())
        return [response.body]

    # --- S3 ---------------------------------------------------------------------------------------

    def _s3(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Authenticate, check the body's declared SHA-256 and the bucket's owner, then let moto answer
        as the signing account (moto itself would let any account into any bucket)."""
        virtual = _virtual_hosted(environ)
        bucket, key = s3_bucket_and_key(environ, virtual)
        request = _signed_request(environ, b"", {})
        if bucket and virtual:  # SigV2 signs "/bucket/key" for bucket.host/key
            request = dataclasses.replace(request, s3_resource=f"/{bucket}{request.path}")
        account = self.authenticator.authenticate_s3(request)
        expected = body_hash_to_check(request.headers)
        if expected is not None:
            body = protocol.read_body(environ, S3_MAX_BODY_BYTES)
            check_payload(expected, body)
            environ["wsgi.input"] = io.BytesIO(body)
        if bucket:
            self._check_bucket_owner(bucket, key, environ, account)
        environ["HTTP_X_MOTO_ACCOUNT_ID"] = account.account_id
        if environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            return self.s3_app(environ, start_response)

        def answered(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            # moto has done the write when it starts its answer. Mark it before the answer can
            # reach the client: a CreateJob the client sends next must carry this object along.
            self.backend.s3_changed()
            return start_response(status, headers, exc_info)

        return self.s3_app(environ, answered)

    @staticmethod
    def _check_bucket_owner(bucket: str, key: str, environ: dict[str, Any], account: Account) -> None:
        info = bucket_info(bucket)
        if info is None or info.owner_account_id == account.account_id:
            return
        if environ.get("REQUEST_METHOD") == "PUT" and not key and not environ.get("QUERY_STRING"):
            return  # CreateBucket on a taken name: moto answers BucketAlreadyExists, as S3 does
        raise AuthError(
            DENIED, f"Access Denied: bucket {bucket} belongs to another account; sign with that account's keys."
        )

    # --- the Import/Export API ------------------------------------------------------------------

    def handle_api(self, environ: dict[str, Any]) -> protocol.Response | None:
        """Answer one API request; None means the connection was dropped on purpose."""
        try:
            return self._answer_safely(environ)
        except _NoServiceAnswer as lost:
            return lost.page

    def _perform(self, call: protocol.ApiCall, account: Account) -> dict[str, Any]:
        """Carry out one operation under the fault drawn for it, and record what the client saw."""
        fault = self.faults.draw(call.action)
        if fault.delay_ms:
            time.sleep(fault.delay_ms / 1000)
        record = {
            "action": call.action,
            "request_id": call.request_id,
            "account_id": account.account_id,
            "fault": fault.kind,
            "job_id": call.params.get("JobId"),
            "answered": fault.effect != "drop",
        }
        if fault.effect and not fault.after:
            self.requests.add(**record, carried_out=False, outcome=fault.effect)
            _raise_fault(fault.effect)
        try:
            result = self.operations[call.action](account, call.params, self.endpoint_url)
        except exc.ImportExportError as err:
            self.requests.add(**record, carried_out=True, outcome=err.code)
            if fault.effect:
                _raise_fault(fault.effect)
            raise
        record["job_id"] = result.get("JobId") or record["job_id"]
        self.requests.add(**record, carried_out=True, outcome="ok")
        if fault.effect:
            _raise_fault(fault.effect)
        return result

    def _answer_safely(self, environ: dict[str, Any]) -> protocol.Response:
        try:
            return self._answer(environ)
        except _NoServiceAnswer:
            raise
        except exc.ImportExportError as err:
            return protocol.error_from(err)
        except Exception:
            log.exception("emulator failed on a request")
            return protocol.error("InternalFailure", "The emulator failed; see its log.", status=500)

    def _answer(self, environ: dict[str, Any]) -> protocol.Response:
        body = protocol.read_body(environ, protocol.MAX_BODY_BYTES)
        form = protocol.decode_form(body) if environ.get("REQUEST_METHOD") != "GET" else {}
        account = self.authenticator.authenticate(_signed_request(environ, body, form))
        call = protocol.parse_call(
            protocol.request_params(protocol.decode_query(environ.get("QUERY_STRING", "")), form)
        )
        try:
            result = self._perform(call, account)
        except exc.ImportExportError as err:
            return protocol.error_from(err, call.request_id)
        return protocol.success(call, self.links.sign_result(result))


class _NoServiceAnswer(Exception):
    """A fault that keeps the service's answer from the client: a closed connection (no page)
    or an error page that is not the service's XML."""

    def __init__(self, page: protocol.Response | None = None) -> None:
        super().__init__("fault")
        self.page = page


class _InjectedFault(exc.ImportExportError):
    """A fault that answers with a service error (throttling, 500, 503)."""

    def __init__(self, code: str, status: int, message: str) -> None:
        super().__init__(message, code=code)
        self.http_status = status  # type: ignore[misc]


def _raise_fault(effect: str) -> None:
    if effect == "drop":
        raise _NoServiceAnswer
    if effect == "error_500_html":
        raise _NoServiceAnswer(protocol.Response(500, HTML_ERROR_PAGE, "text/html"))
    raise _InjectedFault(*FAULTS[effect])


_REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found", 409: "Conflict",
            413: "Payload Too Large", 500: "Internal Server Error", 503: "Service Unavailable"}  # fmt: skip


def request_route(environ: dict[str, Any]) -> str:
    """ "admin", "api" or "s3": see the module docstring for the order of the rules."""
    if environ.get("PATH_INFO", "/").startswith(ADMIN_PREFIX):
        return "admin"
    header = environ.get("HTTP_AUTHORIZATION", "")
    query = protocol.decode_query(environ.get("QUERY_STRING", ""))
    service = _scope_service(header, query)
    if service is not None:
        return "s3" if service == "s3" else "api"
    if header.startswith("AWS "):
        return "s3"
    if "Action" in query or "SignatureVersion" in query:
        return "api"
    form_post = environ.get("REQUEST_METHOD") == "POST" and environ.get("CONTENT_TYPE", "").startswith(
        "application/x-www-form-urlencoded"
    )
    return "api" if form_post else "s3"


def _scope_service(header: str, query: dict[str, str]) -> str | None:
    """The service named in a SigV4 credential scope (KEY/DATE/REGION/SERVICE/aws4_request)."""
    credential = query.get("X-Amz-Credential", "")
    if header.startswith("AWS4-"):
        credential = header.partition("Credential=")[2].split(",")[0].strip()
    scope = credential.split("/")
    return scope[3] if len(scope) == 5 else None


def s3_bucket_and_key(environ: dict[str, Any], virtual: bool) -> tuple[str, str]:
    """The bucket and key an S3 request names (``virtual``: the bucket is in the host name)."""
    path = environ.get("PATH_INFO", "/")
    if virtual:
        from moto.s3.utils import bucket_name_from_url

        host = environ.get("HTTP_HOST", "")
        return bucket_name_from_url(f"http://{host}/") or "", path.lstrip("/")
    bucket, _, key = path.lstrip("/").partition("/")
    return bucket, key


def _virtual_hosted(environ: dict[str, Any]) -> bool:
    """Whether moto reads the bucket from the host name (its rules, so both agree on the bucket)."""
    from moto.s3.responses import S3Response

    host = environ.get("HTTP_HOST", "")
    return bool(S3Response.subdomain_based_buckets(SimpleNamespace(headers={"host": host}, url=f"http://{host}/")))


def _has_body(environ: dict[str, Any]) -> bool:
    return environ.get("REQUEST_METHOD") != "HEAD"


def _s3_error_from(err: AuthError, environ: dict[str, Any]) -> protocol.Response:
    failure = err.failure
    return protocol.s3_error(failure.s3_code, err.message, failure.s3_status, with_body=_has_body(environ))


def _s3_failure(err: Exception, environ: dict[str, Any]) -> protocol.Response:
    """What S3 answers when moto raised: bad XML or values are the client's error (a 400, which
    SDKs do not retry), anything else an internal error, logged with its traceback."""
    with_body = _has_body(environ)
    if isinstance(err, ExpatError):
        return protocol.s3_error(
            "MalformedXML",
            f"The XML you provided was not well-formed or did not validate against our published schema ({err}).",
            400,
            with_body=with_body,
        )
    if isinstance(err, ValueError):
        return protocol.s3_error(
            "InvalidArgument",
            f"A value in this request cannot be read ({err}); check its query parameters, headers and body.",
            400,
            with_body=with_body,
        )
    log.exception("the emulator's S3 failed on %s %s", environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"))
    return protocol.s3_error(
        "InternalError", "We encountered an internal error. Please try again.", 500, with_body=with_body
    )


def _signed_request(environ: dict[str, Any], body: bytes, form: dict[str, str]) -> SignedRequest:
    headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
    for name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(name):
            headers[name.replace("_", "-").lower()] = environ[name]
    return SignedRequest(
        method=environ.get("REQUEST_METHOD", "POST"),
        host=environ.get("HTTP_HOST", ""),
        path=environ.get("RAW_URI", environ.get("PATH_INFO", "/")).split("?")[0] or "/",
        query=environ.get("QUERY_STRING", ""),
        headers=headers,
        body=body,
        form=form,
    )


def _drop(environ: dict[str, Any]) -> None:
    """Close the connection without an answer (the HTTP server in front gives the means)."""
    drop = environ.get(DROP)
    if drop is not None:
        drop()


class EmulatorServer:
    """The emulator on a real TCP port (uvicorn, connections kept alive), served from a background thread."""

    def __init__(self, settings: EmulatorSettings | None = None) -> None:
        self.settings = settings or EmulatorSettings()
        sock = listening_socket(self.settings.host, self.settings.port)
        self.port = sock.getsockname()[1]
        self.endpoint_url = f"http://{self.settings.host}:{self.port}"
        try:
            self.app = EmulatorApp(self.settings, self.endpoint_url)
        except BaseException:  # e.g. a refused state file: do not keep the port
            sock.close()
            raise
        front = AsgiFront(self.app, lambda environ: request_route(environ) == "s3", protocol.MAX_BODY_BYTES)
        self._http = HttpServer(sock, front, verbose=self.settings.verbose)
        #: Set when the emulator listens beyond loopback; logged at start, printed by the CLI.
        self.exposure_warning = exposure_warning(self.settings.host)

    @property
    def backend(self) -> ImportExportBackend:
        return self.app.backend

    def serve_forever(self) -> None:
        """Serve until interrupted (KeyboardInterrupt, which the CLI raises on SIGTERM too)."""
        self._http.start()
        self._http.wait()

    def start(self) -> EmulatorServer:
        if self.exposure_warning:
            log.warning(self.exposure_warning)
        self._http.start()
        return self

    def stop(self) -> None:
        """Stop serving, save the jobs (with a state file) and clear the S3 data.

        moto keeps S3 in process-wide memory; clearing it when the emulator stops gives
        each emulator (each test) its own S3. Run one emulator per process at a time.
        """
        self._http.stop()
        try:
            self.backend.save()
        finally:
            reset_s3()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class ImportExportEmulator(EmulatorServer):
    """The emulator on a free port in a background thread: ``with ImportExportEmulator() as emu:``.

    Keyword arguments are :class:`EmulatorSettings` fields; ``profile`` may be a profile
    name (``manual``, ``demo``, ``fast``). ``admin`` is an admin client that sends the
    ``admin_token``, if one was given.
    """

    def __init__(self, **settings: Any) -> None:
        if isinstance(settings.get("profile"), str):
            settings["profile"] = LifecycleProfile.named(settings["profile"])
        super().__init__(EmulatorSettings(**settings))
        self.admin = EmulatorAdmin(self.endpoint_url, token=self.settings.admin_token)

    def __enter__(self) -> ImportExportEmulator:
        self.start()
        return self
