"""Thousands of waits in one triggerer event loop: memory, loop lag, polling rate, fairness.

N concurrent waits of the real ``ImportExportJobTrigger.run()`` (built as the sensor builds it,
then through ``serialize()`` and back, started one per loop iteration as the triggerer starts
them) against one emulator process whose jobs never move, so every wait keeps polling. Side by
side in one run, each case in a fresh process, the order alternating by round:

* ``ours``: the provider's trigger;
* ``baseline``: the same wait written as the Amazon provider's triggers are, one hook and one
  aiobotocore client per trigger (``async with await hook.get_async_conn() as client``).

Per case: RSS, memory and garbage-collected objects per wait (the growth over a process that
already holds one wait, so code and the first client are not counted), event-loop lag (a 100 ms
ticker: p50/p99/max), full garbage collections and their longest pause, GetStatus calls per
second (the emulator's own count) against those demanded, time until every wait has polled
once, failed calls and lost waits (a wait that ended). Polls are recorded at the aiobotocore
client, the same way for both variants. A fairness case runs 10,000 waits at a 60 s interval,
long enough for two polls of every wait, and reports the gaps between a wait's polls.

``--gc MODE`` runs ``ours`` once more per round under an operator's GC setting (``freeze``:
``gc.freeze()`` once the process has loaded its code; ``threshold``: ``gc.set_threshold(50_000,
20, 100)``), to measure what that tuning buys; the provider itself never touches the collector.

Usage: ``.venv/bin/python scripts/bench_triggers.py [--quick] [--sizes 100,1000,10000] [--rounds 3]``;
``--real-triggerer`` instead runs a real ``airflow triggerer`` holding deferred sensor waits
(scripts/bench_real_triggerer.py). Prints each case as JSON, a table of medians (min to max),
and ends with a ``bench-triggers:`` line of medians.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from script_env import fake_aws_environment, sample_manifest

#: Operator GC settings the --gc cases measure (what an airflow_local_settings.py could do).
GC_MODES = ("default", "freeze", "threshold")
#: The fairness case: waits, poll interval, and a window long enough for two polls of each.
FAIRNESS = {"waits": 10000, "delay": 60.0, "seconds": 150.0}
QUICK_FAIRNESS = {"waits": 1000, "delay": 10.0, "seconds": 30.0}


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def percentile(values: list[float], share: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


# --- the worker: one case in a fresh process ----------------------------------------------------


def worker_environment(endpoint: str, home: str) -> None:
    os.environ.update(
        fake_aws_environment(
            AIRFLOW_HOME=home,
            AIRFLOW__LOGGING__LOGGING_LEVEL="INFO",  # as a triggerer logs; the driver discards it
            AIRFLOW_CONN_AWS_DEFAULT=json.dumps(
                {"conn_type": "aws", "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"}}
            ),
        )
    )


def baseline_trigger_class() -> type:
    """The wait as the Amazon provider writes triggers: a hook and a client per trigger."""
    from airflow.triggers.base import TriggerEvent

    from airflow_provider_importexport.status import evaluate_wait
    from airflow_provider_importexport.triggers.importexport import ImportExportJobTrigger

    class ClientPerTrigger(ImportExportJobTrigger):
        async def run(self) -> Any:
            hook = self.hook()
            async with await hook.get_async_conn() as client:
                while True:
                    status = await hook.get_status_async(self.job_id, client)
                    verdict = evaluate_wait(status, self.wait_for, self.on_success_with_errors)
                    if verdict.done:
                        yield TriggerEvent({"status": verdict.state})
                        return
                    await asyncio.sleep(self.waiter_delay)

    return ClientPerTrigger


class Probe:
    """Loop lag, polls per wait, failed calls and full collections, measured inside the worker."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self.cpu_lags: list[float] = []
        self.first_poll: dict[str, float] = {}
        self.last_poll: dict[str, float] = {}
        self.gaps: list[float] = []
        self.errors = 0
        self.gc_pauses: list[float] = []
        self._gc_started = 0.0
        gc.callbacks.append(self._on_gc)
        self._record_calls()

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.gc_pauses.append(time.perf_counter() - self._gc_started)

    def _record_calls(self) -> None:
        """Record every GetStatus at the aiobotocore client: the same place for both variants."""
        from aiobotocore.client import AioBaseClient

        original = AioBaseClient._make_api_call
        probe = self

        async def recorded(client: Any, operation: str, params: dict[str, Any]) -> Any:
            if operation == "GetStatus":
                probe.polled(str(params.get("JobId")))
            try:
                return await original(client, operation, params)
            except Exception:
                probe.errors += 1
                raise

        AioBaseClient._make_api_call = recorded  # type: ignore[method-assign]

    def polled(self, job_id: str) -> None:
        now = time.monotonic()
        self.first_poll.setdefault(job_id, now)
        last = self.last_poll.get(job_id)
        if last is not None:
            self.gaps.append(now - last)
        self.last_poll[job_id] = now

    async def tick(self, stop: asyncio.Event) -> None:
        """Lag of a 100 ms ticker, in wall time and in the loop thread's CPU time: on a busy machine
        the OS also stops the loop to run other processes; the CPU figure leaves that out."""
        while not stop.is_set():
            before, cpu_before = time.perf_counter(), time.thread_time()
            await asyncio.sleep(0.1)
            wall, cpu = time.perf_counter() - before, time.thread_time() - cpu_before
            self.lags.append(max(0.0, wall - 0.1))
            self.cpu_lags.append(max(0.0, min(wall - 0.1, cpu)))  # the part of the lag it was running


