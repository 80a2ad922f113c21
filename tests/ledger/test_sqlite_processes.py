"""The SQLite ledger across processes: what a SIGKILL leaves, a second writer refused, readers
served while a writer holds the file. Each child is a real Python process; the test and the
child synchronise over pipes, never by sleeping."""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
from pathlib import Path

import pytest
from tests.ledger._sqlite_support import T, cert, child, imported

from thingpress_core.errors import LedgerBusyError
from thingpress_core.ledger import SqliteLedger

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL and flock are POSIX")


def test_what_was_saved_before_a_sigkill_is_there_after_it(tmp_path: Path) -> None:
    path = tmp_path / "killed.ledger"
    with child("save", str(path)) as saver:
        confirmed = [int(saver.line()) for _ in range(200)]  # each printed after its save returned
        os.kill(saver.pid, signal.SIGKILL)
        saver.process.wait(timeout=30)
        assert saver.process.returncode == -signal.SIGKILL
    assert confirmed == list(range(200))
    with SqliteLedger(path) as ledger:  # the dead process's lock went with it
        for n in confirmed:
            assert ledger.device(T, cert(n)) == imported(n)
        ledger.save(imported(10_000))  # and it takes writes again
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()


def test_a_second_process_is_refused_while_one_writes_and_served_after(tmp_path: Path) -> None:
    path = tmp_path / "busy.ledger"
    with child("hold", str(path), "3") as holder:
        assert holder.line() == "ready"
        with pytest.raises(LedgerBusyError) as caught:
            SqliteLedger(path)
        message = str(caught.value)
        assert message.startswith(f"ledger {path} is in use by another process (pid {holder.pid}, since 20")
        assert message.endswith("; wait for it to finish or use another ledger")
        assert caught.value.pid == holder.pid
        assert holder.finish() == 0
    with SqliteLedger(path) as ledger:
        assert ledger.device(T, cert(2)) == imported(2)


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    path = tmp_path / "stale.ledger"
    with child("hold", str(path), "1") as holder:
        assert holder.line() == "ready"
        os.kill(holder.pid, signal.SIGKILL)
        holder.process.wait(timeout=30)
    assert (tmp_path / "stale.ledger.lock").read_text().startswith(f"{holder.pid} ")  # stale content
    with SqliteLedger(path) as ledger:
        assert ledger.device(T, cert(0)) == imported(0)


def test_a_read_only_ledger_reads_while_another_process_writes(tmp_path: Path) -> None:
    path = tmp_path / "shared.ledger"
    with child("hold", str(path), "50") as holder:
        assert holder.line() == "ready"
        with SqliteLedger(path, read_only=True) as reader:
            assert [r.certificate_id for r in reader.devices()] == [cert(n) for n in range(50)]
            assert reader.thing_owner(T, "plant1-00000049") == cert(49)
        assert holder.finish() == 0
