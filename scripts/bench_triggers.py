"""Thousands of waits in one triggerer event loop: memory, loop lag, polling rate, fairness.

N concurrent waits of the real ``ImportExportJobTrigger.run()`` (built, like the sensor builds it,
then through ``serialize()`` and back) against one emulator process whose jobs never move, so
every wait keeps polling. Side by side in one run, each case in a fresh process, the order
alternating by round:

* ``ours``: the provider's trigger;
* ``baseline``: the same wait written as the Amazon provider's triggers are, one hook and one
  aiobotocore client per trigger (``async with await hook.get_async_conn() as client``).

Per case: RSS and memory per wait, event-loop lag (a 100 ms ticker: p50/p99/max), full garbage
collections and their pauses, GetStatus calls per second achieved (the emulator's own count)
against those demanded, time until every wait has polled once, waits that ended (lost). A
fairness case runs 10,000 waits at a 60 s interval and reports the gap between a wait's polls.

Usage: ``.venv/bin/python scripts/bench_triggers.py [--sizes 100,1000,10000] [--rounds 3]``.
Prints a table per case, writes the figures as JSON (``--json``), and ends with a ``bench-triggers:``
line of medians.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from script_env import fake_aws_environment, sample_manifest


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def percentile(values: list[float], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


# --- the worker: one case in a fresh process ----------------------------------------------------


def worker_environment(endpoint: str) -> None:
    os.environ.update(
        fake_aws_environment(
            AIRFLOW_HOME=tempfile.mkdtemp(prefix="bench-triggers-"),
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
        async def _poll(self, hook: Any, client: Any) -> dict[str, Any]:  # type: ignore[override]
            return await hook.get_status_async(self.job_id, client)

        async def run(self) -> AsyncIterator[TriggerEvent]:
            hook = self.hook()
            async with await hook.get_async_conn() as client:
                while True:
                    status = await self._poll(hook, client)  # type: ignore[call-arg]
                    verdict = evaluate_wait(status, self.wait_for, self.on_success_with_errors)
                    if verdict.done:
                        yield TriggerEvent({"status": verdict.state})
                        return
                    await asyncio.sleep(self.waiter_delay)

    return ClientPerTrigger


class Probe:
    """Loop lag, first polls and poll gaps, full collections: measured inside the worker."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self.first_poll: dict[str, float] = {}
        self.last_poll: dict[str, float] = {}
        self.gaps: list[float] = []
        self.gc_pauses: list[float] = []
        self._gc_started = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.gc_pauses.append(time.perf_counter() - self._gc_started)

    def polled(self, job_id: str) -> None:
        now = time.monotonic()
        self.first_poll.setdefault(job_id, now)
        last = self.last_poll.get(job_id)
        if last is not None:
            self.gaps.append(now - last)
        self.last_poll[job_id] = now

    async def tick(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            before = time.perf_counter()
            await asyncio.sleep(0.1)
            self.lags.append(max(0.0, time.perf_counter() - before - 0.1))


def instrument(trigger_class: type, probe: Probe) -> None:
    """Record each poll (the trigger's own ``_poll``), for first-poll time and fairness."""
    original = trigger_class._poll  # type: ignore[attr-defined]

    async def polled(self: Any, *args: Any, **kwargs: Any) -> Any:
        probe.polled(self.job_id)
        return await original(self, *args, **kwargs)

    trigger_class._poll = polled  # type: ignore[attr-defined]


async def run_case(variant: str, job_ids: list[str], seconds: float, delay: float, admin_url: str) -> dict[str, Any]:
    from airflow_provider_importexport.emulator.client import EmulatorAdmin
    from airflow_provider_importexport.triggers.importexport import ImportExportJobTrigger

    trigger_class: type = ImportExportJobTrigger if variant == "ours" else baseline_trigger_class()
    probe = Probe()
    instrument(trigger_class, probe)
    admin = EmulatorAdmin(admin_url)
    deadline = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)).isoformat()
    gc.collect()
    rss_before = rss_mib()
    calls_before = admin.fault_counts()["none"]
    ended: list[Any] = []

    async def wait(job_id: str) -> None:
        built = trigger_class(job_id=job_id, waiter_delay=delay, deadline=deadline, aws_conn_id="aws_default")
        _, kwargs = built.serialize()  # what the triggerer stores and builds the trigger from
        async for event in trigger_class(**kwargs).run():
            ended.append(event)
            return

    stop = asyncio.Event()
    ticker = asyncio.create_task(probe.tick(stop))
    started = time.monotonic()
    gc_before = gc.get_stats()[2]["collections"]
    tasks = [asyncio.create_task(wait(job_id)) for job_id in job_ids]
    await asyncio.sleep(seconds)
    window = time.monotonic() - started
    rss_after = rss_mib()
    calls = admin.fault_counts()["none"] - calls_before
    full_collections = gc.get_stats()[2]["collections"] - gc_before
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, ticker, return_exceptions=True)
    all_polled = max(probe.first_poll.values()) - started if len(probe.first_poll) == len(job_ids) else float("nan")
    return {
        "variant": variant,
        "waits": len(job_ids),
        "rss_mib": round(rss_after, 1),
        "per_wait_kib": round((rss_after - rss_before) * 1024 / len(job_ids), 2),
        "lag_p50_ms": round(percentile(probe.lags, 0.50) * 1000, 1),
        "lag_p99_ms": round(percentile(probe.lags, 0.99) * 1000, 1),
        "lag_max_ms": round(max(probe.lags, default=0.0) * 1000, 1),
        "full_gcs": full_collections,
        "gc_pause_max_ms": round(max(probe.gc_pauses, default=0.0) * 1000, 1),
        "getstatus_per_s": round(calls / window, 1),
        "demanded_per_s": round(len(job_ids) / delay, 1),
        "all_polled_s": round(all_polled, 1),
        "polled": len(probe.first_poll),
        "gap_p99_s": round(percentile(probe.gaps, 0.99), 1),
        "gap_max_s": round(max(probe.gaps, default=0.0), 1),
        "lost": len(ended),
    }


