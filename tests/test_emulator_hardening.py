"""One bad job cannot break the emulator, no path leaves a device folder, a restart loses nothing.

Everything over HTTP on 127.0.0.1 with boto3; files only under pytest's tmp_path.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from airflow_provider_importexport.emulator import DEFAULT_ACCOUNT, Account, ImportExportEmulator
from airflow_provider_importexport.emulator.client import spawn
from airflow_provider_importexport.logs import parse_log
from airflow_provider_importexport.manifest import ExportOperation
from tests.helpers import export_manifest, import_manifest
from tests.test_emulator_lifecycle import new_job, write_device

OTHER = Account("AKIAOTHERACCOUNT0001", "other-account-secret-key", "210987654321")
ACCOUNTS = [DEFAULT_ACCOUNT, OTHER]
_names = iter(range(1_000_000))


def unique(prefix: str) -> str:
    """A bucket name no other test (moto's S3 is shared by the process) uses."""
    return f"{prefix}-{os.getpid()}-{next(_names)}"


def api(endpoint_url: str, service: str = "importexport", account: Account = DEFAULT_ACCOUNT) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=account.access_key,
        aws_secret_access_key=account.secret_key,
        config=Config(retries={"total_max_attempts": 2}),
    )


@pytest.fixture
def importexport_emulator(devices: Path) -> Iterator[ImportExportEmulator]:
    with ImportExportEmulator(devices_dir=str(devices), accounts=ACCOUNTS) as emulator:
        yield emulator


@dataclass
class Bystanders:
    """Pending jobs of the bad job's account and of another account, which must not notice it."""

    jobs: list[tuple[Any, str]] = field(default_factory=list)

    def check(self) -> None:
        for client, job_id in self.jobs:
            assert job_id in [j["JobId"] for j in client.list_jobs()["Jobs"]]
            assert client.get_status(JobId=job_id)["ProgressCode"] == "Pending"


@pytest.fixture
def bystanders(emulator: ImportExportEmulator, client: Any, make_bucket: Callable[..., str]) -> Bystanders:
    other = api(emulator.endpoint_url, account=OTHER)
    other_bucket = make_bucket("other", access_key=OTHER.access_key)
    return Bystanders(
        [(client, new_job(client, make_bucket("mine"))["JobId"]), (other, new_job(other, other_bucket)["JobId"])]
    )


def process_by_time(emulator: ImportExportEmulator, client: Any, job_id: str, bystanders: Bystanders) -> dict:
    """Let the time profile run the transfer: the next ListJobs of any account processes the job."""
    emulator.admin.act(job_id, "receive")
    emulator.admin.act(job_id, "start")
    emulator.admin.set_profile(process_after=0)
    bystanders.check()
    final = client.get_status(JobId=job_id)
    bystanders.check()
    return dict(final)


# --- 1. a job whose processing fails ends alone, in a failure code with its reason ------------


def test_unknown_storage_class_fails_the_job_alone(
    emulator: ImportExportEmulator, client: Any, s3: Any, bucket: str, devices: Path, bystanders: Bystanders
) -> None:
    job = new_job(client, bucket, device_id="disk-bogus", storage_class="BOGUS")
    write_device(devices / "disk-bogus", {"a.txt": b"a"}, job["SignatureFileContents"])
    final = process_by_time(emulator, client, job["JobId"], bystanders)
    assert final["ProgressCode"] == "DeviceError"
    assert "aborted" in final["ProgressMessage"]
    assert "storageClass: 'BOGUS'" in final["ProgressMessage"]
    assert "STANDARD" in final["ProgressMessage"]  # the fix: a valid value
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0  # nothing half-imported


