"""The admin API under ``/_importexport/``: drive jobs, faults and the clock from tests.

Outside the AWS API and unauthenticated (the emulator binds 127.0.0.1), like moto's
``/moto-api/``. JSON in, JSON out.

=======  ==========================================  =====================================
Method   Path                                        Body / effect
=======  ==========================================  =====================================
GET      /_importexport/health                       ``{"status": "ok"}``
GET      /_importexport/jobs                         every job's status (secrets masked, StatusReads)
GET      /_importexport/jobs/ID                      one job's status (secrets masked)
POST     /_importexport/jobs/ID/ACTION               ship, receive, start, process
                                                     (``outcome``, ``error_count``), return
                                                     (``carrier``, ``tracking_number``),
                                                     expire, attach (``path``)
POST     /_importexport/tick                         apply the time profile to every job
GET/POST /_importexport/faults                       fault rates (FaultConfig fields)
POST     /_importexport/faults/queue                 ``{"faults": ["throttle", "drop_after@CreateJob"]}``
GET      /_importexport/requests                     every API request: action, job, fault, carried out, answered
DELETE   /_importexport/requests                     forget the request records
POST     /_importexport/clock                        ``{"advance_seconds": N}``
POST     /_importexport/profile                      ``{"name": "fast"}`` or profile fields
POST     /_importexport/buckets                      ``{"bucket", "region", "access_key"}``
GET      /_importexport/documents/NAME               shipping labels and artifacts (PDF)
=======  ==========================================  =====================================
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from airflow_provider_importexport import exceptions as exc
from airflow_provider_importexport.emulator.backend import LifecycleProfile
from airflow_provider_importexport.emulator.faults import FaultConfig
from airflow_provider_importexport.emulator.state import Job
from airflow_provider_importexport.manifest import redact_manifest_text

if TYPE_CHECKING:
    from airflow_provider_importexport.emulator.server import EmulatorApp

PREFIX = "/_importexport/"


class AdminApp:
    def __init__(self, app: EmulatorApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        parts = environ.get("PATH_INFO", "/")[len(PREFIX) :].strip("/").split("/")
        try:
            if parts[0] == "documents" and len(parts) == 2:
                return self._document(parts[1], start_response)
            body = self._body(environ)
            status, payload = 200, self.route(method, parts, body)
        except exc.JobNotFoundError as err:
            status, payload = 404, {"error": err.code, "message": err.message}
        except (exc.ImportExportError, ClientError, ValueError, TypeError, KeyError) as err:
            status, payload = 400, {"error": type(err).__name__, "message": str(err)}
        data = json.dumps(payload, default=_json_default).encode()
        start_response(f"{status} {'OK' if status == 200 else 'Error'}", [("Content-Type", "application/json")])
        return [data]

    @staticmethod
    def _body(environ: dict[str, Any]) -> dict[str, Any]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if not length:
            return {}
        data = json.loads(environ["wsgi.input"].read(min(length, 1 << 20)) or b"{}")
        if not isinstance(data, dict):
            raise ValueError("the admin API takes a JSON object")
        return data

    def route(self, method: str, parts: list[str], body: dict[str, Any]) -> Any:
        backend = self.app.backend
        match (method, parts):
            case ("GET", ["health"]):
                return {"status": "ok", "endpoint_url": self.app.endpoint_url}
            case ("GET", ["jobs"]):
                backend.advance_all()
                return [_admin_view(job) for job in backend.jobs.values()]
            case ("GET", ["jobs", job_id]):
                backend.advance_all()
                job = backend.jobs.get(job_id)
                if job is None:
                    raise exc.JobNotFoundError("No such job.", job_id=job_id)
                return _admin_view(job)
            case ("POST", ["jobs", job_id, action]):
                return _masked(backend.transition(job_id, action, **body))
            case ("POST", ["tick"]):
                backend.advance_all()
                return {"jobs": len(backend.jobs)}
            case ("GET", ["faults"]):
                return {"config": self.app.faults.config.to_dict(), "counts": self.app.faults.counts}
            case ("POST", ["faults"]):
                self.app.faults.configure(FaultConfig.from_dict(body))
                return {"config": self.app.faults.config.to_dict()}
            case ("POST", ["faults", "queue"]):
                self.app.faults.queue(*body.get("faults", []))
                return {"queued": self.app.faults.queued_names()}
            case ("GET", ["requests"]):
                return self.app.requests.query()
            case ("DELETE", ["requests"]):
                self.app.requests.clear()
                return {"cleared": True}
            case ("POST", ["clock"]):
                backend.clock_offset += dt.timedelta(seconds=float(body["advance_seconds"]))
                backend.advance_all()
                return {"now": backend.now().isoformat()}
            case ("POST", ["profile"]):
                name = body.pop("name", None)
                backend.config.profile = LifecycleProfile.named(name) if name else LifecycleProfile.from_dict(body)
                return {"profile": backend.config.profile.__dict__}
            case ("POST", ["buckets"]):
                return self._create_bucket(body)
        raise ValueError(f"no admin route {method} {PREFIX}{'/'.join(parts)}; see the admin module's docstring")

    def _create_bucket(self, body: dict[str, Any]) -> dict[str, Any]:
        account = self.app.authenticator.account_for_key(
            body.get("access_key") or self.app.settings.accounts[0].access_key
        )
        if account is None:
            raise ValueError(f"no emulator account has access key {body.get('access_key')!r}")
        region = body.get("region", "us-east-1")
        self.app.backend.storage.create_bucket(account.account_id, body["bucket"], region)
        return {"bucket": body["bucket"], "region": region, "account_id": account.account_id}

    def _document(self, name: str, start_response: Callable[..., Any]) -> Iterable[bytes]:
        data = self.app.backend.documents.get(name)
        if data is None:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"no such document"]
        start_response("200 OK", [("Content-Type", "application/pdf"), ("Content-Length", str(len(data)))])
        return [data]


def _admin_view(job: Job) -> dict[str, Any]:
    return {**_masked(job.status()), "StatusReads": job.status_reads}


def _masked(status: dict[str, Any]) -> dict[str, Any]:
    return {**status, "CurrentManifest": redact_manifest_text(status["CurrentManifest"])}


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return str(value)
