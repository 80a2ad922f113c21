"""`DynamoDBLedger`: the import ledger in one on-demand DynamoDB table, for several machines.

The table's layout is in `_dynamodb_items`. Every read the importer makes per device is one
strongly consistent ``GetItem``. Concurrency: a save is one ``UpdateItem`` (atomic per item)
that adds each step mark with ``if_not_exists``: two workers saving different steps of one
device both land and the first mark of a step stays; no read-modify-write, so no lost update
and no retry. A thing name is claimed by a conditional ``PutItem`` (the first certificate
wins); a lease is a conditional ``PutItem`` granted when absent, expired or held by the same
owner. Everything goes through `DynamoDBService`, so through the one call path (breakers,
limiter, error mapping, counters).
"""

from __future__ import annotations

import collections
import datetime as _dt
import heapq
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from thingpress_core.errors import ConfigurationError, LedgerError
from thingpress_core.ledger._dynamodb_items import (
    FORMAT,
    SHARDS,
    device_key,
    device_pk,
    lease_key,
    record_from_item,
    run_attributes,
    run_from_item,
    run_key,
    split_touch,
    thing_key,
    touch_key,
    updates,
    utc,
)
from thingpress_core.ledger._models import SCHEMA_VERSION, DeviceRecord, RunRecord, RunStatus
from thingpress_core.services._dynamodb import DynamoDBService, ReturnValues, TableDescription

if TYPE_CHECKING:
    from types import TracebackType

    from thingpress_core.clients import ClientFactory
    from thingpress_core.ledger._protocol import Ledger

__all__ = ["DynamoDBLedger"]

_HEX_PREFIX = re.compile(r"^[0-9a-f]{1,64}$")
_THING_NAME = re.compile(r"^[a-zA-Z0-9:_-]{1,128}$")

_log = logging.getLogger("thingpress_core.ledger.dynamodb")


_HOLDS = {True: "holds", False: "names"}  # the claim cache's last key part


class _Recent:
    """A small thread-safe LRU map: what this process wrote already, so a save of the same
    device again skips the writes it made once (run index, thing claim, target)."""

    def __init__(self, size: int = 16_384) -> None:
        self._size = size
        self._items: collections.OrderedDict[tuple[str, ...], object] = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, ...]) -> object:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: tuple[str, ...], value: object = True) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            if len(self._items) > self._size:
                self._items.popitem(last=False)

    def drop(self, key: tuple[str, ...]) -> None:
        with self._lock:
            self._items.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


