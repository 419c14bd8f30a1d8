"""The no-duplicate-job guarantee, one mechanism at a time, counted from the emulator's own records.

Two mechanisms stand behind "a retried task never ships a second device": the task state store
(the job id an attempt stored) and the run marker in the manifest's ``generator`` field (found
again by ListJobs + GetStatus when the store holds nothing). Each test here disables or defeats
the other mechanism, so it fails when the one under test breaks.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_importexport.emulator import ImportExportEmulator
from airflow_provider_importexport.hooks.importexport import ImportExportHook
from tests.helpers import export_manifest, import_manifest
from tests.test_operators import dag_source

MARKER = re.compile(r"airflow-importexport:[0-9a-f]{20}")


def jobs_by_marker(emulator: ImportExportEmulator) -> dict[str, list[dict[str, Any]]]:
    """The emulator's jobs grouped by the run marker in their manifest."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for job in emulator.admin.jobs():
        for marker in MARKER.findall(job["CurrentManifest"]):
            grouped.setdefault(marker, []).append(job)
    return grouped


def carried_out(emulator: ImportExportEmulator, action: str) -> list[dict[str, Any]]:
    return [r for r in emulator.admin.requests(action=action) if r["carried_out"]]


RETRYING_CREATE = """
ImportExportCreateJobOperator(
    task_id="create", manifest=$manifest, retries=2, retry_delay=datetime.timedelta(seconds=0)
)
"""


@pytest.mark.parametrize("fault", ["drop_after", "error_500_after", "error_500_html_after"])
def test_marker_scan_adopts_the_job_whose_create_answer_was_lost(
    run_dag: Any, emulator: ImportExportEmulator, bucket: str, fault: str
) -> None:
    """Attempt 1's CreateJob is carried out and its answer lost, so the state store holds nothing:
    only the marker scan can find the job. Fails if the scan is skipped, broken, or if the marker
    changes between tries."""
    emulator.admin.queue_faults(f"{fault}@CreateJob")
    result = run_dag(dag_source(RETRYING_CREATE), manifest=repr(import_manifest(bucket).to_yaml()))

    assert result.state("create") == "success"
    assert result.ti("create").try_number == 2
    creates = emulator.admin.requests(action="CreateJob")
    assert [(r["fault"], r["carried_out"], r["outcome"]) for r in creates] == [(fault, True, "ok")]
    created = creates[0]["job_id"]
    (marker,) = jobs_by_marker(emulator)
    assert [j["JobId"] for j in jobs_by_marker(emulator)[marker]] == [created]
    assert result.xcom("create") == created  # attempt 2 returned the job attempt 1 created
    assert len(carried_out(emulator, "ListJobs")) >= 1  # found by the scan, not by luck


DIES_AFTER_CREATE = '''
class DiesAfterCreate(ImportExportCreateJobOperator):
    """Attempt 1 created its job and stored its id, then the device went away mid-write."""

    def get_job_result(self, external_id, context):
        if context["ti"].try_number == 1:
            raise OSError("the device went away while SIGNATURE was written")
        return super().get_job_result(external_id, context)

DiesAfterCreate(
    task_id="create", manifest=$manifest, signature_path="$device", retries=1,
    retry_delay=datetime.timedelta(seconds=0),
)
'''


def test_state_store_reconnects_when_the_marker_scan_cannot_help(
    run_dag: Any, emulator: ImportExportEmulator, bucket: str, device_dir: Path
) -> None:
    """Attempt 1 creates the job and stores its id, then fails writing SIGNATURE. Every ListJobs
    is refused, so a marker scan would fail the task: only the state store can carry the retry."""
    emulator.admin.set_faults(throttle_rate=1.0, actions=["ListJobs"])
    result = run_dag(dag_source(DIES_AFTER_CREATE), manifest=repr(import_manifest(bucket).to_yaml()), device=device_dir)
    assert result.state("create") == "success"
    assert result.ti("create").try_number == 2
    (create,) = carried_out(emulator, "CreateJob")
    assert result.xcom("create") == create["job_id"]
    assert emulator.admin.requests(action="ListJobs") == []  # the store answered; no scan was tried
    assert f"jobId:{create['job_id']}" in (device_dir / "SIGNATURE").read_text()


CANCEL_THEN_FAIL = '''
class CancelThenFail(ImportExportCreateJobOperator):
    """Attempt 1: its job is canceled (by a person, say), then the attempt dies."""

    def get_job_result(self, external_id, context):
        if context["ti"].try_number == 1:
            self.hook.cancel_job(external_id)
            raise RuntimeError("attempt 1 dies after its job was canceled")
        return super().get_job_result(external_id, context)

CancelThenFail(task_id="create", manifest=$manifest, retries=1, retry_delay=datetime.timedelta(seconds=0))
'''


