"""`export_devices`: a ledger's device records as CSV or JSON lines, one line per device.

The answer to "which certificate went to which thing": certificate id, thing name, status,
the steps AWS confirmed, the first and last run, where the device came from (manifest, entry,
vendor id), the target, and the last error. Records stream from the ledger to ``out`` one at
a time, so a million devices take no more memory than ten.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from typing import Any, Final, Literal, TextIO

from thingpress_core.errors import ConfigurationError
from thingpress_core.ledger._models import DeviceRecord
from thingpress_core.ledger._protocol import Ledger

__all__ = ["EXPORT_COLUMNS", "ExportFormat", "export_devices"]

ExportFormat = Literal["jsonl", "csv"]

#: The keys of every exported line, in column order.
EXPORT_COLUMNS: Final = (
    "certificate_id",
    "thing_name",
    "status",
    "steps",
    "first_run_id",
    "last_run_id",
    "source",
    "entry_index",
    "vendor_id",
    "target",
    "last_error",
    "last_error_step",
)


def _row(record: DeviceRecord) -> dict[str, Any]:
    return {
        "certificate_id": record.certificate_id,
        "thing_name": record.thing_name,
        "status": record.certificate_status,
        "steps": list(record.steps),
        "first_run_id": record.first_run_id,
        "last_run_id": record.run_id,
        "source": record.source,
        "entry_index": record.entry_index,
        "vendor_id": record.vendor_id,
        "target": record.target,
        "last_error": record.last_error,
        "last_error_step": record.last_error_step,
    }


def export_devices(
    ledger: Ledger,
    out: TextIO,
    *,
    format: ExportFormat,
    run_id: str | None = None,
    target: str | None = None,
) -> int:
    """Write the device records of ``ledger`` (of one run, of one target) to ``out`` in
    certificate-id order and return how many were written.

    ``format="csv"``: a header line, then one row per device; ``steps`` is the step keys joined
    by commas (``register,thing,principal,policy:P,group:G``); an absent value is an empty
    field; a text field that a spreadsheet would run as a formula (it begins with ``=``, ``+``,
    ``@``, a tab or a carriage return, or with ``-`` and is not a plain name) gets a leading
    ``'``, since a manifest's file names, vendor ids and errors are untrusted text.
    ``format="jsonl"``: one JSON object per line with the same keys; ``steps`` is a list
    of the step keys and an absent value is ``null``. Lines end with ``\\n``; open a file for it
    with ``newline=""``.
    """
    if format not in ("jsonl", "csv"):
        raise ConfigurationError(
            f"export format {format!r} is not one of: jsonl, csv", variable="format", value=format
        )
    records = ledger.devices(target=target, run_id=run_id)
    try:
        return _write_csv(records, out) if format == "csv" else _write_jsonl(records, out)
    finally:
        close = getattr(records, "close", None)
        if close is not None:  # a generator ends its read transaction now, not when collected
            close()


def _write_csv(records: Iterator[DeviceRecord], out: TextIO) -> int:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    count = 0
    for record in records:
        row = _row(record)
        row["steps"] = ",".join(row["steps"])
        writer.writerow(["" if row[key] is None else _cell(row[key]) for key in EXPORT_COLUMNS])
        count += 1
    return count


_FORMULA_START: Final = ("=", "+", "@", "\t", "\r")
_PLAIN_NAME: Final = re.compile(r"-[A-Za-z0-9:_.-]*")


def _cell(value: object) -> object:
    """A CSV cell a spreadsheet shows as text: formula-like text is prefixed with ``'``."""
    if not isinstance(value, str) or not value:
        return value
    if value.startswith(_FORMULA_START) or (value[0] == "-" and not _PLAIN_NAME.fullmatch(value)):
        return "'" + value
    return value


def _write_jsonl(records: Iterator[DeviceRecord], out: TextIO) -> int:
    encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    count = 0
    for record in records:
        out.write(encode(_row(record)) + "\n")
        count += 1
    return count