def tune_gc(mode: str) -> None:
    """What an operator could put in airflow_local_settings.py; the provider never does this."""
    if mode == "freeze":
        gc.collect()
        gc.freeze()
    elif mode == "threshold":
        gc.set_threshold(50_000, 20, 100)


class Case:
    """N waits of one variant in this process, with one warm wait started first."""

    def __init__(self, args: argparse.Namespace, job_ids: list[str], warm_job: str) -> None:
        from airflow_provider_importexport.emulator.client import EmulatorAdmin
        from airflow_provider_importexport.triggers.importexport import ImportExportJobTrigger

        self.args = args
        self.job_ids = job_ids
        self.warm_job = warm_job
        self.trigger_class: type = ImportExportJobTrigger if args.variant == "ours" else baseline_trigger_class()
        self.admin = EmulatorAdmin(args.endpoint)
        self.deadline = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()
        self.probe = Probe()
        self.ended: list[Any] = []

    async def wait(self, job_id: str, delay: float) -> None:
        built = self.trigger_class(job_id=job_id, waiter_delay=delay, deadline=self.deadline, aws_conn_id="aws_default")
        _, kwargs = built.serialize()  # what the triggerer stores and builds the trigger from
        try:
            async for event in self.trigger_class(**kwargs).run():
                self.ended.append(event)
                return
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self.ended.append(error)

    async def warm_up(self) -> asyncio.Task[None]:
        """One wait (1 s interval, same connection) until it has polled: code loaded, client open."""
        warm = asyncio.create_task(self.wait(self.warm_job, 1.0))
        while self.warm_job not in self.probe.first_poll:
            await asyncio.sleep(0.05)
        tune_gc(self.args.gc)
        return warm

    def all_polled(self) -> bool:
        return len(self.probe.first_poll) > len(self.job_ids)  # every wait, and the warm one

    async def run(self) -> dict[str, Any]:
        args, probe = self.args, self.probe
        warm = await self.warm_up()
        gc.collect()
        before = {"rss": rss_mib(), "objects": len(gc.get_objects()), "calls": self.admin.fault_counts()["none"],
                  "full_gcs": gc.get_stats()[2]["collections"], "pauses": len(probe.gc_pauses)}  # fmt: skip
        stop = asyncio.Event()
        ticker = asyncio.create_task(probe.tick(stop))
        started = time.monotonic()
        tasks = []
        for job_id in self.job_ids:  # as the triggerer's create_triggers: one per loop iteration
            tasks.append(asyncio.create_task(self.wait(job_id, args.delay)))
            await asyncio.sleep(0)
        while (elapsed := time.monotonic() - started) < args.seconds or (
            not self.all_polled() and elapsed < args.max_seconds
        ):
            await asyncio.sleep(0.5)
        after = {"window": time.monotonic() - started, "rss": rss_mib(), "calls": self.admin.fault_counts()["none"],
                 "full_gcs": gc.get_stats()[2]["collections"], "pauses": len(probe.gc_pauses)}  # fmt: skip
        stop.set()
        await ticker
        gc.collect()
        after["objects"] = len(gc.get_objects())
        for task in [*tasks, warm]:
            task.cancel()
        await asyncio.gather(*tasks, warm, return_exceptions=True)
        return self.summary(started, before, after, probe.gc_pauses[int(before["pauses"]) : int(after["pauses"])])

    def summary(
        self, started: float, before: dict[str, float], after: dict[str, float], pauses: list[float]
    ) -> dict[str, Any]:
        args, probe, n = self.args, self.probe, len(self.job_ids)
        polled = [job for job in self.job_ids if job in probe.first_poll]
        twice = [job for job in polled if probe.last_poll[job] > probe.first_poll[job]]
        window = after["window"]
        all_polled = max(probe.first_poll[j] for j in polled) - started if len(polled) == n else math.nan
        return {
            "variant": args.variant,
            "gc": args.gc,
            "waits": n,
            "delay": args.delay,
            "window_s": round(window, 1),
            "rss_mib": round(after["rss"], 1),
            "per_wait_kib": round((after["rss"] - before["rss"]) * 1024 / n, 2),
            "objects_per_wait": round((after["objects"] - before["objects"]) / n, 1),
            "lag_p50_ms": round(percentile(probe.lags, 0.50) * 1000, 1),
            "lag_p99_ms": round(percentile(probe.lags, 0.99) * 1000, 1),
            "lag_max_ms": round(max(probe.lags, default=0.0) * 1000, 1),
            "cpu_lag_p99_ms": round(percentile(probe.cpu_lags, 0.99) * 1000, 1),
            "cpu_lag_max_ms": round(max(probe.cpu_lags, default=0.0) * 1000, 1),
            "full_gcs": int(after["full_gcs"] - before["full_gcs"]),
            "gc_pause_max_ms": round(max(pauses, default=0.0) * 1000, 1),
            "getstatus_per_s": round((after["calls"] - before["calls"]) / window, 1),
            "demanded_per_s": round(n / args.delay, 1),
            "all_polled_s": round(all_polled, 1),
            "polled": len(polled),
            "polled_twice": len(twice),
            "gap_p50_s": round(percentile(probe.gaps, 0.50), 2),
            "gap_p99_s": round(percentile(probe.gaps, 0.99), 2),
            "gap_max_s": round(max(probe.gaps, default=math.nan), 2),
            "errors": probe.errors,
            "lost": len(self.ended),
        }  # fmt: skip


