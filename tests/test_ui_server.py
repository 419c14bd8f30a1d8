"""The Import/Export page served by a real ``airflow api-server`` and seen in a real browser.

One module-wide set-up (the slow part, shared by both tests): the emulator with jobs in
every state, a DAG run whose create tasks made two of them (``airflow dags test``), and an
API server with the plugin and SimpleAuthManager (users ``admin`` and ``viewer``). The
browser is Debian's headless Chromium, driven over the Chrome DevTools Protocol with the
``websockets`` package (no downloaded browser, no driver).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from websockets.sync.client import ClientConnection, connect

from airflow_provider_importexport.emulator import ImportExportEmulator
from tests.airflow_stack import AirflowStack
from tests.helpers import connection_json, import_manifest
from tests.test_ui_rows import SECRET, check_rows, seed_jobs

pytestmark = [pytest.mark.slow, pytest.mark.integration]  # an Airflow API server, a DAG run, a browser

ARTIFACTS = Path(__file__).resolve().parents[1] / "build" / "test-artifacts"
PASSWORDS = {"admin": "admin-password", "viewer": "viewer-password"}
DAG_ID = "importexport_ui_shipments"
DAG_DEVICES = ("disk-dag-1", "disk-dag-2")
DAG_SOURCE = """
import datetime
from airflow.sdk import DAG
from airflow_provider_importexport.operators.importexport import ImportExportCreateJobOperator

with DAG({dag_id!r}, schedule=None, start_date=datetime.datetime(2026, 1, 1), catchup=False) as dag:
    for number, manifest in enumerate({manifests!r}, 1):
        ImportExportCreateJobOperator(task_id=f"create_{{number}}", manifest=manifest)
