"""The scheduling loop of one `import_all`: window, holds, retry rounds, tally.

It reads the input lazily and keeps at most ``2 * concurrency`` items in flight. Two items
that share a certificate or a thing name never run at the same time: the later one waits until
the first has finished (so a repeated certificate reports ``already_present`` and a second
certificate for one thing name finds the first one's thing and fails as a name collision).
Only items in flight or waiting are remembered, never the whole input, so memory stays flat.

With a ledger that reads locally (SQLite) and no worker busy, the scheduling thread itself
begins an item's first attempt (check, name, the ledger's record: `prepare`): a device the
ledger shows done is settled there, so a re-run over a finished ledger costs a local read per
device and never a trip through the thread pool; a device that needs AWS goes on to a worker.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING

from thingpress_core.errors import ThingpressError
from thingpress_core.importer._claims import ClaimedNames
from thingpress_core.importer._models import ImportOptions, ImportOutcome, OutcomeStatus
from thingpress_core.importer._refusal import collision
from thingpress_core.importer._steps import attempt, failure, log_outcome, prepare
from thingpress_core.importer._work import Work

if TYPE_CHECKING:
    from thingpress_core.importer._journal import Journal
    from thingpress_core.importer._protocol import IoTOperations

__all__ = ["Run"]

logger = logging.getLogger("thingpress_core.importer")

_MAX_PAUSE = 30.0
_MIN_WAITING = 256

ProgressCallback = Callable[[ImportOutcome], object]

# Outcomes after which the certificate holds its thing (a dry run's would, were it real).
_HOLDING = frozenset({OutcomeStatus.IMPORTED, OutcomeStatus.ALREADY_PRESENT, OutcomeStatus.SKIPPED})


class Run:
    """One `import_all`: the pool, the window, the holds, the rounds and the counts."""

    def __init__(
        self,
        iot: Callable[[], IoTOperations],
        options: ImportOptions,
        progress: ProgressCallback | None,
        sleep: Callable[[float], object],
        clock: Callable[[], float] = time.monotonic,
        journal: Journal | None = None,
    ) -> None:
        self._iot = iot
        self._journal = journal
        self._options = options
        self._progress = progress
        self._sleep = sleep
        self._clock = clock
        self._window = 2 * options.concurrency
        # At most this many certificates wait for a retry round; past it, the round starts early.
        self._max_waiting = max(_MIN_WAITING, 32 * options.concurrency)
        self._pending: dict[Future[ImportOutcome], Work] = {}
        self._inline = journal is not None and journal.local
        self._queue: deque[Work] = deque()  # the retry round being sent
        self._decided: deque[tuple[Work, ImportOutcome]] = deque()  # settled by `prepare`, to finish
        self._active: set[str] = set()  # certificate ids and thing names in flight or waiting
        self._held: dict[str, deque[Work]] = {}  # items waiting for an active key to finish
        self._held_count = 0
        self._claims = ClaimedNames()  # thing names a certificate of this run holds
        self._next_round: list[Work] = []
        self._paused = 0.0  # seconds of pause asked of `sleep` so far
        self._pool: ThreadPoolExecutor | None = None
        self.total = self.imported = self.already_present = self.failed = self.skipped = 0
        self.failures: list[ImportOutcome] = []
        self.unfinished: list[str] = []
        self.retried = 0
        self.rounds = 0

    def run(self, items: Iterable[object]) -> None:
        """Import every item; on ``KeyboardInterrupt`` record what finished, then re-raise.

        A worker's `RunHalted` (the run's lazy preflight failed) propagates from here as it is:
        no outcome is recorded for it."""
        pool = ThreadPoolExecutor(
            max_workers=self._options.concurrency, thread_name_prefix="thingpress-import"
        )
        self._pool = pool
        try:
            self._loop(items)
        except KeyboardInterrupt:
            # Calls already sent finish (a thread cannot be stopped mid-call); nothing new starts.
            pool.shutdown(wait=True, cancel_futures=True)
            self._harvest()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _harvest(self) -> None:
        """After an interrupt: count what finished; list the rest as unfinished."""
        for future, work in list(self._pending.items()):
            ended = future.cancelled() or not future.done() or future.exception() is not None
            outcome = None if ended else future.result()
            if outcome is not None and not (outcome.status is OutcomeStatus.FAILED and outcome.transient):
                self._record(outcome)
            elif work.certificate_id is not None:
                self.unfinished.append(work.certificate_id)
        self._pending.clear()
        for work, outcome in self._decided:
            if not (outcome.status is OutcomeStatus.FAILED and outcome.transient):
                self._record(outcome)
            elif work.certificate_id is not None:
                self.unfinished.append(work.certificate_id)
        self._decided.clear()
        for work in (*self._queue, *self._next_round):  # a retry round's, sent or not yet
            if work.certificate_id is not None:
                self.unfinished.append(work.certificate_id)
        self._queue.clear()
        for waiting in self._held.values():
            self.unfinished.extend(w.certificate_id for w in waiting if w.certificate_id is not None)
        self._next_round.clear()
        self._held.clear()

    def _loop(self, items: Iterable[object]) -> None:
        source = iter(items)
        position = 0
        exhausted = False
        queue = self._queue
        while True:
            while len(self._pending) + self._held_count < self._window:
                if queue:
                    self._submit(queue.popleft())
                    continue
                if exhausted or len(self._next_round) >= self._max_waiting:
                    break
                try:
                    item = next(source)
                except StopIteration:
                    exhausted = True
                    break
                except Exception as exc:  # the reader itself broke: report it, stop reading
                    exhausted = True
                    logger.error(
                        "reading the input failed after %d items: %s",
                        position,
                        exc,
                        extra={"operation": "read"},
                    )
                    item = exc
                self._admit(Work.of(item, position))
                position += 1
                self._settle()
            if self._pending:
                done, _ = wait(self._pending, return_when=FIRST_COMPLETED)
                for future in done:
                    work = self._pending.pop(future)
                    self._finish(work, future.result())
                self._settle()
                continue
            # Nothing in flight. Either the input is done, or so many certificates wait for a
            # round (an outage, an open breaker) that reading on would only queue more: retry.
            if not self._next_round:
                assert exhausted  # held items imply their first is pending or waiting
                return
            queue.extend(self._next_round)
            self._next_round = []
            self.rounds += 1
            self._pause(queue)

    def _pause(self, queue: deque[Work]) -> None:
        tries = max(max(work.attempts for work in queue), 1)
        delay = min(self._options.retry_pause * 2 ** (tries - 1), _MAX_PAUSE)
        waits = [work.retry_after for work in queue if work.retry_after is not None]
        if waits:
            # an open breaker refuses everything until then: a round sooner would be wasted
            delay = max(delay, max(waits))
        deadline = self._options.retry_deadline
        if deadline is not None:
            delay = min(delay, max(0.0, deadline - max(self._waited(w) for w in queue)))
        logger.info(
            "retry round %d: %d certificates after %.1f s",
            self.rounds,
            len(queue),
            delay,
            extra={"operation": "retry"},
        )
        if delay > 0:
            self._paused += delay
            self._sleep(delay)

    def _waited(self, work: Work) -> float:
        """Seconds since ``work`` first failed: by the clock, or by the pauses asked for since,
        whichever is more (so a sleep that does not pass time still ends at the deadline)."""
        if work.first_failure is None:
            return 0.0
        clock_start, paused_start = work.first_failure
        return max(self._clock() - clock_start, self._paused - paused_start)

    def _keys(self, work: Work) -> tuple[str, ...]:
        keys = [f"id:{work.certificate_id}"]
        if work.thing_name is not None:
            keys.append(f"thing:{work.thing_name}")
        return tuple(keys)

    def _admit(self, work: Work) -> None:
        if work.certificate is None and work.outcome is not None:
            self._record(work.outcome)
            return
        try:
            work.name(self._options)
        except ThingpressError as exc:
            work.attempts = 1
            self._record(failure(work, "name", None, exc))
            return
        self._start(work)

    def _start(self, work: Work) -> bool:
        """Submit ``work``, or hold it while an item with its certificate or name is active.

        A certificate whose thing name another certificate of this run holds fails here as a
        name collision when that is known for sure (it waited for that certificate), and reads
        the thing before registering when the name was claimed earlier in the run (`_claims`).
        False when it was settled here (it takes no key)."""
        if work.claimed_by is not None:
            work.attempts = max(work.attempts, 1)
            name = work.thing_name or ""
            refusal = collision(name, work.claimed_by, source="an earlier certificate of this import")
            self._record(failure(work, "thing", name, refusal))
            return False
        if work.thing_name is not None and work.thing_name in self._claims:
            work.suspect_name = True
        keys = self._keys(work)
        for key in keys:
            if key in self._active:
                self._held.setdefault(key, deque()).append(work)
                self._held_count += 1
                return True
        self._active.update(keys)
        self._submit(work)
        return True

    def _submit(self, work: Work) -> None:
        """Hand ``work`` to a worker thread. With a local ledger and no worker busy, begin a
        first attempt here instead and keep what that settles for `_settle` (finishing it here
        could start a follower, and so on, as deep as a certificate repeats). While workers
        make calls, items go to them as they are: this thread then only feeds the window."""
        if self._inline and work.attempts == 0 and not self._pending:
            try:
                decided = prepare(work, self._options, self._journal)
            except KeyboardInterrupt:
                if work.certificate_id is not None:
                    self.unfinished.append(work.certificate_id)
                raise
            if decided is not None:
                self._decided.append((work, decided))
                return
        assert self._pool is not None
        future = self._pool.submit(attempt, self._iot, work, self._options, self._journal)
        self._pending[future] = work

    def _settle(self) -> None:
        """Finish the items `prepare` settled, and those they released that it settles too."""
        decided = self._decided
        while decided:
            work, outcome = decided.popleft()
            self._finish(work, outcome)

    def _retry_later(self, work: Work, outcome: ImportOutcome) -> bool:
        if outcome.status is not OutcomeStatus.FAILED or not outcome.transient:
            return False
        if work.first_failure is None:
            work.first_failure = (self._clock(), self._paused)
        deadline = self._options.retry_deadline
        if deadline is not None and self._waited(work) >= deadline:
            return False
        return work.attempts <= self._options.transient_rounds

    def _finish(self, work: Work, outcome: ImportOutcome) -> None:
        if self._retry_later(work, outcome):
            if work.rounds == 0:
                self.retried += 1
            work.rounds += 1
            log_outcome(outcome, retrying=True)
            self._next_round.append(work)
            return
        self._record(outcome)
        holds = work.thing_done or outcome.status in _HOLDING
        if holds and work.thing_name is not None:
            self._claims.add(work.thing_name)
        self._release(work, holds=holds)

    def _release(self, work: Work, *, holds: bool = False) -> None:
        """``work`` is done: free its keys and start what waited for them (``holds``: its
        certificate now holds its thing, so another certificate waiting for the name collides)."""
        for key in self._keys(work):
            self._active.discard(key)
        for key in self._keys(work):
            waiting = self._held.get(key)
            started = False
            while waiting and not started:  # one follower takes the key; refused ones do not
                follower = waiting.popleft()
                self._held_count -= 1
                if (
                    holds
                    and follower.thing_name == work.thing_name
                    and follower.certificate_id != work.certificate_id
                ):
                    follower.claimed_by = work.certificate_id
                started = self._start(follower)
            if key in self._held and not self._held[key]:
                del self._held[key]

    def _record(self, outcome: ImportOutcome) -> None:
        self.total += 1
        status = outcome.status
        if status is OutcomeStatus.IMPORTED:
            self.imported += 1
        elif status is OutcomeStatus.ALREADY_PRESENT:
            self.already_present += 1
        elif status is OutcomeStatus.SKIPPED:
            self.skipped += 1
        else:
            self.failed += 1
            self.failures.append(outcome)
        log_outcome(outcome, retrying=False)
        if self._progress is not None:
            self._progress(outcome)
