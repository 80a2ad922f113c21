"""The loop every fleet operation shares: a window of devices on a thread pool, retry rounds.

It reads the devices lazily and keeps at most ``2 * concurrency`` of them in flight, so memory
does not grow with their number. A device whose failure was transient (throttled after
botocore's retries, 5xx, an open breaker: `is_transient`) waits until the others are done, or
until ``max(256, 32 * concurrency)`` wait, then goes round again after a pause, resuming at
the step that failed (each `Task` remembers how far it got), up to `RetryRounds.rounds` more
times. Each final outcome is counted and handed to the callbacks on the calling thread.

Ctrl-C (``KeyboardInterrupt``, also from a callback) stops reading; the calls in flight
finish (a thread cannot be stopped mid-call) and are counted, the rest are listed as
unfinished, and the ``KeyboardInterrupt`` is raised again for the operation to report.
"""

from __future__ import annotations

import abc
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, Generic, TypeVar

from thingpress_core.errors import AwsServiceError, CircuitOpenError
from thingpress_core.importer._reasons import reason_of, refused
from thingpress_core.operations._models import RetryRounds
from thingpress_core.operations._reports import DeviceOutcome, OperationStep
from thingpress_core.resilience import is_transient

__all__ = ["Runner", "Task", "one_line"]

logger = logging.getLogger("thingpress_core.operations")

OutcomeT = TypeVar("OutcomeT", bound=DeviceOutcome)
_T = TypeVar("_T")

_MAX_PAUSE = 30.0
_MIN_WAITING = 256
_MAX_ERROR_CHARS = 600


def one_line(text: str) -> str:
    """``text`` on one line, at most 600 characters."""
    text = " ".join(text.split())
    return text if len(text) <= _MAX_ERROR_CHARS else text[: _MAX_ERROR_CHARS - 3] + "..."


class Task(abc.ABC, Generic[OutcomeT]):
    """One device's work, resumable: a retry round calls `run` again and the subclass goes on
    from the step that failed. `attempt` never raises for a problem with the device: every
    failure is an outcome (see `failure`)."""

    def __init__(self, *, certificate_id: str | None, thing_name: str | None, index: int | None) -> None:
        self.certificate_id = certificate_id
        self.thing_name = thing_name
        self.index = index
        self.calls = 0
        self.attempts = 0
        self.retry_after: float | None = None
        # (clock, seconds paused so far) when it first failed transiently: for the deadline
        self.first_failure: tuple[float, float] | None = None

    def run(self) -> OutcomeT:
        """One attempt (on a worker thread)."""
        self.attempts += 1
        self.retry_after = None
        return self.attempt()

    @abc.abstractmethod
    def attempt(self) -> OutcomeT:
        """Do what is left of this device's work; return its outcome."""

    def call(self, method: Callable[..., _T], *args: Any) -> _T:
        """Call an IoT method, counting it as one call when it reached AWS."""
        try:
            result = method(*args)
        except AwsServiceError:
            self.calls += 1
            raise
        self.calls += 1
        return result

    def where(self) -> str:
        """How messages name the device: its certificate id, else its 1-based position."""
        if self.certificate_id:
            return f"certificate {self.certificate_id}"
        if self.index is not None:
            return f"item {self.index + 1}"
        return "item"

    def fields(self) -> dict[str, Any]:
        """The outcome fields every operation fills the same way."""
        return {
            "certificate_id": self.certificate_id,
            "thing_name": self.thing_name,
            "calls": self.calls,
            "attempts": self.attempts,
            "index": self.index,
        }

    def failure(self, step: OperationStep, doing: str, exc: BaseException) -> dict[str, Any]:
        """The fields of a failed outcome at ``step`` (``doing``: "deleting thing 'x'").

        Remembers an open breaker's ``retry_after`` for the next round's pause; an attempt a
        breaker or the rate limiter refused before any call does not count as a try."""
        if isinstance(exc, CircuitOpenError) and exc.retry_after is not None:
            self.retry_after = exc.retry_after
        if refused(exc):
            self.attempts = max(self.attempts - 1, 0)
        return self.failed_fields(
            step,
            f"{doing} failed: {exc}",
            error_type=type(exc).__name__,
            transient=is_transient(exc),
            reason=reason_of(exc),
        )

    def failed_fields(
        self, step: OperationStep, text: str, *, error_type: str | None, transient: bool, reason: str | None
    ) -> dict[str, Any]:
        """The fields of a failed outcome whose error line is ``text`` (after the device's name)."""
        return {
            **self.fields(),
            "status": "failed",
            "failed_step": step,
            "error": one_line(f"{self.where()}: {text}"),
            "error_type": error_type,
            "transient": transient,
            "reason": reason,
        }