def worker(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="bench-triggers-") as home:
        worker_environment(args.endpoint, home)
        jobs = json.loads(Path(args.jobs_file).read_text())
        case = Case(args, jobs[: args.n], warm_job=jobs[-1])
        print(json.dumps(asyncio.run(case.run())), flush=True)
    return 0


# --- the driver ----------------------------------------------------------------------------------------


def create_jobs(endpoint: str, count: int) -> list[str]:
    import boto3

    def create(start: int) -> list[str]:
        client = boto3.client("importexport", endpoint_url=endpoint, region_name="us-east-1")
        return [
            client.create_job(
                JobType="Import", Manifest=sample_manifest(f"bench-{n}", "bench-bucket"), ValidateOnly=False
            )["JobId"]
            for n in range(start, min(start + 500, count))
        ]

    with ThreadPoolExecutor(max_workers=4) as pool:
        return [job for chunk in pool.map(create, range(0, count, 500)) for job in chunk]


def run_worker(
    args: argparse.Namespace, variant: str, n: int, delay: float, seconds: float, gc_mode: str = "default"
) -> dict[str, Any]:
    command = [
        sys.executable, __file__, "--worker", "--variant", variant, "--n", str(n), "--seconds", str(seconds),
        "--max-seconds", str(args.max_seconds), "--delay", str(delay), "--gc", gc_mode,
        "--endpoint", args.endpoint, "--jobs-file", args.jobs_file,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=args.max_seconds + 900, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith('{"variant"')]
    if done.returncode or not lines:
        raise RuntimeError(f"worker {variant} n={n} failed ({done.returncode}): {done.stderr[-3000:]}")
    return dict(json.loads(lines[-1]))


