"""The service's wire protocol: AWS query requests in, XML responses out.

Both directions are driven by botocore's own service model for ``importexport`` (requests
through moto's model-driven query parser, answers from the output shapes, compiled once
per operation), so what the emulator reads and writes is exactly what botocore sends and
expects. Parameters may come in a POST's form body, in the query string, or both (the
query protocol allows GET too); scalar values are checked against the model before
parsing, so a bad ``MaxJobs`` or ``ValidateOnly`` is the service's
``InvalidParameterException``, never a crash or a guess.
"""

from __future__ import annotations

import functools
import random
import re
import uuid
from dataclasses import dataclass, field
from enum import Enum
from typing import Any
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from botocore.loaders import create_loader
from moto.core.model import OperationModel, ServiceModel
from moto.core.parse import QueryParser
from werkzeug.datastructures import MultiDict

from airflow_provider_importexport.exceptions import (
    ImportExportError,
    InvalidParameterError,
    InvalidVersionError,
    MissingParameterError,
    RequestError,
)

API_VERSION = "2010-06-01"
NAMESPACE = f"http://importexport.amazonaws.com/doc/{API_VERSION}/"
#: The largest request body accepted; a manifest is a few KiB.
MAX_BODY_BYTES = 1024 * 1024
_READ_SLICE = 1024 * 1024
#: The response header that carries the request id, as AWS query services send it.
REQUEST_ID_HEADER = "x-amzn-RequestId"
_INT32 = (-(2**31), 2**31 - 1)
#: Characters XML 1.0 cannot carry even as references; they become U+FFFD.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


class PayloadTooLarge(RequestError):
    code = "RequestEntityTooLarge"
    http_status = 413


def read_body(environ: dict[str, Any], limit: int) -> bytes:
    """The request body, announced by Content-Length or sent chunked. Over ``limit`` is a 413,
    refused before reading (chunked: one byte past the limit); read in slices, so a large
    announced length costs no memory up front."""
    stream = environ["wsgi.input"]
    if environ.get("wsgi.input_terminated"):
        remaining = limit + 1
    else:
        text = (environ.get("CONTENT_LENGTH") or "0").strip()
        if not text.isdigit():
            raise InvalidParameterError(f"Content-Length must be a number of bytes, not {text[:20]!r}.")
        remaining = int(text)
        if remaining > limit:
            raise PayloadTooLarge(f"The request body is {remaining} bytes; the limit is {limit}.")
    chunks = []
    while remaining > 0:
        chunk = stream.read(min(remaining, _READ_SLICE))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    data = b"".join(chunks)
    if len(data) > limit:
        raise PayloadTooLarge(f"The request body is over the limit of {limit} bytes.")
    return data


#: Request ids need to be unique, not secret: the operating system's randomness costs a system
#: call each time (hundreds of microseconds in some sandboxes), this generator seeds from it once.
_ids = random.Random()


def new_request_id() -> str:
    """A request id in AWS's shape (a version-4 UUID)."""
    return str(uuid.UUID(int=_ids.getrandbits(128), version=4))


@functools.lru_cache(maxsize=1)
def service_model() -> ServiceModel:
    return ServiceModel(create_loader().load_service_model("importexport", "service-2"))


def operation_names() -> list[str]:
    return list(service_model().operation_names)


@dataclass(frozen=True)
class ApiCall:
    """A decoded request: which operation and its parameters, named as in the model."""

    action: str
    params: dict[str, Any]
    request_id: str


def decode_form(body: bytes) -> dict[str, str]:
    """Form fields of a query-protocol body; garbage gets MissingParameter, not a crash."""
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text))
    except (UnicodeDecodeError, ValueError):
        raise MissingParameterError(
            "The request body is not a form-encoded (application/x-www-form-urlencoded) query request."
        ) from None
    return dict(pairs)


def decode_query(query: str) -> dict[str, str]:
    """Parameters in the query string, decoded like form fields (a GET carries them all)."""
    return dict(parse_qsl(query, keep_blank_values=True))


def request_params(query: dict[str, str], form: dict[str, str]) -> dict[str, str]:
    """One parameter set from the query string and the form body; a name in both must agree."""
    clashes = sorted(name for name in query.keys() & form.keys() if query[name] != form[name])
    if clashes:
        raise InvalidParameterError(
            f"Parameter {clashes[0]} is given twice with different values (query string and body); send it once."
        )
    return {**query, **form}


def parse_call(form: dict[str, str]) -> ApiCall:
    """Dispatch on ``Action`` (any other query string parameter is ignored, as the service does)."""
    action = form.get("Action")
    if not action:
        raise MissingParameterError(
            f"The request must contain the parameter Action, one of {', '.join(sorted(operation_names()))}.",
            code="MissingAction",
        )
    if action not in operation_names():
        raise InvalidParameterError(
            f"Could not find operation {action}; the service supports {', '.join(sorted(operation_names()))}.",
            code="InvalidAction",
        )
    version = form.get("Version")
    if version and version != API_VERSION:
        raise InvalidParameterError(f"Version {version} is not supported; use Version={API_VERSION}.")
    operation = service_model().operation_model(action)
    _check_scalars(operation, form)
    params = QueryParser(operation).parse(
        {
            "values": MultiDict(form),
            "body": "",
            "headers": {},  # type: ignore[typeddict-item]
            "method": "POST",
            "url_params": {},
            "url_path": "/",
        }
    )
    _check_required(operation, params)
    _check_client_version(params.get("APIVersion"))
    return ApiCall(action, params, new_request_id())


