"""The SQLite ledger's tables, its meta data, and the migrations from older schema versions.

Tables (schema version 1):

- ``meta(key, value)``: ``format`` (``thingpress-ledger``), ``schema_version``, ``created_at``,
  ``tool_version`` (the thingpress-core that created the file).
- ``targets(no, key)``: each target's key once; rows refer to it by ``no``.
- ``runs(no, run_id, record)``: each run id once; ``record`` is the `RunRecord` as JSON, NULL
  for a run that device records name but that was never begun in this ledger.
- ``devices(cert, target, thing_name, record)``: one row per device per target, keyed by the
  certificate id (32 bytes, so rows sort in certificate-id order) and the target's ``no``;
  ``record`` is the rest of the `DeviceRecord` (`_sqlite_codec`). An index on
  ``(thing_name, target)`` answers ``thing_owner`` and ``find``.
- ``device_runs(run, cert, target)``: the runs whose marks a device's steps carried at some
  save, for ``devices(run_id=...)``; the reader filters on the record itself, so a mark a
  rollback removed costs a look, never a wrong answer.

The header carries `APPLICATION_ID`, so a file is known as a ledger before any table is read.

Migrations: `MIGRATIONS` lists ``(from_version, step)``; opening a ledger of an older version
for writing runs every step from its version up, in one transaction, and records the new
version. A ledger of a newer version is never touched.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Final

from thingpress_core.ledger._models import SCHEMA_VERSION

__all__ = [
    "APPLICATION_ID",
    "FORMAT",
    "MIGRATIONS",
    "Migration",
    "MigrationMissing",
    "create_tables",
    "migrate",
    "read_meta",
]

#: ``PRAGMA application_id`` of every ledger file: "TPLG".
APPLICATION_ID: Final = 0x54504C47
FORMAT: Final = "thingpress-ledger"

#: A step from one schema version to the next; it runs inside the migration's transaction.
Migration = Callable[[sqlite3.Connection], None]

#: ``(from_version, step)`` in order. Version 1 is the first: nothing to migrate yet.
MIGRATIONS: Sequence[tuple[int, Migration]] = ()

_TABLES: Final = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    "CREATE TABLE targets (no INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE)",
    "CREATE TABLE runs (no INTEGER PRIMARY KEY, run_id TEXT NOT NULL UNIQUE, record TEXT)",
    "CREATE TABLE devices (cert BLOB NOT NULL, target INTEGER NOT NULL, thing_name TEXT,"
    " record TEXT NOT NULL, PRIMARY KEY (cert, target)) WITHOUT ROWID",
    "CREATE INDEX devices_by_thing ON devices (thing_name, target) WHERE thing_name IS NOT NULL",
    "CREATE TABLE device_runs (run INTEGER NOT NULL, cert BLOB NOT NULL, target INTEGER NOT NULL,"
    " PRIMARY KEY (run, cert, target)) WITHOUT ROWID",
)


class MigrationMissing(Exception):
    """No step leads on from ``version``: this build cannot bring the ledger up to date."""

    def __init__(self, version: int) -> None:
        super().__init__(f"no migration from schema version {version}")
        self.version = version


def create_tables(conn: sqlite3.Connection, *, created_at: str, tool_version: str) -> None:
    """Create every table of the current schema and its meta data (inside the caller's
    transaction)."""
    for statement in _TABLES:
        conn.execute(statement)
    conn.executemany(
        "INSERT INTO meta (key, value) VALUES (?, ?)",
        [
            ("format", FORMAT),
            ("schema_version", str(SCHEMA_VERSION)),
            ("created_at", created_at),
            ("tool_version", tool_version),
        ],
    )


def read_meta(conn: sqlite3.Connection) -> dict[str, str]:
    """The meta table as a dict. Raises ``sqlite3.Error`` when there is none."""
    return {str(key): str(value) for key, value in conn.execute("SELECT key, value FROM meta")}


def migrate(
    conn: sqlite3.Connection,
    found: int,
    *,
    steps: Sequence[tuple[int, Migration]] = MIGRATIONS,
    to: int = SCHEMA_VERSION,
) -> int:
    """Bring a ledger of schema version ``found`` up to ``to`` in one transaction and return
    the number of steps run. Nothing changes when a step is missing (`MigrationMissing`) or
    fails (its exception, after a rollback)."""
    by_version = dict(steps)
    chain: list[Migration] = []
    for version in range(found, to):
        step = by_version.get(version)
        if step is None:
            raise MigrationMissing(version)
        chain.append(step)
    if not chain:
        return 0
    conn.execute("BEGIN IMMEDIATE")
    try:
        for step in chain:
            step(conn)
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(to),))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # some errors end the transaction themselves
            conn.execute("ROLLBACK")
        raise
    return len(chain)
