"""Provider metadata read by Airflow's ProvidersManager through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from airflow_provider_importexport import __version__

INTEGRATION = "AWS Import/Export"
PACKAGE = "airflow_provider_importexport"


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-importexport",
        "name": "AWS Import/Export",
        "description": "Ship disks into and out of Amazon S3, EBS and Glacier with AWS Import/Export: "
        "create, update and cancel jobs, fetch shipping labels, and wait for devices and transfers.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": INTEGRATION,
                "external-doc-url": "https://docs.aws.amazon.com/AWSImportExport/latest/DG/whatisdisk.html",
                "tags": ["aws"],
            }
        ],
        "hooks": [{"integration-name": INTEGRATION, "python-modules": [f"{PACKAGE}.hooks.importexport"]}],
        "operators": [{"integration-name": INTEGRATION, "python-modules": [f"{PACKAGE}.operators.importexport"]}],
        "sensors": [{"integration-name": INTEGRATION, "python-modules": [f"{PACKAGE}.sensors.importexport"]}],
        "triggers": [{"integration-name": INTEGRATION, "python-modules": [f"{PACKAGE}.triggers.importexport"]}],
        "extra-links": [
            f"{PACKAGE}.links.importexport.ImportExportShippingLabelLink",
            f"{PACKAGE}.links.importexport.ImportExportLogLink",
        ],
    }
