"""The `Ledger` protocol: what the importer, the CLI and the operations need of a ledger."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Collection, Iterator, Mapping
from types import TracebackType
from typing import Protocol

from typing_extensions import Self

from thingpress_core.ledger._models import DeviceRecord, RunRecord, RunStatus

__all__ = ["Ledger"]


class Ledger(Protocol):
    """Durable per-device import records. Two backends: SQLite (`SqliteLedger`, the embedded
    default) and DynamoDB (`DynamoDBLedger`, for Lambda and several machines).

    Every write is durable when the method returns: a step is saved after AWS confirmed it,
    so a crash costs at most the calls in flight (made again, idempotently). Methods are safe
    to call from several threads.
    """

    @property
    def location(self) -> str:
        """Where the ledger lives, for messages: a file path or ``dynamodb://table``."""
        ...

    def begin_run(self, run: RunRecord) -> None:
        """Record a run that starts (``status="running"``)."""
        ...

    def end_run(
        self, run_id: str, *, status: RunStatus, counts: Mapping[str, int], ended_at: _dt.datetime
    ) -> None:
        """Record how a run ended."""
        ...

    def run(self, run_id: str) -> RunRecord | None:
        """One run, or None."""
        ...

    def runs(self, *, target: str | None = None) -> list[RunRecord]:
        """Every run (of one target when given), oldest first."""
        ...

    def device(self, target: str, certificate_id: str) -> DeviceRecord | None:
        """The record of one device in one target, or None."""
        ...

    def thing_owner(self, target: str, thing_name: str) -> str | None:
        """The certificate id whose record holds this thing in this target
        (`DeviceRecord.holds_thing`), or None. A record that only names the thing (a refused
        name collision, a registration whose thing never came, a rolled-back device) is no
        owner."""
        ...

    def save(self, record: DeviceRecord, *, removed: Collection[str] = ()) -> None:
        """Store a device's record; durable when it returns.

        The steps of ``record`` are added to what is stored (a backend shared by several
        workers merges them, the first mark of a step staying); the step keys in ``removed``
        are taken away (a rollback). Other fields replace the stored ones.
        """
        ...

    def devices(self, *, target: str | None = None, run_id: str | None = None) -> Iterator[DeviceRecord]:
        """Device records (of one target; touched by one run: any step marked with its id),
        streamed in certificate-id order."""
        ...

    def find(self, key: str) -> list[DeviceRecord]:
        """The records of a certificate id (or a prefix of one, in any case) or a thing name;
        a prefix two certificates share finds nothing."""
        ...

    def claim(self, target: str, certificate_id: str, *, owner: str, seconds: float) -> bool:
        """Take a lease on a device for ``seconds``; False while another ``owner`` holds one.
        Several workers on one ledger (Lambda) use it so two never work on one device at once;
        a single process needs none (the SQLite backend always grants it)."""
        ...

    def release(self, target: str, certificate_id: str, *, owner: str) -> None:
        """Give a lease back."""
        ...

    def close(self) -> None:
        """Flush and release the ledger (the lock of a SQLite file)."""
        ...

    def __enter__(self) -> Self:
        """The ledger itself: ``with open_ledger(...) as ledger:`` closes it at the end."""
        ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...
