"""Publishing check: what a user gets from ``pip install`` is a working provider.

Builds the sdist and the wheel (``uv build``, the wheel from the sdist), checks that both ship
what a user needs, installs the wheel into a fresh virtualenv outside the repository with the
pinned set, and checks from there, never from the editable install:

- without the ``[emulator]`` extra, ``importexport-emulator`` names the extra and exits 2;
- with it, ``airflow providers list`` shows the provider at its version, ``airflow providers
  triggers`` and ``links`` list ours, and the emulator starts and answers its health check.

Run by ``.ci/run`` and ``make wheel-check``. Exits 1 naming the failed check; prints each
step's time. ``--keep`` leaves the temporary folder (its path is printed) for a look.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "airflow_provider_importexport"
DIST = "airflow-provider-importexport"
UV = ROOT / ".venv" / "bin" / "uv"
#: Files a user needs in each artifact (paths inside the sdist's top folder).
SDIST_FILES = (
    "README.md",
    "LICENSE",
    "CHANGELOG.md",
    "constraints.txt",
    "tests/conftest.py",
    f"{PACKAGE}/py.typed",
    f"{PACKAGE}/__init__.py",
)
#: Example DAGs are for copying from the sdist or the repository, so the sdist has them and the
#: wheel does not: they import a top-level settings module and are no part of the importable package.
SDIST_FOLDERS = ("dags_examples", "docs", "tests")
COMMAND_LIMIT = 600.0


class CheckFailed(Exception):
    """One check failed; the message says which and what was seen."""


def source_version() -> str:
    """``__version__`` from the package's source, read as setuptools reads it (nothing imported)."""
    tree = ast.parse((ROOT / PACKAGE / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__version__" for t in node.targets):
            return str(ast.literal_eval(node.value))
    raise CheckFailed(f"{PACKAGE}/__init__.py defines no __version__")


@contextmanager
def step(name: str) -> Iterator[None]:
    started = time.monotonic()
    print(f"wheel-check: {name} ...", flush=True)
    yield
    print(f"wheel-check: {name}: ok ({time.monotonic() - started:.1f} s)", flush=True)


def run(
    command: list[str | Path], *, cwd: Path, env: dict[str, str] | None = None, expect: int | None = 0
) -> subprocess.CompletedProcess[str]:
    """Run a command; unless ``expect`` is None, fail with its output when its exit code differs."""
    result = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_LIMIT,
        check=False,
    )
    if expect is not None and result.returncode != expect:
        raise CheckFailed(
            f"{' '.join(map(str, command))} exited {result.returncode} (expected {expect})\n"
            f"--- stdout ---\n{result.stdout[-3000:]}\n--- stderr ---\n{result.stderr[-3000:]}"
        )
    return result


def build(out: Path) -> tuple[Path, Path]:
    run([UV, "build", "--out-dir", out, ROOT], cwd=ROOT)
    sdists, wheels = sorted(out.glob("*.tar.gz")), sorted(out.glob("*.whl"))
    if len(sdists) != 1 or len(wheels) != 1:
        raise CheckFailed(f"expected one sdist and one wheel in {out}, found {[p.name for p in out.iterdir()]}")
    return sdists[0], wheels[0]


def check_sdist(sdist: Path, version: str) -> None:
    with tarfile.open(sdist) as archive:
        names = set(archive.getnames())
    top = f"{PACKAGE}-{version}"
    missing = [name for name in SDIST_FILES if f"{top}/{name}" not in names]
    missing += [f"{folder}/" for folder in SDIST_FOLDERS if not any(n.startswith(f"{top}/{folder}/") for n in names)]
    if missing:
        raise CheckFailed(f"the sdist {sdist.name} lacks {missing}")
    if any("__pycache__" in name or name.endswith(".pyc") for name in names):
        raise CheckFailed(f"the sdist {sdist.name} ships compiled files")


def check_wheel(wheel: Path, version: str) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        info = f"{PACKAGE}-{version}.dist-info"
        metadata = archive.read(f"{info}/METADATA").decode() if f"{info}/METADATA" in names else ""
    needed = [f"{PACKAGE}/py.typed", f"{info}/licenses/LICENSE", f"{info}/entry_points.txt"]
    missing = [name for name in needed if name not in names]
    if missing:
        raise CheckFailed(f"the wheel {wheel.name} lacks {missing}")
    tops = {name.split("/", 1)[0] for name in names}
    if tops != {PACKAGE, info}:
        raise CheckFailed(f"the wheel {wheel.name} ships more than the package: {sorted(tops)}")
    readme_title = (ROOT / "README.md").read_text().splitlines()[0]
    checks = {
        f"Version: {version}": "the version",
        "License-Expression: Apache-2.0": "the license expression",
        "Requires-Python: >=3.11": "the Python requirement",
        "Description-Content-Type: text/markdown": "the README's content type",
        readme_title: "the README as the long description",
    }
    lacking = [what for text, what in checks.items() if text not in metadata]
    if lacking:
        raise CheckFailed(f"the wheel's METADATA lacks {', '.join(lacking)}")


def fresh_env(work: Path, venv: Path) -> dict[str, str]:
    """The environment a user's shell would have: the venv first on PATH, a throwaway AIRFLOW_HOME."""
    home = work / "airflow-home"
    home.mkdir(exist_ok=True)
    drop = ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "PYTHONSTARTUP")
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("AIRFLOW")}
    env.update(
        {
            "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
            "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    return env


def install(venv: Path, requirement: str, work: Path) -> None:
    run(
        [
            UV,
            "pip",
            "install",
            "--quiet",
            "--python",
            venv / "bin" / "python",
            "-c",
            ROOT / "constraints.txt",
            requirement,
        ],
        cwd=work,
    )


def check_installed_from_wheel(venv: Path, env: dict[str, str], work: Path, version: str) -> None:
    code = f"import {PACKAGE} as p, importlib.metadata as m; print(p.__file__); print(m.version('{DIST}'))"
    where, installed = run([venv / "bin" / "python", "-c", code], cwd=work, env=env).stdout.split()
    if not Path(where).is_relative_to(venv) or installed != version:
        raise CheckFailed(f"the package imports from {where} at version {installed}, not from {venv} at {version}")


def check_missing_extra(venv: Path, env: dict[str, str], work: Path) -> None:
    result = run([venv / "bin" / "importexport-emulator", "--help"], cwd=work, env=env, expect=2)
    message = re.search(
        r"needs the \[emulator\] extra: pip install '[^']+\[emulator\]' \(missing: (\w+)\)", result.stderr
    )
    if message is None or "Traceback" in result.stderr:
        raise CheckFailed(f"without the extra, importexport-emulator did not name the extra:\n{result.stderr[-2000:]}")
    print(f"wheel-check:   without the extra: {result.stderr.strip()}")


def airflow_json(venv: Path, env: dict[str, str], work: Path, *args: str) -> list[dict[str, Any]]:
    out = run([venv / "bin" / "airflow", *args, "--output", "json"], cwd=work, env=env).stdout
    start = out.find("[")
    if start < 0:
        raise CheckFailed(f"airflow {' '.join(args)} printed no JSON list:\n{out[-2000:]}")
    return list(json.loads(out[start:]))


def check_airflow_registers(venv: Path, env: dict[str, str], work: Path, version: str) -> None:
    providers = {p["package_name"]: p for p in airflow_json(venv, env, work, "providers", "list")}
    if providers.get(DIST, {}).get("version") != version:
        raise CheckFailed(f"airflow providers list shows {providers.get(DIST)!r}, not {DIST} {version}")
    triggers = {t["class"] for t in airflow_json(venv, env, work, "providers", "triggers")}
    if f"{PACKAGE}.triggers.importexport" not in triggers:
        raise CheckFailed(f"airflow providers triggers lists no {PACKAGE} trigger module: {sorted(triggers)}")
    links = {entry["extra_link_class_name"] for entry in airflow_json(venv, env, work, "providers", "links")}
    ours = {
        f"{PACKAGE}.links.importexport.ImportExportShippingLabelLink",
        f"{PACKAGE}.links.importexport.ImportExportLogLink",
    }
    if not ours <= links:
        raise CheckFailed(f"airflow providers links lacks {sorted(ours - links)}")


def check_emulator(venv: Path, env: dict[str, str], work: Path) -> None:
    helped = run([venv / "bin" / "importexport-emulator", "--help"], cwd=work, env=env).stdout
    if "--port" not in helped:
        raise CheckFailed(f"importexport-emulator --help shows no --port:\n{helped[-2000:]}")
    process = subprocess.Popen(
        [str(venv / "bin" / "importexport-emulator"), "--port", "0", "--profile", "fast"],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        ready = re.search(r"ready on (http://127\.0\.0\.1:\d+)", line)
        if ready is None:
            raise CheckFailed(f"the installed emulator did not start: {line!r}")
        with urllib.request.urlopen(f"{ready.group(1)}/_importexport/health", timeout=30) as answer:
            health = json.loads(answer.read())
        if health.get("status") != "ok":
            raise CheckFailed(f"the installed emulator's health check answered {health!r}")
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="importexport-wheel-check-"))
    version = source_version()
    venv = work / "venv"
    try:
        with step("build the sdist and the wheel"):
            sdist, wheel = build(work / "dist")
        with step(f"check {sdist.name} and {wheel.name}"):
            check_sdist(sdist, version)
            check_wheel(wheel, version)
        with step("install the wheel without extras into a fresh virtualenv"):
            run([UV, "venv", "--quiet", "--python", sys.executable, venv], cwd=work)
            install(venv, str(wheel), work)
        env = fresh_env(work, venv)
        with step("importexport-emulator without the [emulator] extra"):
            check_installed_from_wheel(venv, env, work, version)
            check_missing_extra(venv, env, work)
        with step("install the [emulator] extra"):
            install(venv, f"{DIST}[emulator] @ {wheel.as_uri()}", work)
        with step("airflow providers list / triggers / links"):
            check_airflow_registers(venv, env, work, version)
        with step("importexport-emulator --help, start and health check"):
            check_emulator(venv, env, work)
    except (CheckFailed, subprocess.TimeoutExpired) as err:
        print(f"wheel-check: FAILED: {err}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"wheel-check: kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"wheel-check: {DIST} {version} installs from its wheel and registers with Airflow "
          f"({time.monotonic() - started:.0f} s)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
