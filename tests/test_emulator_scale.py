"""The emulator with many jobs: ListJobs pages, the quota and the state file stay right (and cheap),
and one job's data transfer does not stop other calls. Over HTTP with real boto3 clients."""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from airflow_provider_importexport.emulator import DEFAULT_ACCOUNT, ImportExportEmulator
from airflow_provider_importexport.emulator.client import AdminError
from airflow_provider_importexport.emulator.processing import SIGNATURE_FILE
from tests.helpers import OTHER_ACCOUNT, import_manifest

ACCOUNTS = [DEFAULT_ACCOUNT, OTHER_ACCOUNT]


def api(emulator: ImportExportEmulator, account: Any = DEFAULT_ACCOUNT, config: Config | None = None) -> Any:
    return boto3.client(
        "importexport",
        endpoint_url=emulator.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=account.access_key,
        aws_secret_access_key=account.secret_key,
        config=config,
    )


def fill(emulator: ImportExportEmulator, bucket: str, count: int, account: Any = DEFAULT_ACCOUNT) -> list[str]:
    """``count`` jobs through the admin API's bulk route (CreateJob's rules, one request)."""
    body = {"manifest": import_manifest(bucket).to_yaml(), "count": count, "access_key": account.access_key}
    return list(emulator.admin.request("POST", "jobs", body)["job_ids"])


def every_page(client: Any, max_jobs: int) -> list[list[dict[str, Any]]]:
    """Walk ListJobs with markers to the end: the jobs of each page."""
    pages: list[list[dict[str, Any]]] = []
    params: dict[str, Any] = {"MaxJobs": max_jobs}
    while True:
        answer = client.list_jobs(**params)
        pages.append(answer["Jobs"])
        if not answer["IsTruncated"]:
            return pages
        params["Marker"] = pages[-1][-1]["JobId"]


def ids(pages: list[list[dict[str, Any]]]) -> list[list[str]]:
    return [[job["JobId"] for job in page] for page in pages]


@pytest.fixture
def many() -> Iterator[ImportExportEmulator]:
    with ImportExportEmulator(accounts=ACCOUNTS, daily_create_quota=1_000_000) as emulator:
        yield emulator


def _bucket(emulator: ImportExportEmulator, name: str, account: Any = DEFAULT_ACCOUNT) -> str:
    bucket = f"{name}-{os.getpid()}-{time.monotonic_ns()}"
    emulator.admin.create_bucket(bucket, access_key=account.access_key)
    return bucket


# --- ListJobs -------------------------------------------------------------------------------------


def test_list_jobs_walks_every_job_newest_first_once(many: ImportExportEmulator) -> None:
    mine = fill(many, _bucket(many, "walk"), 2_345)
    fill(many, _bucket(many, "theirs", OTHER_ACCOUNT), 300, OTHER_ACCOUNT)
    mine += [api(many).create_job(JobType="Import", Manifest=_manifest(many), ValidateOnly=False)["JobId"]]
    pages = ids(every_page(api(many), 1000))
    assert [len(page) for page in pages] == [1000, 1000, 346]
    assert [job_id for page in pages for job_id in page] == list(reversed(mine))
    assert sum(len(page) for page in every_page(api(many, OTHER_ACCOUNT), 1000)) == 300


def test_list_jobs_page_edges(many: ImportExportEmulator) -> None:
    jobs = fill(many, _bucket(many, "edges"), 5)
    client = api(many)
    nothing = client.list_jobs(MaxJobs=0)
    assert (nothing["Jobs"], nothing["IsTruncated"]) == ([], True)
    last_page = client.list_jobs(MaxJobs=5)
    assert ([j["JobId"] for j in last_page["Jobs"]], last_page["IsTruncated"]) == (jobs[::-1], False)
    assert client.list_jobs(MaxJobs=3, Marker=jobs[0])["Jobs"] == []
    with pytest.raises(client.exceptions.InvalidParameterException, match="not one of your job ids"):
        client.list_jobs(Marker=fill(many, _bucket(many, "other", OTHER_ACCOUNT), 1, OTHER_ACCOUNT)[0])


