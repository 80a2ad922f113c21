"""The SQLite ledger as a file on disk: knowing one, creating one, locking one for writing.

- `inspect` tells a ledger from anything else (a text file, an image, another program's SQLite
  database, a directory) by the first 100 bytes (SQLite's header, with the ledger's
  application id), before SQLite opens it: SQLite opening another program's WAL-mode database,
  even read-only, would leave ``-wal`` and ``-shm`` files beside it. Then a read-only
  connection reads the schema version. Nothing it looks at is changed.
- `OpenFiles` counts the ledgers this process has open. Closing any descriptor of a file drops
  every POSIX lock the process holds on it, SQLite's own included, so the header is read with
  plain file I/O only while no connection of this process has the file open.
- `create_file` builds a new ledger beside the path and links it into place: the path is
  either absent or a complete ledger, never half of one.
- `WriterLock` is an exclusive advisory lock on ``<ledger>.lock`` that a writing process holds
  while the ledger is open. The system drops it when the process ends, however it ends, so a
  crashed import leaves no stale lock. The lock file holds the holder's pid and start time,
  for the message the next process gets; it stays in place (deleting a lock file races with
  the next holder).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import os
import secrets
import sqlite3
import stat
import sys
import threading
from pathlib import Path

from thingpress_core.errors import ConfigurationError, LedgerBusyError, LedgerError
from thingpress_core.ledger._models import SCHEMA_VERSION
from thingpress_core.ledger._sqlite_schema import APPLICATION_ID, FORMAT, create_tables, read_meta

__all__ = [
    "OPEN_FILES",
    "OpenFiles",
    "WriterLock",
    "create_file",
    "inspect",
    "ledger_uri",
    "not_a_ledger",
]

_HOLDER_BYTES = 200  # pid and time: the lock file is read no further
_HELD: set[str] = set()  # the lock files this process holds (pids alone mislead across containers)
_SQLITE_MAGIC = b"SQLite format 3\x00"
_HEADER_BYTES = 100  # SQLite's database header; the application id is at offset 68


class OpenFiles:
    """How many connections-holding ledgers this process has open, per real path."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def add(self, path: Path) -> str:
        key = os.path.realpath(path)
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1
        return key

    def discard(self, key: str) -> None:
        with self._lock:
            left = self._counts.get(key, 0) - 1
            if left > 0:
                self._counts[key] = left
            else:
                self._counts.pop(key, None)

    def holds(self, path: Path) -> bool:
        key = os.path.realpath(path)
        with self._lock:
            return key in self._counts


OPEN_FILES = OpenFiles()


def not_a_ledger(path: Path | str, why: str) -> ConfigurationError:
    """The one error for a path that cannot be opened as a ledger, naming it and why."""
    message = f"{path} is not a thingpress-core ledger: {why}"
    return ConfigurationError(message, variable="ledger", value=str(path))


def ledger_uri(path: Path, *, mode: str) -> str:
    """The SQLite URI of ``path`` opened in ``mode`` (``ro`` or ``rw``: never created)."""
    return f"{path.absolute().as_uri()}?mode={mode}"


def _utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def inspect(path: Path) -> int:
    """The schema version of the ledger at ``path``, read without changing a byte of it.

    Raises `ConfigurationError` naming the path when it is missing, unreadable, or anything
    but a ledger; the caller judges the version.
    """
    try:
        info = path.stat()
    except FileNotFoundError:
        message = f"ledger {path} does not exist"
        raise ConfigurationError(message, variable="ledger", value=str(path)) from None
    except OSError as exc:
        raise not_a_ledger(path, f"it cannot be read ({exc.strerror})") from exc
    if stat.S_ISDIR(info.st_mode):
        raise not_a_ledger(path, "it is a directory")
    if not stat.S_ISREG(info.st_mode):
        raise not_a_ledger(path, "it is not a regular file")
    if info.st_size == 0:
        raise not_a_ledger(path, "it is an empty file")
    if not OPEN_FILES.holds(path):  # else it is ours, and a descriptor closed here would drop SQLite's locks
        _check_header(path)
    # A read-only connection to a WAL-mode file creates its -wal and -shm when they are absent;
    # absent, there is no WAL to read either, so the file alone is read, as immutable.
    uri = ledger_uri(path, mode="ro")
    if not os.path.exists(f"{path}-wal"):
        uri += "&immutable=1"
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        raise not_a_ledger(path, f"it cannot be opened ({exc})") from exc
    try:
        try:
            application_id = conn.execute("PRAGMA application_id").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            foreign = "not a database" in str(exc)
            why = "it is not an SQLite database" if foreign else f"it cannot be read ({exc})"
            raise not_a_ledger(path, why) from exc
        if application_id != APPLICATION_ID:
            raise not_a_ledger(path, "it is an SQLite database of another application")
        try:
            meta = read_meta(conn)
        except sqlite3.Error as exc:
            raise not_a_ledger(path, f"its meta table cannot be read ({exc})") from exc
    finally:
        conn.close()
    version = meta.get("schema_version", "")
    if meta.get("format") != FORMAT or not version.isdigit():
        raise not_a_ledger(path, "its meta table names no ledger format and schema version")
    return int(version)