def test_a_key_that_is_also_a_folder_goes_to_recovery(
    emulator: ImportExportEmulator,
    client: Any,
    s3: Any,
    make_bucket: Callable[..., str],
    devices: Path,
    bystanders: Bystanders,
) -> None:
    """The service puts keys that cannot become file names in the recovery folder (spec §4.6): no failure."""
    source, logs = make_bucket("source"), make_bucket("logs")
    s3.put_object(Bucket=source, Key="p2/dir", Body=b"a file")
    s3.put_object(Bucket=source, Key="p2/dir/file", Body=b"inside the file")
    manifest = export_manifest(source, logs, device_id="disk-both").to_yaml()
    job = client.create_job(JobType="Export", Manifest=manifest, ValidateOnly=False)
    root = devices / "disk-both"
    write_device(root, {}, job["SignatureFileContents"])
    final = process_by_time(emulator, client, job["JobId"], bystanders)
    assert final["ProgressCode"] == "Complete"
    assert (root / source / "p2/dir").read_bytes() == b"a file"
    assert (root / "EXPORT-RECOVERY/0000/0000").read_bytes() == b"inside the file"
    rows = parse_log(s3.get_object(Bucket=logs, Key=final["LogKey"])["Body"].read().decode())
    assert {r["Key"]: r["File"] for r in rows} == {
        f"{source}/p2/dir": f"/{source}/p2/dir",
        f"{source}/p2/dir/file": "/EXPORT-RECOVERY/0000/0000",
    }


@pytest.mark.parametrize(
    ("field_name", "overrides"),
    [
        ("recoveryDirectory", lambda bucket, outside: {"recovery_directory": str(outside)}),
        ("recoveryDirectory", lambda bucket, outside: {"recovery_directory": "../escape"}),
        ("targetDirectory", lambda bucket, outside: {"operations": [ExportOperation(export_bucket=bucket,
                                                                                    target_directory="/abs")]}),
        ("targetDirectory", lambda bucket, outside: {"operations": [ExportOperation(export_bucket=bucket,
                                                                                    target_directory="a/../..")]}),
    ],
)  # fmt: skip
def test_create_job_refuses_folders_outside_the_device(
    client: Any, bucket: str, tmp_path: Path, field_name: str, overrides: Callable[[str, Path], dict[str, Any]]
) -> None:
    manifest = export_manifest(bucket, bucket, **overrides(bucket, tmp_path / "outside")).to_yaml()
    with pytest.raises(client.exceptions.InvalidManifestFieldException, match=field_name) as caught:
        client.create_job(JobType="Export", Manifest=manifest, ValidateOnly=False)
    assert "relative to the device's root" in str(caught.value)


def test_job_from_an_older_state_file_with_an_absolute_recovery_directory_fails_alone(
    tmp_path: Path, devices: Path
) -> None:
    """A job accepted before CreateJob checked its folders still cannot write outside its device."""
    state, outside = tmp_path / "state.json", tmp_path / "outside"
    with ImportExportEmulator(state_file=str(state), devices_dir=str(devices), accounts=ACCOUNTS) as first:
        source = unique("source")
        first.admin.create_bucket(source)
        api(first.endpoint_url, "s3").put_object(Bucket=source, Key="bad//name", Body=b"needs recovery")
        manifest = export_manifest(source, source, device_id="disk-old")
        job = api(first.endpoint_url).create_job(JobType="Export", Manifest=manifest.to_yaml(), ValidateOnly=False)
        write_device(devices / "disk-old", {}, job["SignatureFileContents"])
    data = json.loads(state.read_text())
    manifest.recovery_directory = str(outside)
    data["jobs"][0]["manifest_text"] = manifest.to_yaml()
    state.write_text(json.dumps(data))

    with ImportExportEmulator(state_file=str(state), devices_dir=str(devices), accounts=ACCOUNTS) as second:
        client = api(second.endpoint_url)
        other = api(second.endpoint_url, account=OTHER)
        other_bucket = unique("other")
        second.admin.create_bucket(other_bucket, access_key=OTHER.access_key)
        bystanders = Bystanders([(other, new_job(other, other_bucket)["JobId"])])
        final = process_by_time(second, client, job["JobId"], bystanders)
    assert final["ProgressCode"] == "DeviceError"
    assert "recoveryDirectory" in final["ProgressMessage"]
    assert "relative to the device's root" in final["ProgressMessage"]
    assert not outside.exists()