def test_purged_jobs_leave_the_listing_and_cannot_be_a_marker(many: ImportExportEmulator) -> None:
    bucket = _bucket(many, "purge")
    expiring = fill(many, bucket, 150)
    many.admin.set_profile(expire_after=60, purge_after=60)
    many.admin.advance_clock(30)
    kept = fill(many, bucket, 3)
    many.admin.advance_clock(100)  # the first 150 expired 60 s after they were made, then were purged
    client = api(many)
    assert ids(every_page(client, 100)) == [kept[::-1]]
    with pytest.raises(client.exceptions.InvalidParameterException):
        client.list_jobs(Marker=expiring[-1])
    with pytest.raises(client.exceptions.ExpiredJobIdException):
        client.get_status(JobId=expiring[0])


# --- the daily quota --------------------------------------------------------------------------------


def test_quota_counts_this_utc_day_per_account() -> None:
    with ImportExportEmulator(accounts=ACCOUNTS, daily_create_quota=40) as emulator:
        fill(emulator, _bucket(emulator, "quota"), 39)
        client = api(emulator)
        client.create_job(JobType="Import", Manifest=_manifest(emulator), ValidateOnly=False)
        with pytest.raises(client.exceptions.CreateJobQuotaExceededException, match="40 jobs today"):
            client.create_job(JobType="Import", Manifest=_manifest(emulator), ValidateOnly=False)
        with pytest.raises(AdminError, match="40 jobs today"):
            fill(emulator, _bucket(emulator, "more"), 1)
        assert client.create_job(JobType="Import", Manifest=_manifest(emulator), ValidateOnly=True)["JobId"]
        theirs = _bucket(emulator, "theirs", OTHER_ACCOUNT)
        assert len(fill(emulator, theirs, 40, OTHER_ACCOUNT)) == 40  # another account has its own quota
        emulator.admin.advance_clock(86400)
        assert client.create_job(JobType="Import", Manifest=_manifest(emulator), ValidateOnly=False)["JobId"]


def _manifest(emulator: ImportExportEmulator) -> str:
    return import_manifest(_bucket(emulator, "one")).to_yaml()


# --- the state file -----------------------------------------------------------------------------------


