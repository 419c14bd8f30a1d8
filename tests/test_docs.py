"""The docs in docs/ stay true: snippets match the DAGs they come from, and the reference pages
list everything the code has (error codes, command-line options, admin routes, connection fields)."""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import json
import re
import shlex
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from airflow_provider_importexport import exceptions
from airflow_provider_importexport.emulator import DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY, ImportExportEmulator
from airflow_provider_importexport.status import PROGRESS, Outcome

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
HOWTOS = ("create-job", "update-job", "cancel-job", "shipping-label", "sensor")
REFERENCE = ("connection", "emulator", "troubleshooting")
#: Files whose marked regions the docs include.
SNIPPET_SOURCES = (*sorted((ROOT / "dags_examples").glob("*.py")), ROOT / "tests" / "test_docs_examples.py")


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


sync = _script("sync_doc_snippets")


def page(name: str) -> str:
    return (DOCS / f"{name}.md").read_text()


# --- snippets -----------------------------------------------------------------------------------


def all_snippets() -> list[tuple[Path, Any]]:
    return [(path, snippet) for path in sync.pages(DOCS) for snippet in sync.snippets(path.read_text())]


@pytest.mark.parametrize("name", HOWTOS)
def test_each_how_to_shows_code_from_a_tested_dag(name: str) -> None:
    snippets = sync.snippets(page(f"howto/{name}"))
    assert snippets, f"docs/howto/{name}.md has no snippet"
    assert all(s.body.strip() for s in snippets)


@pytest.mark.parametrize(
    ("doc", "snippet"), all_snippets(), ids=lambda v: v.name if isinstance(v, Path) else getattr(v, "region", "")
)
def test_every_snippet_is_its_dag_files_marked_region_verbatim(doc: Path, snippet: Any) -> None:
    source = ROOT / snippet.source
    regions = sync.marked_regions(source)
    assert snippet.region in regions, f"{snippet.source} has no region {snippet.region}"
    assert snippet.body == regions[snippet.region], (
        f"{doc.relative_to(ROOT)}: the copy of {snippet.region} differs from {snippet.source}; "
        "run python scripts/sync_doc_snippets.py"
    )
    # Independently of the script: each line is in the file, in order, between the markers.
    text = source.read_text()
    start = text.index(f"# [START {snippet.region}]")
    end = text.index(f"# [END {snippet.region}]")
    region = text[start:end]
    position = 0
    for line in snippet.body.splitlines():
        if line.strip():
            position = region.index(line.strip(), position)


def test_every_marked_region_is_shown_somewhere() -> None:
    used = {(s.source, s.region) for _, s in all_snippets()}
    for source in SNIPPET_SOURCES:
        relative = str(source.relative_to(ROOT))
        for region in sync.marked_regions(source):
            assert (relative, region) in used, f"{relative}: region {region} is in no page of docs/"