# --- 2. no path leaves the device folder ---------------------------------------------------------


def test_export_keys_and_links_never_leave_the_device(
    emulator: ImportExportEmulator, client: Any, s3: Any, make_bucket: Callable[..., str], devices: Path, tmp_path: Path
) -> None:
    source, logs = make_bucket("source"), make_bucket("logs")
    outside = tmp_path / "outside"
    outside.mkdir()
    keys = ["../../up.txt", "/abs.txt", "x/../../../y.txt", "plain.txt"]
    for key in keys:
        s3.put_object(Bucket=source, Key=key, Body=key.encode())
    manifest = export_manifest(source, logs, device_id="disk-links").to_yaml()
    job = client.create_job(JobType="Export", Manifest=manifest, ValidateOnly=False)
    root = devices / "disk-links"
    write_device(root, {}, job["SignatureFileContents"])
    os.symlink(outside, root / source)  # the bucket's folder on the device leads out of it
    emulator.admin.act(job["JobId"], "receive")
    final = emulator.admin.act(job["JobId"], "process")
    assert final["ProgressCode"] == "Complete"
    assert list(outside.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["devices", "outside"]
    recovered = {p.read_bytes().decode() for p in (root / "EXPORT-RECOVERY").rglob("*") if p.is_file()}
    assert recovered == set(keys)


def test_a_recovery_folder_linked_out_of_the_device_fails_the_job(
    emulator: ImportExportEmulator, client: Any, s3: Any, make_bucket: Callable[..., str], devices: Path, tmp_path: Path
) -> None:
    source, logs = make_bucket("source"), make_bucket("logs")
    outside = tmp_path / "outside"
    outside.mkdir()
    s3.put_object(Bucket=source, Key="bad//name", Body=b"needs recovery")
    manifest = export_manifest(source, logs, device_id="disk-rlink").to_yaml()
    job = client.create_job(JobType="Export", Manifest=manifest, ValidateOnly=False)
    root = devices / "disk-rlink"
    write_device(root, {}, job["SignatureFileContents"])
    os.symlink(outside, root / "EXPORT-RECOVERY")
    emulator.admin.act(job["JobId"], "receive")
    final = emulator.admin.act(job["JobId"], "process")
    assert final["ProgressCode"] == "DeviceError"
    assert "EXPORT-RECOVERY leads outside the device" in final["ProgressMessage"]
    assert list(outside.iterdir()) == []


def test_import_does_not_read_through_links_out_of_the_device(
    emulator: ImportExportEmulator, client: Any, s3: Any, bucket: str, devices: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"not on the device")
    job = new_job(client, bucket, device_id="disk-ilink")
    root = devices / "disk-ilink"
    write_device(root, {"real.txt": b"on the device", "sub/inner.txt": b"inner"}, job["SignatureFileContents"])
    os.symlink(secret, root / "leak.txt")
    os.symlink(root / "sub/inner.txt", root / "alias.txt")  # a link inside the device is fine
    emulator.admin.act(job["JobId"], "receive")
    final = emulator.admin.act(job["JobId"], "process")
    assert (final["ProgressCode"], final["ErrorCount"]) == ("SuccessWithErrors", 1)
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert keys == {"real.txt", "sub/inner.txt", "alias.txt", final["LogKey"]}
    rows = {r["File"]: r for r in parse_log(s3.get_object(Bucket=bucket, Key=final["LogKey"])["Body"].read().decode())}
    assert rows["leak.txt"]["Code"] == "DeviceReadError: leak.txt leads outside the device through a link"


def test_a_device_id_of_dot_dot_is_no_device(
    emulator: ImportExportEmulator, client: Any, s3: Any, make_bucket: Callable[..., str], devices: Path, tmp_path: Path
) -> None:
    """deviceId names a folder of the devices folder; '..' would make its parent the device."""
    source, logs = make_bucket("source"), make_bucket("logs")
    s3.put_object(Bucket=source, Key="data.txt", Body=b"data")
    manifest = export_manifest(source, logs, device_id="..").to_yaml()
    job_id = client.create_job(JobType="Export", Manifest=manifest, ValidateOnly=False)["JobId"]
    emulator.admin.act(job_id, "receive")
    assert emulator.admin.act(job_id, "process")["ProgressCode"] == "MissingDevice"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["devices"]


# --- 3. a restart keeps S3 -----------------------------------------------------------------------


def test_restart_keeps_buckets_objects_and_logs(tmp_path: Path, devices: Path) -> None:
    state = tmp_path / "state.json"
    bucket, far = unique("data"), unique("far")
    files = {"notes.txt": b"plain text", "table.dat": b"1,2,3", "archive.csv.gz": gzip.compress(b"a,b\n")}
    manifest = import_manifest(
        bucket, device_id="disk-keep", prefix="in/", acl="public-read", static_metadata={"team": "blue"},
        content_types={"dat": "application/x-data"}, set_content_encoding_for_gz_files=True,
    )  # fmt: skip
    with ImportExportEmulator(state_file=str(state), devices_dir=str(devices), accounts=ACCOUNTS) as first:
        first.admin.create_bucket(bucket)
        first.admin.create_bucket(far, region="eu-west-1", access_key=OTHER.access_key)
        api(first.endpoint_url, "s3", OTHER).put_object(Bucket=far, Key="k", Body=b"far away", ContentType="x/y")
        client = api(first.endpoint_url)
        job = client.create_job(JobType="Import", Manifest=manifest.to_yaml(), ValidateOnly=False)
        write_device(devices / "disk-keep", files, job["SignatureFileContents"])
        first.admin.act(job["JobId"], "receive")
        first.admin.act(job["JobId"], "process")
        before = _objects(api(first.endpoint_url, "s3"), bucket)
        done = client.get_status(JobId=job["JobId"])
    assert done["ProgressCode"] == "Complete"

    with ImportExportEmulator(state_file=str(state), accounts=ACCOUNTS) as second:
        s3 = api(second.endpoint_url, "s3")
        after = api(second.endpoint_url).get_status(JobId=job["JobId"])
        assert (after["LogBucket"], after["LogKey"]) == (done["LogBucket"], done["LogKey"])
        assert _objects(s3, bucket) == before
        assert s3.get_object(Bucket=bucket, Key=done["LogKey"])["Body"].read().startswith(b"DateTime,")
        grants = s3.get_object_acl(Bucket=bucket, Key="in/notes.txt")["Grants"]
        assert any(g["Grantee"].get("URI", "").endswith("/AllUsers") and g["Permission"] == "READ" for g in grants)
        other_s3 = api(second.endpoint_url, "s3", OTHER)
        assert far in [b["Name"] for b in other_s3.list_buckets()["Buckets"]]
        assert far not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
        assert other_s3.get_bucket_location(Bucket=far)["LocationConstraint"] == "eu-west-1"
        far_object = other_s3.get_object(Bucket=far, Key="k")
        assert (far_object["Body"].read(), far_object["ContentType"]) == (b"far away", "x/y")
    assert after["ProgressCode"] == "Complete"
    imported = before["in/archive.csv.gz"]
    assert (imported["ContentEncoding"], imported["Metadata"]) == ("gzip", {"team": "blue"})
    assert before["in/table.dat"]["ContentType"] == "application/x-data"


def _objects(s3: Any, bucket: str) -> dict[str, dict[str, Any]]:
    """Every object's body and the headers an import sets."""
    found = {}
    for item in s3.list_objects_v2(Bucket=bucket)["Contents"]:
        got = s3.get_object(Bucket=bucket, Key=item["Key"])
        headers = ("ContentType", "ContentEncoding", "Metadata", "ETag", "StorageClass")
        found[item["Key"]] = {"Body": got["Body"].read(), **{h: got.get(h) for h in headers}}
    return found


def test_kill_9_during_saves_leaves_a_whole_state(tmp_path: Path) -> None:
    """Every acknowledged job and the objects before it survive kill -9 at a random moment, many times."""
    state, bucket = tmp_path / "state.json", unique("kill")
    acknowledged: list[str] = []
    objects: dict[str, bytes] = {}
    for round_number in range(4):
        process, admin = spawn("--state-file", str(state), "--daily-create-quota", "100000")
        try:
            client, s3 = api(admin.endpoint_url), api(admin.endpoint_url, "s3")
            if round_number == 0:
                admin.create_bucket(bucket)
            listed = {j["JobId"] for j in client.list_jobs(MaxJobs=1000)["Jobs"]}
            assert set(acknowledged) <= listed
            for key, body in objects.items():
                assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body
            worker = threading.Thread(target=_keep_saving, args=(client, s3, bucket, acknowledged, objects))
            worker.start()
            time.sleep(random.uniform(0.5, 1.5))
        finally:
            process.kill()
            process.wait(timeout=30)
        worker.join(timeout=30)
    assert len(acknowledged) > 4


def _keep_saving(client: Any, s3: Any, bucket: str, acknowledged: list[str], objects: dict[str, bytes]) -> None:
    """Objects and jobs, each CreateJob a save, until the emulator is killed under it."""
    manifest = import_manifest(bucket).to_yaml()
    while True:
        key, body = f"o-{len(acknowledged)}-{random.random()}", os.urandom(256 * 1024)
        try:
            s3.put_object(Bucket=bucket, Key=key, Body=body)
            job_id = client.create_job(JobType="Import", Manifest=manifest, ValidateOnly=False)["JobId"]
        except Exception:
            return
        acknowledged.append(job_id)
        objects[key] = body


# --- 4. a state file that cannot work is refused at start; a failed save fails no request ----


def test_state_file_in_a_missing_folder_is_refused_at_start(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "state.json"
    with pytest.raises(ValueError, match="mkdir -p") as caught:
        ImportExportEmulator(state_file=str(path))
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    ("content", "expected"), [("{not json", "not readable JSON"), ('{"jobs": [{"job_id": "X"}]}', "damaged")]
)
def test_an_unreadable_state_file_is_refused_at_start(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "state.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=expected) as caught:
        ImportExportEmulator(state_file=str(path))
    assert str(path) in str(caught.value)
    assert path.read_text() == content  # left as found


def test_command_line_refuses_a_state_file_in_a_missing_folder(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "state.json"
    command = [sys.executable, "-m", "airflow_provider_importexport.emulator", "--port", "0", "--state-file", str(path)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("the emulator started serving with a state file it cannot write")
    assert done.returncode != 0
    assert str(path) in done.stderr


def test_a_failed_save_does_not_fail_create_job(tmp_path: Path) -> None:
    folder = tmp_path / "state"
    folder.mkdir()
    state = folder / "state.json"
    with ImportExportEmulator(state_file=str(state)) as emulator:
        client = api(emulator.endpoint_url)
        bucket = unique("saves")
        emulator.admin.create_bucket(bucket)
        first = new_job(client, bucket)["JobId"]
        state.unlink()
        folder.rmdir()
        folder.write_text("a file where the state folder was: no save can succeed")
        second = new_job(client, bucket)["JobId"]
        assert client.get_status(JobId=second)["ProgressCode"] == "Pending"
        folder.unlink()
        folder.mkdir()
        third = new_job(client, bucket)["JobId"]  # the next save writes every job
    with ImportExportEmulator(state_file=str(state)) as restarted:
        listed = {j["JobId"] for j in api(restarted.endpoint_url).list_jobs()["Jobs"]}
    assert listed == {first, second, third}
