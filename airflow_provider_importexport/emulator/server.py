"""Routing: one HTTP endpoint for the Import/Export API, moto's S3, and the admin API.

A request signed for S3 (or not a query-protocol POST) goes to moto's S3 app, with the
emulator account of its access key as moto's account; a query-protocol POST goes to the
Import/Export API; ``/_importexport/...`` is the admin API, outside the AWS API (like
moto's ``/moto-api/``). So one ``endpoint_url`` in an Airflow AWS connection serves both
services.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from airflow_provider_importexport import exceptions as exc
from airflow_provider_importexport.emulator import protocol
from airflow_provider_importexport.emulator.admin import AdminApp
from airflow_provider_importexport.emulator.auth import DEFAULT_ACCOUNT, Account, Authenticator, SignedRequest
from airflow_provider_importexport.emulator.backend import BackendConfig, ImportExportBackend, LifecycleProfile
from airflow_provider_importexport.emulator.client import EmulatorAdmin
from airflow_provider_importexport.emulator.faults import (
    FAULTS,
    HTML_ERROR_PAGE,
    FaultConfig,
    FaultInjector,
    RequestLog,
)
from airflow_provider_importexport.emulator.state import CancelRule
from airflow_provider_importexport.emulator.storage import S3Storage, reset_s3

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
ADMIN_PREFIX = "/_importexport/"
_SCOPE_SERVICE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request")
_SCOPE_KEY = re.compile(r"Credential=([^/]+)/")


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
    daily_create_quota: int = 50
    ended_job_status: str = "progress"
    verbose: bool = False

    def __post_init__(self) -> None:
        self.cancel_rule = CancelRule(self.cancel_rule)
        if self.ended_job_status not in ("progress", "error"):
            raise ValueError(f"ended_job_status must be 'progress' or 'error', not {self.ended_job_status!r}")


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
        self.admin = AdminApp(self)
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
        path = environ.get("PATH_INFO", "/")
        if path.startswith(ADMIN_PREFIX):
            return self.admin(environ, start_response)
        if self._is_api_request(environ):
            response = self.handle_api(environ)
            if response is None:
                return []
            start_response(
                f"{response.status} {_REASONS.get(response.status, 'Error')}",
                [("Content-Type", response.content_type), ("Content-Length", str(len(response.body)))],
            )
            return [response.body]
        return self._s3(environ, start_response)

    @staticmethod
    def _is_api_request(environ: dict[str, Any]) -> bool:
        scope = _SCOPE_SERVICE.search(environ.get("HTTP_AUTHORIZATION", ""))
        if scope:
            return scope.group(1) != "s3"
        content_type = environ.get("CONTENT_TYPE", "")
        return environ.get("REQUEST_METHOD") == "POST" and content_type.startswith("application/x-www-form-urlencoded")

    def _s3(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        key = _SCOPE_KEY.search(environ.get("HTTP_AUTHORIZATION", ""))
        account = self.authenticator.account_for_key(key.group(1)) if key else None
        environ["HTTP_X_MOTO_ACCOUNT_ID"] = (account or self.settings.accounts[0]).account_id
        return self.s3_app(environ, start_response)

    # --- the Import/Export API ------------------------------------------------------------------

    def handle_api(self, environ: dict[str, Any]) -> protocol.Response | None:
        """Answer one API request; None means the connection was dropped on purpose."""
        try:
            return self._answer_safely(environ)
        except _NoServiceAnswer as lost:
            if lost.page is None:
                _drop(environ)
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
        body = _read_body(environ)
        form = protocol.decode_form(body)
        account = self.authenticator.authenticate(_signed_request(environ, body, form))
        call = protocol.parse_call(form)
        try:
            result = self._perform(call, account)
        except exc.ImportExportError as err:
            return protocol.error_from(err, call.request_id)
        return protocol.success(call, result)


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


class _PayloadTooLarge(exc.RequestError):
    code = "RequestEntityTooLarge"
    http_status = 413


_REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 413: "Payload Too Large", 500: "Internal Server Error",
            503: "Service Unavailable"}  # fmt: skip


def _read_body(environ: dict[str, Any]) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > protocol.MAX_BODY_BYTES:
        raise _PayloadTooLarge(f"The request body is {length} bytes; the limit is {protocol.MAX_BODY_BYTES}.")
    return environ["wsgi.input"].read(length) if length else b""


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
    sock = environ.get("werkzeug.socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


class _QuietHandler(WSGIRequestHandler):
    """No access log unless verbose; idle connections time out instead of hanging a thread."""

    timeout = 30
    verbose = False
    protocol_version = "HTTP/1.1"  # keep-alive: SDK clients reuse their connections

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        if self.verbose:
            super().log_request(code, size)

    def log_error(self, format: str, *args: Any) -> None:  # noqa: A002
        if self.verbose:
            super().log_error(format, *args)


class EmulatorServer:
    """The emulator on a real TCP port, served from a background thread."""

    def __init__(self, settings: EmulatorSettings | None = None) -> None:
        self.settings = settings or EmulatorSettings()
        handler = type("Handler", (_QuietHandler,), {"verbose": self.settings.verbose})
        self._server: BaseWSGIServer = make_server(
            self.settings.host, self.settings.port, _Lazy(), threaded=True, request_handler=handler
        )
        self._server.daemon_threads = True  # type: ignore[attr-defined]
        self.port = self._server.server_port
        self.endpoint_url = f"http://{self.settings.host}:{self.port}"
        self.app = EmulatorApp(self.settings, self.endpoint_url)
        self._server.app = self.app  # type: ignore[assignment]
        self._thread: threading.Thread | None = None

    @property
    def backend(self) -> ImportExportBackend:
        return self.app.backend

    def serve_forever(self) -> None:
        self._server.serve_forever(poll_interval=0.2)

    def start(self) -> EmulatorServer:
        self._thread = threading.Thread(target=self.serve_forever, name="importexport-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, save the jobs (with a state file) and clear the S3 data.

        moto keeps S3 in process-wide memory; clearing it when the emulator stops gives
        each emulator (each test) its own S3. Run one emulator per process at a time.
        """
        self._server.shutdown()
        self._server.server_close()
        self.backend.save()
        reset_s3()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class _Lazy:
    """Placeholder app until the real one knows the bound port."""

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
        return [b"starting"]


class ImportExportEmulator(EmulatorServer):
    """The emulator on a free port in a background thread: ``with ImportExportEmulator() as emu:``.

    Keyword arguments are :class:`EmulatorSettings` fields; ``profile`` may be a profile
    name (``manual``, ``demo``, ``fast``).
    """

    def __init__(self, **settings: Any) -> None:
        if isinstance(settings.get("profile"), str):
            settings["profile"] = LifecycleProfile.named(settings["profile"])
        super().__init__(EmulatorSettings(**settings))
        self.admin = EmulatorAdmin(self.endpoint_url)

    def __enter__(self) -> ImportExportEmulator:
        self.start()
        return self