def test_the_sync_script_rewrites_a_stale_copy_and_check_mode_fails_on_it(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (tmp_path / "dag.py").write_text("x = 1\nif x:\n    # [START demo]\n    y = 2\n    # [END demo]\n")
    stale = "Intro\n\n<!-- snippet: dag.py demo -->\n```python\ny = 1\n```\n\nOutro\n"
    assert sync.synced(stale, tmp_path) == "Intro\n\n<!-- snippet: dag.py demo -->\n```python\ny = 2\n```\n\nOutro\n"
    with pytest.raises(sync.SnippetError, match="has no region 'nope'"):
        sync.synced(stale.replace("demo -->", "nope -->"), tmp_path)
    (tmp_path / "bad.py").write_text("# [START a]\nz = 1\n")
    with pytest.raises(sync.SnippetError, match="never end"):
        sync.marked_regions(tmp_path / "bad.py")


def test_the_repositorys_docs_are_in_sync(capsys: pytest.CaptureFixture[str]) -> None:
    assert sync.main(["--check"]) == 0, capsys.readouterr().out


# --- links -----------------------------------------------------------------------------------------


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+ (.+)$", markdown, re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in headings}


def test_links_between_pages_resolve() -> None:
    for path in [ROOT / "README.md", *sync.pages(DOCS)]:
        for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text()):
            if re.match(r"[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            linked = (path.parent / file).resolve() if file else path
            assert linked.exists(), f"{path.relative_to(ROOT)} links to missing {target}"
            if anchor and linked.suffix == ".md":
                assert anchor in _anchors(linked.read_text()), f"{path.relative_to(ROOT)}: no heading for {target}"


def test_the_readme_lists_every_page() -> None:
    readme = (ROOT / "README.md").read_text()
    for name in (*(f"howto/{h}" for h in HOWTOS), *REFERENCE):
        assert f"](docs/{name}.md)" in readme, f"README.md does not link docs/{name}.md"


# --- troubleshooting: every error code ----------------------------------------------------------


def coded_classes() -> dict[str, list[str]]:
    """Service code -> the exception classes (by name) that carry it."""
    found: dict[str, list[str]] = {}
    for name, cls in inspect.getmembers(exceptions, inspect.isclass):
        if issubclass(cls, exceptions.ImportExportError) and cls.__dict__.get("code"):
            found.setdefault(cls.__dict__["code"], []).append(name)
    return found


def sections(markdown: str) -> dict[str, str]:
    """``### `Code` `` sections of a page: code -> the text up to the next heading."""
    parts = re.split(r"^(#{2,3} .*)$", markdown, flags=re.MULTILINE)
    found = {}
    for heading, body in zip(parts[1::2], parts[2::2], strict=True):
        match = re.fullmatch(r"### `(\w+)`", heading.strip())
        if match:
            found[match.group(1)] = body
    return found


def test_troubleshooting_has_a_section_for_every_code_and_no_other() -> None:
    codes = coded_classes()
    documented = sections(page("troubleshooting"))
    assert set(documented) == set(codes), (
        f"missing: {sorted(set(codes) - set(documented))}; unknown: {sorted(set(documented) - set(codes))}"
    )
    for code, names in codes.items():
        for name in names:
            assert f"`{name}`" in documented[code], f"the {code} section does not name {name}"


def test_troubleshooting_explains_every_way_a_job_fails() -> None:
    job_failed = sections(page("troubleshooting"))["JobFailed"]
    failing = [c.value for c, info in PROGRESS.items() if info.outcome in (Outcome.FAILURE, Outcome.CANCELED)]
    for code in [*failing, "SuccessWithErrors"]:
        assert f"| `{code}` |" in job_failed, f"the JobFailed table lacks {code}"


# --- the emulator page: every option, command and route ---------------------------------------------


def _help(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    from airflow_provider_importexport.emulator.__main__ import main

    with pytest.raises(SystemExit) as exited:
        main([*argv, "--help"])
    assert exited.value.code == 0
    return capsys.readouterr().out


def _options(help_text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", help_text)) - {"--help"}


def test_the_emulator_page_lists_every_command_line_option(capsys: pytest.CaptureFixture[str]) -> None:
    text = page("emulator")
    serve_options = _options(_help(capsys))
    assert {"--port", "--profile", "--faults"} <= serve_options  # the help text was read
    admin_help = _help(capsys, "admin")
    commands = re.search(r"\{([a-z,-]+)\}", admin_help)
    assert commands is not None
    wanted = serve_options | _options(admin_help)
    for command in commands.group(1).split(","):
        assert re.search(rf"`{re.escape(command)}\b", text), f"docs/emulator.md does not list admin {command}"
        wanted |= _options(_help(capsys, "admin", command))
    missing = sorted(o for o in wanted if not re.search(rf"{re.escape(o)}(?![a-z0-9-])", text))
    assert not missing, f"docs/emulator.md does not list {missing}"


def test_the_emulator_page_lists_every_admin_route() -> None:
    from airflow_provider_importexport.emulator import admin

    assert admin.__doc__ is not None
    routes = re.findall(
        r"^((?:GET|POST|DELETE|PUT)(?:/(?:GET|POST|DELETE|PUT))*)\s+(/_importexport/\S+)", admin.__doc__, re.M
    )
    assert len(routes) >= 10
    text = page("emulator")
    for methods, path in routes:
        for method in methods.split("/"):
            assert f"`{method} {path}`" in text, f"docs/emulator.md lacks {method} {path}"


def test_the_emulator_page_lists_every_fault_and_profile() -> None:
    from airflow_provider_importexport.emulator import PROFILES, FaultConfig

    text = page("emulator")
    for field in dataclasses.fields(FaultConfig):
        assert f"`{field.name}`" in text, f"docs/emulator.md does not explain the fault field {field.name}"
    for name, profile in PROFILES.items():
        row = re.search(rf"^\| `{name}` \|(.*)$", text, re.MULTILINE)
        assert row is not None, f"no row for profile {name}"
        stages = [profile.arrive_after, profile.start_after, profile.process_after, profile.return_after]
        assert [c.strip() for c in row.group(1).split("|")[:4]] == ["-" if s is None else f"{s:g}" for s in stages]


# --- the connection page ---------------------------------------------------------------------------


def connection_exports() -> list[str]:
    """The values of the ``export AIRFLOW_CONN_AWS_DEFAULT=...`` lines of docs/connection.md."""
    lines = re.findall(r"^export AIRFLOW_CONN_AWS_DEFAULT=(.+)$", page("connection"), re.MULTILINE)
    return [shlex.split(line)[0] for line in lines]


def test_the_connection_page_shows_json_and_uri_that_point_at_the_emulator() -> None:
    from airflow.models.connection import Connection
    from airflow.providers.amazon.aws.utils.connection_wrapper import AwsConnectionWrapper

    exports = connection_exports()
    assert len(exports) == 2
    json_form, uri_form = exports
    for connection in (Connection.from_json(json_form, conn_id="aws_default"), Connection("aws_default", uri=uri_form)):
        wrapper = AwsConnectionWrapper(connection)
        assert wrapper.conn_type == "aws"
        assert (wrapper.aws_access_key_id, wrapper.aws_secret_access_key) == (DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY)
        assert wrapper.get_service_endpoint_url("importexport") == "http://127.0.0.1:5050"
        assert wrapper.get_service_endpoint_url("s3") == "http://127.0.0.1:5050"
        assert wrapper.region_name == "us-east-1"


def test_the_connection_pages_json_reaches_a_running_emulator(
    emulator: ImportExportEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_importexport.hooks.importexport import ImportExportHook

    json_form = connection_exports()[0].replace("http://127.0.0.1:5050", emulator.endpoint_url)
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json_form)
    assert list(ImportExportHook(aws_conn_id="aws_default").list_jobs()) == []
    assert [r["action"] for r in emulator.admin.requests()] == ["ListJobs"]


def test_the_connection_pages_retry_policy_is_the_hooks() -> None:
    from airflow_provider_importexport.hooks.importexport import RetryPolicy

    text = page("connection")
    example = json.loads(re.search(r'^\{"service_config".*\}$', text, re.MULTILINE).group(0))  # type: ignore[union-attr]
    RetryPolicy.from_dict(example["service_config"]["importexport"]["retry_policy"])
    for field in dataclasses.fields(RetryPolicy):
        assert re.search(rf"^\| `{field.name}` \| {field.default:g} ", text, re.MULTILINE) or re.search(
            rf"^\| `{field.name}` \| {field.default} ", text, re.MULTILINE
        ), f"docs/connection.md does not give {field.name}'s default {field.default}"
