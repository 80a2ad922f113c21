"""`SqliteLedger`: the embedded ledger, one SQLite file beside the operator's work.

What survives what. The file is in WAL mode with ``synchronous=NORMAL``: a save is committed
when `SqliteLedger.save` returns, so a crash of the process (an exception, Ctrl-C, SIGKILL,
the OOM killer) loses nothing that was saved, and the file opens cleanly afterwards. A power
loss or a kernel crash may lose the last transactions before the next checkpoint (never the
file's consistency); the import then repeats those steps, which AWS answers idempotently.

Threads. One process may use one ledger from many threads. Writes go through group commit:
each caller queues its write and waits; whichever caller finds no commit running commits every
write queued by then in one transaction and wakes the others. So 16 importer threads saving
steps cost a transaction per batch, not per step, and each save is still durable when it
returns. Reads (`device`, `thing_owner`) use a pool of read-only connections and see every
committed write; they never wait for a commit.

Processes. A process opening the ledger for writing holds an exclusive lock on
``<ledger>.lock``; a second one gets `LedgerBusyError` naming the holder's pid. Opened with
``read_only=True`` (``ledger runs``, ``ledger export`` while an import runs), a ledger takes
no lock and reads what the writer has committed.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as _dt
import os
import queue
import sqlite3
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType

from typing_extensions import Self

from thingpress_core.errors import ConfigurationError, LedgerError
from thingpress_core.ledger._group_commit import GroupCommit, GroupCommitClosed
from thingpress_core.ledger._models import SCHEMA_VERSION, DeviceRecord, RunRecord, RunStatus
from thingpress_core.ledger._sqlite_codec import decode_record, encode_record, step_run_ids
from thingpress_core.ledger._sqlite_files import (
    OPEN_FILES,
    WriterLock,
    create_file,
    inspect,
    ledger_uri,
    newer_schema,
    not_a_ledger,
)
from thingpress_core.ledger._sqlite_schema import MIGRATIONS, Migration, MigrationMissing, migrate, read_meta

__all__ = ["SqliteLedger"]

_BUSY_SECONDS = 10.0  # SQLite's own wait for a lock held by a reader's recovery or checkpoint
_REMEMBERED = 8192  # (run, device) pairs known to be in device_runs: a device's later saves add none


class _Batch:
    """What one transaction added, made known to the ledger's memory once it commits."""

    __slots__ = ("indexed", "numbers")

    def __init__(self) -> None:
        self.numbers: dict[tuple[str, str], int] = {}  # (table, key): numbers of new targets and runs
        self.indexed: dict[tuple[int, bytes, int], None] = {}  # device_runs rows added


_Write = Callable[[sqlite3.Connection, _Batch], None]

_UPSERT_DEVICE = (
    "INSERT INTO devices (cert, target, thing_name, record) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (cert, target) DO UPDATE SET thing_name = excluded.thing_name, record = excluded.record"
)
# the thing name rarely changes between two saves of a device: updating the record alone leaves
# the thing-name index (and its page in the WAL) alone
_UPDATE_RECORD = "UPDATE devices SET record = ? WHERE cert = ? AND target = ? AND thing_name IS ?"
_ADD_DEVICE_RUN = "INSERT OR IGNORE INTO device_runs (run, cert, target) VALUES (?, ?, ?)"
_UPSERT_RUN = (
    "INSERT INTO runs (run_id, record) VALUES (?, ?) "
    "ON CONFLICT (run_id) DO UPDATE SET record = excluded.record"
)
_NUMBER_SQL = {
    "targets": (
        "INSERT OR IGNORE INTO targets (key) VALUES (?)",
        "SELECT no FROM targets WHERE key = ?",
    ),
    "runs": ("INSERT OR IGNORE INTO runs (run_id) VALUES (?)", "SELECT no FROM runs WHERE run_id = ?"),
}
_DEVICE = "SELECT thing_name, record FROM devices WHERE cert = ? AND target = ?"
_ROW = "SELECT d.cert, d.target, d.thing_name, d.record FROM devices AS d"
_THING_OWNER = "SELECT cert, record FROM devices WHERE thing_name = ? AND target = ? ORDER BY cert"
_LOOKUP = (  # `device` and `thing_owner` in one statement: one row, record or none
    "SELECT (SELECT cert FROM devices WHERE thing_name = ?1 AND target = ?3 ORDER BY cert LIMIT 1),"
    " d.thing_name, d.record FROM (SELECT 1) LEFT JOIN devices AS d ON d.cert = ?2 AND d.target = ?3"
)


