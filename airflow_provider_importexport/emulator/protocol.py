"""The service's wire protocol: AWS query requests in, XML responses out.

Both directions are driven by botocore's own service model for ``importexport``
(through moto's model-driven query parser and serializer), so what the emulator reads
and writes is exactly what botocore sends and expects.
"""

from __future__ import annotations

import functools
import re
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from botocore.loaders import create_loader
from moto.core.model import OperationModel, ServiceModel
from moto.core.parse import QueryParser
from moto.core.serialize import QuerySerializer, SerializationContext
from werkzeug.datastructures import MultiDict

from airflow_provider_importexport.exceptions import (
    ImportExportError,
    InvalidParameterError,
    InvalidVersionError,
    MissingParameterError,
)

API_VERSION = "2010-06-01"
NAMESPACE = f"http://importexport.amazonaws.com/doc/{API_VERSION}/"
#: The largest request body accepted; a manifest is a few KiB.
MAX_BODY_BYTES = 1024 * 1024


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


def parse_call(form: dict[str, str]) -> ApiCall:
    """Dispatch on ``Action`` (any query string on the path is ignored, as the service does)."""
    action = form.get("Action")
    if not action:
        raise MissingParameterError("The request must contain the parameter Action.")
    if action not in operation_names():
        raise InvalidParameterError(
            f"Could not find operation {action}; the service supports {', '.join(sorted(operation_names()))}.",
            code="InvalidAction",
        )
    version = form.get("Version")
    if version and version != API_VERSION:
        raise InvalidParameterError(f"Version {version} is not supported; use Version={API_VERSION}.")
    operation = service_model().operation_model(action)
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
    return ApiCall(action, params, str(uuid.uuid4()))


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


def success(call: ApiCall, result: dict[str, Any]) -> Response:
    operation = service_model().operation_model(call.action)
    serialized = QuerySerializer(operation, SerializationContext(call.request_id)).serialize(result)
    body = serialized["body"]
    return Response(200, body.encode() if isinstance(body, str) else body)


def error(code: str, message: str, *, status: int = 400, request_id: str | None = None) -> Response:
    """The service's error envelope; ``Code`` is the modeled shape name botocore maps to a class."""
    kind = "Receiver" if status >= 500 else "Sender"
    body = (
        f'<ErrorResponse xmlns="{NAMESPACE}"><Error><Type>{kind}</Type>'
        f"<Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error>"
        f"<RequestId>{request_id or uuid.uuid4()}</RequestId></ErrorResponse>"
    )
    return Response(status, body.encode())


def error_from(err: ImportExportError, request_id: str | None = None) -> Response:
    return error(err.code, err.message, status=err.http_status, request_id=request_id)
