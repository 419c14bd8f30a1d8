"""The walking-skeleton demo: start the emulator and drive one import job through the hook.

Prints each step. Exits non-zero if any step does not behave as the service would.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="importexport-demo-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

from airflow_provider_importexport.emulator import DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY, ImportExportEmulator
from airflow_provider_importexport.hooks.importexport import ImportExportHook
from airflow_provider_importexport.manifest import ReturnAddress, S3ImportManifest


def step(text: str) -> None:
    print(f"==> {text}", flush=True)


def main() -> int:
    with ImportExportEmulator() as emulator:
        step(f"emulator ready on {emulator.endpoint_url}")
        os.environ["AIRFLOW_CONN_AWS_DEFAULT"] = json.dumps(
            {
                "conn_type": "aws",
                "login": DEFAULT_ACCESS_KEY,
                "password": DEFAULT_SECRET_KEY,
                "extra": {"endpoint_url": emulator.endpoint_url, "region_name": "us-east-1"},
            }
        )
        emulator.admin.create_bucket("demo-import-bucket")
        step("bucket demo-import-bucket created")
        hook = ImportExportHook(aws_conn_id="aws_default")
        manifest = S3ImportManifest(
            device_id="demo-disk-1",
            bucket="demo-import-bucket",
            prefix="migrated/",
            return_address=ReturnAddress(
                name="Data Team",
                street1="1 Main Street",
                city="Seattle",
                state_or_province="WA",
                postal_code="98101",
                country="US",
                phone_number="206-555-0100",
            ),
        )
        verdict = hook.create_job("Import", manifest, validate_only=True)
        step(f"manifest validated by the service (ValidateOnly): {verdict.get('WarningMessage') or 'no warnings'}")
        job = hook.create_job("Import", manifest)
        job_id = job["JobId"]
        step(f"job {job_id} created; SIGNATURE file:\n{job['SignatureFileContents']}")
        status = hook.get_status(job_id)
        step(f"GetStatus: LocationCode={status['LocationCode']} ProgressCode={status['ProgressCode']}")
        label = hook.get_shipping_label([job_id])
        step(f"shipping label: {label['ShippingLabelURL']}")
        listed = [j["JobId"] for j in hook.list_jobs()]
        step(f"ListJobs: {listed}")
        if job_id not in listed:
            print("FAILED: the new job is not listed", file=sys.stderr)
            return 1
        hook.cancel_job(job_id)
        canceled = next(j for j in hook.list_jobs() if j["JobId"] == job_id)
        step(f"job {job_id} canceled: IsCanceled={canceled['IsCanceled']}")
        if not canceled["IsCanceled"]:
            print("FAILED: the job did not cancel", file=sys.stderr)
            return 1
    step("demo finished")
    return 0


if __name__ == "__main__":
    sys.exit(main())
