"""`GroupCommit`: many threads hand in writes, one of them commits all that wait, together.

A thread that submits when no commit runs becomes the leader: it commits every write queued
by then in one call of ``commit`` and wakes the callers whose writes it carried. Writes handed
in meanwhile wait; when the leader is done it hands the lead to the first of them, which
commits them all. So N threads writing at once cost about one transaction per round instead
of N, each caller returns only once its own write is committed, and each wakes exactly once
(no herd of waiters re-checking a shared condition).

A waiter interrupted (Ctrl-C) leaves its write queued: a later leader, or `close`, commits it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["GroupCommit", "GroupCommitClosed"]

T = TypeVar("T")


class GroupCommitClosed(RuntimeError):
    """A write handed in after `GroupCommit.close`."""


class _Ticket(Generic[T]):
    """One write and how it ended; ``signal`` (made only for a caller that must wait) is
    released to wake it."""

    __slots__ = ("done", "error", "gone", "item", "signal")

    def __init__(self, item: T) -> None:
        self.item = item
        self.signal: threading.Lock | None = None
        self.done = False
        self.gone = False  # its caller stopped waiting (interrupted): never hand it the lead
        self.error: BaseException | None = None

    def wake(self) -> None:
        """Release a waiting caller (called holding the group's mutex)."""
        if self.signal is not None and self.signal.locked():
            self.signal.release()


class GroupCommit(Generic[T]):
    """Batches concurrent writes into one ``commit(items)`` call per round.

    ``commit`` raises to fail the whole batch: every write in it gets that error back from
    `submit` (nothing of the batch was committed), and the leader re-raises an interrupt
    (``KeyboardInterrupt``, ``SystemExit``) once the others are told. ``on_queue`` (for tests)
    is told how many writes wait, each time a write starts waiting for another's commit.
    """

    def __init__(
        self, commit: Callable[[Sequence[T]], None], *, on_queue: Callable[[int], None] | None = None
    ) -> None:
        self._commit = commit
        self._on_queue = on_queue
        self._mutex = threading.Lock()
        self._idle = threading.Condition(self._mutex)
        self._pending: list[_Ticket[T]] = []
        self._leader: object | None = None  # the ticket (or closer) whose thread commits next
        self._closed = False
        self.commits = 0  #: rounds committed; writes / commits is the batching achieved

    def submit(self, item: T) -> BaseException | None:
        """Queue ``item``, return once a commit carried it: None, or the error that failed it.
        Raises `GroupCommitClosed` after `close`."""
        ticket = _Ticket(item)
        with self._mutex:
            if self._closed:
                raise GroupCommitClosed("closed")
            self._pending.append(ticket)
            leads = self._leader is None
            if leads:
                self._leader = ticket
            else:
                ticket.signal = threading.Lock()
                ticket.signal.acquire()
            waiting = len(self._pending)
        if not leads and self._on_queue is not None:
            self._on_queue(waiting)
        try:
            if ticket.signal is not None:
                ticket.signal.acquire()
                if ticket.done:
                    return ticket.error
            self._lead()  # the lead came to this caller: its write is still queued
        except BaseException:
            self._abandon(ticket)
            raise
        return ticket.error

    def close(self) -> None:
        """Refuse new writes; wait for the commit that runs, then commit what is still queued
        (writes whose callers were interrupted, or that were handed in just before)."""
        with self._mutex:
            self._closed = True
            while self._leader is not None:
                self._idle.wait()
            if not self._pending:
                return
            self._leader = closer = object()
        try:
            self._lead()
        except BaseException:
            self._abandon(closer)
            raise

    def _lead(self) -> None:
        """Commit rounds until the lead can pass to a waiting caller, or nothing is queued."""
        while True:
            with self._mutex:
                batch, self._pending = self._pending, []
            error: BaseException | None = None
            try:
                self._commit([t.item for t in batch])
                self.commits += 1
            except BaseException as exc:
                error = exc
            interrupted = error is not None and not isinstance(error, Exception)
            with self._mutex:
                for ticket in batch:
                    ticket.done, ticket.error = True, error
                    ticket.wake()
                live = any(not t.gone for t in self._pending)
                again = bool(self._pending) and not interrupted and (self._closed or not live)
                if not again:
                    self._hand_on()
            if interrupted:
                assert error is not None
                raise error
            if not again:
                return

    def _abandon(self, ticket: object) -> None:
        """The caller of ``ticket`` stops waiting; pass the lead on if it held it."""
        with self._mutex:
            if isinstance(ticket, _Ticket):
                ticket.gone = True
            if self._leader is ticket:
                self._hand_on()

    def _hand_on(self) -> None:
        """Give the lead to the first caller still waiting, or to nobody (holding the mutex).
        Once closed nobody takes it: what is queued then fails as closed."""
        successor = None
        if self._closed:
            for ticket in self._pending:
                ticket.done, ticket.error = True, GroupCommitClosed("closed before the write was committed")
                ticket.wake()
            self._pending = []
        else:
            successor = next((t for t in self._pending if not t.gone), None)
        self._leader = successor
        if successor is not None:
            successor.wake()
        else:
            self._idle.notify_all()