def worker(args: argparse.Namespace) -> int:
    worker_environment(args.endpoint)
    job_ids = json.loads(Path(args.jobs_file).read_text())[: args.n]
    result = asyncio.run(run_case(args.variant, job_ids, args.seconds, args.delay, args.endpoint))
    print(json.dumps(result), flush=True)
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


def run_worker(variant: str, n: int, seconds: float, delay: float, endpoint: str, jobs_file: str) -> dict[str, Any]:
    command = [
        sys.executable, __file__, "--worker", "--variant", variant, "--n", str(n), "--seconds", str(seconds),
        "--delay", str(delay), "--endpoint", endpoint, "--jobs-file", jobs_file,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 600, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        raise RuntimeError(f"worker {variant} n={n} failed: {done.stderr[-2000:]}")
    return dict(json.loads(lines[-1]))


def median_of(results: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in results))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--variant", default="ours", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", default="", help=argparse.SUPPRESS)
    parser.add_argument("--jobs-file", default="", help=argparse.SUPPRESS)
    parser.add_argument("--sizes", default="100,1000,10000", help="numbers of concurrent waits")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=40.0, help="measured window per case")
    parser.add_argument("--delay", type=float, default=5.0, help="poll interval (waiter_delay)")
    parser.add_argument("--baseline-max", type=int, default=1000, help="largest N for the client-per-trigger case")
    parser.add_argument("--fairness-seconds", type=float, default=150.0, help="0 skips the 60 s-interval case")
    parser.add_argument("--json", default="", help="write every case's figures here")
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    from airflow_provider_importexport.emulator.client import spawn

    os.environ.update(fake_aws_environment())
    sizes = [int(s) for s in args.sizes.split(",")]
    process, admin = spawn("--daily-create-quota", "1000000")
    results: list[dict[str, Any]] = []
    try:
        admin.create_bucket("bench-bucket")
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as jobs_file:
            json.dump(create_jobs(admin.endpoint_url, max(sizes)), jobs_file)
        for round_number in range(args.rounds):
            for n in sizes:
                variants = ["ours", "baseline"] if n <= args.baseline_max else ["ours"]
                if round_number % 2:
                    variants.reverse()
                for variant in variants:
                    result = run_worker(variant, n, args.seconds, args.delay, admin.endpoint_url, jobs_file.name)
                    result["round"] = round_number
                    results.append(result)
                    print(json.dumps(result), flush=True)
        if args.fairness_seconds and max(sizes) >= 10000:
            fair = run_worker("ours", 10000, args.fairness_seconds, 60.0, admin.endpoint_url, jobs_file.name)
            fair["case"] = "fairness"
            results.append(fair)
            print(json.dumps(fair), flush=True)
    finally:
        process.terminate()
        process.wait(timeout=30)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    print(report(results, sizes))
    return 0


def report(results: list[dict[str, Any]], sizes: list[int]) -> str:
    keys = ["rss_mib", "per_wait_kib", "lag_p50_ms", "lag_p99_ms", "lag_max_ms", "full_gcs", "gc_pause_max_ms",
            "getstatus_per_s", "demanded_per_s", "all_polled_s", "lost"]  # fmt: skip
    lines = ["| case | " + " | ".join(keys) + " |", "|---|" + "---:|" * len(keys)]
    plain = [r for r in results if r.get("case") != "fairness"]
    for n in sizes:
        for variant in ("ours", "baseline"):
            case = [r for r in plain if r["waits"] == n and r["variant"] == variant]
            if case:
                cells = [
                    f"{median_of(case, k):g} ({min(r[k] for r in case):g} to {max(r[k] for r in case):g})" for k in keys
                ]
                lines.append(f"| {variant} N={n} | " + " | ".join(cells) + " |")
    ratio = ""
    ours = [r for r in plain if r["waits"] == 1000 and r["variant"] == "ours"]
    base = [r for r in plain if r["waits"] == 1000 and r["variant"] == "baseline"]
    if ours and base:
        ratio = f"{median_of(base, 'per_wait_kib') / max(median_of(ours, 'per_wait_kib'), 0.01):.1f}"
        lines.append(f"\nmemory per wait at N=1000, client-per-trigger / ours (medians): {ratio}x")
    fair = [r for r in results if r.get("case") == "fairness"]
    if fair:
        f = fair[0]
        lines.append(
            f"fairness, 10000 waits at a 60 s interval: gap between polls p99 {f['gap_p99_s']} s, "
            f"max {f['gap_max_s']} s; every wait polled once after {f['all_polled_s']} s"
        )
    top = [r for r in plain if r["waits"] == max(sizes) and r["variant"] == "ours"]
    if top:
        lines.append(
            f"bench-triggers: waits={max(sizes)} rss_mib={median_of(top, 'rss_mib'):g} "
            f"lag_p99_ms={median_of(top, 'lag_p99_ms'):g} lag_max_ms={median_of(top, 'lag_max_ms'):g} "
            f"memory_ratio_n1000={ratio or 'n/a'}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