class DynamoDBLedger:
    """The import ledger in a DynamoDB table (`Ledger`); safe for several threads and machines.

    Args:
        table: the table name.
        factory: the `ClientFactory` to build a `DynamoDBService` from (ignored with ``service``).
        service: the `DynamoDBService` to use (shares its breakers, limiter and counters).
        create: create the table when it does not exist, and wait until it is active.
        clock: wall-clock seconds since the epoch, for lease expiry (machines compare them).
        timeout: how long ``create`` waits for the table to become active.

    Opening costs one ``DescribeTable`` and one ``GetItem`` (the meta item). A missing table,
    a table keyed otherwise, a table holding other items but no ledger meta item, and a
    ledger written by a newer schema version raise `ConfigurationError`.
    """

    def __init__(
        self,
        table: str,
        *,
        factory: ClientFactory | None = None,
        service: DynamoDBService | None = None,
        create: bool = False,
        clock: Callable[[], float] = time.time,
        timeout: float = 300.0,
    ) -> None:
        self._table = table
        self._db = service if service is not None else DynamoDBService(factory)
        self._clock = clock
        self._touched = _Recent()
        self._things = _Recent()
        self._targets = _Recent(1024)
        _prepare(self._db, table, create=create, timeout=timeout)

    @classmethod
    def create_table(
        cls,
        table: str,
        *,
        factory: ClientFactory | None = None,
        service: DynamoDBService | None = None,
        timeout: float = 300.0,
    ) -> bool:
        """Create a ledger table (on demand) and wait until it is active (``ledger init``).

        Returns True when it was created, False when a ledger table of that name existed
        already; a table of that name keyed otherwise raises `ConfigurationError`.
        """
        return _prepare(service or DynamoDBService(factory), table, create=True, timeout=timeout)

    def __repr__(self) -> str:
        return f"DynamoDBLedger({self._table!r})"

    def __enter__(self) -> DynamoDBLedger:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def location(self) -> str:
        return f"dynamodb://{self._table}"

    @property
    def service(self) -> DynamoDBService:
        """The `DynamoDBService` every call goes through (its `stats` count them)."""
        return self._db

    # ---------------------------------------------------------------------------- runs

    def begin_run(self, run: RunRecord) -> None:
        """Record a run that starts (one ``PutItem``), replacing the record of a run id begun
        before (a resumed run), as the SQLite ledger does."""
        self._db.put_item(self._table, {**run_key(run.run_id), "item": "run", **run_attributes(run)})

    def end_run(
        self, run_id: str, *, status: RunStatus, counts: Mapping[str, int], ended_at: _dt.datetime
    ) -> None:
        """Record how a run ended (one ``UpdateItem``); an unknown run raises `LedgerError`."""
        done = self._db.update_item(
            self._table,
            run_key(run_id),
            update="SET #s = :s, #c = :c, #e = :e",
            condition="attribute_exists(pk)",
            names={"#s": "status", "#c": "counts", "#e": "ended_at"},
            values={":s": status, ":c": dict(counts), ":e": ended_at.isoformat()},
        )
        if done is None:
            raise LedgerError(f"ledger {self.location} has no run {run_id} to end", location=self.location)

    def run(self, run_id: str) -> RunRecord | None:
        item = self._db.get_item(self._table, run_key(run_id))
        return self._run(item) if item else None

    def runs(self, *, target: str | None = None) -> list[RunRecord]:
        """Every run (of one target), oldest first: one ``Query`` (a page per 1 MB)."""
        items = self._db.query(self._table, key_condition="pk = :p", values={":p": "run"})
        found = [self._run(item) for item in items if target is None or item.get("target") == target]
        return sorted(found, key=lambda r: (utc(r.started_at), r.run_id))

    def _run(self, item: Mapping[str, Any]) -> RunRecord:
        try:
            return run_from_item(item)
        except (KeyError, TypeError, ValueError) as exc:
            raise self._corrupt(f"the run {item.get('sk')!r}", exc) from exc

    # ------------------------------------------------------------------------- devices

    def device(self, target: str, certificate_id: str) -> DeviceRecord | None:
        """One device's record: one strongly consistent ``GetItem`` (an id in any case)."""
        certificate_id = certificate_id.lower()
        if not _HEX_PREFIX.match(certificate_id) or len(certificate_id) != 64:
            return None
        item = self._db.get_item(self._table, device_key(target, certificate_id))
        return self._record(item) if item else None

    def thing_owner(self, target: str, thing_name: str) -> str | None:
        """The certificate that claimed this thing name first, among records that hold it
        (`DeviceRecord.holds_thing`): one ``GetItem``."""
        if not _THING_NAME.match(thing_name):
            return None
        item = self._db.get_item(self._table, thing_key(target, thing_name))
        owner = item.get("certificate_id") if item else None
        return owner if isinstance(owner, str) else None

    def save(self, record: DeviceRecord, *, removed: Collection[str] = ()) -> None:
        """Merge ``record`` into its item: durable when it returns.

        Fields set in the record replace the stored ones (a None leaves a stored value,
        except for the last error, which None clears); each step mark is added only if the
        step has none yet, so the first run's mark stays and two workers' saves of different
        steps both land. A step absent from the record is kept (another worker may have just
        added it): name the steps to take away, a rollback's, in ``removed``.

        Writes, in crash-safe order: the run → device index items of the record's marks and
        the thing name claim (each once per process), then the record (one ``UpdateItem``
        per 40 steps).
        """
        target, cert = record.target, record.certificate_id
        clash = set(removed) & set(record.steps)
        if clash:
            raise ConfigurationError(
                f"step {sorted(clash)[0]!r} of certificate {cert} is both saved and removed",
                variable="removed",
                value=sorted(clash),
            )
        self._note_target(target)
        for run_id in sorted({mark.run_id for mark in record.steps.values()}):
            if not self._touched.get((run_id, target, cert)):
                self._db.put_item(self._table, {**touch_key(run_id, target, cert), "item": "touch"})
                self._touched.put((run_id, target, cert))
        if record.thing_name:
            self._claim_thing(target, record.thing_name, cert, record.run_id, holds=record.holds_thing())
        old: dict[str, Any] = {}
        for number, (update, names, values) in enumerate(updates(record, removed)):
            returns: ReturnValues = "UPDATED_OLD" if number == 0 else "NONE"
            old |= (
                self._db.update_item(
                    self._table,
                    device_key(target, cert),
                    update=update,
                    names=names,
                    values=values,
                    returns=returns,
                )
                or {}
            )
        previous = old.get("thing_name")
        if isinstance(previous, str) and previous != record.thing_name:
            self._unclaim_thing(target, previous, cert)
        elif record.thing_name and {"thing", "principal"} & set(removed) and not record.holds_thing():
            self._release_thing(target, record.thing_name, cert, record.run_id)  # rolled back: no owner now

    def devices(self, *, target: str | None = None, run_id: str | None = None) -> Iterator[DeviceRecord]:
        """Device records in certificate-id order: 16 ``Query`` calls per target; with
        ``run_id``, one ``Query`` of the run's index and one ``BatchGetItem`` per 100."""
        if run_id is not None:
            return self._devices_of_run(run_id, target)
        targets = [target] if target is not None else self._all_targets()
        streams = [self._devices_of_target(t) for t in targets]
        return heapq.merge(*streams, key=lambda r: (r.certificate_id, r.target))

    def _devices_of_target(self, target: str) -> Iterator[DeviceRecord]:
        for shard in SHARDS:
            items = self._db.query(
                self._table, key_condition="pk = :p", values={":p": device_pk(target, shard)}
            )
            for item in items:
                yield self._record(item)

    def _devices_of_run(self, run_id: str, target: str | None) -> Iterator[DeviceRecord]:
        touches = self._db.query(self._table, key_condition="pk = :p", values={":p": f"touch#{run_id}"})
        keys = [split_touch(str(item["sk"])) for item in touches]
        wanted = [(cert, t) for cert, t in keys if target is None or t == target]
        for start in range(0, len(wanted), 100):
            chunk = wanted[start : start + 100]
            items = self._db.batch_get(self._table, [device_key(t, cert) for cert, t in chunk])
            records = {(r.certificate_id, r.target): r for r in map(self._record, items)}
            for key in chunk:
                record = records.get(key)
                if record is not None and any(m.run_id == run_id for m in record.steps.values()):
                    yield record

    def find(self, key: str) -> list[DeviceRecord]:
        """The records of a certificate id or an unambiguous prefix of one (any case; a prefix
        two certificates share finds nothing) and of every device whose record names the thing
        ``key``, in certificate-id order. Per target: one ``Query`` for the prefix, one for
        the name, and one ``GetItem`` per device the name finds."""
        key = key.strip()
        if not key:
            return []
        prefix = key.lower()
        targets = self._all_targets()
        found: dict[tuple[str, str], DeviceRecord] = {}
        if _HEX_PREFIX.match(prefix):
            for target in targets:
                items = self._db.query(
                    self._table,
                    key_condition="pk = :p AND begins_with(sk, :s)",
                    values={":p": device_pk(target, prefix[0]), ":s": prefix},
                    page_size=2,
                )
                for _, item in zip(range(2), items, strict=False):
                    record = self._record(item)
                    found[(record.certificate_id, target)] = record
            if len({cert for cert, _ in found}) > 1:
                found = {}
        if _THING_NAME.match(key):
            for target in targets:
                for cert in self._naming(target, key):
                    named = found.get((cert, target)) or self.device(target, cert)
                    if named is not None:
                        found[(cert, target)] = named
        return [found[k] for k in sorted(found)]

    def _naming(self, target: str, name: str) -> list[str]:
        """The certificates whose saved records named thing ``name``: its claim and the others."""
        items = self._db.query(
            self._table,
            key_condition="pk = :p AND sk BETWEEN :a AND :b",
            values={":p": thing_key(target, name)["pk"], ":a": name, ":b": f"{name}#g"},
        )
        return [str(item["certificate_id"]) for item in items]

    def _record(self, item: Mapping[str, Any]) -> DeviceRecord:
        try:
            record = record_from_item(item)
        except (KeyError, TypeError, ValueError) as exc:
            raise self._corrupt(f"the device item {item.get('sk')!r}", exc) from exc
        for mark in record.steps.values():  # its run index item was written before the mark
            self._touched.put((mark.run_id, record.target, record.certificate_id))
        return record

    # ------------------------------------------------------------------ claims, leases

    def _claim_thing(self, target: str, name: str, cert: str, run_id: str, *, holds: bool) -> None:
        """Note that ``cert``'s record names thing ``name`` (an item beside the claim, so
        `find` finds it by the name); when the record holds the thing, claim the name for it
        (the first holder wins: the claim is what `thing_owner` reads)."""
        if self._things.get((target, name, cert, _HOLDS[holds])):
            return
        item = {**thing_key(target, name), "item": "thing", "certificate_id": cert, "run_id": run_id}
        condition = "attribute_not_exists(pk) OR certificate_id = :c"
        if not holds or not self._db.put_item(self._table, item, condition=condition, values={":c": cert}):
            self._db.put_item(self._table, {**item, "sk": f"{name}#{cert}"})
            if holds:
                _log.info(
                    "thing %s in %s was claimed by another certificate first; certificate %s names it too",
                    name,
                    target,
                    cert,
                    extra={"operation": "ledger.save", "certificate_id": cert, "thing_name": name},
                )
        self._things.put((target, name, cert, _HOLDS[holds]))

    def _release_thing(self, target: str, name: str, cert: str, run_id: str) -> None:
        """Give up ``cert``'s claim on ``name`` (its record no longer holds the thing) and keep
        the note that it names it."""
        self._db.delete_item(
            self._table, thing_key(target, name), condition="certificate_id = :c", values={":c": cert}
        )
        self._things.drop((target, name, cert, _HOLDS[True]))
        self._claim_thing(target, name, cert, run_id, holds=False)

    def _unclaim_thing(self, target: str, name: str, cert: str) -> None:
        key = thing_key(target, name)
        self._db.delete_item(self._table, key, condition="certificate_id = :c", values={":c": cert})
        self._db.delete_item(self._table, {**key, "sk": f"{name}#{cert}"})
        self._things.drop((target, name, cert, _HOLDS[True]))
        self._things.drop((target, name, cert, _HOLDS[False]))

    def claim(self, target: str, certificate_id: str, *, owner: str, seconds: float) -> bool:
        """Take a device's lease for ``seconds``: one conditional ``PutItem``, granted when no
        lease is there, it expired (by ``clock``), or ``owner`` holds it (then renewed)."""
        if not math.isfinite(seconds) or seconds <= 0:
            raise ConfigurationError(
                f"a lease lasts a positive number of seconds, not {seconds!r}",
                variable="seconds",
                value=seconds,
            )
        now = self._clock()
        until = now + seconds
        item = {
            **lease_key(target, certificate_id),
            "item": "lease",
            "owner": owner,
            "expires": until,
            "ttl": math.ceil(until) + 1,  # for DynamoDB's time to live, when an operator enables it
        }
        return self._db.put_item(
            self._table,
            item,
            condition="attribute_not_exists(pk) OR #e <= :now OR #o = :o",
            names={"#e": "expires", "#o": "owner"},
            values={":now": now, ":o": owner},
        )

    def release(self, target: str, certificate_id: str, *, owner: str) -> None:
        """Give a lease back: one ``DeleteItem``, only while ``owner`` holds it."""
        if not self._db.delete_item(
            self._table,
            lease_key(target, certificate_id),
            condition="#o = :o",
            names={"#o": "owner"},
            values={":o": owner},
        ):
            _log.debug("lease of %s in %s is not held by %s", certificate_id, target, owner)

    def close(self) -> None:
        """Forget what this process remembered; the table needs no closing."""
        self._touched.clear()
        self._things.clear()

    # ------------------------------------------------------------------------- helpers

    def _note_target(self, target: str) -> None:
        if not self._targets.get((target,)):
            self._db.put_item(self._table, {"pk": "target", "sk": target, "item": "target"})
            self._targets.put((target,))

    def _all_targets(self) -> list[str]:
        items = self._db.query(self._table, key_condition="pk = :p", values={":p": "target"})
        return [str(item["sk"]) for item in items]

    def _corrupt(self, what: str, exc: BaseException) -> LedgerError:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return LedgerError(
            f"{what} in the ledger {self.location} is not readable: {first}", location=self.location
        )


