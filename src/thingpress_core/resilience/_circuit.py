"""`CircuitCore`: a circuit breaker's state machine, its admission and its one record path.

`CircuitBreaker` (in `_breaker`) adds the call styles, inspection and operator controls on top;
everything that reads or changes the state lives here.

Concurrency. A lock guards the bookkeeping only; the protected call always runs outside it, so
eight threads through one breaker run in parallel. A closed breaker admits a call without
taking the lock: its admission function is then a C-level callable that hands every caller
the phase's shared permit, and each state change swaps it (under the lock) for `_admit`.

Phases. Every state change starts a new *generation*, and a permit carries the generation it
was admitted in: an answer from an earlier phase (a slow call admitted while closed that
finishes while half-open) is counted but never decides the current phase.

Probe slots. A half-open admission is a *probe* and holds one of ``half_open_max_calls``
slots until its own outcome is recorded, whatever phase the breaker is in by then. A probe
still running from an earlier half-open phase keeps its slot when the next one starts, so no
more than ``half_open_max_calls`` probes ever run at once. Operator actions (`force_open`,
`disable`, `enable`, `reset`) start the count over (`_operator_phase`): they are the way out of
a permit that will never be reported.

One path. Every call style admits through ``_admission`` and reports through `_settle` (or
`_record`); nothing else touches the counters.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Final

from thingpress_core.errors import CircuitOpenError
from thingpress_core.resilience._models import CircuitEvent, CircuitPermit, CircuitSnapshot, CircuitState
from thingpress_core.resilience._settings import CircuitBreakerSettings

__all__ = ["NEUTRAL", "CircuitCore", "CircuitListener", "Classifier"]

logger = logging.getLogger("thingpress_core.resilience")

#: Decides whether an exception counts as a failure (True) or neither way (False).
Classifier = Callable[[BaseException], bool]
#: Receives every state change; what it returns is ignored.
CircuitListener = Callable[[CircuitEvent], object]

_CLOSED: Final = CircuitState.CLOSED
_OPEN: Final = CircuitState.OPEN
_HALF_OPEN: Final = CircuitState.HALF_OPEN

# outcomes of a call, as `_record` takes them
_SUCCESS: Final = 0
_FAILURE: Final = 1
NEUTRAL: Final = 2


class CircuitCore:
    """The state and counters of one breaker, and the only code that changes them."""

    def __init__(
        self,
        name: str,
        settings: CircuitBreakerSettings,
        *,
        clock: Callable[[], float],
        classify: Classifier,
    ) -> None:
        self._name = name
        self._settings = settings
        self._clock = clock
        self._classify = classify
        self._lock = threading.Lock()
        self._listeners: tuple[CircuitListener, ...] = ()

        s = settings
        self._threshold = s.failure_threshold
        self._rate_threshold = s.failure_rate_threshold
        self._window: deque[bool] | None = (
            deque(maxlen=s.window_size) if s.failure_rate_threshold is not None else None
        )
        self._minimum_calls = min(s.minimum_calls, s.window_size)
        self._max_timeout = max(s.max_recovery_timeout, s.recovery_timeout)
        self._max_probes = s.half_open_max_calls

        self._state = _CLOSED
        self._generation = 0
        self._disabled = False  # operator override
        self._forced_open = False
        # What a disabled breaker hands out: its outcomes are not recorded.
        self._bypass = CircuitPermit(self._settle, -1, False)
        # `_fast` is the closed phase's shared permit, or this one (never handed out) otherwise.
        self._no_permit = CircuitPermit(self._settle, -2, False)
        self._fast = self._no_permit
        # `_fast` in consecutive-failure mode: a success with it needs nothing but counting.
        self._quick = self._no_permit
        self._admission: Callable[[], CircuitPermit] = self._admit
        self._consecutive = 0
        self._window_failures = 0
        self._opened_at: float | None = None
        self._retry_at: float | None = None
        self._open_timeout = s.recovery_timeout
        self._open_reason = ""
        # The probes holding a slot, oldest first, whatever phase admitted them; a dict as an
        # ordered set. A probe leaves it when its own answer comes (or an operator acts).
        self._held: dict[CircuitPermit, None] = {}
        self._in_flight = 0  # how many of them the current phase admitted
        self._probe_successes = 0
        self._successes = 0
        self._failures = 0
        self._ignored = 0
        self._refusals = 0
        self._refresh_fast()

    # ---------------------------------------------------------- what it tells: snapshots, events

    def _snapshot_locked(self, now: float) -> CircuitSnapshot:
        """The state and counters at ``now`` (lock held)."""
        window = self._window
        rate: float | None = None
        if window is not None:
            rate = 100.0 * self._window_failures / len(window) if window else 0.0
        retry_after = None if self._retry_at is None else max(0.0, self._retry_at - now)
        return CircuitSnapshot(
            name=self._name,
            state=self._state,
            enabled=self._settings.enabled and not self._disabled,
            forced_open=self._forced_open,
            consecutive_failures=self._consecutive,
            failure_rate=rate,
            window_calls=len(window) if window is not None else 0,
            opened_at=self._opened_at,
            retry_at=self._retry_at,
            retry_after=retry_after,
            open_timeout=self._open_timeout,
            half_open_in_flight=len(self._held),
            calls=self._successes + self._failures + self._ignored,
            successes=self._successes,
            failures=self._failures,
            ignored=self._ignored,
            refusals=self._refusals,
            at=now,
        )

    def _emit(self, event: CircuitEvent) -> None:
        """Log a state change and tell every listener (outside the lock); a listener that
        raises is logged and ignored."""
        extra = {"operation": event.name, "circuit_state": event.new_state.value}
        if event.new_state is _OPEN:
            logger.warning("circuit %s opened (%s)", event.name, event.reason, extra=extra)
        else:
            logger.info(
                "circuit %s %s -> %s (%s)",
                event.name,
                event.old_state.value,
                event.new_state.value,
                event.reason,
                extra=extra,
            )
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                logger.exception(
                    "circuit listener %r failed on %s; ignored",
                    listener,
                    event.name,
                    extra={"operation": event.name},
                )

    # ------------------------------------------------------------------ state machine

    def _transition(self, new: CircuitState, reason: str, now: float) -> CircuitEvent | None:
        """Change state (lock held). Every change starts a new generation; probes of the
        phase that ends keep their slots until they answer."""
        old = self._state
        self._generation += 1
        self._state = new
        self._in_flight = 0
        self._probe_successes = 0
        if new is _OPEN:
            self._opened_at = now
            self._open_reason = reason
            self._retry_at = None if self._forced_open else now + self._open_timeout
        elif new is _CLOSED:
            self._consecutive = 0
            if self._window is not None:
                self._window.clear()
            self._window_failures = 0
            self._open_timeout = self._settings.recovery_timeout
            self._opened_at = None
            self._retry_at = None
        self._refresh_fast()
        return CircuitEvent(self._name, old, new, now, reason) if new is not old else None

    def _operator_phase(self) -> None:
        """After an operator action (lock held): a new generation in which no probe holds a
        slot. The answers of probes still running are counted and decide nothing."""
        self._generation += 1
        self._held.clear()
        self._in_flight = 0
        self._probe_successes = 0
        self._refresh_fast()

    def _refresh_fast(self) -> None:
        """Pick the admission function for the current state (lock held). Closed or disabled,
        it hands out a shared permit without a lock; otherwise it is `_admit`."""
        if self._disabled or not self._settings.enabled:
            self._fast = self._quick = self._no_permit
            self._admission = itertools.repeat(self._bypass).__next__
        elif self._state is _CLOSED and not self._forced_open:
            permit = CircuitPermit(self._settle, self._generation, False)
            self._fast = permit
            self._quick = permit if self._window is None else self._no_permit
            self._admission = itertools.repeat(permit).__next__
        else:
            self._fast = self._quick = self._no_permit
            self._admission = self._admit

    def _admit(self) -> CircuitPermit:
        """Admission when the breaker is not closed (the lock-free path does not apply).

        Raises `CircuitOpenError`.
        """
        event: CircuitEvent | None = None
        with self._lock:
            if self._disabled or not self._settings.enabled:
                return self._bypass
            state = self._state
            if state is _CLOSED and not self._forced_open:
                return self._fast  # it closed after the caller looked
            now = self._clock()
            if state is _OPEN and not self._forced_open:
                assert self._retry_at is not None
                if now >= self._retry_at:
                    event = self._transition(_HALF_OPEN, "recovery_timeout", now)
                    state = _HALF_OPEN
            if state is _HALF_OPEN and len(self._held) < self._max_probes:
                probe = CircuitPermit(self._settle, self._generation, True)
                self._held[probe] = None
                self._in_flight += 1
                refusal = None
            else:
                self._refusals += 1
                probe = None
                refusal = self._refusal(now)
        if event is not None:
            self._emit(event)
        if refusal is not None:
            raise refusal
        assert probe is not None
        return probe

    def _refusal(self, now: float) -> CircuitOpenError:
        snapshot = self._snapshot_locked(now)
        name = self._name
        if self._forced_open:
            message = f"circuit {name} is forced open by an operator; it will not try again until reset"
            retry_after: float | None = None
        elif self._state is _HALF_OPEN:
            retry_after = min(1.0, self._settings.recovery_timeout)
            message = (
                f"circuit {name} is half-open and its {self._max_probes} probe slot(s) are busy; "
                f"try again in {retry_after:.1f} s"
            )
        else:
            assert self._retry_at is not None
            retry_after = max(0.0, self._retry_at - now)
            message = (
                f"circuit {name} is open ({self._open_reason_text()}); "
                f"it will try again in {retry_after:.1f} s"
            )
        return CircuitOpenError(message, name=name, snapshot=snapshot, retry_after=retry_after)

    def _open_reason_text(self) -> str:
        reason = self._open_reason
        if reason == "failure_threshold":
            return f"{self._threshold} consecutive failures"
        if reason == "failure_rate":
            return f"failure rate at or above {self._rate_threshold:g}% of recent calls"
        if reason == "probe_failed":
            return "a recovery probe failed"
        return reason.replace("_", " ")

    def _settle(self, permit: CircuitPermit | None, exc: BaseException | None) -> None:
        """The one record path: every call style reports here (``exc`` None for a success)."""
        if exc is not None:
            self._record(permit, self._outcome_of(exc))
            return
        # acquire/release rather than `with`: measurably faster on the hottest path.
        lock = self._lock
        lock.acquire()
        if permit is self._quick:
            # The common case: closed, same phase, consecutive-failure mode.
            self._successes += 1
            self._consecutive = 0
            lock.release()
            return
        try:
            event = self._record_locked(permit, _SUCCESS)
        finally:
            lock.release()
        if event is not None:
            self._emit(event)

    def _record(self, permit: CircuitPermit | None, outcome: int) -> None:
        with self._lock:
            event = self._record_locked(permit, outcome)
        if event is not None:
            self._emit(event)

    def _record_locked(self, permit: CircuitPermit | None, outcome: int) -> CircuitEvent | None:
        if permit is self._bypass or (permit is None and (self._disabled or not self._settings.enabled)):
            return None  # a disabled breaker records nothing, with or without a permit
        if outcome == _SUCCESS:
            self._successes += 1
        elif outcome == _FAILURE:
            self._failures += 1
        else:
            self._ignored += 1
        state = self._state
        generation = self._generation
        if permit is None:  # the loop API without a permit: taken as an answer of this phase
            if state is _HALF_OPEN:
                if self._in_flight == 0:
                    return None
                # It frees the oldest slot of this phase: which probe answered is unknown.
                del self._held[next(held for held in self._held if held.generation == generation)]
        elif permit.probe:
            if permit not in self._held:
                return None  # reported before, or an operator started the count over
            del self._held[permit]  # its own slot, whatever the phase now
            if permit.generation != generation:
                return None  # an answer from an earlier phase decides nothing now
        elif permit.generation != generation:
            return None
        if state is _CLOSED:
            if outcome == NEUTRAL:
                return None
            failed = outcome == _FAILURE
            self._consecutive = self._consecutive + 1 if failed else 0
            window = self._window
            if window is not None:
                if len(window) == window.maxlen and window[0]:
                    self._window_failures -= 1
                window.append(failed)
                self._window_failures += failed
            if failed:
                reason = self._trip_reason()
                if reason:
                    return self._transition(_OPEN, reason, self._clock())
        elif state is _HALF_OPEN:
            self._in_flight -= 1
            if outcome == _SUCCESS:
                self._probe_successes += 1
                if self._probe_successes >= self._settings.success_threshold:
                    return self._transition(_CLOSED, "probe_succeeded", self._clock())
            elif outcome == _FAILURE:
                self._open_timeout = min(
                    self._max_timeout, self._open_timeout * self._settings.recovery_backoff
                )
                return self._transition(_OPEN, "probe_failed", self._clock())
        return None

    def _trip_reason(self) -> str:
        if self._consecutive >= self._threshold:
            return "failure_threshold"
        window = self._window
        if (
            window is not None
            and self._rate_threshold is not None
            and len(window) >= self._minimum_calls
            and 100.0 * self._window_failures / len(window) >= self._rate_threshold
        ):
            return "failure_rate"
        return ""

    def _outcome_of(self, exc: BaseException) -> int:
        if not isinstance(exc, Exception):  # KeyboardInterrupt, SystemExit, CancelledError
            return NEUTRAL
        try:
            return _FAILURE if self._classify(exc) else NEUTRAL
        except Exception:
            logger.exception("circuit %s: classifier failed; outcome counted as neutral", self._name)
            return NEUTRAL