"""


@dataclass
class Site:
    """The running set-up: where the API server is, and what was seeded."""

    base_url: str
    emulator: ImportExportEmulator
    stack: AirflowStack
    bucket: str
    ids: dict[str, str]
    run_id: str

    def token(self, user: str) -> str:
        body = json.dumps({"username": user, "password": PASSWORDS[user]}).encode()
        status, answer, _ = http("POST", f"{self.base_url}/auth/token", body, {"Content-Type": "application/json"})
        assert status == 201, answer
        return str(json.loads(answer)["access_token"])


def http(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, str, dict[str, str]]:
    """One request, redirects not followed: status, body text, headers."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.build_opener(NoRedirect).open(request, timeout=120) as answer:
            return answer.status, answer.read().decode(errors="replace"), dict(answer.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace"), dict(error.headers)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("ui")
    with contextlib.ExitStack() as cleanup:
        emulator = cleanup.enter_context(ImportExportEmulator(profile="manual"))
        bucket = "ui-shipments"
        emulator.admin.create_bucket(bucket)
        stack = airflow_stack(root, emulator)
        cleanup.callback(stack.stop)
        stack.airflow("db", "migrate")
        stack.start_component("api-server")
        manifests = [import_manifest(bucket, device_id=device).to_yaml() for device in DAG_DEVICES]
        (root / "dags" / f"{DAG_ID}.py").write_text(DAG_SOURCE.format(dag_id=DAG_ID, manifests=manifests))
        stack.airflow("dags", "test", DAG_ID, timeout=240)
        [(run_id,)] = stack.query("SELECT run_id FROM dag_run WHERE dag_id = ?", DAG_ID)
        client = boto3.client("importexport", endpoint_url=emulator.endpoint_url, region_name="us-east-1")
        ids = seed_jobs(client, emulator.admin, bucket)
        base_url = stack.env["AIRFLOW__API__BASE_URL"]
        stack.wait_for("the API server", lambda: http("GET", f"{base_url}/api/v2/monitor/health")[0] == 200, 180)
        emulator.admin.request("DELETE", "requests")
        yield Site(base_url, emulator, stack, bucket, ids, run_id)


def airflow_stack(root: Path, emulator: ImportExportEmulator) -> AirflowStack:
    (root / "dags").mkdir()
    (root / "home").mkdir()
    passwords = root / "passwords.json"
    passwords.write_text(json.dumps(PASSWORDS))
    return AirflowStack(
        root / "home",
        root / "dags",
        {
            "AIRFLOW_CONN_AWS_DEFAULT": connection_json(emulator.endpoint_url),
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            # `python -m airflow` would put the checkout on sys.path, and with it the editable
            # install's airflow_provider_importexport.egg-info: a second copy of the entry point,
            # which Airflow reports as a plugin import error ("already registered").
            "PYTHONSAFEPATH": "1",
        },
    )


def jobs_json(site: Site, headers: dict[str, str], conn_id: str = "aws_default") -> tuple[int, str]:
    query = urllib.parse.urlencode({"conn_id": conn_id})
    status, body, _ = http("GET", f"{site.base_url}/importexport/api/jobs?{query}", headers=headers)
    return status, body


def calls(site: Site, action: str) -> int:
    return len(site.emulator.admin.requests(action=action))


def test_the_api_lists_every_job_to_a_user_who_may_read_the_connection(site: Site) -> None:
    # Anonymous, a forged token, and a viewer (who may not read connections) get no job data.
    assert jobs_json(site, {})[0] == 401
    assert http("GET", f"{site.base_url}/importexport/")[0] == 401
    assert jobs_json(site, bearer("not-a-jwt"))[0] == 403
    status, body = jobs_json(site, bearer(site.token("viewer")))
    assert status == 403 and "aws_default" in body
    assert calls(site, "ListJobs") == 0

    token = site.token("admin")
    started = time.monotonic()
    status, body = jobs_json(site, bearer(token))
    first_load = time.monotonic() - started
    assert status == 200, body
    answer = json.loads(body)
    rows = {row["job_id"]: row for row in answer["jobs"]}
    check_rows(rows, site.ids, site.bucket)
    from_dag = [row for row in rows.values() if row["device_id"] in DAG_DEVICES]
    assert sorted(row["dag_run"]["task_id"] for row in from_dag) == ["create_1", "create_2"]
    assert {(row["dag_run"]["dag_id"], row["dag_run"]["run_id"]) for row in from_dag} == {(DAG_ID, site.run_id)}
    assert all(row["dag_run"] is None for row in rows.values() if row["device_id"] not in DAG_DEVICES)
    assert len(rows) == len(site.ids) + len(DAG_DEVICES)
    assert SECRET not in body and "CurrentManifest" not in body and "trueCryptPassword" not in body
    # One refresh: one ListJobs page and one GetStatus per job; the next views come from the cache.
    assert (calls(site, "ListJobs"), calls(site, "GetStatus")) == (1, len(rows))
    started = time.monotonic()
    assert jobs_json(site, {"Cookie": f"_token={token}"})[0] == 200  # the UI's cookie works as well
    cached_load = time.monotonic() - started
    assert http("GET", f"{site.base_url}/importexport/", headers=bearer(token))[0] == 200
    assert (calls(site, "ListJobs"), calls(site, "GetStatus"), calls(site, "GetShippingLabel")) == (1, len(rows), 0)
    print(f"first load {first_load:.2f} s, cached {cached_load:.2f} s, {len(rows)} jobs")

    # An unknown connection is a 404 naming it, not a server error; the page escapes what it echoes.
    status, body = jobs_json(site, bearer(token), conn_id="no_such_conn")
    assert status == 404 and "no_such_conn" in body
    query = urllib.parse.urlencode({"conn_id": "<b>x</b>"})
    status, body, _ = http("GET", f"{site.base_url}/importexport/?{query}", headers=bearer(token))
    assert status == 404 and "&lt;b&gt;x&lt;/b&gt;" in body and "<b>x</b>" not in body


def test_a_connection_stored_in_the_metadata_db_works_too(site: Site) -> None:
    token = site.token("admin")
    connection = {
        "connection_id": "importexport_from_db",
        **{k: v for k, v in json.loads(connection_json(site.emulator.endpoint_url)).items() if k != "extra"},
        "extra": json.dumps(json.loads(connection_json(site.emulator.endpoint_url))["extra"]),
    }
    headers = {**bearer(token), "Content-Type": "application/json"}
    status, body, _ = http("POST", f"{site.base_url}/api/v2/connections", json.dumps(connection).encode(), headers)
    assert status == 201, body
    status, body = jobs_json(site, bearer(token), conn_id="importexport_from_db")
    assert status == 200, body
    assert len(json.loads(body)["jobs"]) == len(site.ids) + len(DAG_DEVICES)


def test_the_shipping_label_is_fetched_only_when_asked_for(site: Site) -> None:
    token = site.token("admin")
    url = f"{site.base_url}/importexport/api/jobs/{site.ids['new']}/label"
    form = urllib.parse.urlencode({"conn_id": "aws_default"}).encode()
    form_type = {"Content-Type": "application/x-www-form-urlencoded"}
    assert http("POST", url, form, form_type)[0] == 401
    status, _, headers = http("POST", url, form, {**form_type, **bearer(token)})
    assert status == 303
    assert headers["location"].startswith(site.emulator.endpoint_url)
    with urllib.request.urlopen(headers["location"], timeout=60) as label:
        assert label.read(5) == b"%PDF-"
    assert calls(site, "GetShippingLabel") == 1


def test_the_plugin_is_in_airflows_plugin_list_with_its_navigation_entry(site: Site) -> None:
    status, body, _ = http("GET", f"{site.base_url}/api/v2/plugins", headers=bearer(site.token("admin")))
    assert status == 200
    [plugin] = [p for p in json.loads(body)["plugins"] if p["name"] == "importexport"]
    assert plugin["fastapi_apps"][0]["url_prefix"] == "/importexport"
    [view] = plugin["external_views"]
    assert (view["name"], view["href"], view["url_route"], view["category"]) == (
        "Import/Export",
        "importexport/",
        "importexport",
        "browse",
    )
    status, body, _ = http("GET", f"{site.base_url}/api/v2/plugins/importErrors", headers=bearer(site.token("admin")))
    assert status == 200
    assert [error for error in json.loads(body)["import_errors"] if "importexport" in json.dumps(error)] == []


# --- the browser ---------------------------------------------------------------------------------

ROWS_SCRIPT = """
(() => {
  const frame = document.querySelector("iframe");
  const page = frame && frame.contentDocument;
  const rows = page ? [...page.querySelectorAll("tr.job")] : [];
  return rows.map((row) => ({
    job_id: row.dataset.jobId,
    location: row.dataset.location,
    progress: row.dataset.progress,
    device: row.querySelector(".device").textContent.trim(),
    stages: [...row.querySelectorAll(".stage")].map((stage) => stage.dataset.state),
    dag_run: row.querySelector(".dag-run a") ? row.querySelector(".dag-run a").getAttribute("href") : null,
    label: !!row.querySelector(".label button"),
    visible: row.offsetParent !== null,
  }));
})()
"""


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class DevTools:
    """A minimal Chrome DevTools Protocol client: commands on one page target, events ignored."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        self.last_id = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.last_id += 1
        self.socket.send(json.dumps({"id": self.last_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=60))
            if message.get("id") == self.last_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.25)
        raise TimeoutError(f"the page never satisfied: {expression[:200]}")


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[DevTools]:
    executable = chromium()
    if executable is None:
        pytest.skip("Chromium is not installed: run scripts/install_browser.sh (CI does) to run the browser test")
    profile = tmp_path / "chromium-profile"
    process = subprocess.Popen(
        [
            executable,
            "--headless=new",
            "--no-sandbox",  # CI runs as root
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "--window-size=1600,1300",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        port = wait_for_file(profile / "DevToolsActivePort", process).splitlines()[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30) as answer:
            [page] = [target for target in json.load(answer) if target["type"] == "page"]
        with connect(page["webSocketDebuggerUrl"], max_size=64 * 1024 * 1024, open_timeout=30) as socket:
            yield DevTools(socket)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)  # Chromium's helpers, in the session it led


def wait_for_file(path: Path, process: subprocess.Popen[bytes], timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Chromium exited at start with code {process.returncode}")
        if path.exists() and path.read_text().strip():
            return path.read_text()
        time.sleep(0.1)
    raise TimeoutError(f"Chromium wrote no {path.name} within {timeout} s")


def test_a_logged_in_browser_sees_every_job_and_its_state(site: Site, browser: DevTools) -> None:
    browser.call("Page.enable")
    browser.call("Network.enable")
    # Not logged in: the page itself refuses, with a way to log in, and shows no job.
    browser.call("Page.navigate", url=f"{site.base_url}/importexport/")
    refused = browser.wait_for("document.readyState === 'complete' && document.body.innerText")
    assert "401" in refused and "Log in to Airflow" in refused
    assert browser.evaluate("document.querySelectorAll('tr.job').length") == 0

    # Logged in as the Airflow UI does it: the JWT from POST /auth/token in the _token cookie.
    browser.call("Network.setCookie", name="_token", value=site.token("admin"), url=site.base_url, path="/")
    started = time.monotonic()
    browser.call("Page.navigate", url=f"{site.base_url}/plugin/importexport")
    expected = len(site.ids) + len(DAG_DEVICES)
    rows = browser.wait_for(f"(() => {{ const r = {ROWS_SCRIPT}; return r.length === {expected} ? r : null; }})()")
    page_load = time.monotonic() - started
    shown = {row["job_id"]: row for row in rows}
    from tests.test_ui_rows import JOB_STATES

    for name, (_, location, progress, stages) in JOB_STATES.items():
        row = shown[site.ids[name]]
        assert (row["device"], row["location"], row["progress"]) == (f"disk-{name}", location, progress)
        assert tuple(row["stages"]) == stages, name
    assert shown[site.ids["new"]]["label"] and not shown[site.ids["complete"]]["label"]
    dag_links = sorted(row["dag_run"] for row in rows if row["device"] in DAG_DEVICES)
    assert dag_links == [f"../dags/{DAG_ID}/runs/{urllib.parse.quote(site.run_id, safe='')}"] * 2
    page_text = browser.evaluate("document.querySelector('iframe').contentDocument.body.innerText")
    assert SECRET not in page_text and "AWS Import/Export jobs" in page_text
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = browser.call("Page.captureScreenshot", format="png")
    (ARTIFACTS / "importexport-page.png").write_bytes(base64.b64decode(shot["data"]))

    # The "Stuck"/"In progress" filters hide rows in the browser (the script's one job).
    browser.evaluate("document.querySelector('iframe').contentDocument.querySelector('[data-filter=active]').click()")
    visible = {row["job_id"] for row in browser.evaluate(ROWS_SCRIPT) if row["visible"]}
    assert site.ids["new"] in visible and site.ids["complete"] not in visible
    print(f"page with {expected} jobs rendered in the browser {page_load:.2f} s after navigation")
