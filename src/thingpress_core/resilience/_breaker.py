"""`CircuitBreaker`: fail fast while an AWS operation is unwell, probe carefully to recover.

A lock guards the bookkeeping only; the protected call always runs outside it, so eight
threads through one breaker run in parallel. A closed breaker admits a call without taking
the lock at all and takes it once afterwards to record the outcome.

Every admission is stamped with the breaker's *generation*, which changes on each state
change: an answer from an earlier phase (a slow call admitted while closed that finishes
while half-open) is counted but never decides a probe.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Final, ParamSpec, TypeVar

from thingpress_core.errors import CircuitOpenError
from thingpress_core.resilience._classify import is_service_failure
from thingpress_core.resilience._models import CircuitEvent, CircuitPermit, CircuitSnapshot, CircuitState
from thingpress_core.resilience.settings import CircuitBreakerSettings

__all__ = ["CircuitBreaker", "CircuitListener", "Classifier"]

logger = logging.getLogger("thingpress_core.resilience")

P = ParamSpec("P")
R = TypeVar("R")

#: Decides whether an exception counts as a failure (True) or neither way (False).
Classifier = Callable[[BaseException], bool]
#: Receives every state change; what it returns is ignored.
CircuitListener = Callable[[CircuitEvent], object]

_CLOSED: Final = CircuitState.CLOSED
_OPEN: Final = CircuitState.OPEN
_HALF_OPEN: Final = CircuitState.HALF_OPEN

_NO_FAST: Final = -1  # `_fast` when admission needs the lock
_BYPASS: Final = -2  # permit of a disabled breaker: nothing is recorded

_SUCCESS: Final = 0
_FAILURE: Final = 1
_NEUTRAL: Final = 2


class CircuitBreaker:
    """A thread-safe circuit breaker for one operation (e.g. ``iot.CreateThing``).

    States: `CircuitState.CLOSED` (calls pass; failures counted), `OPEN` (calls fail fast
    with `CircuitOpenError` until the open period ends), `HALF_OPEN` (at most
    ``half_open_max_calls`` probes at a time; ``success_threshold`` successes close it, a
    failure re-opens it for ``open period × recovery_backoff``, capped at
    ``max_recovery_timeout``). Closing resets the open period to ``recovery_timeout``.

    ``classify(exc)`` says whether an exception counts as a failure; anything else is
    neutral: neither a failure nor a success (a neutral probe frees its slot without closing).
    The default, `is_service_failure`, counts throttling after retries, 5xx, timeouts and
    connection errors. ``clock`` returns seconds (monotonic); tests pass a fake.

    Use it as ``breaker.call(fn, *args)``, as a decorator ``@breaker``, as a context manager
    ``with breaker: ...``, or for loops as ``permit = breaker.acquire()`` followed by
    ``breaker.record_success(permit)`` or ``breaker.record_failure(exc, permit)``.
    """

    def __init__(
        self,
        name: str,
        settings: CircuitBreakerSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        classify: Classifier | None = None,
    ) -> None:
        self._name = name
        self._settings = settings if settings is not None else CircuitBreakerSettings()
        self._clock = clock
        self._classify: Classifier = classify if classify is not None else is_service_failure
        self._lock = threading.Lock()
        self._listeners: tuple[CircuitListener, ...] = ()
        self._local = threading.local()

        s = self._settings
        self._threshold = s.failure_threshold
        self._rate_threshold = s.failure_rate_threshold
        self._window: deque[bool] | None = (
            deque(maxlen=s.window_size) if s.failure_rate_threshold is not None else None
        )
        self._minimum_calls = min(s.minimum_calls, s.window_size)
        self._max_timeout = max(s.max_recovery_timeout, s.recovery_timeout)

        self._state = _CLOSED
        self._generation = 0
        self._disabled = False  # operator override
        self._forced_open = False
        self._fast = 0 if s.enabled else _NO_FAST  # generation when admission is lock-free
        self._consecutive = 0
        self._window_failures = 0
        self._opened_at: float | None = None
        self._retry_at: float | None = None
        self._open_timeout = s.recovery_timeout
        self._open_reason = ""
        self._in_flight = 0
        self._probe_successes = 0
        self._calls = 0
        self._successes = 0
        self._failures = 0
        self._ignored = 0
        self._rejections = 0

    # ----------------------------------------------------------------------- inspection

    @property
    def name(self) -> str:
        """The operation this breaker protects, e.g. ``iot.CreateThing``."""
        return self._name

    @property
    def settings(self) -> CircuitBreakerSettings:
        """The settings it was built with."""
        return self._settings

    @property
    def state(self) -> CircuitState:
        """The current state. An open breaker whose period has ended still reads OPEN until
        the next call turns it half-open."""
        return self._state

    @property
    def enabled(self) -> bool:
        """False when disabled by its settings or by `disable`."""
        return self._settings.enabled and not self._disabled

    def snapshot(self) -> CircuitSnapshot:
        """A consistent `CircuitSnapshot` of the state and counters."""
        with self._lock:
            return self._snapshot_locked(self._clock())

    def _snapshot_locked(self, now: float) -> CircuitSnapshot:
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
            half_open_in_flight=self._in_flight,
            calls=self._calls,
            successes=self._successes,
            failures=self._failures,
            ignored=self._ignored,
            rejections=self._rejections,
            at=now,
        )

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self._name!r} {self._state.value}>"

    # ------------------------------------------------------------------------ listeners

    def add_listener(self, listener: CircuitListener) -> None:
        """Call ``listener(event)`` on every state change, outside the lock.

        A listener that raises is logged (logger ``thingpress_core.resilience``) and ignored.
        """
        with self._lock:
            self._listeners = (*self._listeners, listener)

    def remove_listener(self, listener: CircuitListener) -> None:
        """Stop calling ``listener``; unknown listeners are ignored."""
        with self._lock:
            self._listeners = tuple(item for item in self._listeners if item != listener)

    def _emit(self, events: list[CircuitEvent]) -> None:
        for event in events:
            if event.new_state is _OPEN:
                logger.warning(
                    "circuit %s opened (%s)",
                    event.name,
                    event.reason,
                    extra={"operation": event.name, "circuit_state": event.new_state.value},
                )
            else:
                logger.info(
                    "circuit %s %s -> %s (%s)",
                    event.name,
                    event.old_state.value,
                    event.new_state.value,
                    event.reason,
                    extra={"operation": event.name, "circuit_state": event.new_state.value},
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

    def _transition(self, new: CircuitState, reason: str, now: float, events: list[CircuitEvent]) -> None:
        """Change state (lock held). Every change starts a new generation."""
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
        if new is not old:
            events.append(CircuitEvent(self._name, old, new, now, reason))

    def _new_phase(self) -> None:
        """Start a new generation in the same state: answers in flight stop counting, so
        their probe slots are released here."""
        self._generation += 1
        self._in_flight = 0
        self._probe_successes = 0
        self._refresh_fast()

    def _refresh_fast(self) -> None:
        fast = (
            self._state is _CLOSED and not self._forced_open and not self._disabled and self._settings.enabled
        )
        self._fast = self._generation if fast else _NO_FAST

    def _admit(self) -> int:
        """Admission when the lock-free path does not apply. Raises `CircuitOpenError`."""
        events: list[CircuitEvent] = []
        error: CircuitOpenError | None = None
        with self._lock:
            if self._disabled or not self._settings.enabled:
                return _BYPASS
            now = self._clock()
            state = self._state
            if state is _CLOSED and not self._forced_open:
                return self._generation
            if state is _OPEN and not self._forced_open:
                assert self._retry_at is not None
                if now >= self._retry_at:
                    self._transition(_HALF_OPEN, "recovery_timeout", now, events)
                    state = _HALF_OPEN
            if state is _HALF_OPEN and self._in_flight < self._settings.half_open_max_calls:
                self._in_flight += 1
                permit = self._generation
            else:
                self._rejections += 1
                error = self._refusal(now)
                permit = _NO_FAST
        if events:
            self._emit(events)
        if error is not None:
            raise error
        return permit

    def _refusal(self, now: float) -> CircuitOpenError:
        snapshot = self._snapshot_locked(now)
        name = self._name
        if self._forced_open:
            message = f"circuit {name} is forced open by an operator; it will not try again until reset"
            retry_after: float | None = None
        elif self._state is _HALF_OPEN:
            retry_after = min(1.0, self._settings.recovery_timeout)
            slots = self._settings.half_open_max_calls
            message = (
                f"circuit {name} is half-open and its {slots} probe slot(s) are busy; "
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

    def _record(self, permit: int | None, outcome: int) -> None:
        events: list[CircuitEvent] = []
        with self._lock:
            if permit == _BYPASS or (permit is None and (self._disabled or not self._settings.enabled)):
                return  # a disabled breaker records nothing, with or without a permit
            self._calls += 1
            if outcome == _SUCCESS:
                self._successes += 1
            elif outcome == _FAILURE:
                self._failures += 1
            else:
                self._ignored += 1
            state = self._state
            if permit is None:  # the loop API without a permit: assume the current phase
                if state is _HALF_OPEN and self._in_flight == 0:
                    return
                permit = self._generation
            if permit != self._generation:
                return  # an answer from an earlier phase decides nothing now
            if state is _CLOSED:
                if outcome == _NEUTRAL:
                    return
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
                        self._transition(_OPEN, reason, self._clock(), events)
            elif state is _HALF_OPEN:
                self._in_flight = max(0, self._in_flight - 1)
                if outcome == _SUCCESS:
                    self._probe_successes += 1
                    if self._probe_successes >= self._settings.success_threshold:
                        self._transition(_CLOSED, "probe_succeeded", self._clock(), events)
                elif outcome == _FAILURE:
                    self._open_timeout = min(
                        self._max_timeout, self._open_timeout * self._settings.recovery_backoff
                    )
                    self._transition(_OPEN, "probe_failed", self._clock(), events)
        if events:
            self._emit(events)

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
        if not isinstance(exc, Exception):  # KeyboardInterrupt, SystemExit, GeneratorExit
            return _NEUTRAL
        try:
            return _FAILURE if self._classify(exc) else _NEUTRAL
        except Exception:
            logger.exception("circuit %s: classifier failed; outcome counted as neutral", self._name)
            return _NEUTRAL

    # ----------------------------------------------------------------------- call styles

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call ``fn(*args, **kwargs)`` through the breaker; raises `CircuitOpenError` when
        refused, otherwise returns or raises what ``fn`` does."""
        permit = self._fast
        if permit < 0:
            permit = self._admit()
            if permit == _BYPASS:
                return fn(*args, **kwargs)
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            self._record(permit, self._outcome_of(exc))
            raise
        # The common case inline: closed, same generation, consecutive-failure mode.
        lock = self._lock
        lock.acquire()
        if permit == self._fast and self._window is None:
            self._calls += 1
            self._successes += 1
            self._consecutive = 0
            lock.release()
            return result
        lock.release()
        self._record(permit, _SUCCESS)
        return result

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Decorate ``fn`` so every call goes through the breaker; keeps the signature."""

        # The body of `call`, inlined: one frame less per protected call.
        admit = self._admit
        record = self._record
        outcome_of = self._outcome_of
        lock = self._lock

        @functools.wraps(fn)
        def protected(*args: P.args, **kwargs: P.kwargs) -> R:
            permit = self._fast
            if permit < 0:
                permit = admit()
                if permit == _BYPASS:
                    return fn(*args, **kwargs)
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                record(permit, outcome_of(exc))
                raise
            lock.acquire()
            if permit == self._fast and self._window is None:
                self._calls += 1
                self._successes += 1
                self._consecutive = 0
                lock.release()
                return result
            lock.release()
            record(permit, _SUCCESS)
            return result

        return protected

    def acquire(self) -> CircuitPermit:
        """Ask for admission; raises `CircuitOpenError` when refused.

        Report the outcome with `record_success` or `record_failure`, passing the permit.
        """
        permit = self._fast
        if permit < 0:
            permit = self._admit()
        return CircuitPermit(permit)

    def record_success(self, permit: CircuitPermit | None = None) -> None:
        """Report that an admitted call succeeded."""
        self._record(permit, _SUCCESS)

    def record_failure(self, exc: BaseException, permit: CircuitPermit | None = None) -> None:
        """Report that an admitted call raised ``exc``; the classifier decides whether it
        counts as a failure or as neither (which still frees a half-open probe slot)."""
        self._record(permit, self._outcome_of(exc))

    def __enter__(self) -> CircuitBreaker:
        permit = self.acquire()
        stack: list[int] | None = getattr(self._local, "permits", None)
        if stack is None:
            stack = self._local.permits = []
        stack.append(permit)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        permit: int = self._local.permits.pop()
        if exc is None:
            self._record(permit, _SUCCESS)
        else:
            self._record(permit, self._outcome_of(exc))

    # ---------------------------------------------------------------- operator controls

    def force_open(self) -> None:
        """Hold the breaker open: every call is refused until `reset`."""
        events: list[CircuitEvent] = []
        with self._lock:
            self._forced_open = True
            self._transition(_OPEN, "forced_open", self._clock(), events)
        self._emit(events)

    def disable(self) -> None:
        """Let every call pass straight through, unrecorded, until `enable` or `reset`."""
        with self._lock:
            self._disabled = True
            self._new_phase()

    def enable(self) -> None:
        """Undo `disable`."""
        with self._lock:
            self._disabled = False
            self._new_phase()

    def reset(self) -> None:
        """Back to closed with no failure history; clears `force_open` and `disable`.

        The counters (calls, failures, rejections, ...) are kept: they only grow.
        """
        events: list[CircuitEvent] = []
        with self._lock:
            self._forced_open = False
            self._disabled = False
            self._transition(_CLOSED, "reset", self._clock(), events)
        self._emit(events)