# ----------------------------------------------------------------------------- opening


def _prepare(db: DynamoDBService, table: str, *, create: bool, timeout: float) -> bool:
    """Create (when asked), check and stamp a ledger table; True when it was created."""
    location = f"dynamodb://{table}"
    created = create and db.create_table(table, partition_key=("pk", "S"), sort_key=("sk", "S"))
    found = db.describe_table(table)
    if found is None:
        raise ConfigurationError(
            f"there is no DynamoDB table {table!r} for the ledger {location}: create it with "
            f"'thingpress-core ledger init {location}' (or create=True)",
            variable="ledger",
            value=location,
        )
    _check_keys(found, location)
    if not found.active:
        db.wait_until_active(table, timeout=timeout)
    meta = db.get_item(table, {"pk": "meta", "sk": "meta"})
    if meta is None:
        first = next(iter(db.scan(table, page_size=1)), None)
        if first is not None and first.get("pk") != "meta":
            raise ConfigurationError(
                f"the DynamoDB table {table!r} holds items but no ledger meta item: it is not a "
                "thingpress-core ledger; choose another table",
                variable="ledger",
                value=location,
            )
        from thingpress_core._version import version

        stamp = {
            "pk": "meta",
            "sk": "meta",
            "item": "meta",
            "format": FORMAT,
            "schema_version": SCHEMA_VERSION,
            "created_at": _dt.datetime.now(_dt.timezone.utc).isoformat(),
            "tool_version": version(),
        }
        db.put_item(table, stamp, condition="attribute_not_exists(pk)")
        meta = db.get_item(table, {"pk": "meta", "sk": "meta"}) or stamp
    _check_meta(meta, location)
    return created