def test_a_retry_after_the_job_was_canceled_creates_a_new_one_with_minimal_reads(
    run_dag: Any, emulator: ImportExportEmulator, bucket: str
) -> None:
    result = run_dag(dag_source(CANCEL_THEN_FAIL), manifest=repr(import_manifest(bucket).to_yaml()))

    assert result.state("create") == "success"
    first, second = (r["job_id"] for r in carried_out(emulator, "CreateJob"))
    assert result.xcom("create") == second != first
    (marker,) = jobs_by_marker(emulator)
    assert sorted(j["JobId"] for j in jobs_by_marker(emulator)[marker]) == sorted([first, second])
    # The stored id costs one GetStatus; the scan sees IsCanceled in ListJobs and reads no more.
    assert len(emulator.admin.requests(action="GetStatus", job_id=first)) == 1


def test_the_first_try_creates_without_scanning(run_dag: Any, emulator: ImportExportEmulator, bucket: str) -> None:
    """A first attempt cannot follow one that reached the service: no ListJobs walk, no GetStatus
    per job, however many jobs the account has."""
    hook = ImportExportHook(aws_conn_id="aws_default")
    for number in range(30):
        hook.create_job("Import", import_manifest(bucket, device_id=f"old-{number}"))
    emulator.admin.request("DELETE", "requests")

    result = run_dag(dag_source(RETRYING_CREATE), manifest=repr(import_manifest(bucket).to_yaml()))

    assert result.state("create") == "success"
    assert Counter(r["action"] for r in emulator.admin.requests()) == {"CreateJob": 1}


MAPPED_CREATE = """
ImportExportCreateJobOperator.partial(task_id="create").expand(manifest=[$first, $second])
"""


def test_markers_differ_across_runs_and_map_indexes(run_dag: Any, emulator: ImportExportEmulator, bucket: str) -> None:
    manifests = {
        "first": repr(import_manifest(bucket, device_id="disk-a").to_yaml()),
        "second": repr(import_manifest(bucket, device_id="disk-b").to_yaml()),
    }
    source = dag_source(MAPPED_CREATE)
    run_dag(source, dag_id="mapped_markers", **manifests)
    run_dag(source, dag_id="mapped_markers", **manifests)

    grouped = jobs_by_marker(emulator)
    assert len(grouped) == 4  # two runs x two map indexes
    assert all(len(jobs) == 1 for jobs in grouped.values())


def test_cancel_on_kill_false_leaves_the_job(aws_conn: str, bucket: str, emulator: ImportExportEmulator) -> None:
    from airflow_provider_importexport.operators.importexport import ImportExportCreateJobOperator

    hook = ImportExportHook(aws_conn_id=aws_conn)
    operator = ImportExportCreateJobOperator(task_id="create", manifest=import_manifest(bucket), cancel_on_kill=False)
    operator.job_id = hook.create_job("Import", import_manifest(bucket))["JobId"]
    emulator.admin.request("DELETE", "requests")
    operator.on_kill()
    assert emulator.admin.requests() == []
    assert [j["IsCanceled"] for j in hook.list_jobs()] == [False]


BUSY_ACCOUNT = '''
class BusyAccount(ImportExportCreateJobOperator):
    """Attempt 1 creates its job; before its answer is lost, the account creates $others more."""

    def submit_job(self, context):
        job_id = super().submit_job(context)
        if context["ti"].try_number == 1:
            for _ in range($others):
                self.hook.create_job(self.job_type, self._model.__class__(**{
                    **{f.name: getattr(self._model, f.name) for f in dataclasses.fields(self._model)},
                    "generator": "another-team"}))
            raise ConnectionError("the CreateJob answer was lost")
        return job_id

BusyAccount(task_id="create", manifest=$manifest, retries=1, retry_delay=datetime.timedelta(seconds=0))
'''


@pytest.mark.importexport_emulator(daily_create_quota=1000)
def test_the_scan_reaches_back_to_the_runs_start_however_many_jobs_came_since(
    run_dag: Any, emulator: ImportExportEmulator, bucket: str
) -> None:
    """More jobs than ADOPTION_SCAN_LIMIT were created after attempt 1's: the scan still finds it."""
    from airflow_provider_importexport.operators.importexport import ADOPTION_SCAN_LIMIT

    others = ADOPTION_SCAN_LIMIT + 20
    result = run_dag(
        "import dataclasses\n" + dag_source(BUSY_ACCOUNT),
        manifest=repr(import_manifest(bucket).to_yaml()),
        others=others,
    )
    assert result.state("create") == "success"
    first = carried_out(emulator, "CreateJob")[0]["job_id"]
    assert result.xcom("create") == first
    assert len(carried_out(emulator, "CreateJob")) == others + 1
    (marker,) = jobs_by_marker(emulator)
    assert [j["JobId"] for j in jobs_by_marker(emulator)[marker]] == [first]


