"""Settings shared by the example DAGs: where the data goes and where the device is mounted.

Read from the environment at parse time (the Asset below must be known when the DAGs are
parsed, so downstream DAGs can be scheduled on it). The defaults match ``make demo``.
"""

from __future__ import annotations

import os

from airflow.sdk import Asset

AWS_CONN_ID = os.environ.get("IMPORTEXPORT_EXAMPLE_CONN_ID", "aws_default")
BUCKET = os.environ.get("IMPORTEXPORT_EXAMPLE_BUCKET", "data-lake-raw")
PREFIX = os.environ.get("IMPORTEXPORT_EXAMPLE_PREFIX", "migrated/")
LOG_BUCKET = os.environ.get("IMPORTEXPORT_EXAMPLE_LOG_BUCKET", "data-lake-logs")
#: Where the device to import is mounted on the worker, and its serial number or sticker id.
DEVICE_PATH = os.environ.get("IMPORTEXPORT_EXAMPLE_DEVICE_PATH", "/mnt/importexport/disk-001")
DEVICE_ID = os.environ.get("IMPORTEXPORT_EXAMPLE_DEVICE_ID", "disk-001")
#: Where the export device is mounted, and its id.
EXPORT_DEVICE_PATH = os.environ.get("IMPORTEXPORT_EXAMPLE_EXPORT_DEVICE_PATH", "/mnt/importexport/disk-002")
EXPORT_DEVICE_ID = os.environ.get("IMPORTEXPORT_EXAMPLE_EXPORT_DEVICE_ID", "disk-002")
#: How often the sensors poll. Real devices take days; the demo's emulator takes seconds.
POLL_SECONDS = float(os.environ.get("IMPORTEXPORT_EXAMPLE_POLL_SECONDS", "900"))

RETURN_ADDRESS = {
    "name": "Data Platform Team",
    "company": "Example Corp",
    "street1": "1 Main Street",
    "city": "Seattle",
    "stateOrProvince": "WA",
    "postalCode": "98101",
    "country": "US",
    "phoneNumber": "206-555-0100",
}

#: The imported data, as an Airflow Asset: the import DAG emits it, the downstream DAG waits on it.
IMPORTED_DATA = Asset(f"s3://{BUCKET}/{PREFIX}")
