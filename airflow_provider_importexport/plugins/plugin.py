"""The Airflow plugin: the page's FastAPI app and its entry in the UI's navigation.

Registered only through the ``airflow.plugins`` entry point, which every Airflow 3.3 component
loads. The provider info's ``plugins`` list is read only with ``[core] lazy_discover_providers
= False``, and then a plugin listed in both is reported as an import error ("already
registered"), as happens to the OpenLineage provider's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.plugins_manager import AirflowPlugin

if TYPE_CHECKING:
    from starlette.types import Receive, Scope, Send

#: Where the API server mounts the app.
URL_PREFIX = "/importexport"
#: The page inside Airflow's UI: ``<base_url>/plugin/importexport`` frames ``<base_url>/importexport/``.
URL_ROUTE = "importexport"
PATH = URL_PREFIX.strip("/")


class LazyApp:
    """An ASGI app that builds the page's FastAPI app (``app.create_app``) on its first request.

    Every Airflow component loads plugins (scheduler, triggerer, each task's process), but
    only the API server serves the page: importing FastAPI and Airflow's API security there
    would cost each of them seconds.
    """

    def __init__(self) -> None:
        self._app: Any = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._app is None:  # no await before the assignment: one app per event loop
            from airflow_provider_importexport.plugins.app import create_app

            self._app = create_app()
        await self._app(scope, receive, send)


class ImportExportPlugin(AirflowPlugin):
    """AWS Import/Export jobs (ListJobs + GetStatus) in the Airflow UI, under Browse."""

    name = "importexport"
    fastapi_apps = [{"app": LazyApp(), "url_prefix": URL_PREFIX, "name": "AWS Import/Export jobs"}]
    external_views = [
        {
            "name": "Import/Export",
            # Relative to the UI's base URL, so a deployment under a path prefix works.
            "href": f"{PATH}/",
            "url_route": URL_ROUTE,
            "destination": "nav",
            "category": "browse",
            "icon": f"{PATH}/static/icon.svg",
            "icon_dark_mode": f"{PATH}/static/icon-dark.svg",
        }
    ]
