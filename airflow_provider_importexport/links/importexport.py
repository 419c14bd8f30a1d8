"""Operator extra links: the shipping label PDF and the job's log object in the S3 console."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from airflow.providers.amazon.aws.links.base_aws import BASE_AWS_CONSOLE_LINK, BaseAwsLink


class ImportExportShippingLabelLink(BaseAwsLink):
    """The pre-paid shipping label returned by GetShippingLabel."""

    name = "Shipping Label"
    key = "importexport_shipping_label"
    format_str = "{shipping_label_url}"


class ImportExportLogLink(BaseAwsLink):
    """The job's import/export log in the S3 console, once GetStatus reports LogBucket/LogKey."""

    name = "Import/Export Log (S3)"
    key = "importexport_log"
    format_str = BASE_AWS_CONSOLE_LINK + "/s3/object/{log_bucket}?region={region_name}&prefix={log_key}"

    def format_link(self, **kwargs: Any) -> str:
        if not kwargs.get("log_bucket") or not kwargs.get("log_key"):
            return ""
        escaped = {**kwargs, "log_key": quote(str(kwargs["log_key"]), safe="")}
        return super().format_link(**escaped)