def plan(args: argparse.Namespace, sizes: list[int]) -> list[tuple[str, int, str]]:
    """(variant, N, gc mode) per case, rounds alternating the order of ours and the baseline."""
    cases = []
    for round_number in range(args.rounds):
        for n in sizes:
            variants = ["ours", "baseline"] if n <= args.baseline_max else ["ours"]
            if round_number % 2:
                variants.reverse()
            cases += [(variant, n, "default") for variant in variants]
            if n == max(sizes):
                cases += [("ours", n, mode) for mode in args.gc.split(",") if mode and mode != "default"]
    return cases


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--variant", default="ours", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", default="", help=argparse.SUPPRESS)
    parser.add_argument("--jobs-file", default="", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="smoke run: 100 and 1,000 waits, one short round")
    parser.add_argument("--sizes", default="100,1000,10000", help="numbers of concurrent waits")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=40.0, help="measured window per case")
    parser.add_argument("--max-seconds", type=float, default=300.0, help="longest window, waiting for first polls")
    parser.add_argument("--delay", type=float, default=5.0, help="poll interval (waiter_delay)")
    parser.add_argument("--baseline-max", type=int, default=1000, help="largest N for the client-per-trigger case")
    parser.add_argument("--no-fairness", action="store_true", help="skip the 60 s-interval fairness case")
    parser.add_argument("--gc", default="default", help=f"worker: GC mode; driver: extra modes to run ({GC_MODES})")
    parser.add_argument("--json", default="", help="write every case's figures here")
    parser.add_argument("--real-triggerer", action="store_true", help="a real airflow triggerer with deferred waits")
    parser.add_argument("--real-waits", type=int, default=1000, help="waits for --real-triggerer")
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    if args.real_triggerer:
        from bench_real_triggerer import run_real_triggerer

        return run_real_triggerer(args.real_waits)
    if args.quick:
        args.sizes, args.rounds, args.seconds = "100,1000", 1, 12.0
    sizes = [int(s) for s in args.sizes.split(",")]
    fairness = None if args.no_fairness else (QUICK_FAIRNESS if args.quick else FAIRNESS)
    results = measure(args, sizes, fairness)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    print(report(results, sizes))
    return 0


def measure(args: argparse.Namespace, sizes: list[int], fairness: dict[str, float] | None) -> list[dict[str, Any]]:
    from airflow_provider_importexport.emulator.client import spawn

    os.environ.update(fake_aws_environment())
    needed = max([*sizes, int(fairness["waits"]) if fairness else 0]) + 1  # + the warm wait's job
    process, admin = spawn("--daily-create-quota", "1000000")
    results: list[dict[str, Any]] = []
    try:
        admin.create_bucket("bench-bucket")
        started = time.monotonic()
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as jobs_file:
            json.dump(create_jobs(admin.endpoint_url, needed), jobs_file)
        print(f"created {needed} jobs in {time.monotonic() - started:.0f} s", flush=True)
        args.endpoint, args.jobs_file = admin.endpoint_url, jobs_file.name
        for variant, n, gc_mode in plan(args, sizes):
            results.append(run_worker(args, variant, n, args.delay, args.seconds, gc_mode))
            print(json.dumps(results[-1]), flush=True)
        if fairness:
            fair = run_worker(args, "ours", int(fairness["waits"]), fairness["delay"], fairness["seconds"])
            results.append({**fair, "case": "fairness"})
            print(json.dumps(results[-1]), flush=True)
    finally:
        process.terminate()
        process.wait(timeout=30)
        if args.jobs_file:
            Path(args.jobs_file).unlink(missing_ok=True)
    return results


