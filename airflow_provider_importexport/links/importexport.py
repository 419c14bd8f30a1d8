"""Operator extra links: the shipping label PDF and the job's log object in the S3 console."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow.providers.amazon.aws.links.base_aws import BASE_AWS_CONSOLE_LINK, BaseAwsLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context
    from airflow.sdk.types import TaskInstanceKey


class _ReadOnlyIfPersisted(BaseAwsLink):
    """A link read only when this run of the task persisted it.

    Airflow asks every link for its URL when the task ends or defers; reading an XCom that is
    not there logs an error line ("XCom not found") on every deferral and on a wait that never
    saw a log location. The task that persists a link is the one that reads it back.
    """

    @classmethod
    def persist(
        cls, context: Context, operator: BaseOperator, region_name: str, aws_partition: str, **kwargs: Any
    ) -> None:
        super().persist(
            context=context, operator=operator, region_name=region_name, aws_partition=aws_partition, **kwargs
        )
        if operator.do_xcom_push:
            operator.__dict__.setdefault("_importexport_links_persisted", set()).add(cls.key)

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        if self.key not in getattr(operator, "_importexport_links_persisted", ()):
            return ""
        return super().get_link(operator, ti_key=ti_key)


class ImportExportShippingLabelLink(_ReadOnlyIfPersisted):
    """The pre-paid shipping label returned by GetShippingLabel."""

    name = "Shipping Label"
    key = "importexport_shipping_label"
    format_str = "{shipping_label_url}"


class ImportExportLogLink(_ReadOnlyIfPersisted):
    """The job's import/export log in the S3 console, once GetStatus reports LogBucket/LogKey."""

    name = "Import/Export Log (S3)"
    key = "importexport_log"
    format_str = BASE_AWS_CONSOLE_LINK + "/s3/object/{log_bucket}?region={region_name}&prefix={log_key}"

    def format_link(self, **kwargs: Any) -> str:
        if not kwargs.get("log_bucket") or not kwargs.get("log_key"):
            return ""
        escaped = {**kwargs, "log_key": quote(str(kwargs["log_key"]), safe="")}
        return super().format_link(**escaped)