def test_a_change_appends_one_line_and_a_restart_replays_it(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    with ImportExportEmulator(state_file=str(state), daily_create_quota=1000) as first:
        bucket = _bucket(first, "journal")
        kept = fill(first, bucket, 500)
        snapshot = state.read_bytes().split(b"\n")[0]
        client = api(first)
        late = client.create_job(JobType="Import", Manifest=import_manifest(bucket).to_yaml(), ValidateOnly=False)
        client.cancel_job(JobId=kept[0])
        lines = state.read_bytes().split(b"\n")
        assert lines[0] == snapshot  # the snapshot is not rewritten for a change...
        journal = [json.loads(line) for line in lines[1:] if line]
        assert [next(iter(record)) for record in journal[-2:]] == ["job", "job"]  # ... each is one line
        with state.open("ab") as torn:
            torn.write(b'{"job": {"job_id": "ZZZZZ", "acc')  # as if killed in the middle of a line
    with ImportExportEmulator(state_file=str(state)) as second:
        listed = {j["JobId"]: j["IsCanceled"] for page in every_page(api(second), 1000) for j in page}
    assert set(listed) == {*kept, late["JobId"]}
    assert [job_id for job_id, canceled in listed.items() if canceled] == [kept[0]]


def test_a_torn_last_line_is_ignored_and_a_damaged_one_before_it_refused(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    with ImportExportEmulator(state_file=str(state)) as emulator:
        job_id = fill(emulator, _bucket(emulator, "torn"), 1)[0]
        api(emulator).cancel_job(JobId=job_id)
    with state.open("ab") as stream:
        stream.write(b'{"purged": "AAAAA"}\n{"pur')
    with ImportExportEmulator(state_file=str(state)) as emulator:
        assert api(emulator).get_status(JobId=job_id)["ProgressCode"] == "Canceled"
    lines = state.read_bytes().split(b"\n")
    state.write_bytes(b"\n".join([lines[0], b"{not json", b'{"clock_offset": 0}', b""]))
    with pytest.raises(ValueError, match="line 2 is not a journal record"):
        ImportExportEmulator(state_file=str(state))


# --- a data transfer does not stop other calls -------------------------------------------------------------


def test_other_calls_go_on_while_a_device_is_copied(tmp_path: Path) -> None:
    """A device file that blocks when read (a FIFO) holds one job in its transfer; meanwhile
    another account's calls are answered, and the job ends once the file can be read."""
    devices = tmp_path / "devices"
    devices.mkdir()
    with ImportExportEmulator(accounts=ACCOUNTS, devices_dir=str(devices)) as emulator:
        bucket = _bucket(emulator, "slow")
        manifest = import_manifest(bucket, device_id="slow-disk").to_yaml()
        slow = api(emulator).create_job(JobType="Import", Manifest=manifest, ValidateOnly=False)
        device = devices / "slow-disk"
        device.mkdir()
        (device / SIGNATURE_FILE).write_text(slow["SignatureFileContents"])
        os.mkfifo(device / "pipe.bin")
        emulator.admin.act(slow["JobId"], "receive")
        processed: list[dict[str, Any]] = []
        worker = threading.Thread(target=lambda: processed.append(emulator.admin.act(slow["JobId"], "process")))
        worker.start()
        try:
            other = api(emulator, OTHER_ACCOUNT, Config(read_timeout=10, retries={"max_attempts": 0}))
            theirs = fill(emulator, _bucket(emulator, "theirs", OTHER_ACCOUNT), 1, OTHER_ACCOUNT)[0]
            started = time.monotonic()
            assert other.get_status(JobId=theirs)["ProgressCode"] == "Pending"
            assert [j["JobId"] for j in other.list_jobs()["Jobs"]] == [theirs]
            assert api(emulator).get_status(JobId=slow["JobId"])["ProgressCode"] == "InProgress"
            assert time.monotonic() - started < 10
            assert worker.is_alive()  # still copying
        finally:
            _feed(device / "pipe.bin", b"finally")
            worker.join(timeout=60)
        assert processed[0]["ProgressCode"] == "Complete"
        s3 = boto3.client("s3", endpoint_url=emulator.endpoint_url, region_name="us-east-1")
        assert s3.get_object(Bucket=bucket, Key="pipe.bin")["Body"].read() == b"finally"


def test_canceling_during_the_copy_keeps_the_job_canceled(tmp_path: Path) -> None:
    devices = tmp_path / "devices"
    devices.mkdir()
    with ImportExportEmulator(devices_dir=str(devices), cancel_rule="until-complete") as emulator:
        manifest = import_manifest(_bucket(emulator, "cancel"), device_id="disk").to_yaml()
        job = api(emulator).create_job(JobType="Import", Manifest=manifest, ValidateOnly=False)
        (devices / "disk").mkdir()
        (devices / "disk" / SIGNATURE_FILE).write_text(job["SignatureFileContents"])
        os.mkfifo(devices / "disk" / "pipe.bin")
        emulator.admin.act(job["JobId"], "receive")
        worker = threading.Thread(target=emulator.admin.act, args=(job["JobId"], "process"))
        worker.start()
        _wait_for(lambda: api(emulator).get_status(JobId=job["JobId"])["ProgressCode"] == "InProgress")
        assert api(emulator).cancel_job(JobId=job["JobId"])["Success"]
        _feed(devices / "disk" / "pipe.bin", b"late")
        worker.join(timeout=60)
        assert api(emulator).get_status(JobId=job["JobId"])["ProgressCode"] == "Canceled"


def _feed(fifo: Path, data: bytes) -> None:
    """Write to a FIFO once its reader (the transfer) has it open; never blocks the test for good."""
    deadline = time.monotonic() + 30
    while True:
        try:
            handle = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError:  # ENXIO: nobody reads it yet
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    try:
        os.write(handle, data)
    finally:
        os.close(handle)


def _wait_for(condition: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the condition never held")
        time.sleep(0.05)


def test_job_sheets_are_drawn_when_fetched(many: ImportExportEmulator) -> None:
    job = api(many).create_job(JobType="Import", Manifest=_manifest(many), ValidateOnly=False)
    url = job["ArtifactList"][0]["URL"]
    with urllib.request.urlopen(url, timeout=30) as answer:
        assert answer.read().startswith(b"%PDF")