class SqliteLedger:
    """The ledger in one SQLite file (see the module docstring for durability, threads and
    processes).

    Args:
        path: the ledger file. It is created when it does not exist and ``create`` is true;
            a path that holds anything but a ledger raises `ConfigurationError` and is left
            exactly as it was.
        create: create the ledger when ``path`` does not exist (default).
        read_only: read without taking the writer's lock, e.g. while an import writes. Every
            write raises `LedgerError`.
        migrations: the steps that bring an older ledger up to date (default: this version's
            own). A ledger of a newer schema version is refused.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        create: bool = True,
        read_only: bool = False,
        migrations: Sequence[tuple[int, Migration]] = MIGRATIONS,
    ) -> None:
        self._location = os.fspath(path)
        self._path = Path(path)
        self._read_only = read_only
        self._group: GroupCommit[_Write] = GroupCommit(self._commit)
        self._closed = False
        self._readers: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._numbers: dict[str, dict[str, int]] = {"targets": {}, "runs": {}}  # committed only
        self._indexed: collections.OrderedDict[tuple[int, bytes, int], None] = collections.OrderedDict()
        self._lock: WriterLock | None = None
        self._writer: sqlite3.Connection | None = None
        self._open_key: str | None = None  # this ledger in OPEN_FILES while it has connections
        try:
            if read_only:
                self._check_version(inspect(self._path), migrations, read_only=True)
                self._open_key = OPEN_FILES.add(self._path)
            else:
                self._open_for_writing(create, migrations)
            self._give_back(self._connect("ro"))  # a reader can open it: known before an import starts
        except BaseException:
            self.close()
            raise

    # --- opening and closing -----------------------------------------------------------------

    def _open_for_writing(self, create: bool, migrations: Sequence[tuple[int, Migration]]) -> None:
        path = self._path
        existed = os.path.lexists(path)
        if existed:  # refuse what is no ledger before leaving a lock file beside it
            self._check_version(inspect(path), migrations, read_only=False)
        elif not create:
            raise ConfigurationError(
                f"ledger {self._location} does not exist", variable="ledger", value=self._location
            )
        lock = WriterLock(path, location=self._location)
        try:
            if not os.path.lexists(path):
                if not create:
                    raise ConfigurationError(
                        f"ledger {self._location} does not exist", variable="ledger", value=self._location
                    )
                from thingpress_core._version import version

                create_file(path, tool_version=version())
            elif not existed:  # another program put a file there meanwhile
                self._check_version(inspect(path), migrations, read_only=False)
            self._open_key = OPEN_FILES.add(path)
            writer = self._connect("rw")
            try:
                self._prepare_writer(writer, migrations)
            except BaseException:
                writer.close()
                raise
        except BaseException:
            lock.release()
            raise
        self._lock, self._writer = lock, writer

    def _check_version(
        self, found: int, migrations: Sequence[tuple[int, Migration]], *, read_only: bool
    ) -> None:
        if found > SCHEMA_VERSION:
            raise newer_schema(self._location, found)
        if found == SCHEMA_VERSION:
            return
        if read_only:
            raise ConfigurationError(
                f"ledger {self._location} has schema version {found} and must be migrated to version "
                f"{SCHEMA_VERSION}, which a read-only opening cannot do; open it for writing once "
                "(the next import does)",
                variable="ledger",
                value=self._location,
            )
        steps = dict(migrations)
        missing = next((v for v in range(found, SCHEMA_VERSION) if v not in steps), None)
        if missing is not None:
            raise ConfigurationError(
                f"ledger {self._location} has schema version {found}, which this thingpress-core "
                f"cannot migrate to version {SCHEMA_VERSION} (no step from version {missing})",
                variable="ledger",
                value=self._location,
            )

    def _prepare_writer(self, conn: sqlite3.Connection, migrations: Sequence[tuple[int, Migration]]) -> None:
        try:
            conn.execute("PRAGMA synchronous = NORMAL")
            if str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            found = int(read_meta(conn)["schema_version"])
        except (sqlite3.Error, KeyError, ValueError) as exc:
            raise not_a_ledger(self._location, f"it cannot be opened for writing ({exc})") from exc
        self._check_version(found, migrations, read_only=False)
        try:
            migrate(conn, found, steps=migrations)
        except MigrationMissing as exc:  # checked above; kept for a file changed meanwhile
            raise ConfigurationError(
                f"ledger {self._location}: {exc}", variable="ledger", value=self._location
            ) from exc
        except Exception as exc:  # a step's own failure, rolled back like SQLite's
            raise LedgerError(
                f"ledger {self._location}: the migration from schema version {found} failed ({exc}); "
                "the ledger is unchanged",
                location=self._location,
            ) from exc

    def _connect(self, mode: str) -> sqlite3.Connection:
        try:
            return sqlite3.connect(
                ledger_uri(self._path, mode=mode),
                uri=True,
                isolation_level=None,  # autocommit: transactions are begun explicitly
                check_same_thread=False,  # a connection is used by one thread at a time
                timeout=_BUSY_SECONDS,
            )
        except sqlite3.Error as exc:
            message = f"ledger {self._location} cannot be opened: {exc}"
            raise LedgerError(message, location=self._location) from exc

    @property
    def location(self) -> str:
        """The path the ledger was opened with."""
        return self._location

    @property
    def read_only(self) -> bool:
        """Whether the ledger was opened for reading only."""
        return self._read_only

    def close(self) -> None:
        """Commit what is queued, close every connection and give the writer's lock up.
        Idempotent; every later call but `close` raises `LedgerError`."""
        if self._closed:
            return
        self._closed = True
        try:
            self._group.close()  # commits what callers interrupted while waiting left queued
        finally:
            self._drain()
            if self._writer is not None:
                self._writer.close()  # closed last, it checkpoints the WAL into the file
            if self._lock is not None:
                self._lock.release()
            if self._open_key is not None:
                OPEN_FILES.discard(self._open_key)
                self._open_key = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SqliteLedger({self._location!r}, read_only={self._read_only})"

    # --- reading -------------------------------------------------------------------------------

    def _borrow(self) -> sqlite3.Connection:
        if self._closed:
            raise LedgerError(f"ledger {self._location} is closed", location=self._location)
        try:
            return self._readers.get_nowait()
        except queue.Empty:
            return self._connect("ro")

    def _give_back(self, conn: sqlite3.Connection) -> None:
        if conn.in_transaction:  # a read that failed midway
            conn.execute("ROLLBACK")
        self._readers.put(conn)
        if self._closed:  # closed meanwhile: nobody will borrow it again
            self._drain()

    def _drain(self) -> None:
        while True:
            try:
                self._readers.get_nowait().close()
            except queue.Empty:
                return

    def _target_no(self, conn: sqlite3.Connection, key: str) -> int | None:
        numbers = self._numbers["targets"]
        no = numbers.get(key)
        if no is None:
            row = conn.execute("SELECT no FROM targets WHERE key = ?", (key,)).fetchone()
            if row is None:
                return None
            no = numbers[key] = int(row[0])
        return no

    def _decode(self, target: str, cert: bytes, thing_name: str | None, text: str) -> DeviceRecord:
        try:
            return decode_record(target, cert.hex(), thing_name, text)
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise LedgerError(
                f"ledger {self._location}: the record of certificate {cert.hex()} in target {target} "
                f"cannot be read ({type(exc).__name__})",
                location=self._location,
            ) from exc

    def _read_error(self, exc: sqlite3.Error) -> LedgerError:
        return LedgerError(f"ledger {self._location} cannot be read: {exc}", location=self._location)

    def device(self, target: str, certificate_id: str) -> DeviceRecord | None:
        """The record of one device in one target, or None."""
        cert = _certificate_bytes(certificate_id)
        if cert is None:
            return None
        conn = self._borrow()
        try:
            no = self._target_no(conn, target)
            row = None if no is None else conn.execute(_DEVICE, (cert, no)).fetchone()
        except sqlite3.Error as exc:
            raise self._read_error(exc) from exc
        finally:
            self._give_back(conn)
        return None if row is None else self._decode(target, cert, row[0], row[1])

    def thing_owner(self, target: str, thing_name: str) -> str | None:
        """The certificate id whose record holds this thing in this target
        (`DeviceRecord.holds_thing`; the lowest, should several), or None."""
        conn = self._borrow()
        try:
            no = self._target_no(conn, target)
            rows = [] if no is None else conn.execute(_THING_OWNER, (thing_name, no)).fetchall()
        except sqlite3.Error as exc:
            raise self._read_error(exc) from exc
        finally:
            self._give_back(conn)
        for cert, text in rows:
            if self._decode(target, bytes(cert), thing_name, text).holds_thing():
                return bytes(cert).hex()
        return None

    def lookup(
        self, target: str, certificate_id: str, thing_name: str
    ) -> tuple[DeviceRecord | None, str | None]:
        """`device` and `thing_owner` in one read (two when another record names the thing)."""
        cert = _certificate_bytes(certificate_id)  # None: no record can match
        conn = self._borrow()
        try:
            no = self._target_no(conn, target)
            row = None if no is None else conn.execute(_LOOKUP, (thing_name, cert, no)).fetchone()
        except sqlite3.Error as exc:
            raise self._read_error(exc) from exc
        finally:
            self._give_back(conn)
        if row is None:
            return None, None
        named = None if row[0] is None else bytes(row[0]).hex()
        record = None if cert is None or row[2] is None else self._decode(target, cert, row[1], row[2])
        if named is None or (named == certificate_id.lower() and record is not None and record.holds_thing()):
            return record, named
        return record, self.thing_owner(target, thing_name)  # which record holds it, if any

    def run(self, run_id: str) -> RunRecord | None:
        """One run, or None."""
        conn = self._borrow()
        try:
            row = conn.execute("SELECT record FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        except sqlite3.Error as exc:
            raise self._read_error(exc) from exc
        finally:
            self._give_back(conn)
        return None if row is None or row[0] is None else RunRecord.model_validate_json(row[0])

    def runs(self, *, target: str | None = None) -> list[RunRecord]:
        """Every run (of one target when given), oldest first."""
        conn = self._borrow()
        try:
            rows = conn.execute("SELECT record FROM runs WHERE record IS NOT NULL ORDER BY no")
            texts = [str(row[0]) for row in rows]
        except sqlite3.Error as exc:
            raise self._read_error(exc) from exc
        finally:
            self._give_back(conn)
        found = [RunRecord.model_validate_json(text) for text in texts]
        return sorted((r for r in found if target is None or r.target == target), key=_started)

    def devices(self, *, target: str | None = None, run_id: str | None = None) -> Iterator[DeviceRecord]:
        """Device records (of one target; touched by one run: a step marked with its id),
        streamed in certificate-id order from one snapshot of the ledger. Exhaust or close the
        iterator: it holds a read transaction until then."""
        if self._closed:
            raise LedgerError(f"ledger {self._location} is closed", location=self._location)
        return self._stream(target, run_id)

    def _stream(self, target: str | None, run_id: str | None) -> Iterator[DeviceRecord]:
        conn = self._borrow()
        try:
            conn.execute("BEGIN")  # one snapshot: the targets and rows agree
            names = {int(no): str(key) for no, key in conn.execute("SELECT no, key FROM targets")}
            where: list[str] = []
            params: list[object] = []
            if run_id is not None:
                run = conn.execute("SELECT no FROM runs WHERE run_id = ?", (run_id,)).fetchone()
                if run is None:
                    return
                sql = f"{_ROW} JOIN device_runs AS r ON d.cert = r.cert AND d.target = r.target"
                where.append("r.run = ?")
                params.append(run[0])
            else:
                sql = _ROW
            if target is not None:
                no = next((n for n, key in names.items() if key == target), None)
                if no is None:
                    return
                where.append("d.target = ?")
                params.append(no)
            if where:
                sql += " WHERE " + " AND ".join(where)
            order = " ORDER BY r.cert, r.target" if run_id is not None else " ORDER BY d.cert, d.target"
            for cert, no, thing_name, text in conn.execute(sql + order, params):
                record = self._decode(names[no], cert, thing_name, text)
                if run_id is None or run_id in step_run_ids(record):
                    yield record
        except sqlite3.Error as exc:
            raise self._read_error(exc) from exc
        finally:
            self._give_back(conn)  # ends the snapshot

    def find(self, key: str) -> list[DeviceRecord]:
        """The records of a certificate id or an unambiguous prefix of one (any case; a prefix
        two certificates share finds nothing), and of every device whose thing is named
        ``key``, in certificate-id order."""
        key = key.strip()
        if not key:
            return []
        prefix = key.lower()
        conn = self._borrow()
        try:
            conn.execute("BEGIN")  # one snapshot for the targets and both queries
            names = {int(no): str(k) for no, k in conn.execute("SELECT no, key FROM targets")}
            named = conn.execute(f"{_ROW} WHERE d.thing_name = ?", (key,))
            rows = {(bytes(r[0]), int(r[1])): r for r in named}
            if len(prefix) <= 64 and all(c in "0123456789abcdef" for c in prefix):
                low, high = bytes.fromhex(prefix.ljust(64, "0")), bytes.fromhex(prefix.ljust(64, "f"))
                matches: dict[tuple[bytes, int], tuple[bytes, int, str | None, str]] = {}
                for row in conn.execute(f"{_ROW} WHERE d.cert BETWEEN ? AND ? ORDER BY d.cert", (low, high)):
                    if matches and next(iter(matches))[0] != row[0]:
                        matches = {}  # a second certificate: the prefix is ambiguous
                        break
                    matches[(bytes(row[0]), int(row[1]))] = row
                rows.update(matches)
        except sqlite3.Error as exc:
            raise self._read_error(exc) from exc
        finally:
            self._give_back(conn)
        return [self._decode(names[no], cert, row[2], row[3]) for (cert, no), row in sorted(rows.items())]

    # --- writing -------------------------------------------------------------------------------

    def save(self, record: DeviceRecord, *, removed: Collection[str] = ()) -> None:
        """Insert or replace a device's record; committed (with whatever other threads queued
        meanwhile) when it returns. The record replaces the stored one whole, so the steps in
        ``removed`` (already absent from it) need no more."""
        del removed  # one writer process: replacing the record is exact
        self._submit(self._save_write(record))

    def _save_write(self, record: DeviceRecord) -> _Write:
        """The write that saves ``record``, encoded by the calling thread."""
        cert = _certificate_bytes(record.certificate_id)
        if cert is None:
            raise ValueError(f"certificate_id {record.certificate_id!r} is not 64 hex digits")
        text = encode_record(record)
        target, thing_name, runs = record.target, record.thing_name, sorted(step_run_ids(record))

        def write(conn: sqlite3.Connection, batch: _Batch) -> None:
            no = self._number(conn, "targets", target, batch)
            if conn.execute(_UPDATE_RECORD, (text, cert, no, thing_name)).rowcount == 0:
                conn.execute(_UPSERT_DEVICE, (cert, no, thing_name, text))
            for run_id in runs:
                row = (self._number(conn, "runs", run_id, batch), cert, no)
                if row not in self._indexed and row not in batch.indexed:
                    conn.execute(_ADD_DEVICE_RUN, row)
                    batch.indexed[row] = None

        return write

    def begin_run(self, run: RunRecord) -> None:
        """Record a run that starts (or replace the record of a run id begun before)."""
        self._submit(_run_writer(run))

    def end_run(
        self, run_id: str, *, status: RunStatus, counts: Mapping[str, int], ended_at: _dt.datetime
    ) -> None:
        """Record how a run ended. Raises `LedgerError` for a run this ledger never began."""
        self._check_writable()
        begun = self.run(run_id)
        if begun is None:
            raise LedgerError(f"ledger {self._location} has no run {run_id} to end", location=self._location)
        ended = begun.model_copy(update={"status": status, "counts": dict(counts), "ended_at": ended_at})
        self._submit(_run_writer(ended))

    def claim(self, target: str, certificate_id: str, *, owner: str, seconds: float) -> bool:
        """Always True: one process holds the ledger, so no two workers share a device."""
        return True

    def release(self, target: str, certificate_id: str, *, owner: str) -> None:
        """Nothing to give back (see `claim`)."""

    def _number(self, conn: sqlite3.Connection, table: str, key: str, batch: _Batch) -> int:
        """The number of a target or run, interned in this transaction if it is new."""
        no = self._numbers[table].get(key)
        if no is None:
            no = batch.numbers.get((table, key))
        if no is None:
            insert, select = _NUMBER_SQL[table]
            conn.execute(insert, (key,))
            no = batch.numbers[(table, key)] = int(conn.execute(select, (key,)).fetchone()[0])
        return no

    def _check_writable(self) -> None:
        if self._closed:
            raise LedgerError(f"ledger {self._location} is closed", location=self._location)
        if self._read_only:
            raise LedgerError(f"ledger {self._location} is open read-only", location=self._location)

    def _submit(self, write: _Write) -> None:
        """Queue ``write`` and return once a commit included it (group commit)."""
        self._check_writable()
        try:
            error = self._group.submit(write)
        except GroupCommitClosed:
            raise LedgerError(f"ledger {self._location} is closed", location=self._location) from None
        if error is not None:
            raise LedgerError(
                f"ledger {self._location}: the write was not saved ({_describe(error)})",
                location=self._location,
            ) from error

    def _commit(self, writes: Sequence[_Write]) -> None:
        """Run ``writes`` in one transaction (the group commit's leader calls it). A failure
        rolls all of them back."""
        conn = self._writer
        if conn is None:  # read-only: _check_writable refused before
            raise LedgerError(f"ledger {self._location} is open read-only", location=self._location)
        batch = _Batch()
        try:
            conn.execute("BEGIN IMMEDIATE")
            for write in writes:
                write(conn, batch)
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):  # the transaction is gone either way
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            raise
        for (table, key), no in batch.numbers.items():
            self._numbers[table][key] = no
        indexed = self._indexed
        indexed.update(batch.indexed)
        while len(indexed) > _REMEMBERED:
            indexed.popitem(last=False)


def _run_writer(run: RunRecord) -> _Write:
    row = (run.run_id, run.model_dump_json())

    def write(conn: sqlite3.Connection, batch: _Batch) -> None:
        conn.execute(_UPSERT_RUN, row)

    return write


def _certificate_bytes(certificate_id: str) -> bytes | None:
    if len(certificate_id) != 64:
        return None
    try:
        return bytes.fromhex(certificate_id)
    except ValueError:
        return None


def _started(run: RunRecord) -> _dt.datetime:
    started = run.started_at
    return started if started.tzinfo is not None else started.replace(tzinfo=_dt.timezone.utc)


def _describe(error: BaseException) -> str:
    return str(error) or type(error).__name__
