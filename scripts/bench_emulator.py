"""How many GetStatus calls per second the emulator serves, SigV4 verified on every one.

Runs the emulator in its own process (as Airflow would reach it) and drives it from this
one, side by side in a single run:
  * boto3, N threads, each with its own client (keep-alive connections);
  * aiobotocore, one client, C concurrent requests (what a triggerer does);
  * the unauthenticated admin health endpoint, the same way as boto3 (the server's floor).
Each figure is the median of ROUNDS rounds of SECONDS each. Usage:
    .venv/bin/python scripts/bench_emulator.py [--rounds 5] [--seconds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import threading
import time
from typing import Any

import boto3
from script_env import fake_aws_environment, sample_manifest

from airflow_provider_importexport.emulator.client import spawn

MANIFEST = sample_manifest("bench-disk", "bench-bucket")


def threaded_rate(call: Any, make_client: Any, threads: int, seconds: float) -> float:
    counts = [0] * threads
    stop = time.monotonic() + seconds

    def worker(index: int) -> None:
        client = make_client()
        call(client)  # connect and warm up outside the count
        while time.monotonic() < stop:
            call(client)
            counts[index] += 1

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    started = time.monotonic()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sum(counts) / (time.monotonic() - started)


async def async_rate(endpoint: str, job_id: str, concurrency: int, seconds: float) -> float:
    from aiobotocore.session import get_session

    done = 0
    async with get_session().create_client("importexport", endpoint_url=endpoint, region_name="us-east-1") as client:
        await client.get_status(JobId=job_id)
        stop = time.monotonic() + seconds

        async def worker() -> None:
            nonlocal done
            while time.monotonic() < stop:
                await client.get_status(JobId=job_id)
                done += 1

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done / (time.monotonic() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    os.environ.update(fake_aws_environment())
    process, admin = spawn()
    endpoint = admin.endpoint_url
    try:
        admin.create_bucket("bench-bucket")
        client = boto3.client("importexport", endpoint_url=endpoint, region_name="us-east-1")
        job_id = client.create_job(JobType="Import", Manifest=MANIFEST, ValidateOnly=False)["JobId"]

        def boto_client() -> Any:
            return boto3.session.Session().client("importexport", endpoint_url=endpoint, region_name="us-east-1")

        def health_client() -> Any:
            return None

        results: dict[str, list[float]] = {
            "boto3 GetStatus": [],
            "aiobotocore GetStatus": [],
            "admin health (no auth)": [],
        }
        for _ in range(args.rounds):
            results["boto3 GetStatus"].append(
                threaded_rate(lambda c: c.get_status(JobId=job_id), boto_client, args.threads, args.seconds)
            )
            results["aiobotocore GetStatus"].append(
                asyncio.run(async_rate(endpoint, job_id, args.concurrency, args.seconds))
            )
            results["admin health (no auth)"].append(
                threaded_rate(
                    lambda _c: admin.health(),
                    health_client,
                    args.threads,
                    args.seconds,
                )
            )
        floor = statistics.median(results["admin health (no auth)"])
        print(f"emulator GetStatus throughput, {args.rounds} rounds x {args.seconds:.0f} s, {os.cpu_count()} cores")
        for name, rates in results.items():
            median = statistics.median(rates)
            spread = f"min {min(rates):.0f}, max {max(rates):.0f}"
            print(f"  {name:<26} median {median:8.0f} req/s   ({spread}, {median / floor:.2f}x health)")
    finally:
        process.terminate()
        process.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