def _check_header(path: Path) -> None:
    try:
        with path.open("rb") as file:
            header = file.read(_HEADER_BYTES)
    except OSError as exc:
        raise not_a_ledger(path, f"it cannot be read ({exc.strerror})") from exc
    if len(header) < _HEADER_BYTES or not header.startswith(_SQLITE_MAGIC):
        raise not_a_ledger(path, "it is not an SQLite database")
    if int.from_bytes(header[68:72], "big") != APPLICATION_ID:
        raise not_a_ledger(path, "it is an SQLite database of another application")


def newer_schema(path: Path | str, version: int) -> ConfigurationError:
    """The error for a ledger that a newer thingpress-core wrote."""
    return ConfigurationError(
        f"ledger {path} has schema version {version}, written by a newer thingpress-core "
        f"(this one reads up to version {SCHEMA_VERSION}); upgrade thingpress-core to use it",
        variable="ledger",
        value=str(path),
    )


def create_file(path: Path, *, tool_version: str) -> None:
    """Create a new, empty ledger at ``path``, which must not exist.

    The ledger is built in a temporary file in the same directory, in WAL mode, then hard-linked
    to ``path`` (which fails rather than replace a file that appeared meanwhile) and the
    temporary name removed.
    """
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.new")
    try:
        conn = sqlite3.connect(temporary, isolation_level=None)
        try:
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("BEGIN IMMEDIATE")
            create_tables(conn, created_at=_utc_now(), tool_version=tool_version)
            conn.execute("COMMIT")
        finally:
            conn.close()  # checkpoints: the temporary file alone holds the whole ledger
        appeared = "a file appeared at this path while the ledger was created"
        try:
            os.link(temporary, path)
        except FileExistsError:
            raise not_a_ledger(path, appeared) from None
        except OSError:  # a file system without hard links
            if os.path.lexists(path):
                raise not_a_ledger(path, appeared) from None
            os.replace(temporary, path)
    except sqlite3.Error as exc:
        raise LedgerError(f"ledger {path} cannot be created: {exc}", location=str(path)) from exc
    except OSError as exc:
        raise LedgerError(f"ledger {path} cannot be created: {exc.strerror}", location=str(path)) from exc
    finally:
        for leftover in (temporary, Path(f"{temporary}-wal"), Path(f"{temporary}-shm")):
            with contextlib.suppress(OSError):  # absent, or never creatable
                leftover.unlink()


class WriterLock:
    """The exclusive lock a process holds on ``<ledger>.lock`` while it writes the ledger.

    Raises `LedgerBusyError` when another process (or another open ledger of this process)
    holds it, `ConfigurationError` when the ledger's directory does not exist or takes no new
    file.
    """

    def __init__(self, ledger: Path, *, location: str) -> None:
        self.path = ledger.with_name(ledger.name + ".lock")
        self._key = os.path.realpath(self.path)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError as exc:
            # ENOENT also comes from a folder that exists but takes no new files (/proc, /sys)
            where = (
                f"no file can be created in {ledger.parent} ({exc.strerror})"
                if ledger.parent.is_dir()
                else f"the directory {ledger.parent} does not exist"
            )
            raise ConfigurationError(
                f"ledger {location} cannot be created: {where}", variable="ledger", value=location
            ) from None
        except OSError as exc:
            raise LedgerError(
                f"ledger {location} cannot be locked for writing: {self.path}: {exc.strerror}",
                location=location,
            ) from exc
        try:
            if not _try_lock(fd, location):
                pid, since = _read_holder(fd)
                raise LedgerBusyError(location, pid=pid, since=since, mine=self._key in _HELD)
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, f"{os.getpid()} {_utc_now()}\n".encode())
        except BaseException:
            os.close(fd)
            raise
        self._fd: int | None = fd
        _HELD.add(self._key)

    def release(self) -> None:
        """Give the lock up (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            _HELD.discard(self._key)
            try:
                _unlock(fd)
            finally:
                os.close(fd)


def _read_holder(fd: int) -> tuple[int | None, str | None]:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, _HOLDER_BYTES).decode("ascii", "replace").split()
    if len(text) >= 2 and text[0].isdigit():
        return int(text[0]), text[1]
    return None, None


if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    _WINDOWS_LOCK_OFFSET = 1 << 20  # beyond the pid and time, which stay readable

    def _try_lock(fd: int, location: str) -> bool:
        os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(fd: int) -> None:
        os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _try_lock(fd: int, location: str) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False
            raise LedgerError(
                f"ledger {location} cannot be locked for writing: {exc.strerror}", location=location
            ) from exc
        return True

    def _unlock(fd: int) -> None:
        # explicit: a child forked meanwhile shares the descriptor and would keep the lock
        fcntl.flock(fd, fcntl.LOCK_UN)