class Done(Task[OutcomeT]):
    """A device whose outcome was known before any work (an input that is no device)."""

    def __init__(self, outcome: OutcomeT) -> None:
        super().__init__(
            certificate_id=outcome.certificate_id, thing_name=outcome.thing_name, index=outcome.index
        )
        self._outcome = outcome

    def run(self) -> OutcomeT:
        return self._outcome

    def attempt(self) -> OutcomeT:
        return self._outcome


class Runner(Generic[OutcomeT]):
    """Run tasks on ``concurrency`` threads with bounded retry rounds; count the outcomes.

    ``make`` turns each input item (or the exception iterating the input raised, after which
    reading stops) and its 0-based position into a `Task`. ``observers`` are called with each
    final outcome, in order, on the calling thread (the operation's own tally first, the
    caller's progress last). ``sleep`` is what pauses before a round (tests pass a no-op),
    ``clock`` the monotonic seconds the retry deadline is measured in.
    """

    def __init__(
        self,
        *,
        make: Callable[[object, int], Task[OutcomeT]],
        concurrency: int,
        retry: RetryRounds,
        observers: Iterable[Callable[[OutcomeT], object] | None],
        sleep: Callable[[float], object],
        clock: Callable[[], float] = time.monotonic,
        name: str = "thingpress-operation",
    ) -> None:
        if not 1 <= concurrency <= 256:
            from thingpress_core.errors import ConfigurationError

            raise ConfigurationError(
                "concurrency must be 1 to 256", variable="concurrency", value=concurrency
            )
        self._make = make
        self._concurrency = concurrency
        self._retry = retry
        self._observers = [o for o in observers if o is not None]
        self._sleep = sleep
        self._clock = clock
        self._paused = 0.0  # seconds of pause asked of `sleep` so far
        self._name = name
        self._window = 2 * concurrency
        self._max_waiting = max(_MIN_WAITING, 32 * concurrency)
        self._pending: dict[Future[OutcomeT], Task[OutcomeT]] = {}
        self._next_round: list[Task[OutcomeT]] = []
        self._queue: deque[Task[OutcomeT]] = deque()  # a round's devices not yet sent
        self._retried_ids: set[int] = set()
        self.total = self.changed = self.unchanged = self.failed = 0
        self.failures: list[OutcomeT] = []
        self.unfinished: list[str] = []
        self.retried = 0
        self.rounds = 0

    def counts(self) -> dict[str, int]:
        """The tally so far, as a ledger's run record keeps it."""
        return {
            "total": self.total,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "failed": self.failed,
        }

    def run(self, items: Iterable[object]) -> None:
        """Work through ``items``; on ``KeyboardInterrupt`` count what finished, then re-raise."""
        pool = ThreadPoolExecutor(max_workers=self._concurrency, thread_name_prefix=self._name)
        try:
            self._loop(items, pool)
        except KeyboardInterrupt:
            # Calls already sent finish (a thread cannot be stopped mid-call); nothing new starts.
            pool.shutdown(wait=True, cancel_futures=True)
            self._harvest()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _loop(self, items: Iterable[object], pool: ThreadPoolExecutor) -> None:
        source = iter(items)
        position = 0
        exhausted = False
        queue = self._queue
        while True:
            while len(self._pending) < self._window:
                if queue:
                    self._submit(pool, queue.popleft())
                    continue
                if exhausted or len(self._next_round) >= self._max_waiting:
                    break
                try:
                    item: object = next(source)
                except StopIteration:
                    exhausted = True
                    break
                except Exception as exc:  # the input itself broke: report it, stop reading
                    exhausted = True
                    logger.error(
                        "reading the devices failed after %d: %s", position, exc, extra={"operation": "read"}
                    )
                    item = exc
                self._submit(pool, self._make(item, position))
                position += 1
            if self._pending:
                done, _ = wait(self._pending, return_when=FIRST_COMPLETED)
                for future in done:
                    task = self._pending.pop(future)
                    self._finish(task, future.result())
                continue
            if not self._next_round:
                return  # nothing in flight, nothing waiting, input done
            queue.extend(self._next_round)
            self._next_round = []
            self.rounds += 1
            self._pause(queue)

    def _submit(self, pool: ThreadPoolExecutor, task: Task[OutcomeT]) -> None:
        self._pending[pool.submit(task.run)] = task

    def _pause(self, queue: deque[Task[OutcomeT]]) -> None:
        tries = max(max(task.attempts for task in queue), 1)
        delay = min(self._retry.pause * 2 ** (tries - 1), _MAX_PAUSE)
        waits = [task.retry_after for task in queue if task.retry_after is not None]
        if waits:
            delay = max(delay, max(waits))  # an open breaker refuses everything until then
        logger.info(
            "retry round %d: %d devices after %.1f s",
            self.rounds,
            len(queue),
            delay,
            extra={"operation": "retry"},
        )
        deadline = self._retry.deadline
        if deadline is not None:
            delay = min(delay, max(0.0, deadline - max(self._waited(t) for t in queue)))
        if delay > 0:
            self._paused += delay
            self._sleep(delay)

    def _waited(self, task: Task[OutcomeT]) -> float:
        """Seconds since ``task`` first failed transiently: by the clock or by the pauses asked
        for since, whichever is more (so a sleep that passes no time still ends at the deadline)."""
        if task.first_failure is None:
            return 0.0
        clock_start, paused_start = task.first_failure
        return max(self._clock() - clock_start, self._paused - paused_start)

    def _retry_later(self, task: Task[OutcomeT], outcome: OutcomeT) -> bool:
        if outcome.status != "failed" or not outcome.transient:
            return False
        if task.first_failure is None:
            task.first_failure = (self._clock(), self._paused)
        deadline = self._retry.deadline
        if deadline is not None and self._waited(task) >= deadline:
            return False
        return task.attempts <= self._retry.rounds

    def _finish(self, task: Task[OutcomeT], outcome: OutcomeT) -> None:
        if self._retry_later(task, outcome):
            if id(task) not in self._retried_ids:
                self._retried_ids.add(id(task))
                self.retried += 1
            logger.info(
                "%s: %s; trying again in a later round",
                task.where(),
                outcome.error,
                extra={"certificate_id": outcome.certificate_id, "thing_name": outcome.thing_name},
            )
            self._next_round.append(task)
            return
        self._retried_ids.discard(id(task))
        self._record(outcome)

    def _record(self, outcome: OutcomeT, *, quiet: bool = False) -> None:
        self.total += 1
        if outcome.status == "changed":
            self.changed += 1
        elif outcome.status == "unchanged":
            self.unchanged += 1
        else:
            self.failed += 1
            self.failures.append(outcome)
            logger.warning(
                "%s",
                outcome.error,
                extra={
                    "certificate_id": outcome.certificate_id,
                    "thing_name": outcome.thing_name,
                    "operation": outcome.failed_step,
                },
            )
        for observe in self._observers:
            if quiet:
                with contextlib.suppress(KeyboardInterrupt):  # already stopping: a 2nd Ctrl-C changes nothing
                    observe(outcome)
            else:
                observe(outcome)

    def _harvest(self) -> None:
        """After an interrupt: count what finished; list the rest as unfinished."""
        for future, task in list(self._pending.items()):
            outcome = None if future.cancelled() or not future.done() else future.result()
            if outcome is not None and not (outcome.status == "failed" and outcome.transient):
                self._record(outcome, quiet=True)
            elif task.certificate_id is not None:
                self.unfinished.append(task.certificate_id)
        self._pending.clear()
        for waiting in (self._queue, self._next_round):
            self.unfinished.extend(t.certificate_id for t in waiting if t.certificate_id is not None)
        self._queue.clear()
        self._next_round.clear()


def int_map(value: object) -> dict[str, int]:
    """A mapping of counters, or {} when ``value`` is none."""
    if not isinstance(value, Mapping):
        return {}
    return {str(k): v for k, v in value.items() if isinstance(v, int)}