def test_the_run_marker_is_stable_across_releases() -> None:
    """A retry may run after the provider was upgraded mid-run; it must still compute the marker its
    first attempt wrote, so the marker's recipe is pinned (the UI's shipments view reads it too)."""
    from airflow_provider_importexport.operators.importexport import run_marker

    assert run_marker("nightly", "create", "scheduled__2026-01-01T00:00:00+00:00", None) == (
        "airflow-importexport:1febd32e28af3cfbf8c8"
    )
    assert run_marker("nightly", "create", "manual__1", 0) != run_marker("nightly", "create", "manual__1", 1)


CROWDED_RETRY = '''
from airflow_provider_importexport.emulator.client import EmulatorAdmin


class Crowded(ImportExportCreateJobOperator):
    """Before attempt 2 looks for its job, the account gets newer jobs it must walk past."""

    def execute(self, context):
        if context["ti"].try_number == 2:
            canceled = self.hook.create_job("Import", $other)["JobId"]
            self.hook.cancel_job(canceled)
            self.hook.create_job("Export", $export)
            expired = self.hook.create_job("Import", $other)["JobId"]
            EmulatorAdmin(self.hook.conn_config.endpoint_url).act(expired, "expire")
        return super().execute(context)


Crowded(task_id="create", manifest=$manifest, retries=1, retry_delay=datetime.timedelta(seconds=0))
'''


@pytest.mark.importexport_emulator(ended_job_status="error")
def test_the_scan_walks_past_newer_canceled_other_type_and_expired_jobs(
    run_dag: Any, emulator: ImportExportEmulator, bucket: str
) -> None:
    """Attempt 1's answer is lost; by the retry, the account has a newer canceled job, an Export job and
    an expired job (GetStatus refuses it with ExpiredJobIdException, as the service's model says). The
    scan must skip each (the first two without reading their status) and still adopt attempt 1's job."""
    emulator.admin.queue_faults("drop_after@CreateJob")
    result = run_dag(
        dag_source(CROWDED_RETRY),
        manifest=repr(import_manifest(bucket).to_yaml()),
        other=repr(import_manifest(bucket, device_id="someone-else").to_yaml()),
        export=repr(export_manifest(bucket, bucket).to_yaml()),
    )

    assert result.state("create") == "success"
    assert result.ti("create").try_number == 2
    first, canceled, export, expired = (r["job_id"] for r in carried_out(emulator, "CreateJob"))
    assert result.xcom("create") == first
    (marker,) = jobs_by_marker(emulator)
    assert [j["JobId"] for j in jobs_by_marker(emulator)[marker]] == [first]
    reads = Counter(r["job_id"] for r in emulator.admin.requests(action="GetStatus"))
    assert (reads[canceled], reads[export], reads[expired]) == (0, 0, 1)
    assert reads[first] >= 1


STORED_UNKNOWN_ID = '''
class StoredUnknownId(ImportExportCreateJobOperator):
    """Attempt 1 stored a job id the service does not know (another account's, or a service that lost
    its jobs), then died before creating anything."""

    def execute(self, context):
        if context["ti"].try_number == 1:
            context["task_state_store"].set(self.external_id_key, "ZZZZ9")
            raise RuntimeError("attempt 1 dies after storing an id the service does not know")
        return super().execute(context)


StoredUnknownId(task_id="create", manifest=$manifest, retries=1, retry_delay=datetime.timedelta(seconds=0))
'''


def test_a_stored_id_the_service_does_not_know_is_not_adopted_and_a_new_job_is_made(
    run_dag: Any, emulator: ImportExportEmulator, bucket: str
) -> None:
    """InvalidJobId for the stored id is as good as expired: the retry creates the job, once, rather than
    failing the task on a job that cannot be reached."""
    result = run_dag(dag_source(STORED_UNKNOWN_ID), manifest=repr(import_manifest(bucket).to_yaml()))

    assert result.state("create") == "success"
    assert result.ti("create").try_number == 2
    (create,) = carried_out(emulator, "CreateJob")
    assert result.xcom("create") == create["job_id"]
    assert [r["outcome"] for r in emulator.admin.requests(action="GetStatus", job_id="ZZZZ9")] == [
        "InvalidJobIdException"
    ]
