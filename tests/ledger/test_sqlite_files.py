"""What the SQLite ledger does with a path: create a ledger only where nothing is, refuse
anything that is not a ledger without changing a byte of it or leaving a file beside it, and
bring an older ledger up to date."""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.ledger._sqlite_support import RUN, T, cert, imported

from thingpress_core.errors import ConfigurationError, LedgerError
from thingpress_core.ledger import SCHEMA_VERSION, SqliteLedger
from thingpress_core.ledger._sqlite_schema import APPLICATION_ID, MIGRATIONS, MigrationMissing, migrate

PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000") + b"\x00" * 200


def _snapshot(directory: Path) -> dict[str, str]:
    """Every file in the directory tree and the SHA-256 of its bytes."""
    found = {}
    for item in sorted(directory.rglob("*")):
        key = item.relative_to(directory).as_posix()
        found[key] = "dir" if item.is_dir() else hashlib.sha256(item.read_bytes()).hexdigest()
    return found


def _text(path: Path) -> None:
    path.write_text("device,cert\nabc,def\n")


def _png(path: Path) -> None:
    path.write_bytes(PNG)


def _random(path: Path) -> None:
    path.write_bytes(hashlib.sha512(b"seed").digest() * 64)


def _other_sqlite(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.execute("INSERT INTO notes VALUES ('hello')")
    conn.commit()
    conn.close()


def _other_sqlite_wal(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.commit()
    conn.close()


def _ours_without_meta(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute("CREATE TABLE devices (x)")
    conn.commit()
    conn.close()


def _newer(path: Path) -> None:
    SqliteLedger(path).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    conn.commit()
    conn.close()


def _truncated(path: Path) -> None:
    with SqliteLedger(path) as ledger:
        for n in range(300):
            ledger.save(imported(n))
    path.write_bytes(path.read_bytes()[:8192])


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _directory(path: Path) -> None:
    path.mkdir()
    (path / "inside.txt").write_text("x")


FOREIGN: dict[str, tuple[Callable[[Path], None], str]] = {
    "text file": (_text, "it is not an SQLite database"),
    "png image": (_png, "it is not an SQLite database"),
    "random bytes": (_random, "it is not an SQLite database"),
    "another program's SQLite database": (_other_sqlite, "an SQLite database of another application"),
    "another program's WAL database": (_other_sqlite_wal, "an SQLite database of another application"),
    "ledger id without meta": (_ours_without_meta, "its meta table cannot be read"),
    "newer schema": (_newer, f"schema version {SCHEMA_VERSION + 1}, written by a newer thingpress-core"),
    "truncated ledger": (_truncated, "cannot be read"),
    "empty file": (_empty, "it is an empty file"),
    "directory": (_directory, "it is a directory"),
}


@pytest.mark.parametrize("read_only", [False, True], ids=["write", "read-only"])
@pytest.mark.parametrize("kind", sorted(FOREIGN))
def test_a_path_that_is_no_ledger_is_refused_and_left_untouched(
    tmp_path: Path, kind: str, read_only: bool
) -> None:
    make, why = FOREIGN[kind]
    path = tmp_path / "work" / "imports.ledger"
    path.parent.mkdir()
    make(path)
    before = _snapshot(path.parent)
    with pytest.raises(ConfigurationError) as caught:
        SqliteLedger(path, read_only=read_only)
    message = str(caught.value)
    assert str(path) in message
    assert why in message
    assert "\n" not in message
    assert _snapshot(path.parent) == before  # same bytes, and no lock, -wal or -shm beside it


def test_a_ledger_is_created_only_where_nothing_is(tmp_path: Path) -> None:
    path = tmp_path / "new.ledger"
    with pytest.raises(ConfigurationError, match="does not exist"):
        SqliteLedger(path, create=False)
    with pytest.raises(ConfigurationError, match="does not exist"):
        SqliteLedger(path, read_only=True)
    assert list(tmp_path.iterdir()) == []
    with SqliteLedger(path) as ledger:
        ledger.save(imported(1))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.ledger", "new.ledger.lock"]  # WAL folded in
    with SqliteLedger(path, create=False) as again:
        assert again.device(T, cert(1)) == imported(1)


def test_a_ledger_in_a_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "imports.ledger"
    with pytest.raises(ConfigurationError, match=r"the directory .*nowhere does not exist"):
        SqliteLedger(path)
    assert not (tmp_path / "nowhere").exists()


def test_the_meta_table_names_the_format_and_the_version(tmp_path: Path) -> None:
    path = tmp_path / "a.ledger"
    SqliteLedger(path).close()
    conn = sqlite3.connect(path)
    meta = dict(conn.execute("SELECT key, value FROM meta"))
    (application_id,) = conn.execute("PRAGMA application_id").fetchone()
    conn.close()
    assert application_id == APPLICATION_ID
    assert meta["format"] == "thingpress-ledger"
    assert meta["schema_version"] == str(SCHEMA_VERSION)
    assert meta["created_at"].endswith("Z")
    assert meta["tool_version"]


# --- migrations --------------------------------------------------------------------------------


def _version_0(path: Path) -> None:
    """A made-up schema version 0: version 1 without the run index (``device_runs``) and the
    thing-name index, as a ledger an older release might have left."""
    SqliteLedger(path).close()
    with SqliteLedger(path) as ledger:
        for n in range(5):
            ledger.save(imported(n))
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("DROP TABLE device_runs")
    conn.execute("DROP INDEX devices_by_thing")
    conn.execute("UPDATE meta SET value = '0' WHERE key = 'schema_version'")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def _from_0_to_1(conn: sqlite3.Connection) -> None:
    """The step a release would ship: add the run index and the thing-name index, and fill the
    run index from the records."""
    from thingpress_core.ledger._sqlite_codec import decode_record, step_run_ids

    conn.execute(
        "CREATE TABLE device_runs (run INTEGER NOT NULL, cert BLOB NOT NULL, target INTEGER NOT NULL,"
        " PRIMARY KEY (run, cert, target)) WITHOUT ROWID"
    )
    conn.execute("CREATE INDEX devices_by_thing ON devices (thing_name, target) WHERE thing_name IS NOT NULL")
    targets = dict(conn.execute("SELECT no, key FROM targets"))
    for cert_bytes, target, thing, text in conn.execute("SELECT * FROM devices").fetchall():
        record = decode_record(targets[target], bytes(cert_bytes).hex(), thing, text)
        for run_id in step_run_ids(record):
            conn.execute("INSERT OR IGNORE INTO runs (run_id) VALUES (?)", (run_id,))
            (run_no,) = conn.execute("SELECT no FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            conn.execute("INSERT INTO device_runs VALUES (?, ?, ?)", (run_no, cert_bytes, target))


def test_an_older_ledger_is_migrated_when_opened_for_writing(tmp_path: Path) -> None:
    path = tmp_path / "old.ledger"
    _version_0(path)
    with SqliteLedger(path, migrations=[(0, _from_0_to_1)]) as ledger:
        assert [r.certificate_id for r in ledger.devices(run_id=RUN)] == [cert(n) for n in range(5)]
        assert ledger.thing_owner(T, "plant1-00000003") == cert(3)
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("1",)
    conn.close()
    with SqliteLedger(path) as again:  # now current: no step needed
        assert again.device(T, cert(4)) == imported(4)


def test_an_older_ledger_without_a_step_or_read_only_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "old.ledger"
    _version_0(path)
    before = _snapshot(tmp_path)
    assert MIGRATIONS == ()  # version 1 is the first: this build migrates nothing
    with pytest.raises(
        ConfigurationError, match="schema version 0, which this thingpress-core cannot migrate"
    ):
        SqliteLedger(path)
    with pytest.raises(ConfigurationError, match="must be migrated to version 1, which a read-only"):
        SqliteLedger(path, read_only=True, migrations=[(0, _from_0_to_1)])
    assert _snapshot(tmp_path) == before


def test_a_failing_migration_step_leaves_the_ledger_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "old.ledger"
    _version_0(path)

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE half_done (x)")
        conn.execute("SELECT * FROM no_such_table")

    with pytest.raises(Exception, match="migration from schema version 0 failed"):
        SqliteLedger(path, migrations=[(0, broken)])
    conn = sqlite3.connect(path)
    tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    conn.close()
    assert "half_done" not in tables
    assert version == ("0",)
    with SqliteLedger(path, migrations=[(0, _from_0_to_1)]) as ledger:  # the lock was given back
        assert ledger.device(T, cert(0)) == imported(0)


def test_migrate_runs_the_steps_in_order_in_one_transaction(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    conn.execute("INSERT INTO meta VALUES ('schema_version', '0')")
    order: list[int] = []
    steps = [(1, lambda c: order.append(1)), (0, lambda c: order.append(0))]
    assert migrate(conn, 0, steps=steps, to=2) == 2
    assert order == [0, 1]
    assert conn.execute("SELECT value FROM meta").fetchone() == ("2",)
    assert migrate(conn, 2, steps=steps, to=2) == 0
    with pytest.raises(MigrationMissing, match="no migration from schema version 2"):
        migrate(conn, 0, steps=steps, to=3)
    conn.close()


def test_a_ledger_that_cannot_be_built_leaves_only_its_lock_file(tmp_path: Path) -> None:
    name = "x" * 240  # fits, and so does its lock file; the temporary file it is built in does not
    with pytest.raises(LedgerError, match="cannot be created"):
        SqliteLedger(tmp_path / name)
    assert [p.name for p in tmp_path.iterdir()] == [f"{name}.lock"]


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_a_ledger_in_a_folder_that_takes_no_files_says_so_not_that_the_folder_is_missing() -> None:
    # /proc exists, yet creating a file there fails with ENOENT, even for root
    with pytest.raises(ConfigurationError) as raised:
        SqliteLedger(Path("/proc") / "thingpress-x.ledger")
    message = str(raised.value)
    assert message.startswith(
        "ledger /proc/thingpress-x.ledger cannot be created: no file can be created in /proc ("
    )
    assert "does not exist" not in message


def test_enoent_in_an_existing_folder_names_the_folder_and_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = os.open

    def refuse(path: str, flags: int, mode: int = 0o777) -> int:
        if str(path).endswith(".lock"):  # the first file a new ledger makes: refused as /proc would
            raise FileNotFoundError(2, "No such file or directory", str(path))
        return real_open(path, flags, mode)

    monkeypatch.setattr(os, "open", refuse)  # the OS underneath, not our module
    where = re.escape(f"no file can be created in {tmp_path} (No such file or directory)")
    with pytest.raises(ConfigurationError, match=where):
        SqliteLedger(tmp_path / "imports.ledger")
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []
