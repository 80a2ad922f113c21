"""An in-memory `Ledger` for the importer's tests: the protocol's semantics, nothing durable."""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter
from collections.abc import Collection, Iterator, Mapping

from thingpress_core.ledger import DeviceRecord, RunRecord, RunStatus


class MemoryLedger:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.records: dict[tuple[str, str], DeviceRecord] = {}
        self.run_records: dict[str, RunRecord] = {}
        self.saves: Counter[str] = Counter()  # saves per certificate id

    @property
    def location(self) -> str:
        return "memory"

    def begin_run(self, run: RunRecord) -> None:
        with self._lock:
            self.run_records[run.run_id] = run

    def end_run(
        self, run_id: str, *, status: RunStatus, counts: Mapping[str, int], ended_at: dt.datetime
    ) -> None:
        with self._lock:
            run = self.run_records[run_id]
            self.run_records[run_id] = run.model_copy(
                update={"status": status, "counts": dict(counts), "ended_at": ended_at}
            )

    def run(self, run_id: str) -> RunRecord | None:
        return self.run_records.get(run_id)

    def runs(self, *, target: str | None = None) -> list[RunRecord]:
        return [r for r in self.run_records.values() if target is None or r.target == target]

    def device(self, target: str, certificate_id: str) -> DeviceRecord | None:
        return self.records.get((target, certificate_id))

    def thing_owner(self, target: str, thing_name: str) -> str | None:
        with self._lock:
            owners = [
                r.certificate_id
                for r in self.records.values()
                if r.target == target and r.thing_name == thing_name
            ]
        return owners[0] if owners else None

    def save(self, record: DeviceRecord, *, removed: Collection[str] = ()) -> None:
        with self._lock:
            self.records[(record.target, record.certificate_id)] = record
            self.saves[record.certificate_id] += 1

    def devices(self, *, target: str | None = None, run_id: str | None = None) -> Iterator[DeviceRecord]:
        with self._lock:
            found = sorted(self.records.values(), key=lambda r: r.certificate_id)
        for record in found:
            if target is not None and record.target != target:
                continue
            if run_id is not None and all(mark.run_id != run_id for mark in record.steps.values()):
                continue
            yield record

    def find(self, key: str) -> list[DeviceRecord]:
        return [r for r in self.records.values() if r.certificate_id.startswith(key) or r.thing_name == key]

    def claim(self, target: str, certificate_id: str, *, owner: str, seconds: float) -> bool:
        return True

    def release(self, target: str, certificate_id: str, *, owner: str) -> None:
        return None

    def close(self) -> None:
        return None

    def __enter__(self) -> MemoryLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
