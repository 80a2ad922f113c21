"""export_devices: CSV and JSON lines that parse back to the records, streamed in flat memory."""

from __future__ import annotations

import csv
import io
import json
import os
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.ledger._sqlite_support import RUN, RUN2, T2, cert, imported

from thingpress_core.errors import ConfigurationError
from thingpress_core.ledger import DeviceRecord, SqliteLedger, export_devices, step_key
from thingpress_core.ledger._export import EXPORT_COLUMNS


def _expected(record: DeviceRecord) -> dict[str, object]:
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


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[SqliteLedger]:
    with SqliteLedger(tmp_path / "export.ledger") as opened:
        opened.save(imported(2))
        opened.save(imported(1, target=T2))
        failed = imported(3, steps=("register",)).with_error(
            "thing", 'InvalidRequest: bad name "x,y"\nsecond line', run_id=RUN2
        )
        opened.save(failed)
        opened.save(imported(4).with_step(step_key("policy", "a,b"), run_id=RUN2, made=True))
        yield opened


def test_json_lines_parse_back_to_the_records(ledger: SqliteLedger) -> None:
    out = io.StringIO()
    assert export_devices(ledger, out, format="jsonl") == 4
    lines = out.getvalue().splitlines()
    assert [json.loads(line) for line in lines] == [_expected(r) for r in ledger.devices()]
    assert all(list(json.loads(line)) == list(EXPORT_COLUMNS) for line in lines)


def test_csv_has_a_header_and_quotes_what_needs_it(ledger: SqliteLedger) -> None:
    out = io.StringIO()
    assert export_devices(ledger, out, format="csv") == 4
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert rows[0] == list(EXPORT_COLUMNS)
    expected = []
    for record in ledger.devices():
        row = _expected(record)
        row["steps"] = ",".join(record.steps)
        expected.append(["" if row[k] is None else str(row[k]) for k in EXPORT_COLUMNS])
    assert rows[1:] == expected
    third = dict(zip(EXPORT_COLUMNS, rows[3], strict=True))
    assert third["last_error"] == 'InvalidRequest: bad name "x,y"\nsecond line'  # quoted, kept whole
    assert third["steps"] == "register"
    assert dict(zip(EXPORT_COLUMNS, rows[1], strict=True))["target"] == T2


def test_export_of_one_run_or_one_target(ledger: SqliteLedger) -> None:
    out = io.StringIO()
    assert export_devices(ledger, out, format="jsonl", run_id=RUN2) == 1  # only device 4 has a RUN2 step
    assert json.loads(out.getvalue())["certificate_id"] == cert(4)
    out = io.StringIO()
    assert export_devices(ledger, out, format="csv", target=T2, run_id=RUN) == 1
    assert out.getvalue().splitlines()[1].startswith(cert(1))
    out = io.StringIO()
    assert export_devices(ledger, out, format="csv", target="999999999999/x") == 0
    assert out.getvalue() == ",".join(EXPORT_COLUMNS) + "\n"


def test_an_unknown_format_is_refused(ledger: SqliteLedger) -> None:
    with pytest.raises(ConfigurationError, match="export format 'xml' is not one of: jsonl, csv"):
        export_devices(ledger, io.StringIO(), format="xml")  # type: ignore[arg-type]  # the wrong value under test


def test_a_failing_output_ends_the_read_transaction(ledger: SqliteLedger) -> None:
    class Full(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError("no space left on device")

    with pytest.raises(OSError, match="no space") as caught:
        export_devices(ledger, Full(), format="jsonl")
    assert caught.traceback  # which keeps the export's frame, and its iterator, alive
    ledger.save(imported(9))
    assert ledger._writer is not None
    busy, _, _ = ledger._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    assert busy == 0  # no reader holds an old snapshot: the WAL could be emptied


class _Generated:
    """A stand-in ledger whose devices are made one at a time, so only the export holds memory."""

    def __init__(self, count: int) -> None:
        self.count = count

    def devices(self, *, target: str | None = None, run_id: str | None = None) -> Iterator[DeviceRecord]:
        template = imported(0)
        for n in range(self.count):
            yield template.model_copy(update={"certificate_id": cert(n), "entry_index": n})


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_export_memory_does_not_grow_with_the_number_of_devices(fmt: str) -> None:
    def peak(count: int) -> int:
        with open(os.devnull, "w") as sink:
            tracemalloc.start()
            try:
                assert export_devices(_Generated(count), sink, format=fmt) == count  # type: ignore[arg-type]  # only devices() is used
                return tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()

    small, large = peak(500), peak(5_000)
    assert large < small * 1.5  # ten times the devices, about the same memory


_FORMULA = ("=", "+", "@", "\t", "\r")
# line breaks inside a field do not survive csv's reader from a string; the writer's side of
# a leading carriage return is checked below on the raw text
_TEXT = st.text(st.characters(blacklist_characters="\r\n", codec=None), min_size=1, max_size=40)


@settings(max_examples=200)
@given(source=_TEXT, vendor=_TEXT)
def test_csv_never_hands_a_spreadsheet_a_formula(
    tmp_path_factory: pytest.TempPathFactory, source: str, vendor: str
) -> None:
    """Manifest names, vendor ids and errors are untrusted: no CSV cell starts a formula, and
    stripping the one added quote gives the text back."""
    record = DeviceRecord.model_validate({**imported(1).model_dump(), "source": source, "vendor_id": vendor})
    with SqliteLedger(tmp_path_factory.mktemp("csv") / "f.ledger") as ledger:
        ledger.save(record)
        out = io.StringIO()
        export_devices(ledger, out, format="csv")
    row = next(csv.DictReader(io.StringIO(out.getvalue(), newline="")))
    for column, text in (("source", record.source), ("vendor_id", record.vendor_id)):
        assert text is not None
        cell = row[column]
        assert not cell.startswith(_FORMULA)
        assert cell in (text, "'" + text)
        if cell.startswith("-"):
            assert all(c.isalnum() or c in ":_.-" for c in cell)


def test_plain_names_are_exported_as_they_are(tmp_path: Path) -> None:
    record = imported(1).model_copy(update={"thing_name": "-sensor-1", "source": '=HYPERLINK("x")'})
    with SqliteLedger(tmp_path / "f.ledger") as ledger:
        ledger.save(record)
        out = io.StringIO()
        export_devices(ledger, out, format="csv")
    row = next(csv.DictReader(io.StringIO(out.getvalue(), newline="")))
    assert row["thing_name"] == "-sensor-1"
    assert row["source"] == '\'=HYPERLINK("x")'


def test_a_file_name_that_is_not_utf8_is_stored_escaped(tmp_path: Path) -> None:
    """Linux hands a non-UTF-8 file name over with lone surrogates; a JSON manifest may carry
    "\\ud800": the ledger stores and exports their escapes instead of failing the save."""
    record = DeviceRecord.model_validate(
        {**imported(1).model_dump(), "source": "reel-\udcff.json", "vendor_id": "\ud800x"}
    )
    assert (record.source, record.vendor_id) == ("reel-\\udcff.json", "\\ud800x")
    failed = record.with_error("thing", "bad name \udcff", run_id=RUN2)
    with SqliteLedger(tmp_path / "f.ledger") as ledger:
        ledger.save(failed)
        back = ledger.device(record.target, record.certificate_id)
    assert back is not None
    assert (back.source, back.last_error) == ("reel-\\udcff.json", "bad name \\udcff")
