"""SQLite ledger benchmarks: save throughput with group commit, lookups, bytes per device, export memory.

1. ``saves/s`` (best of interleaved rounds): an import's pattern (each device saved once per
   confirmed step: register, thing, principal, policy, group) from 1 and 8 threads, against
   the ledger without group commit: the same writes (same SQL, same records), each in a
   transaction of its own under a lock. Also 8 threads against dict inserts under a lock (what
   an in-memory ledger costs), for the record. Target: ratio >= 0.8 (group commit must not
   cost throughput).
2. ``WAL bytes per save`` at 8 threads (Linux: bytes the process hands to write(2)), against
   the same baseline: what group commit saves the disk. Target: ratio <= 0.6.
3. ``saves per commit`` at 8 threads: how many saves one transaction carried.
4. ``device() lookups/s`` against decoding the same record from pydantic's JSON kept in a dict
   (the cost of the record alone). Target: ratio >= 0.25.
5. ``bytes per device`` (file size / devices, WAL folded in) at 10k and 100k devices (2k and
   20k with ``--quick``), against the length of the record as pydantic's JSON. Target: ratio
   <= 0.6; 100k/10k about 1.
6. ``export peak memory``: tracemalloc peak of `export_devices` (CSV) at 100k devices against
   10k. Target: ratio <= 1.5 (it streams).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import Result

BENCH = "ledger"
TARGET = "123456789012/us-east-1"
RUN = "20261201T100000Z-aaaaaa"
STEPS = ("register", "thing", "principal", "policy:DevicePolicy", "group:Fleet")


def _template() -> Any:
    import datetime as dt

    from thingpress_core.ledger import DeviceRecord

    moment = dt.datetime(2026, 12, 1, 10, 0, tzinfo=dt.timezone.utc)
    record = DeviceRecord.new(
        target=TARGET, certificate_id="0" * 64, run_id=RUN, thing_name="x", source="reel-0001.7z", at=moment
    )
    for i, key in enumerate(STEPS):
        extra = {"certificate_status": "ACTIVE"} if key == "register" else {}
        record = record.with_step(
            key, run_id=RUN, made=True, at=moment + dt.timedelta(seconds=i / 10), **extra
        )
    return record


def _device(template: Any, n: int, steps: int = len(STEPS)) -> Any:
    cid = format(n, "064x")
    kept = dict(list(template.steps.items())[:steps])
    return template.model_copy(
        update={
            "certificate_id": cid,
            "certificate_arn": f"arn:aws:iot:us-east-1:123456789012:cert/{cid}",
            "thing_name": f"plant1-{n:08d}",
            "entry_index": n,
            "vendor_id": f"{n:016X}",
            "steps": kept,
        }
    )


def _import_pattern(template: Any, devices: int) -> list[list[Any]]:
    """Per device, the records an import saves: one per confirmed step."""
    return [[_device(template, n, k + 1) for k in range(len(STEPS))] for n in range(devices)]


def _drive(work: Sequence[list[Any]], threads: int, save: Callable[[Any], None]) -> float:
    """Saves per second of ``save`` over ``work`` split across ``threads``."""
    chunks = [work[i::threads] for i in range(threads)]
    start = threading.Barrier(threads + 1)

    def run(chunk: Sequence[list[Any]]) -> None:
        start.wait()
        for records in chunk:
            for record in records:
                save(record)

    workers = [threading.Thread(target=run, args=(c,)) for c in chunks]
    for worker in workers:
        worker.start()
    start.wait()
    began = time.perf_counter()
    for worker in workers:
        worker.join()
    return sum(len(r) for r in work) / (time.perf_counter() - began)


def _written() -> int | None:
    """Bytes this process has passed to write(2) so far (Linux), else None."""
    try:
        with open("/proc/self/io") as io:
            for line in io:
                if line.startswith("wchar:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class _Plain:
    """The baseline: the ledger's own writes (same SQL, same records), but each committed in a
    transaction of its own, one thread at a time under a lock: the ledger without group commit."""

    def __init__(self, path: Path) -> None:
        from thingpress_core.ledger import SqliteLedger

        self._ledger = SqliteLedger(path)
        self._lock = threading.Lock()

    def save(self, record: Any) -> None:
        write = self._ledger._save_write(record)  # encoded outside the lock, as the ledger does
        with self._lock:
            self._ledger._commit([write])

    def close(self) -> None:
        self._ledger.close()


def bench_saves(directory: Path, template: Any, devices: int, rounds: int) -> list[Result]:
    from thingpress_core.ledger import SqliteLedger

    work = _import_pattern(template, devices)
    saves = devices * len(STEPS)
    results: list[Result] = []
    rates: dict[tuple[str, int], list[float]] = {}
    wal: dict[tuple[str, int], list[float]] = {}
    per_commit: list[float] = []
    for round_ in range(rounds):  # interleaved rounds: a noisy neighbour hurts both alike
        for threads in (1, 8):
            for kind in ("plain", "ours"):
                path = directory / f"saves-{kind}-{threads}-{round_}.ledger"
                before = _written()
                if kind == "ours":
                    ledger = SqliteLedger(path)
                    rate = _drive(work, threads, ledger.save)
                    if threads == 8:
                        per_commit.append(saves / ledger._group.commits)
                    ledger.close()
                else:
                    baseline = _Plain(path)
                    rate = _drive(work, threads, baseline.save)
                    baseline.close()
                after = _written()
                rates.setdefault((kind, threads), []).append(rate)
                if before is not None and after is not None:
                    wal.setdefault((kind, threads), []).append((after - before) / saves)
    figures = {key: (max(rates[key]), statistics.median(wal[key]) if key in wal else None) for key in rates}
    for threads in (1, 8):
        ours, plain = figures[("ours", threads)][0], figures[("plain", threads)][0]
        results.append(
            Result(
                BENCH,
                f"saves/s, {threads} thread{'s' if threads > 1 else ''}, import pattern ({saves:,} saves)",
                ours,
                "saves/s",
                baseline=plain,
                baseline_name="a transaction per save",
                target="ratio >= 0.8",
                ok=ours / plain >= 0.8,
            )
        )
    lock, table = threading.Lock(), {}

    def into_dict(record: Any) -> None:
        with lock:
            table[(record.target, record.certificate_id)] = record

    dict_rate = _drive(work, 8, into_dict)
    results.append(
        Result(
            BENCH,
            "saves/s, 8 threads, against dict inserts under a lock",
            figures[("ours", 8)][0],
            "saves/s",
            baseline=dict_rate,
            baseline_name="dict under a lock",
            note="for the record: an in-memory dict keeps nothing across a crash",
        )
    )
    ours_wal, plain_wal = figures[("ours", 8)][1], figures[("plain", 8)][1]  # medians
    if ours_wal is not None and plain_wal:
        results.append(
            Result(
                BENCH,
                "WAL bytes written per save, 8 threads",
                ours_wal,
                "bytes",
                baseline=plain_wal,
                baseline_name="a transaction per save",
                target="ratio <= 0.6",
                ok=ours_wal / plain_wal <= 0.6,
            )
        )
    results.append(
        Result(
            BENCH,
            "saves per commit, 8 threads (group commit)",
            statistics.median(per_commit),
            "saves",
            baseline=1.0,
            baseline_name="a transaction per save",
        )
    )
    return results


def _fill(path: Path, template: Any, devices: int) -> None:
    """A ledger of ``devices`` imported devices (each saved once, as its import left it)."""
    from thingpress_core.ledger import SqliteLedger

    ledger = SqliteLedger(path)
    _drive([[_device(template, n)] for n in range(devices)], 8, ledger.save)
    ledger.close()


def bench_lookups(path: Path, template: Any, devices: int) -> Result:
    from thingpress_core.ledger import DeviceRecord, SqliteLedger

    ids = [format(n, "064x") for n in range(0, devices, max(1, devices // 20_000))]
    stored = {cid: _device(template, int(cid, 16)).model_dump_json() for cid in ids}
    with SqliteLedger(path, read_only=True) as ledger:
        began = time.perf_counter()
        for cid in ids:
            ledger.device(TARGET, cid)
        ours = len(ids) / (time.perf_counter() - began)
    began = time.perf_counter()
    for cid in ids:
        DeviceRecord.model_validate_json(stored[cid])
    decode = len(ids) / (time.perf_counter() - began)
    return Result(
        BENCH,
        f"device() lookups/s ({len(ids):,} lookups, {devices:,} devices)",
        ours,
        "lookups/s",
        baseline=decode,
        baseline_name="pydantic JSON from a dict",
        target="ratio >= 0.25",
        ok=ours / decode >= 0.25,
    )


def bench_size(paths: dict[int, Path], template: Any) -> list[Result]:
    json_bytes = sum(len(_device(template, n).model_dump_json()) for n in range(100)) / 100
    results = []
    per_device = {count: os.path.getsize(path) / count for count, path in paths.items()}
    for count, size in per_device.items():
        results.append(
            Result(
                BENCH,
                f"bytes per device on disk, {count:,} devices",
                size,
                "bytes",
                baseline=json_bytes,
                baseline_name="the record as pydantic JSON",
                target="ratio <= 0.6",
                ok=size / json_bytes <= 0.6,
            )
        )
    small, large = sorted(per_device)
    results.append(
        Result(
            BENCH,
            f"bytes per device, {large:,} against {small:,} devices",
            per_device[large],
            "bytes",
            baseline=per_device[small],
            baseline_name=f"at {small:,}",
            target="ratio <= 1.2",
            ok=per_device[large] / per_device[small] <= 1.2,
        )
    )
    return results


def bench_export_memory(paths: dict[int, Path]) -> Result:
    from thingpress_core.ledger import SqliteLedger, export_devices

    peaks = {}
    for count, path in sorted(paths.items()):
        with SqliteLedger(path, read_only=True) as ledger, open(os.devnull, "w") as sink:
            tracemalloc.start()
            try:
                written = export_devices(ledger, sink, format="csv")
                peaks[count] = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            assert written == count
    small, large = sorted(peaks)
    return Result(
        BENCH,
        f"export peak memory (CSV), {large:,} against {small:,} devices",
        peaks[large] / 1024,
        "KiB",
        baseline=peaks[small] / 1024,
        baseline_name=f"at {small:,}",
        target="ratio <= 1.5",
        ok=peaks[large] / peaks[small] <= 1.5,
    )


def run(quick: bool) -> list[Result]:
    template = _template()
    sizes = (2_000, 20_000) if quick else (10_000, 100_000)
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as tmp:
        directory = Path(tmp)
        results = bench_saves(directory, template, 300 if quick else 1_000, rounds=3 if quick else 5)
        paths = {count: directory / f"filled-{count}.ledger" for count in sizes}
        for count, path in paths.items():
            _fill(path, template, count)
        results.append(bench_lookups(paths[sizes[1]], template, sizes[1]))
        results += bench_size(paths, template)
        results.append(bench_export_memory(paths))
    return results


if __name__ == "__main__":
    for result in run("--quick" in sys.argv):
        print(result)
