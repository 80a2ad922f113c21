"""SqliteLedger: every protocol method round-trips, in one process, on a real file."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.ledger._sqlite_support import FLOOR, RUN, RUN2, T2, T, at, cert, imported

from thingpress_core.errors import LedgerError, ThingpressError
from thingpress_core.ledger import DeviceRecord, Ledger, RunRecord, SqliteLedger, step_key


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "imports.ledger"


def test_an_sqlite_ledger_is_a_ledger_and_a_context_manager(path: Path) -> None:
    ledger: Ledger = SqliteLedger(path)  # the protocol, checked by mypy and pyright
    with SqliteLedger(path, read_only=True) as reader:
        assert reader.location == str(path)
        assert reader.read_only
    ledger.close()
    ledger.close()  # idempotent
    assert path.is_file()
    assert repr(SqliteLedger(path, read_only=True)) == f"SqliteLedger({str(path)!r}, read_only=True)"


def test_a_saved_record_reads_back_equal_and_a_new_save_replaces_it(path: Path) -> None:
    with SqliteLedger(path) as ledger:
        first = DeviceRecord.new(target=T, certificate_id=cert(1), run_id=RUN, thing_name="t1", at=at(0))
        ledger.save(first)
        assert ledger.device(T, cert(1)) == first
        done = imported(1)
        ledger.save(done)
        assert ledger.device(T, cert(1)) == done
        assert list(done.steps) == list(FLOOR)
    with SqliteLedger(path) as reopened:
        assert reopened.device(T, cert(1)) == done


def test_devices_are_kept_apart_per_target(path: Path) -> None:
    with SqliteLedger(path) as ledger:
        here, there = imported(5), imported(5, target=T2)
        ledger.save(here)
        ledger.save(there)
        assert ledger.device(T, cert(5)) == here
        assert ledger.device(T2, cert(5)) == there
        assert ledger.device("999999999999/us-east-1", cert(5)) is None
        assert ledger.device(T, cert(6)) is None
        assert ledger.device(T, "not-a-certificate-id") is None
        assert ledger.device(T, cert(5).upper()) == here  # ids are hex: case does not matter


def test_thing_owner_follows_the_latest_record(path: Path) -> None:
    with SqliteLedger(path) as ledger:
        record = imported(1)
        ledger.save(record)
        assert ledger.thing_owner(T, "plant1-00000001") == cert(1)
        assert ledger.thing_owner(T2, "plant1-00000001") is None
        ledger.save(record.model_copy(update={"thing_name": "renamed"}))
        assert ledger.thing_owner(T, "plant1-00000001") is None
        assert ledger.thing_owner(T, "renamed") == cert(1)
        nameless = record.model_copy(update={"thing_name": None})
        ledger.save(nameless)
        assert ledger.thing_owner(T, "renamed") is None
        assert ledger.device(T, cert(1)) == nameless


def test_only_a_record_that_holds_its_thing_owns_the_name(path: Path) -> None:
    with SqliteLedger(path) as ledger:
        named = imported(1, steps=("register",))  # registered, refused as a name collision
        ledger.save(named)
        assert ledger.thing_owner(T, "plant1-00000001") is None
        holder = imported(2).model_copy(update={"thing_name": "plant1-00000001"})
        ledger.save(holder)  # a higher id, yet the only holder
        assert ledger.thing_owner(T, "plant1-00000001") == cert(2)
        assert ledger.lookup(T, cert(1), "plant1-00000001") == (named, cert(2))
        assert ledger.lookup(T, cert(2), "plant1-00000001") == (holder, cert(2))
        undone = holder.without_step("thing", run_id="undo").without_step("principal", run_id="undo")
        ledger.save(undone, removed=("thing", "principal"))  # a rollback's
        assert ledger.thing_owner(T, "plant1-00000001") is None
        assert ledger.lookup(T, cert(2), "plant1-00000001") == (undone, None)


def test_runs_begin_end_and_list_oldest_first(path: Path) -> None:
    with SqliteLedger(path) as ledger:
        later = RunRecord(run_id=RUN2, target=T, started_at=at(100), options={"policies": ["P"]})
        earlier = RunRecord(run_id=RUN, target=T2, started_at=at(0), input_name="reel.7z")
        ledger.begin_run(later)
        ledger.begin_run(earlier)
        assert ledger.run(RUN2) == later
        assert ledger.run("nope") is None
        assert [r.run_id for r in ledger.runs()] == [RUN, RUN2]
        assert [r.run_id for r in ledger.runs(target=T)] == [RUN2]
        ledger.end_run(RUN2, status="finished", counts={"imported": 3}, ended_at=at(200))
        ended = ledger.run(RUN2)
        assert ended is not None
        assert (ended.status, ended.counts, ended.ended_at) == ("finished", {"imported": 3}, at(200))
        assert ended.options == {"policies": ["P"]}
        with pytest.raises(LedgerError, match="has no run 20991231"):
            ledger.end_run("20991231T000000Z-000000", status="failed", counts={}, ended_at=at(1))


def test_a_run_named_only_by_device_records_is_no_run(path: Path) -> None:
    with SqliteLedger(path) as ledger:
        ledger.save(imported(1, run_id=RUN2))  # no begin_run
        assert ledger.run(RUN2) is None
        assert ledger.runs() == []
        assert [r.certificate_id for r in ledger.devices(run_id=RUN2)] == [cert(1)]


def test_devices_stream_in_certificate_id_order_with_filters(path: Path) -> None:
    with SqliteLedger(path) as ledger:
        for n in (7, 3, 9, 1):
            ledger.save(imported(n))
        ledger.save(imported(4, target=T2))
        # device 3 later gets a step in run 2; device 9 is marked by run 2 only
        ledger.save(imported(3).with_step(step_key("group", "G2"), run_id=RUN2, made=True, at=at(50)))
        ledger.save(imported(9, run_id=RUN2))
        everything = [(r.certificate_id, r.target) for r in ledger.devices()]
        assert everything == [(cert(1), T), (cert(3), T), (cert(4), T2), (cert(7), T), (cert(9), T)]
        assert [r.certificate_id for r in ledger.devices(target=T2)] == [cert(4)]
        assert [r.certificate_id for r in ledger.devices(run_id=RUN)] == [cert(n) for n in (1, 3, 4, 7)]
        assert [r.certificate_id for r in ledger.devices(run_id=RUN2)] == [cert(3), cert(9)]
        assert [r.certificate_id for r in ledger.devices(run_id=RUN, target=T2)] == [cert(4)]
        assert list(ledger.devices(target="999999999999/us-east-1")) == []
        assert list(ledger.devices(run_id="unknown")) == []


def test_a_run_whose_marks_were_removed_no_longer_lists_the_device(path: Path) -> None:
    with SqliteLedger(path) as ledger:
        record = imported(1)
        ledger.save(record)
        rolled_back = record
        for key in FLOOR:
            rolled_back = rolled_back.without_step(key, run_id=RUN2, at=at(99))
        ledger.save(rolled_back)
        assert list(ledger.devices(run_id=RUN)) == []
        assert list(ledger.devices(run_id=RUN2)) == []  # a rollback marks no step
        assert [r.certificate_id for r in ledger.devices()] == [cert(1)]


def test_devices_iterate_one_snapshot_while_saves_go_on(path: Path) -> None:
    with SqliteLedger(path) as ledger:
        for n in range(10):
            ledger.save(imported(n))
        stream = ledger.devices()
        seen = [next(stream).certificate_id]
        for n in range(10, 20):
            ledger.save(imported(n))  # committed while the stream holds its snapshot
        seen += [r.certificate_id for r in stream]
        assert seen == [cert(n) for n in range(10)]
        assert len(list(ledger.devices())) == 20


def test_find_by_id_prefix_and_thing_name(path: Path) -> None:
    with SqliteLedger(path) as ledger:
        a, b = imported(0xAB00), imported(0xAC00)
        ledger.save(a)
        ledger.save(b)
        elsewhere = imported(0xAB00, target=T2)
        ledger.save(elsewhere)
        whole = [(r.certificate_id, r.target) for r in ledger.find(cert(0xAB00))]
        assert whole == [(cert(0xAB00), T), (cert(0xAB00), T2)]
        assert [r.target for r in ledger.find(cert(0xAB00)[:62].upper())] == [T, T2]
        assert ledger.find(cert(0)[:60]) == []  # shared by both certificates: ambiguous
        assert ledger.find(a.thing_name or "") == [a, elsewhere]  # the thing in both targets
        assert ledger.find(b.thing_name or "") == [b]
        assert ledger.find("") == []
        assert ledger.find("no-such-thing") == []


def test_find_a_thing_name_that_looks_like_hex(path: Path) -> None:
    with SqliteLedger(path) as ledger:
        named = imported(1).model_copy(update={"thing_name": "abc"})
        ledger.save(named)
        assert ledger.find("abc") == [named]


def test_claim_is_always_granted_and_release_does_nothing(path: Path) -> None:
    with SqliteLedger(path) as ledger:
        assert ledger.claim(T, cert(1), owner="a", seconds=60)
        assert ledger.claim(T, cert(1), owner="b", seconds=60)
        ledger.release(T, cert(1), owner="a")


def test_a_closed_ledger_refuses_everything(path: Path) -> None:
    ledger = SqliteLedger(path)
    ledger.save(imported(1))
    ledger.close()
    calls: list[Callable[[], object]] = [
        lambda: ledger.save(imported(2)),
        lambda: ledger.device(T, cert(1)),
        lambda: ledger.thing_owner(T, "x"),
        lambda: ledger.runs(),
        lambda: ledger.devices(),
        lambda: ledger.find("x"),
    ]
    for call in calls:
        with pytest.raises(LedgerError, match="is closed"):
            call()
    assert issubclass(LedgerError, ThingpressError)


def test_a_read_only_ledger_reads_and_refuses_writes(path: Path) -> None:
    with SqliteLedger(path) as writer:
        writer.save(imported(1))
        writer.begin_run(RunRecord(run_id=RUN, target=T, started_at=at(0)))
        with SqliteLedger(path, read_only=True) as reader:
            assert reader.device(T, cert(1)) == imported(1)
            writer.save(imported(2))
            assert reader.device(T, cert(2)) == imported(2)  # sees what the writer committed
            calls: list[Callable[[], object]] = [
                lambda: reader.save(imported(3)),
                lambda: reader.begin_run(RunRecord(run_id=RUN2, target=T, started_at=at(0))),
                lambda: reader.end_run(RUN, status="finished", counts={}, ended_at=at(1)),
            ]
            for call in calls:
                with pytest.raises(LedgerError, match="is open read-only"):
                    call()
    assert SqliteLedger(path).device(T, cert(3)) is None


def test_a_second_writer_in_the_same_process_is_refused(path: Path) -> None:
    with SqliteLedger(path):
        with pytest.raises(LedgerError, match="already open for writing in this process"):
            SqliteLedger(path)
    SqliteLedger(path).close()  # free again once closed


def test_the_file_holds_the_compact_layout(path: Path) -> None:
    with SqliteLedger(path) as ledger:
        ledger.save(imported(1))
    conn = sqlite3.connect(path)
    try:
        (cert_column, target_column, thing, text) = conn.execute("SELECT * FROM devices").fetchone()
        assert (bytes(cert_column).hex(), target_column, thing) == (cert(1), 1, "plant1-00000001")
        assert len(text) < 240  # the whole record as pydantic's JSON is over 900 bytes
        assert cert(1) not in text  # kept once, in its column
        assert "plant1" not in text
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()
    assert len(imported(1).model_dump_json()) > 900
