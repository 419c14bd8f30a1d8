#!/usr/bin/env python3
"""``make mutate``: mutation testing of the modules that carry the README's guarantees.

cosmic-ray makes the mutants: it lists every mutation of a module into a session database
(``build/mutation/<module>.sqlite``, readable by ``cr-report`` and ``cr-html``) and writes one
mutation at a time into the file on disk. This driver adds what this project needs around it:

* A copy of the work tree under /tmp. Mutants are written into files while other people run
  tests in the work tree, so the work tree is never touched. ``PYTHONPATH`` names the copy, so
  every process a test starts (``python -m airflow_provider_importexport.emulator``, the
  dag.test() child, the Airflow CLI) imports the mutated package and not the editable install;
  a canary checks that before any mutant runs.
* Per module, only the test files that cover it (``TARGETS``), fastest first, with ``-x``.
* A wall-clock limit per mutant. At the limit the test's process group gets SIGKILL, then every
  process whose environment carries the mutant's token (children that made their own session).
  A mutant that hangs the tests counts as killed by timeout.
* A scope that fits about 40 minutes (docs/mutation.md): equivalent mutants (annotations,
  ``TYPE_CHECKING`` blocks) are dropped, a sufficient subset of cosmic-ray's operators is kept,
  and big modules are restricted to the functions that implement guarantees.
* A report that ends with every survivor (file:line, function, mutation, diff) and the
  per-module kill-rate table.

Usage: ``scripts/mutate.py run [--modules status,hooks] [--jobs 2]``, ``scripts/mutate.py plan``
(counts only, runs no test), ``scripts/mutate.py report`` (print the last report again).
Linux only: the sweep reads /proc.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import dataclasses
import difflib
import fnmatch
import hashlib
import json
import os
import queue
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "airflow_provider_importexport"
TOKEN_VAR = "IMPORTEXPORT_MUTATE_TOKEN"
DEFAULT_OUT = ROOT / "build" / "mutation"
#: Mutants per sampled module in the default scope (docs/mutation.md: the estimate behind it).
SAMPLE_DEFAULT = 16


@dataclasses.dataclass(frozen=True)
class Target:
    """One module to mutate, the test files that cover it, and which of its mutants run."""

    path: str
    #: Test files (or node ids) that cover the module; missing files are skipped and reported.
    tests: tuple[str, ...]
    #: fnmatch patterns on qualified names (``Class.method``, ``function``); ``<module>`` is module level.
    functions: tuple[str, ...] = ("*",)
    #: At most this many in-scope mutants run, picked by a hash of the mutation (``--sample`` overrides).
    sample: int | None = None


_EMULATOR_TESTS = (
    "tests/test_emulator_protocol.py",
    "tests/test_emulator_lifecycle.py",
    "tests/test_emulator_hardening.py",
    "tests/test_emulator_security.py",
    "tests/test_auth_edges.py",
)
_MANIFEST_TESTS = (
    "tests/test_manifest.py",
    "tests/test_manifest_hostile.py",
    "tests/test_manifest_masking_edges.py",
    "tests/test_manifest_kinds.py",
)

# The scope (docs/mutation.md): the functions that implement the README's guarantees, and a
# deterministic sample of their mutants sized so that every module fits about 40 minutes.
TARGETS: dict[str, Target] = {
    "operators": Target(
        f"{PACKAGE}/operators/importexport.py",
        ("tests/test_operators.py", "tests/test_duplicate_guard.py"),
        # no duplicate job: the marker, the state store, adoption, cancel on kill; update and cancel
        functions=(
            "ImportExportCreateJobOperator.*",
            "run_marker",
            "ImportExportUpdateJobOperator.execute",
            "ImportExportCancelJobOperator.execute",
            "_validated",
            "_check_job_type",
        ),
        sample=SAMPLE_DEFAULT,
    ),
    "hooks": Target(
        f"{PACKAGE}/hooks/importexport.py",
        ("tests/test_hook.py", "tests/test_lost_answers.py"),
        # retries only when safe, CreateJob resent only when the service did not act, typed errors
        functions=(
            "RetryPolicy*",
            "error_code",
            "http_status",
            "is_transient",
            "is_safe_to_resend",
            "translate",
            "with_secrets_masked",
            "ended_job_status",
            "ImportExportHook._call",
            "ImportExportHook._retrying",
            "ImportExportHook.retry_policy",
            "ImportExportHook.create_job",
            "ImportExportHook.cancel_job*",
            "ImportExportHook.get_status*",
            "ImportExportHook.list_jobs*",
        ),
        sample=SAMPLE_DEFAULT,
    ),
    "status": Target(f"{PACKAGE}/status.py", ("tests/test_status.py", "tests/test_sensor.py", "tests/test_trigger.py")),
    "triggers": Target(
        f"{PACKAGE}/triggers/importexport.py",
        ("tests/test_trigger.py",),
        functions=("ImportExportJobTrigger.*", "AsyncClientPool.*", "SharedConnection.*"),
        sample=SAMPLE_DEFAULT,
    ),
    "sensors": Target(
        f"{PACKAGE}/sensors/importexport.py",
        ("tests/test_sensor_defaults.py", "tests/test_sensor.py", "tests/test_first_week.py"),
        sample=SAMPLE_DEFAULT,
    ),
    "manifest": Target(
        f"{PACKAGE}/manifest.py",
        _MANIFEST_TESTS,
        # secrets never leave (find, mask, redact), hostile YAML refused, every problem reported
        functions=(
            "is_secret_key",
            "secret_values_in_*",
            "_walk",
            "_scalars",
            "_secret_scalars",
            "_secrets",
            "_written_lines",
            "_guessed_secrets",
            "redact_manifest_text",
            "_leaks",
            "_mask_in",
            "_hides",
            "_redact_*",
            "_masked_data",
            "_Section.secret_values",
            "_Section.to_dict",
            "_plain",
            "Manifest.to_yaml",
            "_ManifestLoader.*",
            "_read_yaml",
            "_refusal_in",
            "_compose",
            "_every_problem",
            "_check_section",
            "_check_common",
            "Manifest.validate",
            "Manifest.problems",
            "parse_manifest",
            "_read",
        ),
        sample=SAMPLE_DEFAULT,
    ),
    # register_manifest_secrets runs only inside the operators: their end-to-end secrets test covers it
    "masking": Target(
        f"{PACKAGE}/masking.py",
        (*_MANIFEST_TESTS, "tests/test_operators.py::test_secrets_never_reach_logs_xcom_or_rendered_fields"),
    ),
    "auth": Target(
        f"{PACKAGE}/emulator/auth.py",
        _EMULATOR_TESTS,
        # every request signed by a known account, clock skew, expiry, payload hashes
        functions=(
            "Authenticator.*",
            "check_payload",
            "body_hash_to_check",
            "s3_payload_hash",
            "_canonical_request",
            "_sigv4_signature",
            "_api_sigv2_signature",
            "_s3_sigv2_signature",
            "_parse_header",
            "_parse_query",
            "_sigv4_parts",
            "_parse_stamp",
        ),
        sample=SAMPLE_DEFAULT,
    ),
    "backend": Target(
        f"{PACKAGE}/emulator/backend.py",
        _EMULATOR_TESTS,
        # ownership per account, a failed job ends alone in DeviceError, purges, new jobs
        functions=(
            "ImportExportBackend.create_job",
            "ImportExportBackend.update_job",
            "ImportExportBackend.cancel_job",
            "ImportExportBackend.get_status",
            "ImportExportBackend.list_jobs",
            "ImportExportBackend.transition",
            "ImportExportBackend._look_up",
            "ImportExportBackend._validated",
            "ImportExportBackend._admit",
            "ImportExportBackend._purge_if_due",
            "ImportExportBackend._settle",
            "ImportExportBackend._run",
            "ImportExportBackend._persist",
        ),
        sample=SAMPLE_DEFAULT,
    ),
    # backend.py was split (#13): the state machine, the quota and the state file are their own modules.
    "lifecycle": Target(
        f"{PACKAGE}/emulator/lifecycle.py",
        (*_EMULATOR_TESTS, "tests/test_first_week_kit.py"),  # the kit's test reads the admin's advice
        functions=(
            "Lifecycle.step",
            "Lifecycle._process",
            "Lifecycle._expire",
            "Lifecycle.transfer",
            "Lifecycle.finish",
            "Lifecycle.purge_due",
        ),
        sample=SAMPLE_DEFAULT,
    ),
    "admission": Target(f"{PACKAGE}/emulator/admission.py", _EMULATOR_TESTS),
    "persistence": Target(
        f"{PACKAGE}/emulator/persistence.py",
        (*_EMULATOR_TESTS, "tests/test_emulator_scale.py"),
        functions=(
            "StateFile.*",
            "StateStore.load",
            "StateStore._read",
            "StateStore._replay",
            "StateStore.save",
            "StateStore.append",
            "_apply",
            "_write_atomically",
        ),
        sample=SAMPLE_DEFAULT,
    ),
}

# A sufficient subset of cosmic-ray's operators (Offutt et al.: the negation and the boundary
# shift of each relational operator, one arithmetic counterpart per binary operator). Every
# operator outside these three families is kept whole.
_BINARY_COUNTERPART = {
    "Add": "Sub",
    "Sub": "Add",
    "Mul": "Div",
    "Div": "Mul",
    "FloorDiv": "Mul",
    "Mod": "FloorDiv",
    "Pow": "Mul",
    "BitOr": "BitAnd",
    "BitAnd": "BitOr",
    "BitXor": "BitAnd",
    "LShift": "RShift",
    "RShift": "LShift",
}
_COMPARISON_KEPT = {
    ("Eq", "NotEq"),
    ("NotEq", "Eq"),
    ("Lt", "GtE"),
    ("Lt", "LtE"),
    ("LtE", "Gt"),
    ("LtE", "Lt"),
    ("Gt", "LtE"),
    ("Gt", "GtE"),
    ("GtE", "Lt"),
    ("GtE", "Gt"),
    ("Is", "IsNot"),
    ("IsNot", "Is"),
}
_UNARY_KEPT = {"Delete_Not", "USub_UAdd", "UAdd_USub", "Delete_Invert"}


def operator_kept(name: str) -> bool:
    """Whether a cosmic-ray operator (``core/ReplaceBinaryOperator_Add_Mul``) is in the subset."""
    family, _, rest = name.removeprefix("core/").partition("_")
    if family == "ReplaceBinaryOperator":
        source, _, replacement = rest.partition("_")
        return _BINARY_COUNTERPART.get(source) == replacement
    if family == "ReplaceComparisonOperator":
        source, _, replacement = rest.partition("_")
        return (source, replacement) in _COMPARISON_KEPT
    if family == "ReplaceUnaryOperator":
        return rest in _UNARY_KEPT
    return True


# --- the source: what is annotation, what is type-checking only, which function a line is in ---


Span = tuple[tuple[int, int], tuple[int, int]]


class SourceMap:
    """Positions of a module that never run (annotations, ``if TYPE_CHECKING``) and qualified names."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        tree = ast.parse(text)
        self.dead: list[Span] = []
        self.scopes: list[tuple[int, int, str]] = []  # first line, last line, qualified name
        self._visit(tree, "")

    def _span(self, node: ast.AST) -> Span:
        start = (node.lineno, self._chars(node.lineno, node.col_offset))  # type: ignore[attr-defined]
        end_line = node.end_lineno  # type: ignore[attr-defined]
        return start, (end_line, self._chars(end_line, node.end_col_offset))  # type: ignore[attr-defined]

    def _chars(self, line: int, byte_offset: int) -> int:
        """ast counts UTF-8 bytes, parso counts characters."""
        text = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        return len(text.encode("utf-8")[:byte_offset].decode("utf-8", "ignore"))

    def _visit(self, node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{prefix}{child.name}"
                first = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                self.scopes.append((first, child.end_lineno or child.lineno, name))
                if not isinstance(child, ast.ClassDef):
                    self._annotations(child)
                self._visit(child, f"{name}.")
                continue
            if isinstance(child, ast.AnnAssign):
                self.dead.append(self._span(child.annotation))
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                self.dead.append(self._span(child))
                continue
            self._visit(child, prefix)

    def _annotations(self, function: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        arguments = function.args
        every = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs, arguments.vararg, arguments.kwarg]
        for argument in every:
            if argument is not None and argument.annotation is not None:
                self.dead.append(self._span(argument.annotation))
        if function.returns is not None:
            self.dead.append(self._span(function.returns))

    def never_runs(self, position: tuple[int, int]) -> bool:
        return any(start <= position < end for start, end in self.dead)

    def qualname(self, line: int) -> str:
        """The innermost function or class around a line; ``<module>`` outside all of them."""
        inside = [(last - first, name) for first, last, name in self.scopes if first <= line <= last]
        return min(inside)[1] if inside else "<module>"


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


# --- planning: every mutant cosmic-ray makes, and why it is or is not run ---


@dataclasses.dataclass
class Mutant:
    """One cosmic-ray work item, its scope decision and, once run, its result."""

    module: str
    job_id: str
    path: str
    operator: str
    occurrence: int
    line: int
    column: int
    function: str
    skip: str = ""  # why the mutant is out of scope; "" when it runs
    outcome: str = ""  # killed, timeout, survived, incompetent, no-mutation
    detail: str = ""  # the test that killed it, or why it is incompetent
    wall: float = 0.0
    cpu: float = 0.0
    diff: str = ""


def _session_path(out: Path, module: str) -> Path:
    return out / f"{module}.sqlite"


def plan(module: str, target: Target, copy: Path, out: Path) -> list[Mutant]:
    """A fresh cosmic-ray session for one module; each mutant says why it is out of scope, if it is."""
    import cosmic_ray.commands
    from cosmic_ray.work_db import WorkDB, use_db

    source = copy / target.path
    smap = SourceMap(source.read_text(encoding="utf-8"))
    mutants: list[Mutant] = []
    session = _session_path(out, module)
    session.parent.mkdir(parents=True, exist_ok=True)
    session.unlink(missing_ok=True)
    with use_db(str(session), WorkDB.Mode.create) as db:
        cosmic_ray.commands.init([source], db, {})
        for item in db.pending_work_items:
            spec = item.mutations[0]
            line, column = spec.start_pos
            mutant = Mutant(
                module=module,
                job_id=item.job_id,
                path=target.path,
                operator=spec.operator_name,
                occurrence=spec.occurrence,
                line=line,
                column=column,
                function=smap.qualname(line),
            )
            if smap.never_runs((line, column)):
                mutant.skip = "never runs (annotation or TYPE_CHECKING)"
            elif not operator_kept(spec.operator_name):
                mutant.skip = "operator outside the sufficient subset"
            elif not any(fnmatch.fnmatchcase(mutant.function, pattern) for pattern in target.functions):
                mutant.skip = "function outside the allow-list"
            mutants.append(mutant)
    return mutants


def mark_skipped(out: Path, mutants: list[Mutant]) -> None:
    """Out-of-scope mutants are 'skipped' in the cosmic-ray session (one transaction per reason)."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    reasons: dict[str, list[str]] = {}
    for mutant in mutants:
        if mutant.skip:
            reasons.setdefault(mutant.skip, []).append(mutant.job_id)
    if not mutants:
        return
    with use_db(str(_session_path(out, mutants[0].module)), WorkDB.Mode.open) as db:
        for reason, job_ids in reasons.items():
            db.set_multiple_results(job_ids, WorkResult(worker_outcome=WorkerOutcome.SKIPPED, output=reason))


# --- the copy, its environment, and one test run ---


def make_copy(prefix: str) -> Path:
    """Tracked and untracked (not ignored) files of the work tree as they are now, under /tmp."""
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.decode()
    copy = Path(tempfile.mkdtemp(prefix=prefix))
    for name in filter(None, listing.split("\0")):
        source = ROOT / name
        if source.is_file():  # a deleted but still tracked file is skipped
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / name)
    return copy


@dataclasses.dataclass
class Runner:
    """Runs pytest in a copy: its environment, its bytecode cache and its hard limit."""

    copy: Path
    pycache: Path

    def environment(self, token: str, tmp: Path) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in {"PYTHONDONTWRITEBYTECODE", "IMPORTEXPORT_TESTS_HOME", "AIRFLOW_HOME", "PYTHONPATH"}
        }
        env.update(
            {
                "PYTHONPATH": str(self.copy),  # before the editable install's finder, in every child
                "PYTHONPYCACHEPREFIX": str(self.pycache),  # site-packages compiled once, the copy forgotten per mutant
                "TMPDIR": str(tmp),  # each run's AIRFLOW_HOME and tmp_path go away with it
                TOKEN_VAR: token,
            }
        )
        return env

    def cached_bytecode(self, source: Path) -> Path:
        """Where Python keeps the bytecode of ``source`` under PYTHONPYCACHEPREFIX."""
        folder = self.pycache / source.parent.resolve().relative_to("/")
        return folder / f"{source.stem}.{sys.implementation.cache_tag}.pyc"

    def forget_bytecode(self, source: Path) -> None:
        """A mutant can keep the file's size and mtime second, so its stale bytecode could be loaded."""
        self.cached_bytecode(source).unlink(missing_ok=True)
        for stale in source.parent.glob(f"__pycache__/{source.stem}.*.pyc"):
            stale.unlink(missing_ok=True)

    def check_imports(self) -> None:
        """A canary: ``python -m <package>.emulator`` started elsewhere must import the copy's code."""
        init = self.copy / PACKAGE / "__init__.py"
        original = init.read_bytes()
        try:
            init.write_bytes(original + b"\nraise SystemExit(97)\n")
            self.forget_bytecode(init)
            with self._scratch() as (token, tmp):
                done = subprocess.run(
                    [sys.executable, "-m", f"{PACKAGE}.emulator", "--help"],
                    cwd="/",
                    env=self.environment(token, tmp),
                    capture_output=True,
                    timeout=120,
                    check=False,
                )
            cached = self.cached_bytecode(init).exists()
        finally:
            init.write_bytes(original)
            self.forget_bytecode(init)
        if done.returncode != 97:
            sys.exit(
                f"mutate: a subprocess emulator does not import the copy in {self.copy} "
                f"(exit {done.returncode}): mutants would not reach it"
            )
        if not cached:
            sys.exit(f"mutate: no bytecode at {self.cached_bytecode(init)}: a mutant's stale bytecode could be loaded")

    @contextlib.contextmanager
    def _scratch(self) -> Iterator[tuple[str, Path]]:
        """A token for the run's processes and a TMPDIR; both cleaned up however the run ends."""
        token = uuid.uuid4().hex
        tmp = Path(tempfile.mkdtemp(prefix="run-", dir=self.copy.parent / f"{self.copy.name}-tmp"))
        _ACTIVE.add(token)
        try:
            yield token, tmp
        finally:
            sweep(token)
            _ACTIVE.discard(token)
            shutil.rmtree(tmp, ignore_errors=True)

    def pytest(self, files: list[str], limit: float, *, stop_first: bool) -> RunResult:
        """pytest on ``files`` in the copy; at ``limit`` seconds everything it started gets SIGKILL."""
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--no-header"]
        command += ["-x", *files] if stop_first else files
        with self._scratch() as (token, tmp), (tmp / "pytest.out").open("w+b") as output:
            started = time.monotonic()
            process = subprocess.Popen(
                command,
                cwd=self.copy,
                env=self.environment(token, tmp),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            status, cpu, timed_out = _wait(process, started + limit)
            wall = time.monotonic() - started
            output.seek(0)
            text = output.read().decode("utf-8", "replace")
        return RunResult(status, wall, cpu, timed_out, text)


@dataclasses.dataclass
class RunResult:
    """What one pytest run did."""

    returncode: int
    wall: float
    cpu: float  # user + system of pytest and every child it reaped
    timed_out: bool
    output: str

    def first_failure(self) -> str:
        found = re.search(r"^(?:FAILED|ERROR) (\S+)", self.output, re.MULTILINE)
        if found:
            return found.group(1)
        lines = [line for line in self.output.splitlines() if line.strip()]
        return f"pytest exit {self.returncode}: {lines[-1][:160] if lines else 'no output'}"


def _wait(process: subprocess.Popen[bytes], deadline: float) -> tuple[int, float, bool]:
    """Reap ``process`` with wait4 (for its CPU time); past the deadline SIGKILL its process group."""
    timed_out = False
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            return process.returncode, usage.ru_utime + usage.ru_stime, timed_out
        if not timed_out and time.monotonic() > deadline:
            timed_out = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        time.sleep(0.1)


#: Tokens of the test runs under way: on ^C the driver kills their processes (they have their own session).
_ACTIVE: set[str] = set()


def sweep(token: str) -> int:
    """SIGKILL every process whose environment has this run's token: children in their own session too."""
    needle = f"{TOKEN_VAR}={token}".encode()
    killed = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGKILL)
                killed += 1
    return killed


# --- running one module ---


@dataclasses.dataclass
class Baseline:
    """The unmutated module's test files, fastest first, and their wall time."""

    files: list[str]
    seconds: dict[str, float]
    missing: list[str]

    @property
    def total(self) -> float:
        return sum(self.seconds.values())


def baseline(runner: Runner, target: Target, known: dict[str, float]) -> Baseline:
    """Each test file alone on the unmutated copy: all must pass, and their times order them.

    ``known`` holds the files already timed in this run (modules share test files).
    """
    present = [name for name in target.tests if (runner.copy / name.partition("::")[0]).is_file()]
    missing = [name for name in target.tests if name not in present]
    if not present:
        raise RuntimeError(f"none of its test files exists ({', '.join(target.tests)})")  # pytest would run all
    for name in present:
        if name in known:
            continue
        result = runner.pytest([name], 1800, stop_first=False)
        if result.returncode != 0:
            tail = "\n".join(result.output.splitlines()[-30:])
            raise RuntimeError(f"{name} fails without any mutant ({result.first_failure()}):\n{tail}")
        known[name] = result.wall
    seconds = {name: known[name] for name in present}
    return Baseline(sorted(present, key=seconds.__getitem__), seconds, missing)


def run_mutant(runner: Runner, mutant: Mutant, files: list[str], limit: float) -> Mutant:
    """Apply one mutation in the runner's copy, run the module's tests, put the file back."""
    import cosmic_ray.plugins
    from cosmic_ray.mutating import use_mutation

    source = runner.copy / mutant.path
    operator = cosmic_ray.plugins.get_operator(mutant.operator)()
    try:
        applied = use_mutation(source, operator, mutant.occurrence)
        try:
            entered = applied.__enter__()
        except Exception as err:  # a cosmic-ray operator that cannot handle this node: not a verdict
            mutant.outcome, mutant.detail = "no-mutation", f"cosmic-ray could not apply it ({type(err).__name__})"
            return mutant
        with contextlib.ExitStack() as stack:
            stack.push(applied)
            original, mutated = entered
            if mutated is None:
                mutant.outcome, mutant.detail = "no-mutation", "cosmic-ray could not apply it"
                return mutant
            mutant.diff = _diff(original, mutated)
            runner.forget_bytecode(source)
            result = runner.pytest(files, limit, stop_first=True)
    finally:
        runner.forget_bytecode(source)
    mutant.wall, mutant.cpu = round(result.wall, 2), round(result.cpu, 2)
    if result.timed_out:
        mutant.outcome, mutant.detail = "timeout", f"no end within {limit:.0f} s: killed"
    elif result.returncode == 0:
        mutant.outcome = "survived"
    elif result.returncode == 5:
        mutant.outcome, mutant.detail = "incompetent", "pytest collected no test"
    else:
        mutant.outcome, mutant.detail = "killed", result.first_failure()
    return mutant


def _diff(original: str, mutated: str) -> str:
    lines = difflib.unified_diff(original.splitlines(), mutated.splitlines(), lineterm="", n=0)
    return "\n".join(line for line in lines if not line.startswith(("---", "+++")))


def select(mutants: list[Mutant], target: Target, sample: str | None, seed: int) -> list[Mutant]:
    """The in-scope mutants that run: all, or the first ``sample`` in hash order (marked skipped beyond)."""
    cap = target.sample if sample is None else None if sample == "all" else int(sample)
    chosen = sorted((m for m in mutants if not m.skip), key=lambda m: _sample_key(m, seed))
    if cap is not None:
        for mutant in chosen[cap:]:
            mutant.skip = f"{_SAMPLED} of {cap} (seed {seed})"
        chosen = chosen[:cap]
    return chosen


def _sample_key(mutant: Mutant, seed: int) -> str:
    """Stable across runs and machines while the mutated line is unchanged; the seed rotates the sample."""
    text = f"{seed}:{mutant.path}:{mutant.function}:{mutant.operator}:{mutant.line}:{mutant.column}"
    return hashlib.sha256(text.encode()).hexdigest()


def record(out: Path, mutant: Mutant) -> None:
    """Keep a result in the cosmic-ray session and in results.jsonl (what the report reads)."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome, WorkResult

    with _results_lock, (out / "results.jsonl").open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(dataclasses.asdict(mutant)) + "\n")
    if mutant.outcome == "no-mutation":
        result = WorkResult(worker_outcome=WorkerOutcome.NO_TEST)
    else:
        test = {"survived": TestOutcome.SURVIVED, "incompetent": TestOutcome.INCOMPETENT}
        result = WorkResult(
            worker_outcome=WorkerOutcome.NORMAL,
            test_outcome=test.get(mutant.outcome, TestOutcome.KILLED),
            output=mutant.detail,
            diff=mutant.diff,
        )
    with use_db(str(_session_path(out, mutant.module)), WorkDB.Mode.open) as db:
        db.set_result(mutant.job_id, result)


_results_lock = threading.Lock()


def _runners(count: int, out: Path) -> list[Runner]:
    """``count`` fresh copies (one per job), each with a scratch folder beside it."""
    runners = []
    for _ in range(count):
        copy = make_copy("importexport-mutate-")
        (copy.parent / f"{copy.name}-tmp").mkdir()
        runners.append(Runner(copy, (out / "pycache").resolve()))  # children run elsewhere: an absolute path
    return runners


def _remove(runners: list[Runner]) -> None:
    """Kill what is still running (an interrupted run), then delete the copies and their bytecode."""
    for token in list(_ACTIVE):
        sweep(token)
    for runner in runners:
        for folder in (runner.copy, runner.copy.parent / f"{runner.copy.name}-tmp"):
            shutil.rmtree(folder, ignore_errors=True)
            shutil.rmtree(runner.pycache / folder.relative_to("/"), ignore_errors=True)


def run(args: argparse.Namespace) -> int:
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    modules = _modules(args.modules)
    _forget_results(out, modules)
    _write_source(out, args)
    runners = _runners(args.jobs, out)
    began = time.monotonic()
    try:
        runners[0].check_imports()
        copies = ", ".join(str(runner.copy) for runner in runners)
        print(f"mutate: copies {copies}; a subprocess emulator imports the copy (canary checked)")
        known: dict[str, float] = {}
        for module in modules:
            _run_module(module, TARGETS[module], runners, args, out, known)
    finally:
        _remove(runners)
    print(f"\nmutate: {len(modules)} module(s) in {time.monotonic() - began:.0f} s with {args.jobs} job(s)\n")
    print(report(out))
    return 0


def _run_module(
    module: str, target: Target, runners: list[Runner], args: argparse.Namespace, out: Path, known: dict[str, float]
) -> None:
    """Plan, baseline, then every chosen mutant across the runners (one thread each)."""
    mutants = plan(module, target, runners[0].copy, out)
    chosen = select(mutants, target, args.sample, args.seed)
    mark_skipped(out, mutants)
    _write_plan(out, module, mutants)
    print(f"\n== {module}: {target.path}: {len(mutants)} mutants, {_scoped(mutants)} in scope, {len(chosen)} to run")
    try:
        base = baseline(runners[0], target, known)
    except RuntimeError as err:
        print(f"mutate: {module}: baseline failed, no mutant run: {err}")
        _write_plan(out, module, mutants, baseline_error=str(err).splitlines()[0])
        return
    limit = max(args.min_limit, args.limit_factor * base.total + 30)
    print(
        f"   baseline {base.total:.0f} s ({', '.join(f'{n} {s:.0f} s' for n, s in base.seconds.items())}); "
        f"missing: {', '.join(base.missing) or 'none'}; limit per mutant {limit:.0f} s"
    )
    _write_plan(out, module, mutants, baseline=base, limit=limit)
    tasks: queue.Queue[Mutant] = queue.Queue()
    for mutant in chosen:
        tasks.put(mutant)
    done: queue.Queue[Mutant | BaseException] = queue.Queue()

    def work(runner: Runner) -> None:
        while True:
            try:
                mutant = tasks.get_nowait()
            except queue.Empty:
                return
            try:
                done.put(run_mutant(runner, mutant, base.files, limit))
            except BaseException as err:  # reported, and the run stops
                done.put(err)
                return

    threads = [threading.Thread(target=work, args=(runner,), daemon=True) for runner in runners]
    for thread in threads:
        thread.start()
    for count in range(1, len(chosen) + 1):
        item = done.get()
        if isinstance(item, BaseException):
            raise item
        record(out, item)
        where = f"{item.path}:{item.line}"
        print(
            f"   [{count}/{len(chosen)}] {item.outcome:<11} {item.wall:6.1f} s  {where} {item.operator} {item.detail}"
        )
    for thread in threads:
        thread.join()


def _modules(names: str | None) -> list[str]:
    if not names:
        return list(TARGETS)
    chosen = [name.strip() for name in names.replace(" ", ",").split(",") if name.strip()]
    unknown = [name for name in chosen if name not in TARGETS]
    if unknown:
        sys.exit(f"mutate: unknown module(s) {', '.join(unknown)}; known: {', '.join(TARGETS)}")
    return chosen


def _write_source(out: Path, args: argparse.Namespace) -> None:
    """What was mutated (the work tree's commit, and whether it had uncommitted changes) and how."""

    def git(*words: str) -> str:
        done = subprocess.run(["git", *words], cwd=ROOT, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    source = {
        "commit": git("rev-parse", "--short", "HEAD"),
        "uncommitted_changes": bool(git("status", "--porcelain", "--untracked-files=no")),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "jobs": args.jobs,
        "sample": args.sample or "module default",
        "seed": args.seed,
    }
    (out / "source.json").write_text(json.dumps(source, indent=1))


def _scoped(mutants: list[Mutant]) -> int:
    """Mutants inside the scope (operator subset, allow-list), sampled or not."""
    return sum(1 for m in mutants if not m.skip or m.skip.startswith(_SAMPLED))


_SAMPLED = "not in the sample"


def _forget_results(out: Path, modules: list[str]) -> None:
    """Results of the modules about to run go; other modules' results stay for the report."""
    path = out / "results.jsonl"
    if path.exists():
        kept = [line for line in path.read_text().splitlines() if json.loads(line)["module"] not in modules]
        path.write_text("".join(f"{line}\n" for line in kept))


def _write_plan(
    out: Path, module: str, mutants: list[Mutant], *, baseline: Baseline | None = None, limit: float = 0.0,
    baseline_error: str = "",
) -> None:  # fmt: skip
    path = out / "plan.json"
    plans = json.loads(path.read_text()) if path.exists() else {}
    plans[module] = {
        "path": TARGETS[module].path,
        "generated": len(mutants),
        "skipped": dict(Counter(m.skip for m in mutants if m.skip)),
        "in_scope": _scoped(mutants),
        "chosen": sum(1 for m in mutants if not m.skip),
        "baseline": baseline.seconds if baseline else {},
        "missing_tests": baseline.missing if baseline else [],
        "limit": round(limit),
        "baseline_error": baseline_error,
    }
    path.write_text(json.dumps(plans, indent=1))


# --- the report ---


def report(out: Path) -> str:
    """Survivors with their diffs, then the per-module kill-rate table (the last thing printed)."""
    plans: dict[str, Any] = json.loads((out / "plan.json").read_text()) if (out / "plan.json").exists() else {}
    results: list[dict[str, Any]] = []
    if (out / "results.jsonl").exists():
        results = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines() if line]
    lines = ["# Mutation testing report (cosmic-ray)", ""]
    if (out / "source.json").exists():
        source = json.loads((out / "source.json").read_text())
        dirty = " with uncommitted changes" if source["uncommitted_changes"] else ""
        lines += [
            f"Last run {source['started']} on {source['commit']}{dirty}; jobs {source['jobs']}, "
            f"sample {source['sample']}, seed {source['seed']}.",
            "",
        ]
    survivors = sorted((r for r in results if r["outcome"] == "survived"), key=lambda r: (r["path"], r["line"]))
    lines += [f"## Survivors ({len(survivors)})", ""]
    for r in survivors:
        lines.append(f"- {r['path']}:{r['line']} in `{r['function']}`: {r['operator']} (occurrence {r['occurrence']})")
        lines += [f"      {line}" for line in r["diff"].splitlines()]
    odd = [r for r in results if r["outcome"] in {"incompetent", "no-mutation"}]
    if odd:
        lines += ["", f"## Not counted ({len(odd)})", ""]
        lines += [f"- {r['path']}:{r['line']} {r['operator']}: {r['outcome']}, {r['detail']}" for r in odd]
    notes = [
        f"- {m}: test files not there yet, skipped: {', '.join(p['missing_tests'])}"
        for m, p in plans.items()
        if p.get("missing_tests")
    ]
    notes += [
        f"- {m}: no mutant ran, the unmutated tests fail: {p['baseline_error']}"
        for m, p in plans.items()
        if p.get("baseline_error")
    ]
    if notes:
        lines += ["", "## Notes", "", *notes]
    lines += ["", "## Kill rate per module", ""]
    lines += [
        "| module | mutants | in scope | run | killed | by timeout | survived | kill rate | median s | total s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    totals = Counter[str]()
    for module in TARGETS:
        if module not in plans:
            continue
        plan_ = plans[module]
        mine = [r for r in results if r["module"] == module]
        count = Counter(r["outcome"] for r in mine)
        killed = count["killed"] + count["timeout"]
        judged = killed + count["survived"]
        rate = f"{100 * killed / judged:.1f}%" if judged else "-"
        if plan_.get("baseline_error"):
            rate = "baseline failed"
        walls = [r["wall"] for r in mine if r["outcome"] in {"killed", "timeout", "survived"}]
        median = f"{statistics.median(walls):.1f}" if walls else "-"
        total = sum(r["wall"] for r in mine)
        lines.append(
            f"| {module} | {plan_['generated']} | {plan_['in_scope']} | {len(mine)} | {killed} | {count['timeout']} "
            f"| {count['survived']} | {rate} | {median} | {total:.0f} |"
        )
        totals.update(generated=plan_["generated"], scope=plan_["in_scope"], run=len(mine), killed=killed)
        totals.update(timeout=count["timeout"], survived=count["survived"], seconds=round(total))
    judged = totals["killed"] + totals["survived"]
    rate = f"{100 * totals['killed'] / judged:.1f}%" if judged else "-"
    lines.append(
        f"| **all** | {totals['generated']} | {totals['scope']} | {totals['run']} | {totals['killed']} "
        f"| {totals['timeout']} | {totals['survived']} | {rate} | | {totals['seconds']} |"
    )
    text = "\n".join(lines) + "\n"
    (out / "report.md").write_text(text)
    return text


# --- plan only: counts without running a test ---


def show_plan(args: argparse.Namespace) -> int:
    """Counts per module; with ``--baseline`` also the unmutated test times and a time estimate.

    The estimate takes the status.py trial's profile (docs/mutation.md): a share ``--kill-share``
    of mutants dies after ``--kill-seconds`` (at most half the baseline), the rest survive and
    run every test file (about the baseline).
    """
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    runners = _runners(1, out)
    runner = runners[0]
    known: dict[str, float] = {}
    total = 0.0
    try:
        if args.baseline:
            runner.check_imports()
        for module in _modules(args.modules):
            target = TARGETS[module]
            mutants = plan(module, target, runner.copy, out / "plan-only")
            chosen = select(mutants, target, args.sample, args.seed)
            print(f"{module:<10} {len(mutants):5d} mutants, {_scoped(mutants):4d} in scope, {len(chosen):4d} to run")
            for reason, count in Counter(m.skip for m in mutants if m.skip).most_common():
                print(f"    {count:5d} skipped: {reason}")
            if args.verbose:
                for function, count in Counter(m.function for m in chosen).most_common():
                    print(f"    {count:5d} to run in {function}")
            if not args.baseline:
                continue
            timed = set(known)
            base = baseline(runner, target, known)
            kill = min(args.kill_seconds, base.total / 2)
            each = args.kill_share * kill + (1 - args.kill_share) * base.total
            total += sum(known[name] for name in base.files if name not in timed) + len(chosen) * each
            print(
                f"    baseline {base.total:.0f} s ({', '.join(f'{n} {s:.0f} s' for n, s in base.seconds.items())}); "
                f"estimate {len(chosen)} x {each:.0f} s = {len(chosen) * each / 60:.0f} min"
            )
    finally:
        _remove(runners)
        shutil.rmtree(out / "plan-only", ignore_errors=True)
    if args.baseline:
        print(f"estimate with one job, baselines included: {total / 60:.0f} min")
    return 0


def _stop(signum: int, _frame: Any) -> None:
    """SIGTERM and SIGHUP unwind like ^C, so the copies go and no test process is left behind."""
    raise SystemExit(128 + signum)


def main() -> int:
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGHUP, _stop)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="sessions, results and report (build/mutation)")
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="run the mutants and print the report")
    plan_parser = sub.add_parser("plan", help="count the mutants per module and scope; runs no test")
    for each in (run_parser, plan_parser):
        each.add_argument("--modules", help=f"comma-separated, of: {', '.join(TARGETS)} (default: all)")
        each.add_argument("--sample", help="mutants per module: a number or 'all' (default: the module's scope)")
        each.add_argument("--seed", type=int, default=0, help="another seed picks another sample")
    run_parser.add_argument("--jobs", type=int, default=2, help="mutants at once, each in its own copy")
    run_parser.add_argument("--limit-factor", type=float, default=2.0, help="limit per mutant: this x baseline + 30 s")
    run_parser.add_argument("--min-limit", type=float, default=60.0, help="the per-mutant limit is never below this")
    plan_parser.add_argument("--verbose", action="store_true", help="counts per function")
    plan_parser.add_argument("--baseline", action="store_true", help="also time the unmutated tests, and estimate")
    plan_parser.add_argument("--kill-share", type=float, default=0.85, help="estimate: share of mutants killed")
    plan_parser.add_argument("--kill-seconds", type=float, default=15.0, help="estimate: mean seconds to a kill")
    sub.add_parser("report", help="print the last report again")
    args = parser.parse_args()
    args.out = args.out.resolve()
    if args.command == "run":
        return run(args)
    if args.command == "plan":
        return show_plan(args)
    print(report(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
