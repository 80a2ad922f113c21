"""Espressif manifests: CSV with header ``MAC,cn,cert`` and a quoted multi-line PEM per row."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import IO

from thingpress_core.certificates._model import shown_text
from thingpress_core.errors import ManifestError
from thingpress_core.manifests._common import Policy, ReaderNaming, entry_error, offered_name, parse_pem
from thingpress_core.manifests._model import ManifestEntry

__all__ = ["read_espressif"]

_COLUMNS = ("mac", "cn", "cert")
# A physical line longer than this is refused before it is held whole: csv reads a line at a
# time, and a 256 MiB manifest without a line break would otherwise sit in memory at once.
# Real rows are a MAC, a CN and 64-character PEM lines; the csv module refuses fields over
# 131,072 characters anyway.
MAX_LINE_CHARS = 1024 * 1024


def _lines(text: io.TextIOWrapper, *, source: str, limit: int) -> Iterator[str]:
    """The physical lines of ``text``; `ManifestError` for one longer than ``limit`` characters."""
    number = 0
    while True:
        line = text.readline(limit + 1)
        if not line:
            return
        number += 1
        if len(line) > limit:
            raise ManifestError(
                f"{source}: line {number} is longer than {limit} characters; not an Espressif manifest "
                "(the rows after it cannot be read)",
                source=source,
            )
        yield line


def _header(reader: Iterator[list[str]], source: str) -> dict[str, int]:
    for row in reader:
        if not row or not any(cell.strip() for cell in row):
            continue
        names = [cell.strip().lstrip("\ufeff").lower() for cell in row]
        missing = [c for c in _COLUMNS if c not in names]
        if missing:
            shown = ",".join(cell.strip() for cell in row)[:80]
            raise ManifestError(
                f"{source}: not an Espressif manifest: the header must name MAC, cn and cert "
                f"(found {shown!r})",
                source=source,
            )
        return {name: names.index(name) for name in _COLUMNS}
    raise ManifestError(f"{source}: not an Espressif manifest: the file is empty", source=source)


def _row_entry(
    row: list[str],
    columns: dict[str, int],
    *,
    source: str,
    index: int,
    line: int,
    naming: ReaderNaming,
) -> ManifestEntry:
    if len(row) <= max(columns.values()):
        raise entry_error(
            source, index, f"has {len(row)} fields, expected MAC, cn and cert", noun="row", line=line
        )
    mac = row[columns["mac"]].strip()
    cn = row[columns["cn"]].strip()
    pem = row[columns["cert"]].strip()
    if not mac:
        raise entry_error(source, index, "has no MAC", noun="row", line=line)
    if not pem:
        raise entry_error(source, index, f"MAC {shown_text(mac)} has no certificate", noun="row", line=line)
    cert = parse_pem(pem, source=source, index=index, noun="row", line=line)
    name = offered_name(naming, cert, vendor_id=mac, common_name=cn)
    return ManifestEntry(thing_name=name, certificate=cert, vendor_id=mac, index=index, source=source)


def read_espressif(
    stream: IO[bytes], *, source: str, policy: Policy, naming: ReaderNaming
) -> Iterator[ManifestEntry | ManifestError]:
    """Yield one entry per data row; ``index`` is the 0-based data row (the header is not a row).

    Tolerates a UTF-8 byte order mark and CRLF line ends; the thing name is the MAC
    (``naming="mac"``), the ``cn`` column (``"common_name"``, else the certificate's CN), the
    certificate id, or None (the importer decides). A row that breaks
    the CSV structure (an unterminated quote) or text that is not UTF-8 raises whatever
    ``on_error`` says, because nothing after it can be read.
    """
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    reader = csv.reader(_lines(text, source=source, limit=MAX_LINE_CHARS), strict=True)
    index = 0
    try:
        columns = _header(reader, source)
        while True:
            line = reader.line_num + 1
            try:
                row = next(reader, None)
            except csv.Error as exc:
                # the csv module cannot resynchronise after a broken quote, so the rows after
                # it cannot be read: that fails the manifest even with on_error="skip"
                message = f"is not valid CSV ({exc}); the rows after it cannot be read"
                raise entry_error(source, index, message, noun="row", line=line) from exc
            if row is None:
                return
            if not any(cell.strip() for cell in row):
                continue
            try:
                entry = _row_entry(row, columns, source=source, index=index, line=line, naming=naming)
            except ManifestError as exc:
                yield from policy.fail(
                    exc,
                    code="invalid",
                    vendor_id=row[columns["mac"]].strip() or None if len(row) > columns["mac"] else None,
                )
                index += 1
                continue
            yield entry
            index += 1
    except UnicodeDecodeError as exc:
        raise entry_error(source, index, f"is not UTF-8 text: {exc.reason}", noun="row") from exc
    except csv.Error as exc:
        raise ManifestError(f"{source}: not an Espressif manifest: {exc}", source=source) from exc
    finally:
        text.detach()
