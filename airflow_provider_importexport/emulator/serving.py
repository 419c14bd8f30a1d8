"""The emulator's HTTP server: uvicorn on one listening socket, connections kept alive.

The emulator's application is WSGI (moto's S3 is a Flask app); :class:`AsgiFront` puts it
behind uvicorn two ways. API and admin requests, small both ways, are read whole in the
event loop and answered by one call in a thread pool: one hop between threads per request.
S3 requests, whose bodies may be gigabytes, stream through a2wsgi in a pool of their own,
so a data transfer that waits on S3 from the first pool can never starve S3 of threads.

An application that must drop a connection without an answer (a fault) calls
``environ[DROP]()``; the front then closes the socket and sends nothing.
"""

from __future__ import annotations

import asyncio
import io
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import uvicorn
from a2wsgi import WSGIMiddleware
from a2wsgi.wsgi import build_environ
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger(__name__)

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
#: The environ key of the callable that drops the connection without an answer.
DROP = "importexport.drop"
#: The scope extension through which the front reaches its connection's transport.
_ABORT = "importexport.abort"
#: An idle kept-alive connection is closed after this long (AWS's load balancers: 60 s).
KEEP_ALIVE_SECONDS = 60
#: How long starting may take.
START_SECONDS = 30
#: How long stopping waits for requests in flight.
GRACEFUL_STOP_SECONDS = 5


class _Protocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, handing each request's scope a way to abort its connection."""

    def on_message_begin(self) -> None:
        super().on_message_begin()
        extensions: dict[str, Any] = {_ABORT: self.transport.abort}
        self.scope["extensions"] = extensions  # type: ignore[typeddict-item]


class AsgiFront:
    """ASGI in front of a WSGI app: whole small requests in ``threads``, S3 streamed in ``s3_threads``."""

    def __init__(
        self,
        app: WSGIApp,
        streamed: Callable[[dict[str, Any]], bool],
        buffer_limit: int,
        threads: int = 256,
        s3_threads: int = 32,
    ) -> None:
        self.app = app
        self.streamed = streamed
        self.buffer_limit = buffer_limit
        #: Threads are made as calls need them; a call may wait out an injected delay in one.
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="importexport-http")
        self.stream = WSGIMiddleware(_with_raw_uri(app), workers=s3_threads)  # type: ignore[arg-type]

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] != "http":
            return
        environ = _environ(scope, io.BytesIO())
        if self.streamed(environ):
            await self.stream(scope, receive, send)  # type: ignore[arg-type]
            return
        body = await self._read_body(receive, environ)
        environ["wsgi.input"] = io.BytesIO(body)
        environ["wsgi.input_terminated"] = "CONTENT_LENGTH" not in environ  # chunked: read to the end of what is here
        answer = await asyncio.get_running_loop().run_in_executor(self.pool, _call, self.app, environ)
        if answer is None:
            scope["extensions"][_ABORT]()
            await asyncio.sleep(0)  # uvicorn sees the connection lost (else it logs a missing answer)
            return
        status, headers, data = answer
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": data})

    async def _read_body(self, receive: Callable[..., Any], environ: dict[str, Any]) -> bytes:
        """The body, read to its end or to one byte past the limit (the app refuses it then);
        a body announced as too large is not read at all."""
        declared = environ.get("CONTENT_LENGTH", "")
        if declared.isdigit() and int(declared) > self.buffer_limit:
            return b""
        chunks, size, more = [], 0, True
        while more and size <= self.buffer_limit:
            message = await receive()
            if message["type"] != "http.request":
                break  # the client went away
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
        return b"".join(chunks)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.stream.executor.shutdown(wait=False, cancel_futures=True)


def _environ(scope: dict[str, Any], body: io.BytesIO) -> dict[str, Any]:
    environ = build_environ(scope, body)  # type: ignore[arg-type]
    _add_raw_uri(environ, scope)
    return environ  # type: ignore[return-value]


def _add_raw_uri(environ: Any, scope: dict[str, Any]) -> None:
    """The request target as sent (still percent-encoded), which a signature covers; as werkzeug names it."""
    path, query = scope.get("raw_path", b"/").decode("latin-1"), scope.get("query_string", b"").decode("latin-1")
    environ["RAW_URI"] = f"{path}?{query}" if query else path


def _with_raw_uri(app: WSGIApp) -> WSGIApp:
    def app_with_raw_uri(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        _add_raw_uri(environ, environ["asgi.scope"])
        return app(environ, start_response)

    return app_with_raw_uri


def _call(app: WSGIApp, environ: dict[str, Any]) -> tuple[int, list[tuple[bytes, bytes]], bytes] | None:
    """One whole WSGI call: its status, headers and body, or None when it dropped the connection."""
    dropped: list[bool] = []
    environ[DROP] = lambda: dropped.append(True)
    chunks: list[bytes] = []
    started: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], Any]:
        encoded = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]
        started[:] = [int(status.split(" ", 1)[0]), encoded]
        return chunks.append

    result = app(environ, start_response)
    try:
        chunks.extend(result)
    finally:
        getattr(result, "close", lambda: None)()
    if dropped or not started:
        return None
    return started[0], started[1], b"".join(chunks)


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound and listening on ``host`` (an address or a name) and ``port`` (0: any free one)."""
    family = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM)[0][0]
    return socket.create_server((host, port), family=family, backlog=2048)


class HttpServer:
    """uvicorn serving an ASGI app on an already listening socket, in a background thread."""

    def __init__(self, sock: socket.socket, app: AsgiFront, *, verbose: bool = False) -> None:
        self.socket = sock
        self.app = app
        config = uvicorn.Config(
            app,  # type: ignore[arg-type]
            http=_Protocol,
            lifespan="off",
            log_config=_log_config() if verbose else None,
            access_log=verbose,
            server_header=False,
            proxy_headers=False,
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
            timeout_graceful_shutdown=GRACEFUL_STOP_SECONDS,
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Serve from a background thread; returns once it accepts connections."""
        self._thread = threading.Thread(target=self._run, name="importexport-emulator", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_SECONDS
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the emulator's HTTP server did not start; its log says why")
            time.sleep(0.005)

    def _run(self) -> None:
        try:
            self._server.run(sockets=[self.socket])
        except BaseException:
            log.exception("the emulator's HTTP server stopped")
            raise

    def wait(self) -> None:
        """Block until the server stops; a KeyboardInterrupt (also SIGTERM, through the CLI) stops it."""
        assert self._thread is not None
        try:
            while self._thread.is_alive():
                self._thread.join(0.5)
        finally:
            self.stop()

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=GRACEFUL_STOP_SECONDS + 5)
        self.socket.close()
        self.app.close()


def _log_config() -> dict[str, Any]:
    """uvicorn's request log on stderr (stdout carries the CLI's ready line, which a parent may read only once)."""
    handler = {"class": "logging.StreamHandler", "stream": "ext://sys.stderr", "formatter": "plain"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(asctime)s %(message)s"}},
        "handlers": {"stderr": handler},
        "loggers": {"uvicorn": {"handlers": ["stderr"], "level": "INFO"}, "uvicorn.access": {"level": "INFO"}},
    }
