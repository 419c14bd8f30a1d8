"""The page's FastAPI app, mounted by the Airflow API server under ``/importexport`` (see plugin.py).

Every route needs a logged-in Airflow user (the UI's ``_token`` cookie or a Bearer JWT, as
Airflow's own API) who may read the chosen AWS connection: the page lists jobs with that
connection's credentials. A DAG run link is shown only to users who may read that DAG.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from importlib import resources
from typing import Annotated, Any
from urllib.parse import quote

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.auth.managers.models.resource_details import ConnectionDetails
from airflow.api_fastapi.core_api.security import GetUserDep
from fastapi import APIRouter, Depends, FastAPI, Form, HTTPException, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, PackageLoader, select_autoescape

from airflow_provider_importexport import exceptions as exc
from airflow_provider_importexport.hooks.importexport import ImportExportHook
from airflow_provider_importexport.plugins.dag_runs import find_dag_runs
from airflow_provider_importexport.plugins.reader import Snapshot, SnapshotCache, ViewSettings
from airflow_provider_importexport.plugins.shipments import JobRow

PACKAGE = "airflow_provider_importexport.plugins"
#: An error code that means "no such connection", not "the service failed".
_NOT_FOUND_CODES = ("ConnectionNotFound",)

_templates = Environment(loader=PackageLoader(PACKAGE, "templates"), autoescape=select_autoescape(), auto_reload=False)
router = APIRouter()


@dataclass(frozen=True)
class Access:
    """A logged-in user allowed to read this AWS connection."""

    user: BaseUser
    conn_id: str


def readable_connection(request: Request, user: GetUserDep, conn_id: str | None = None) -> Access:
    """The connection to read (``?conn_id=``, default from settings), once the user may read it."""
    conn_id = conn_id or _settings(request).default_conn_id
    if not _may_read_connection(user, conn_id):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"You may not read the connection {conn_id!r}.")
    return Access(user, conn_id)


Reader = Annotated[Access, Depends(readable_connection)]


def readable_connection_form(
    request: Request, user: GetUserDep, conn_id: Annotated[str | None, Form()] = None
) -> Access:
    """As :func:`readable_connection`, for a form post."""
    return readable_connection(request, user, conn_id)


@router.get("/", response_class=HTMLResponse)
async def page(request: Request, access: Reader) -> HTMLResponse:
    """The page: server-rendered rows, so it shows without any script."""
    try:
        snapshot: Snapshot | None = await _cache(request).get(access.conn_id)
        error = None
    except exc.ImportExportError as failure:
        snapshot, error = None, failure
    rows = _visible_rows(snapshot, access.user)
    html = _templates.get_template("shipments.html").render(
        conn_id=access.conn_id,
        snapshot=snapshot,
        rows=rows,
        error=error,
        settings=_settings(request),
        summary=_summary(rows),
        run_url=run_url,
    )
    return HTMLResponse(html, status_code=_status_of(error) if error else 200)


@router.get("/api/jobs")
async def jobs(request: Request, access: Reader) -> JSONResponse:
    """The same rows as JSON."""
    try:
        snapshot = await _cache(request).get(access.conn_id)
    except exc.ImportExportError as failure:
        raise _http_error(failure) from None
    settings = _settings(request)
    return JSONResponse(
        {
            "conn_id": access.conn_id,
            "fetched_at": snapshot.fetched_at.isoformat(),
            "cache_seconds": settings.cache_seconds,
            "max_jobs": settings.max_jobs,
            "truncated": snapshot.truncated,
            "jobs": [row.to_dict() for row in _visible_rows(snapshot, access.user)],
        }
    )


@router.post("/api/jobs/{job_id}/label")
async def label(
    request: Request, job_id: str, access: Annotated[Access, Depends(readable_connection_form)]
) -> RedirectResponse:
    """GetShippingLabel only when asked (a button, never a page view); redirects to the label."""
    try:
        answer = await asyncio.to_thread(_shipping_label, access.conn_id, job_id, _settings(request))
    except exc.ImportExportError as failure:
        raise _http_error(failure) from None
    url = str(answer.get("ShippingLabelURL") or "")
    if not url.startswith(("https://", "http://")):
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, "The service returned no shipping label link.")
    return RedirectResponse(url, status_code=status.HTTP_303_SEE_OTHER)


async def refused(request: Request, error: Exception) -> Response:
    """Browsers get a short page with a way to log in; API clients get Airflow's JSON."""
    assert isinstance(error, HTTPException)
    if "text/html" not in request.headers.get("accept", ""):
        return JSONResponse({"detail": error.detail}, status_code=error.status_code, headers=error.headers)
    html = _templates.get_template("refused.html").render(status=error.status_code, detail=error.detail)
    return HTMLResponse(html, status_code=error.status_code)


def create_app(settings: ViewSettings | None = None) -> FastAPI:
    """The app; settings default to Airflow's ``[importexport] ui_*`` options."""
    settings = settings or ViewSettings.from_airflow_config()
    app = FastAPI(title="AWS Import/Export jobs", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = settings
    app.state.cache = SnapshotCache(settings, find_dag_runs)
    app.include_router(router)
    app.add_exception_handler(HTTPException, refused)
    app.mount("/static", StaticFiles(directory=str(resources.files(PACKAGE) / "static")), name="static")
    return app


def _settings(request: Request) -> ViewSettings:
    settings: ViewSettings = request.app.state.settings
    return settings


def _cache(request: Request) -> SnapshotCache:
    cache: SnapshotCache = request.app.state.cache
    return cache


def _may_read_connection(user: BaseUser, conn_id: str) -> bool:
    return bool(
        get_auth_manager().is_authorized_connection(method="GET", details=ConnectionDetails(conn_id=conn_id), user=user)
    )


def _visible_rows(snapshot: Snapshot | None, user: BaseUser) -> list[JobRow]:
    """The snapshot's rows with DAG run links only for DAGs this user may read (the cache is shared)."""
    if snapshot is None:
        return []
    dag_ids = {row.dag_run.dag_id for row in snapshot.rows if row.dag_run}
    readable = get_auth_manager().filter_authorized_dag_ids(dag_ids=dag_ids, user=user) if dag_ids else set()
    return [
        row if row.dag_run is None or row.dag_run.dag_id in readable else dataclasses.replace(row, dag_run=None)
        for row in snapshot.rows
    ]


def _summary(rows: list[JobRow]) -> dict[str, int]:
    return {"jobs": len(rows), "active": sum(row.active for row in rows), "stuck": sum(bool(row.stuck) for row in rows)}


def run_url(row: JobRow) -> str:
    """The DAG run in Airflow's UI, relative to this page (so a base_url with a path works)."""
    assert row.dag_run is not None
    return f"../dags/{quote(row.dag_run.dag_id, safe='')}/runs/{quote(row.dag_run.run_id, safe='')}"


def _shipping_label(conn_id: str, job_id: str, settings: ViewSettings) -> dict[str, Any]:
    hook = ImportExportHook(aws_conn_id=conn_id, config=settings.client_config())
    hook.require_connection()
    return hook.get_shipping_label([job_id])


def _status_of(error: exc.ImportExportError) -> int:
    if error.code in _NOT_FOUND_CODES:
        return status.HTTP_404_NOT_FOUND
    return status.HTTP_502_BAD_GATEWAY


def _http_error(error: exc.ImportExportError) -> HTTPException:
    return HTTPException(_status_of(error), {"code": error.code, "message": error.message})
