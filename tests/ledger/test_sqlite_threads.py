"""Many threads on one SqliteLedger, and the group commit under it.

The group-commit tests control every interleaving: the first commit waits on an event the
test sets, and the test learns through ``on_queue`` when the others wait behind it.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from tests.ledger._sqlite_support import FLOOR, RUN, T, cert, imported

from thingpress_core.ledger import DeviceRecord, SqliteLedger
from thingpress_core.ledger._group_commit import GroupCommit, GroupCommitClosed

THREADS = 16
PER_THREAD = 25


def _steps_of(n: int) -> list[DeviceRecord]:
    """The records an import saves for device ``n``, one per confirmed step."""
    return [imported(n, steps=FLOOR[: i + 1]) for i in range(len(FLOOR))]


def test_sixteen_threads_saving_and_reading_get_exact_results(tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path / "threads.ledger")
    start = threading.Barrier(THREADS)
    problems: list[str] = []

    def work(worker: int) -> None:
        start.wait()
        mine = range(worker * PER_THREAD, (worker + 1) * PER_THREAD)
        for n in mine:
            for record in _steps_of(n):
                ledger.save(record)
                if ledger.device(T, cert(n)) != record:  # its own write, read back at once
                    problems.append(f"device {n} read back differently")
            if ledger.thing_owner(T, f"plant1-{n:08d}") != cert(n):
                problems.append(f"thing of device {n} not owned")
            other = (n + PER_THREAD) % (THREADS * PER_THREAD)  # another thread's device: done or absent
            seen = ledger.device(T, cert(other))
            if seen is not None and seen.certificate_id != cert(other):
                problems.append(f"device {other} read as {seen.certificate_id}")

    threads = [threading.Thread(target=work, args=(w,)) for w in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    saves = THREADS * PER_THREAD * len(FLOOR)
    commits = ledger._group.commits
    ledger.close()
    assert problems == []
    with SqliteLedger(tmp_path / "threads.ledger", read_only=True) as reader:
        everything = list(reader.devices())
        assert everything == [imported(n) for n in range(THREADS * PER_THREAD)]
        assert len(list(reader.devices(run_id=RUN))) == THREADS * PER_THREAD
    assert commits < saves  # writes that met were committed together


# --- the group commit itself -------------------------------------------------------------------


class Recorder:
    """A commit function that records each batch; the first batch waits for ``gate``."""

    def __init__(self, *, fail: Callable[[Sequence[str]], BaseException | None] = lambda _: None) -> None:
        self.batches: list[list[str]] = []
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.fail = fail

    def __call__(self, items: Sequence[str]) -> None:
        self.batches.append(list(items))
        if len(self.batches) == 1:
            self.entered.set()
            assert self.gate.wait(30)
        error = self.fail(items)
        if error is not None:
            raise error


def _queued(count: int) -> tuple[threading.Event, Callable[[int], None]]:
    reached = threading.Event()

    def on_queue(waiting: int) -> None:
        if waiting >= count:
            reached.set()

    return reached, on_queue


def _run(target: Callable[[], object], results: dict[str, object], key: str) -> threading.Thread:
    def body() -> None:
        try:
            results[key] = target()
        except BaseException as exc:
            results[key] = exc

    thread = threading.Thread(target=body)
    thread.start()
    return thread


def test_writes_that_wait_behind_a_commit_are_committed_together() -> None:
    recorder = Recorder()
    reached, on_queue = _queued(5)
    group: GroupCommit[str] = GroupCommit(recorder, on_queue=on_queue)
    results: dict[str, object] = {}
    threads = [_run(lambda: group.submit("first"), results, "first")]
    assert recorder.entered.wait(30)
    threads += [_run(functools.partial(group.submit, f"w{i}"), results, f"w{i}") for i in range(5)]
    assert reached.wait(30)
    recorder.gate.set()
    for thread in threads:
        thread.join()
    assert recorder.batches[0] == ["first"]
    assert sorted(recorder.batches[1]) == [f"w{i}" for i in range(5)]
    assert len(recorder.batches) == 2
    assert results == dict.fromkeys(["first", *(f"w{i}" for i in range(5))])
    assert group.commits == 2


def test_a_failed_commit_fails_every_write_of_its_batch_and_no_other() -> None:
    boom = OSError("disk full")
    recorder = Recorder(fail=lambda items: boom if any(i.startswith("w") for i in items) else None)
    reached, on_queue = _queued(3)
    group: GroupCommit[str] = GroupCommit(recorder, on_queue=on_queue)
    results: dict[str, object] = {}
    threads = [_run(lambda: group.submit("first"), results, "first")]
    assert recorder.entered.wait(30)
    threads += [_run(functools.partial(group.submit, f"w{i}"), results, f"w{i}") for i in range(3)]
    assert reached.wait(30)
    recorder.gate.set()
    for thread in threads:
        thread.join()
    assert results["first"] is None
    assert [results[f"w{i}"] for i in range(3)] == [boom, boom, boom]
    assert group.commits == 1
    assert group.submit("after") is None  # a failure does not stop the next round


def test_an_interrupted_leader_hands_the_lead_on() -> None:
    recorder = Recorder(fail=lambda items: KeyboardInterrupt() if items == ["first"] else None)
    reached, on_queue = _queued(2)
    group: GroupCommit[str] = GroupCommit(recorder, on_queue=on_queue)
    results: dict[str, object] = {}
    threads = [_run(lambda: group.submit("first"), results, "first")]
    assert recorder.entered.wait(30)
    threads += [_run(functools.partial(group.submit, f"w{i}"), results, f"w{i}") for i in range(2)]
    assert reached.wait(30)
    recorder.gate.set()
    for thread in threads:
        thread.join()
    assert isinstance(results["first"], KeyboardInterrupt)  # re-raised in the leader
    assert (results["w0"], results["w1"]) == (None, None)  # committed by the next leader
    assert sorted(recorder.batches[1]) == ["w0", "w1"]


def test_close_waits_for_the_running_commit_and_refuses_new_writes() -> None:
    recorder = Recorder()
    group: GroupCommit[str] = GroupCommit(recorder)
    results: dict[str, object] = {}
    writer = _run(lambda: group.submit("first"), results, "first")
    assert recorder.entered.wait(30)
    closer = _run(group.close, results, "close")
    recorder.gate.set()
    closer.join()
    writer.join()
    assert results == {"first": None, "close": None}
    with pytest.raises(GroupCommitClosed):
        group.submit("late")
    group.close()  # idempotent
    assert recorder.batches == [["first"]]


def test_a_failed_commit_reaches_the_saver_as_a_ledger_error(tmp_path: Path) -> None:
    from thingpress_core.errors import LedgerError

    ledger = SqliteLedger(tmp_path / "x.ledger")
    ledger.save(imported(1))
    assert ledger._writer is not None
    ledger._writer.close()  # the storage goes away under the ledger
    with pytest.raises(LedgerError, match="the write was not saved"):
        ledger.save(imported(2))
    ledger.close()
