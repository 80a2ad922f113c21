"""`CircuitBreaker`: fail fast while an AWS operation is unwell, probe carefully to recover.

The state machine, admission and the one record path are `CircuitCore` (`_circuit`); this
module is what callers hold: the call styles, inspection, listeners and operator controls.
Every call style (`call`, `call_async`, the decorators, `guard`, ``with breaker``, `acquire`
with `record_success` / `record_failure`) admits through ``_admission`` and reports through
`_settle`. `call` and the decorator share one body, `_run` (and `_run_async` for coroutines),
which takes the arguments as they were packed.
"""

from __future__ import annotations

import functools
import inspect
import threading
import time
import types
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any, Final, NoReturn, ParamSpec, TypeVar, overload

from thingpress_core.resilience._circuit import NEUTRAL, CircuitCore, CircuitListener, Classifier
from thingpress_core.resilience._classify import is_service_failure
from thingpress_core.resilience._models import CircuitPermit, CircuitSnapshot, CircuitState
from thingpress_core.resilience._settings import CircuitBreakerSettings

__all__ = ["CircuitBreaker", "CircuitListener", "Classifier"]

P = ParamSpec("P")
R = TypeVar("R")

_COROUTINE: Final = types.CoroutineType


class CircuitBreaker(CircuitCore):
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
        super().__init__(
            name,
            settings if settings is not None else CircuitBreakerSettings(),
            clock=clock,
            classify=classify if classify is not None else is_service_failure,
        )
        self._local = threading.local()  # `permits`: the open `with breaker:` blocks, innermost last

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
        self._record(permit, NEUTRAL)
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
            event = self._transition(CircuitState.OPEN, "forced_open", self._clock())
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
            event = self._transition(CircuitState.CLOSED, "reset", self._clock())
            self._operator_phase()
        if event is not None:
            self._emit(event)