def median_of(results: list[dict[str, Any]], key: str) -> float:
    values = [r[key] for r in results if not math.isnan(r[key])]
    return float(statistics.median(values)) if values else math.nan


def cell(results: list[dict[str, Any]], key: str) -> str:
    values = [r[key] for r in results]
    return f"{median_of(results, key):g} ({min(values):g} to {max(values):g})"


REPORT_KEYS = ["rss_mib", "per_wait_kib", "objects_per_wait", "lag_p50_ms", "lag_p99_ms", "lag_max_ms",
               "cpu_lag_p99_ms", "cpu_lag_max_ms", "full_gcs", "gc_pause_max_ms", "getstatus_per_s", "demanded_per_s",
               "all_polled_s", "errors", "lost"]  # fmt: skip


def report(results: list[dict[str, Any]], sizes: list[int]) -> str:
    """A markdown table of medians (min to max) per case, the memory ratio, fairness, and the summary line."""
    lines = ["| case | rounds | " + " | ".join(REPORT_KEYS) + " |", "|---|---:|" + "---:|" * len(REPORT_KEYS)]
    plain = [r for r in results if r.get("case") != "fairness"]
    for n in sizes:
        for variant in ("ours", "baseline"):
            for mode in GC_MODES:
                case = [r for r in plain if r["waits"] == n and r["variant"] == variant and r["gc"] == mode]
                if case:
                    name = f"{variant} N={n}" + ("" if mode == "default" else f" gc={mode}")
                    lines.append(f"| {name} | {len(case)} | " + " | ".join(cell(case, k) for k in REPORT_KEYS) + " |")
    ratio = memory_ratio(plain)
    lines.append(f"\nmemory per wait at N=1000, client-per-trigger / ours (medians): {ratio:.1f}x")
    fair = [r for r in results if r.get("case") == "fairness"]
    for f in fair:
        lines.append(
            f"fairness, {f['waits']} waits at a {f['delay']:g} s interval over {f['window_s']} s: gap between a wait's "
            f"polls p50 {f['gap_p50_s']} s, p99 {f['gap_p99_s']} s, max {f['gap_max_s']} s (goal p99 <= "
            f"{f['delay'] + 5:g} s); {f['polled_twice']} of {f['waits']} waits polled twice; every wait polled once "
            f"after {f['all_polled_s']} s; lag p99 {f['lag_p99_ms']} ms, max {f['lag_max_ms']} ms; lost {f['lost']}"
        )
    top = [r for r in plain if r["waits"] == max(sizes) and r["variant"] == "ours" and r["gc"] == "default"]
    fair_gap = fair[0]["gap_p99_s"] if fair else math.nan
    fair_delay = fair[0]["delay"] if fair else math.nan
    lines.append(
        f"bench-triggers: waits={max(sizes)} rss_mib={median_of(top, 'rss_mib'):g} "
        f"lag_p99_ms={median_of(top, 'lag_p99_ms'):g} lag_max_ms={median_of(top, 'lag_max_ms'):g} "
        f"memory_ratio_n1000={ratio:.1f} cpu_lag_p99_ms={median_of(top, 'cpu_lag_p99_ms'):g} "
        f"cpu_lag_max_ms={median_of(top, 'cpu_lag_max_ms'):g} fairness_waits={fair[0]['waits'] if fair else 0} "
        f"fairness_interval_s={fair_delay:g} fairness_gap_p99_s={fair_gap:g}"
    )
    return "\n".join(lines)


def memory_ratio(results: list[dict[str, Any]]) -> float:
    ours = [r for r in results if r["waits"] == 1000 and r["variant"] == "ours" and r["gc"] == "default"]
    base = [r for r in results if r["waits"] == 1000 and r["variant"] == "baseline"]
    if not ours or not base:
        return math.nan
    return median_of(base, "per_wait_kib") / max(median_of(ours, "per_wait_kib"), 0.01)


if __name__ == "__main__":
    sys.exit(main())
