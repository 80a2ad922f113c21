"""`CircuitBreaker`: fail fast while an AWS operation is unwell, probe carefully to recover.

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
`disable`, `enable`, `reset`) start the count over: they are the way out of a permit that will
never be reported.

One path. Every call style (`call`, `call_async`, the decorators, `guard`, ``with breaker``,
`acquire` with `record_success` / `record_failure`) admits through ``_admission`` and reports
through `_settle`; nothing else touches the state. `call` and the decorator share one body,
`_run` (and `_run_async` for coroutines), which takes the arguments as they were packed.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import logging
import threading
import time
import types
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any, Final, NoReturn, ParamSpec, TypeVar, overload

from thingpress_core.errors import CircuitOpenError
from thingpress_core.resilience._classify import is_service_failure
from thingpress_core.resilience._models import CircuitEvent, CircuitPermit, CircuitSnapshot, CircuitState
from thingpress_core.resilience._settings import CircuitBreakerSettings

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

_SUCCESS: Final = 0
_FAILURE: Final = 1
_NEUTRAL: Final = 2

_COROUTINE: Final = types.CoroutineType


class CircuitBreaker:
    """A thread-safe circuit breaker for one operation (e.g. ``iot.CreateThing``).

    States: `CircuitState.CLOSED` (calls pass; failures counted), `OPEN` (calls fail fast
    with `CircuitOpenError` until the open period ends), `HALF_OPEN` (at most
    ``half_open_max_calls`` probes at a time, counting probes of earlier half-open phases
    still running; ``success_threshold`` successes close it, a failure re-opens it for
    ``open period × recovery_backoff``, capped at ``max_recovery_timeout``). Closing resets
    the open period to ``recovery_timeout``.

    ``classify(exc)`` says whether an exception counts as a failure; anything else is
    neutral: neither a failure nor a success (a neutral probe frees its slot without closing).
    The default, `is_service_failure`, counts throttling after retries, 5xx, timeouts and
    connection errors. A ``BaseException`` that is not an ``Exception`` (``KeyboardInterrupt``,
    ``asyncio.CancelledError``) is always neutral. ``clock`` returns seconds (monotonic);
    tests pass a fake.

    Call styles, all through one admission and one record path:

    * ``breaker.call(fn, *args)``; ``await breaker.call_async(async_fn, *args)``;
    * ``@breaker`` on a function or an ``async def`` (the signature is kept);
    * ``with breaker.guard(): ...`` (also inside ``async def``), or ``with breaker: ...``;
    * loops: ``permit = breaker.acquire()``, then ``breaker.record_success(permit)`` or
      ``breaker.record_failure(exc, permit)``.
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
        self._local = threading.local()  # `permits`: the open `with breaker:` blocks, innermost last

        s = self._settings
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
            half_open_in_flight=len(self._held),
            calls=self._successes + self._failures + self._ignored,
            successes=self._successes,
            failures=self._failures,
            ignored=self._ignored,
            refusals=self._refusals,
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

    def _emit(self, event: CircuitEvent) -> None:
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
            if outcome == _NEUTRAL:
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
            return _NEUTRAL
        try:
            return _FAILURE if self._classify(exc) else _NEUTRAL
        except Exception:
            logger.exception("circuit %s: classifier failed; outcome counted as neutral", self._name)
            return _NEUTRAL

    # ----------------------------------------------------------------------- call styles

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call ``fn(*args, **kwargs)`` through the breaker; raises `CircuitOpenError` when
        refused, otherwise returns or raises what ``fn`` does.

        ``fn`` must not be a coroutine function: its failures would only show when the
        coroutine is awaited, after the breaker has counted a success. Such a call raises
        `TypeError` (the coroutine is closed unawaited and counts neither way); use
        `call_async` or decorate the ``async def`` instead.
        """
        return self._run(fn, args, kwargs)

    def _run(self, fn: Callable[P, R], args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
        """The body of `call` and of the decorator, which pass their arguments as they got
        them (no second packing)."""
        permit = self._admission()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            self._settle(permit, exc)
            raise
        if type(result) is _COROUTINE:
            self._refuse_coroutine(permit, result, fn)
        self._settle(permit, None)
        return result

    def _refuse_coroutine(self, permit: CircuitPermit, coroutine: object, fn: object) -> NoReturn:
        assert isinstance(coroutine, _COROUTINE)
        coroutine.close()
        self._record(permit, _NEUTRAL)
        name = getattr(fn, "__qualname__", None) or repr(fn)
        raise TypeError(
            f"circuit {self._name}: {name} returned a coroutine; call it with "
            "'await breaker.call_async(fn, ...)' or decorate the async function with the breaker"
        )

    async def call_async(self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Await ``fn(*args, **kwargs)`` through the breaker: what `call` is for coroutines.

        Admission happens when the returned coroutine starts. Failures are classified when the
        awaited call raises; cancellation (``asyncio.CancelledError``) counts neither way and
        frees a half-open probe slot.
        """
        return await self._run_async(fn, args, kwargs)

    async def _run_async(
        self, fn: Callable[P, Awaitable[R]], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> R:
        """`_run` for coroutines: the body of `call_async` and of the async decorator."""
        permit = self._admission()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            self._settle(permit, exc)
            raise
        self._settle(permit, None)
        return result

    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]: ...

    @overload
    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]: ...

    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        """Decorate ``fn`` so every call goes through the breaker; keeps the signature.

        An ``async def`` becomes an ``async def`` that awaits inside the breaker (as
        `call_async` does); anything else behaves as `call`.
        """
        if inspect.iscoroutinefunction(fn):
            run_async = self._run_async

            @functools.wraps(fn)
            async def protected_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                return await run_async(fn, args, kwargs)

            return protected_async

        run = self._run

        @functools.wraps(fn)
        def protected(*args: P.args, **kwargs: P.kwargs) -> Any:
            return run(fn, args, kwargs)

        return protected

    def acquire(self) -> CircuitPermit:
        """Ask for admission; raises `CircuitOpenError` when refused.

        Report the outcome once, with `record_success` or `record_failure` passing the permit
        (or by leaving a ``with permit:`` block, see `guard`). A half-open probe's permit
        holds its probe slot until then: a permit that is never reported keeps the slot until
        an operator action (`reset`, `disable`, `enable`, `force_open`).
        """
        return self._admission()

    def guard(self) -> CircuitPermit:
        """Admission for a ``with`` block, which reports its outcome when it ends::

            with breaker.guard():
                client.create_thing(thingName="sensor-1")

        The same permit `acquire` hands out, under the name that reads well in a ``with``
        statement. It asks for admission at once (raising `CircuitOpenError`); each
        ``guard()`` is for one block. Safe inside ``async def`` across ``await``.
        """
        return self._admission()

    def record_success(self, permit: CircuitPermit | None = None) -> None:
        """Report that an admitted call succeeded.

        Without a permit the answer is taken to belong to the current phase (in half-open it
        frees one probe slot of the current phase, or decides nothing when none is held).
        """
        self._settle(permit, None)

    def record_failure(self, exc: BaseException, permit: CircuitPermit | None = None) -> None:
        """Report that an admitted call raised ``exc``; the classifier decides whether it
        counts as a failure or as neither (which still frees a half-open probe slot)."""
        self._settle(permit, exc)

    def __enter__(self) -> CircuitBreaker:
        """``with breaker:``: admission for the block, kept on a per-thread stack, so nested
        blocks and threads work. In ``async def`` prefer ``with breaker.guard():`` (tasks
        sharing a thread would share the stack)."""
        permit = self._admission()
        local = self._local
        try:
            local.permits.append(permit)
        except AttributeError:  # the thread's first block (a plain local is the fastest here)
            local.permits = [permit]
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._settle(self._local.permits.pop(), exc)

    # ---------------------------------------------------------------- operator controls

    def force_open(self) -> None:
        """Hold the breaker open: every call is refused until `reset`."""
        with self._lock:
            self._forced_open = True
            event = self._transition(_OPEN, "forced_open", self._clock())
            self._operator_phase()
        if event is not None:
            self._emit(event)

    def disable(self) -> None:
        """Let every call pass straight through, unrecorded, until `enable` or `reset`."""
        with self._lock:
            self._disabled = True
            self._operator_phase()

    def enable(self) -> None:
        """Undo `disable`."""
        with self._lock:
            self._disabled = False
            self._operator_phase()

    def reset(self) -> None:
        """Back to closed with no failure history; clears `force_open` and `disable`.

        The counters (calls, failures, refusals, ...) are kept: they only grow.
        """
        with self._lock:
            self._forced_open = False
            self._disabled = False
            event = self._transition(_CLOSED, "reset", self._clock())
            self._operator_phase()
        if event is not None:
            self._emit(event)
