"""The service's import/export log format (spec §6.2), shared by the emulator that writes
logs and the sensor that summarises them for downstream tasks."""

from __future__ import annotations

import csv
import io

LOG_COLUMNS = ("DateTime", "File", "Status", "Code", "Key", "MD5", "Bytes", "Content-Type")
STATUS_OK = "200"
STATUS_IGNORED = "103"


def parse_log(text: str) -> list[dict[str, str]]:
    """Rows of an import/export log as dicts keyed by the documented column names."""
    reader = csv.reader(io.StringIO(text))
    rows = [row for row in reader if row]
    if rows and tuple(rows[0]) == LOG_COLUMNS:
        rows = rows[1:]
    return [dict(zip(LOG_COLUMNS, row, strict=False)) for row in rows]


def summarize(rows: list[dict[str, str]]) -> dict[str, int]:
    """What a downstream task wants from a log: files ok / failed / ignored and bytes loaded."""
    ok = [r for r in rows if r.get("Status") == STATUS_OK]
    ignored = [r for r in rows if r.get("Status") == STATUS_IGNORED]
    return {
        "files_ok": len(ok),
        "files_failed": len(rows) - len(ok) - len(ignored),
        "files_ignored": len(ignored),
        "bytes_ok": sum(int(r.get("Bytes") or 0) for r in ok),
    }