def _check_keys(found: TableDescription, location: str) -> None:
    keys = (found.partition_key.name, found.partition_key.type)
    sort = (found.sort_key.name, found.sort_key.type) if found.sort_key else None
    if keys != ("pk", "S") or sort != ("sk", "S"):
        shown = f"{keys[0]} ({keys[1]})" + (f" and {sort[0]} ({sort[1]})" if sort else "")
        raise ConfigurationError(
            f"the DynamoDB table {found.name!r} is keyed by {shown}; a ledger table is keyed by "
            f"pk (S) and sk (S): choose another table for the ledger {location}",
            variable="ledger",
            value=location,
        )


def _check_meta(meta: Mapping[str, Any], location: str) -> None:
    version = meta.get("schema_version")
    if meta.get("format") != FORMAT or not isinstance(version, int):
        raise ConfigurationError(
            f"the meta item of {location} is not a thingpress-core ledger's",
            variable="ledger",
            value=location,
        )
    if version > SCHEMA_VERSION:
        raise ConfigurationError(
            f"the ledger {location} has schema version {version}, written by a newer "
            f"thingpress-core; this one reads up to version {SCHEMA_VERSION}: upgrade thingpress-core",
            variable="ledger",
            value=location,
        )
    if version < 1:
        raise ConfigurationError(
            f"the ledger {location} has schema version {version}, which no thingpress-core wrote",
            variable="ledger",
            value=location,
        )


if TYPE_CHECKING:
    _LEDGER_TYPE: type[Ledger] = DynamoDBLedger  # mypy and pyright check it against the protocol