def _check_scalars(operation: OperationModel, form: dict[str, str]) -> None:
    """Integers and booleans must be spelled as the query protocol spells them."""
    shape = operation.input_shape
    for name, member in shape.members.items() if shape else []:
        value = form.get(name)
        if value is None:
            continue
        if member.type_name in ("integer", "long"):
            if not re.fullmatch(r"[+-]?\d{1,19}", value) or not _INT32[0] <= int(value) <= _INT32[1]:
                raise InvalidParameterError(f"Parameter {name} must be a whole number, got {value[:40]!r}.")
        elif member.type_name == "boolean" and value.lower() not in ("true", "false"):
            raise InvalidParameterError(f"Parameter {name} must be true or false, got {value[:40]!r}.")


def _check_required(operation: OperationModel, params: dict[str, Any]) -> None:
    shape = operation.input_shape
    missing = [name for name in (shape.required_members if shape else []) if name not in params]
    # ValidateOnly is required by the model but optional in the guide: absent means false.
    missing = [name for name in missing if name != "ValidateOnly"]
    if missing:
        raise MissingParameterError(f"The request must contain the parameter {missing[0]}.")


def _check_client_version(value: str | None) -> None:
    """APIVersion names the client tool's version; which values the service took is undocumented,
    so the wire version or a dotted version number is accepted and anything else refused."""
    if value is not None and not re.fullmatch(r"2010-06-01|\d+(\.\d+){0,3}", value):
        raise InvalidVersionError(f"APIVersion {value!r} is not valid; omit it or use {API_VERSION}.")


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = "text/xml"
    request_id: str = field(default_factory=new_request_id)
    request_id_header: str = REQUEST_ID_HEADER

    def headers(self) -> list[tuple[str, str]]:
        return [
            ("Content-Type", self.content_type),
            ("Content-Length", str(len(self.body))),
            (self.request_id_header, self.request_id),
        ]


def xml_text(serialized: str) -> bytes:
    """Make serialized XML carry its text exactly: a carriage return, which an XML parser would
    turn into a line feed, becomes ``&#13;``; characters XML cannot hold at all become U+FFFD."""
    return _NOT_XML.sub("\ufffd", serialized).replace("\r", "&#13;").encode()


def success(call: ApiCall, result: dict[str, Any]) -> Response:
    """The operation's answer, written from its output shape in the model (what moto's query
    serializer writes, byte for byte, without its per-call cost: see :func:`_plan`)."""
    action = call.action
    out = [f'<{action}Response xmlns="{NAMESPACE}">']
    _write(_plan(action), result, f"{action}Result", out)
    out.append(f"<ResponseMetadata><RequestId>{escape(call.request_id)}</RequestId></ResponseMetadata>")
    out.append(f"</{action}Response>")
    return Response(200, xml_text("".join(out)), request_id=call.request_id)


#: A compiled output shape: ("structure", ((member, tag, node), ...)), ("list", item tag, node),
#: or a scalar ("string",), ("boolean",), ("integer",), ("timestamp",) ...
Node = tuple[Any, ...]


@functools.cache
def _plan(action: str) -> Node:
    """The output shape of an operation compiled once into nested tuples (the model is walked per call otherwise)."""
    shape = service_model().operation_model(action).output_shape
    return _compile(shape) if shape is not None else ("structure", ())


def _compile(shape: Any) -> Node:
    kind = shape.type_name
    if kind == "structure":
        members = shape.members.items()
        return (
            kind,
            tuple((name, member.serialization.get("name", name), _compile(member)) for name, member in members),
        )
    if kind == "list":
        if shape.serialization.get("flattened"):
            raise NotImplementedError("flattened lists: the Import/Export model has none")
        return (kind, shape.member.serialization.get("name", "member"), _compile(shape.member))
    return (kind,)


def _write(node: Node, value: Any, tag: str, out: list[str]) -> None:
    """``<tag>value</tag>`` (``<tag/>`` when empty), as XML text before :func:`xml_text`."""
    kind = node[0]
    if kind == "structure":
        inner: list[str] = []
        for name, child_tag, child in node[1]:
            if value.get(name) is not None:
                _write(child, value[name], child_tag, inner)
        text = "".join(inner)
    elif kind == "list":
        inner = []
        for item in value:
            _write(node[2], item, node[1], inner)
        text = "".join(inner)
    else:
        text = _scalar(kind, value)
    out.append(f"<{tag}>{text}</{tag}>" if text else f"<{tag}/>")


def _scalar(kind: str, value: Any) -> str:
    if kind == "boolean":
        return "true" if value else "false"
    if kind in ("integer", "long"):
        return str(int(value))
    if kind in ("float", "double"):
        return str(float(value))
    if kind == "timestamp":
        return str(value.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if value.microsecond else "%Y-%m-%dT%H:%M:%SZ"))
    return escape(str(value.value if isinstance(value, Enum) else value))


def error(code: str, message: str, *, status: int = 400, request_id: str | None = None) -> Response:
    """The service's error envelope; ``Code`` is the modeled shape name botocore maps to a class."""
    kind = "Receiver" if status >= 500 else "Sender"
    request_id = request_id or new_request_id()
    body = (
        f'<ErrorResponse xmlns="{NAMESPACE}"><Error><Type>{kind}</Type>'
        f"<Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error>"
        f"<RequestId>{request_id}</RequestId></ErrorResponse>"
    )
    return Response(status, xml_text(body), request_id=request_id)


def error_from(err: ImportExportError, request_id: str | None = None) -> Response:
    return error(err.code, err.message, status=err.http_status, request_id=request_id)


def s3_error(code: str, message: str, status: int, *, with_body: bool = True) -> Response:
    """S3's error document (no body for HEAD, as S3 sends none)."""
    request_id = new_request_id().replace("-", "")[:16].upper()
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
        f"<RequestId>{request_id}</RequestId></Error>"
    )
    return Response(status, xml_text(body) if with_body else b"", "application/xml", request_id, "x-amz-request-id")
