"""How fast the emulator answers, signed (SigV4 verified) calls over HTTP, as jobs accumulate.

Runs the emulator in its own process (as Airflow would reach it) and drives it from this one:

  * throughput: GetStatus per second from C concurrent aiobotocore callers (what a triggerer
    does), spread over P client processes (one aiobotocore process spends about as much CPU
    per call as the emulator: alone it would measure itself), plus boto3 threads and the
    unauthenticated health endpoint for context; median of ROUNDS rounds of SECONDS each.
    With ``--baseline REV`` the emulator of that git revision runs beside this one, in
    alternating order, and the ratio is shown;
  * scale: CreateJob per second at 0 jobs and at 100,000, and the time of one ListJobs page
    (MaxJobs=100: the first page and pages at random markers) at 1,000 / 10,000 / 100,000
    jobs of one account. The jobs are made through the admin API's bulk route, which runs
    CreateJob's own rules (job ids, quota, records) without one request per job.

The last line is for scripts (``make bench``)::

    bench-emulator: getstatus_per_s=<median> listjobs_ms_1k=<x> listjobs_ms_10k=<x> listjobs_ms_100k=<x> \
createjob_per_s_0=<x> createjob_per_s_100k=<x>

Usage: .venv/bin/python scripts/bench_emulator.py [--quick] [--baseline HEAD~3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from script_env import fake_aws_environment, sample_manifest

from airflow_provider_importexport.emulator.client import EmulatorAdmin, spawn

MANIFEST = sample_manifest("bench-disk", "bench-bucket")
REPOSITORY = Path(__file__).resolve().parent.parent
#: Job counts at which a ListJobs page is timed.
SCALE_POINTS = (1_000, 10_000, 100_000)
FILL_CHUNK = 10_000


def api_client(endpoint: str) -> Any:
    return boto3.session.Session().client(
        "importexport", endpoint_url=endpoint, region_name="us-east-1", config=Config(retries={"max_attempts": 0})
    )


def threaded_rate(call: Callable[[Any], Any], make_client: Callable[[], Any], threads: int, seconds: float) -> float:
    """Calls per second from ``threads`` threads, each with its own client, for ``seconds``."""
    counts = [0] * threads
    stop = [0.0]
    ready = threading.Barrier(threads + 1, action=lambda: stop.__setitem__(0, time.monotonic() + seconds))

    def worker(index: int) -> None:
        client = make_client()
        call(client)  # connect and warm up outside the count
        ready.wait()
        while time.monotonic() < stop[0]:
            call(client)
            counts[index] += 1

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    ready.wait()
    for w in workers:
        w.join()
    return sum(counts) / (time.monotonic() - (stop[0] - seconds))


async def async_rate(endpoint: str, job_id: str, concurrency: int, seconds: float) -> float:
    """GetStatus per second from one aiobotocore client with ``concurrency`` callers."""
    from aiobotocore.session import get_session

    config = Config(max_pool_connections=concurrency, retries={"max_attempts": 0})
    session = get_session()
    async with session.create_client(
        "importexport", endpoint_url=endpoint, region_name="us-east-1", config=config
    ) as client:
        await asyncio.gather(*(client.get_status(JobId=job_id) for _ in range(concurrency)))  # open connections
        done = 0
        stop = time.monotonic() + seconds

        async def worker() -> None:
            nonlocal done
            while time.monotonic() < stop:
                await client.get_status(JobId=job_id)
                done += 1

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done / (time.monotonic() - started)


@contextlib.contextmanager
def emulator(*args: str, pythonpath: str | None = None) -> Iterator[EmulatorAdmin]:
    """An emulator in its own process (from ``pythonpath`` when given: another revision)."""
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [pythonpath, env.get("PYTHONPATH")]))
    process, admin = spawn(*args, env=env, cwd=pythonpath)  # python -m looks in its folder first
    try:
        yield admin
    finally:
        process.terminate()
        process.wait(timeout=30)


@contextlib.contextmanager
def revision_package(revision: str) -> Iterator[str]:
    """The package as it was at a git revision, in a temporary folder (read from git, the tree is untouched)."""
    with tempfile.TemporaryDirectory(prefix="bench-emulator-") as folder:
        archive = subprocess.run(
            ["git", "-C", str(REPOSITORY), "archive", "--format=tar", revision, "airflow_provider_importexport"],
            check=True,
            capture_output=True,
        ).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(folder, filter="data")
        yield folder


def _async_rate_in_process(endpoint: str, job_id: str, concurrency: int, seconds: float) -> float:
    return asyncio.run(async_rate(endpoint, job_id, concurrency, seconds))


def spread_rate(endpoint: str, job_id: str, args: argparse.Namespace) -> float:
    """GetStatus per second from ``args.concurrency`` callers in ``args.client_processes`` processes."""
    processes = args.client_processes
    share = [args.concurrency // processes + (i < args.concurrency % processes) for i in range(processes)]
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        calls = [(endpoint, job_id, callers, args.seconds) for callers in share]
        return sum(pool.starmap(_async_rate_in_process, calls))


def throughput(admin: EmulatorAdmin, args: argparse.Namespace) -> dict[str, float]:
    """One round of each GetStatus load against a running emulator."""
    endpoint = admin.endpoint_url
    with contextlib.suppress(Exception):
        admin.create_bucket("bench-bucket")
    job_id = api_client(endpoint).create_job(JobType="Import", Manifest=MANIFEST, ValidateOnly=False)["JobId"]
    return {
        "aiobotocore GetStatus": spread_rate(endpoint, job_id, args),
        "boto3 GetStatus": threaded_rate(
            lambda c: c.get_status(JobId=job_id), lambda: api_client(endpoint), args.threads, args.seconds
        ),
        "admin health (no auth)": threaded_rate(lambda _c: admin.health(), lambda: None, args.threads, args.seconds),
    }


def measure_throughput(args: argparse.Namespace) -> float:
    sides: dict[str, str | None] = {"this tree": None}
    with contextlib.ExitStack() as stack:
        if args.baseline:
            sides[f"baseline {args.baseline}"] = stack.enter_context(revision_package(args.baseline))
        results: dict[str, dict[str, list[float]]] = {side: {} for side in sides}
        for round_number in range(args.rounds):
            order = list(sides) if round_number % 2 == 0 else list(reversed(sides))
            for side in order:
                with emulator(pythonpath=sides[side]) as admin:
                    for name, rate in throughput(admin, args).items():
                        results[side].setdefault(name, []).append(rate)
    print(
        f"GetStatus throughput: {args.rounds} rounds x {args.seconds:g} s, {os.cpu_count()} cores, "
        f"{args.concurrency} aiobotocore callers in {args.client_processes} processes"
    )
    for side, rates in results.items():
        print(f"  {side}")
        for name, values in rates.items():
            spread = f"min {min(values):.0f}, max {max(values):.0f}"
            print(f"    {name:<30} median {statistics.median(values):8.0f} req/s   ({spread})")
    ours = statistics.median(results["this tree"]["aiobotocore GetStatus"])
    if args.baseline:
        theirs = statistics.median(results[f"baseline {args.baseline}"]["aiobotocore GetStatus"])
        print(f"  aiobotocore GetStatus, this tree / baseline: {ours / theirs:.2f}x")
    return ours


def page_ms(client: Any, markers: list[str], samples: int) -> float:
    """Median time of one ListJobs page (MaxJobs=100): the first page and pages at random markers."""
    times = []
    for index in range(samples):
        params: dict[str, Any] = {"MaxJobs": 100}
        if index % 2 and markers:
            params["Marker"] = random.choice(markers)
        started = time.perf_counter()
        answer = client.list_jobs(**params)
        times.append((time.perf_counter() - started) * 1000)
        assert len(answer["Jobs"]) == 100 or not answer["IsTruncated"]
    return statistics.median(times)


def create_rate(endpoint: str, args: argparse.Namespace) -> float:
    def create(client: Any) -> None:
        client.create_job(JobType="Import", Manifest=MANIFEST, ValidateOnly=False)

    return threaded_rate(create, lambda: api_client(endpoint), args.threads, args.seconds)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure_scale(args: argparse.Namespace) -> dict[str, float]:
    process, admin = spawn("--daily-create-quota", "100000000")
    try:
        admin.create_bucket("bench-bucket")
        endpoint = admin.endpoint_url
        client = api_client(endpoint)
        found = {"createjob_per_s_0": create_rate(endpoint, args)}
        markers: list[str] = []
        for point in SCALE_POINTS:
            started = time.perf_counter()
            filled = len(client.list_jobs(MaxJobs=1000)["Jobs"]) if not markers else len(markers)
            while filled < point:
                count = min(FILL_CHUNK, point - filled)
                made = admin.request("POST", "jobs", {"manifest": MANIFEST, "count": count})["job_ids"]
                markers.extend(random.sample(made, min(len(made), 200)))
                filled += count
            fill_s = time.perf_counter() - started
            found[f"listjobs_ms_{point // 1000}k"] = ms = page_ms(client, markers, args.pages)
            print(f"  {point:>7} jobs: ListJobs page {ms:6.1f} ms (median of {args.pages}); filled in {fill_s:.1f} s")
        found["createjob_per_s_100k"] = create_rate(endpoint, args)
        found["rss_mib_100k"] = rss_mib(process.pid)
    finally:
        process.terminate()
        process.wait(timeout=60)
    print(
        f"  CreateJob/s: {found['createjob_per_s_0']:.0f} at 0 jobs, {found['createjob_per_s_100k']:.0f} at 100k; "
        f"emulator RSS at 100k jobs {found['rss_mib_100k']:.0f} MiB"
    )
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent aiobotocore callers")
    parser.add_argument("--client-processes", type=int, default=2, help="processes the callers are spread over")
    parser.add_argument("--pages", type=int, default=41, help="ListJobs pages timed at each job count")
    parser.add_argument("--baseline", metavar="REV", help="also run the emulator of this git revision, side by side")
    parser.add_argument("--quick", action="store_true", help="2 rounds of 1 s and fewer pages (a smoke run)")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds, args.pages = 2, 1.0, 11
    os.environ.update(fake_aws_environment())
    getstatus = measure_throughput(args)
    print("Scale, one account:")
    scale = measure_scale(args)
    print(
        f"bench-emulator: getstatus_per_s={getstatus:.0f} listjobs_ms_1k={scale['listjobs_ms_1k']:.1f} "
        f"listjobs_ms_10k={scale['listjobs_ms_10k']:.1f} listjobs_ms_100k={scale['listjobs_ms_100k']:.1f} "
        f"createjob_per_s_0={scale['createjob_per_s_0']:.0f} createjob_per_s_100k={scale['createjob_per_s_100k']:.0f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
