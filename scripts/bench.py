"""make bench: the trigger and emulator benchmarks, #12's goals, and one summary line.

Runs scripts/bench_triggers.py and scripts/bench_emulator.py one after the other (at once they
would share the two cores and skew each other), shows their output as it comes, reads their
``bench-triggers:`` and ``bench-emulator:`` lines, prints a table of the goals, and ends with
one line in this form (medians), for scripts to read:

    bench: waits=10000 rss_mib=<x> lag_p99_ms=<x> lag_max_ms=<x> memory_ratio_n1000=<x>
    emulator_getstatus_per_s=<x> listjobs_ms_1k=<x> listjobs_ms_100k=<x>

(on one line). A figure a script did not print, or a script that failed, reads ``nan``.
Usage: ``.venv/bin/python scripts/bench.py [--quick] [--gc freeze,threshold]`` (``--quick``: a smoke
run of each; ``--gc``: also measure an operator's GC settings at the largest N).
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
SUMMARY_KEYS = {
    "waits": "triggers",
    "rss_mib": "triggers",
    "lag_p99_ms": "triggers",
    "lag_max_ms": "triggers",
    "memory_ratio_n1000": "triggers",
    "emulator_getstatus_per_s": "emulator:getstatus_per_s",
    "listjobs_ms_1k": "emulator",
    "listjobs_ms_100k": "emulator",
}


def figure(figures: dict[str, float], key: str) -> float:
    return figures.get(key, math.nan)


@dataclass(frozen=True)
class Goal:
    """One row of #12's table: a name (filled from the figures), what is measured, and its bound."""

    name: str
    measure: Callable[[dict[str, float]], float]
    bound: float
    at_most: bool = True

    def row(self, figures: dict[str, float]) -> str:
        value = self.measure(figures)
        met = "n/a" if math.isnan(value) else ("yes" if (value <= self.bound) == self.at_most else "NO")
        names = {key.partition(":")[2]: f"{value:g}" for key, value in figures.items() if key.startswith("triggers:")}
        return (
            f"| {self.name.format_map(names)} | {value:.4g} | {'<=' if self.at_most else '>='} {self.bound:g} | {met} |"
        )


def ratio(top: str, bottom: str) -> Callable[[dict[str, float]], float]:
    return lambda figures: figure(figures, top) / figure(figures, bottom)


GOALS = (
    Goal("{waits} waits: RSS of the process (MiB)", lambda f: figure(f, "triggers:rss_mib"), 300),
    Goal(
        "memory per wait, client-per-trigger / ours, N=1000",
        lambda f: figure(f, "triggers:memory_ratio_n1000"),
        50,
        at_most=False,
    ),
    Goal("{waits} waits: event-loop lag p99 (ms)", lambda f: figure(f, "triggers:lag_p99_ms"), 100),
    Goal("{waits} waits: event-loop lag max (ms)", lambda f: figure(f, "triggers:lag_max_ms"), 200),
    Goal(
        "{fairness_waits} waits at a {fairness_interval_s} s interval: poll gap p99 past the interval (s)",
        lambda f: figure(f, "triggers:fairness_gap_p99_s") - figure(f, "triggers:fairness_interval_s"),
        5,
    ),
    Goal(
        "emulator: signed GetStatus/s, 32 concurrent",
        lambda f: figure(f, "emulator:getstatus_per_s"),
        1500,
        at_most=False,
    ),
    Goal("emulator: ListJobs page, 100k / 1k jobs", ratio("emulator:listjobs_ms_100k", "emulator:listjobs_ms_1k"), 2),
    Goal(
        "emulator: CreateJob/s, empty / at 100k jobs",
        ratio("emulator:createjob_per_s_0", "emulator:createjob_per_s_100k"),
        2,
    ),
)


def run(script: str, *args: str) -> tuple[int, dict[str, float]]:
    """Run a benchmark script, echoing its output; its exit status and the figures of its summary line."""
    tag = f"bench-{script.removeprefix('bench_').removesuffix('.py')}:"
    process = subprocess.Popen(
        [sys.executable, str(SCRIPTS / script), *args], stdout=subprocess.PIPE, text=True, bufsize=1
    )
    figures: dict[str, float] = {}
    assert process.stdout is not None
    for line in process.stdout:
        print(line, end="", flush=True)
        if line.startswith(tag):
            figures = parse(line.removeprefix(tag))
    return process.wait(), figures


def parse(text: str) -> dict[str, float]:
    figures = {}
    for pair in text.split():
        key, _, value = pair.partition("=")
        try:
            figures[key] = float(value)
        except ValueError:
            figures[key] = math.nan
    return figures


def supports(script: str, option: str) -> bool:
    shown = subprocess.run([sys.executable, str(SCRIPTS / script), "--help"], capture_output=True, text=True)
    return option in shown.stdout


def summary(figures: dict[str, float]) -> str:
    cells = []
    for key, source in SUMMARY_KEYS.items():
        prefix, _, name = source.partition(":")
        value = figure(figures, f"{prefix}:{name or key}")
        cells.append(f"{key}={value:g}")
    return "bench: " + " ".join(cells)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of each benchmark")
    parser.add_argument("--gc", default="", help="also run bench_triggers' GC cases, e.g. freeze,threshold")
    args = parser.parse_args()
    figures: dict[str, float] = {}
    failed = []
    for script, prefix in (("bench_triggers.py", "triggers"), ("bench_emulator.py", "emulator")):
        if not (SCRIPTS / script).exists():
            print(f"{script} is missing: its figures read nan", flush=True)
            continue
        options = ["--quick"] if args.quick and supports(script, "--quick") else []
        if args.gc and script == "bench_triggers.py":
            options += ["--gc", args.gc]
        status, found = run(script, *options)
        if status:
            failed.append(script)
        figures.update({f"{prefix}:{key}": value for key, value in found.items()})
    print("\n| goal (#12) | measured | bound | met |\n|---|---:|---|---|")
    for goal in GOALS:
        print(goal.row(figures))
    if failed:
        print(f"failed: {', '.join(failed)}")
    print(summary(figures))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
