"""The breaker around coroutines (issue 13): ``@breaker`` on ``async def``, `call_async`,
``with breaker.guard()`` across ``await``. Plain pytest: each test drives its own loop with
`asyncio.run`; time is a fake clock and nothing sleeps for real."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest

from thingpress_core.errors import CircuitOpenError, ResourceNotFoundError, ServiceUnavailableError
from thingpress_core.resilience import CircuitBreaker, CircuitBreakerSettings, CircuitState


def make(clock: Any, **settings: Any) -> CircuitBreaker:
    return CircuitBreaker("iot.CreateThing", CircuitBreakerSettings(**settings), clock=clock)


def unavailable() -> ServiceUnavailableError:
    return ServiceUnavailableError("boom", service="iot", operation="CreateThing", http_status=503)


def test_decorated_coroutine_function_stays_one_and_keeps_its_metadata(clock: Any) -> None:
    breaker = make(clock)

    @breaker
    async def create(name: str, *, thing_type: str | None = None) -> str:
        """Create a thing."""
        await asyncio.sleep(0)
        return f"{name}:{thing_type}"

    assert inspect.iscoroutinefunction(create)
    assert create.__name__ == "create"
    assert create.__doc__ == "Create a thing."
    assert asyncio.run(create("a", thing_type="t")) == "a:t"
    assert breaker.snapshot().successes == 1


def test_decorated_coroutine_failures_are_seen_and_counted(clock: Any) -> None:
    """The bug of issue 13: the old decorator counted a success when the coroutine was made
    and never saw it fail. Now the failure inside the awaited body opens the breaker."""
    breaker = make(clock, failure_threshold=2)
    bodies = []

    @breaker
    async def create(kind: str) -> None:
        bodies.append(kind)
        await asyncio.sleep(0)  # fail after a real suspension, not on the first step
        if kind == "missing":
            raise ResourceNotFoundError("missing", service="iot", operation="CreateThing")
        raise unavailable()

    async def main() -> None:
        with pytest.raises(ResourceNotFoundError):
            await create("missing")  # neutral
        for _ in range(2):
            with pytest.raises(ServiceUnavailableError):
                await create("down")
        assert breaker.state is CircuitState.OPEN
        with pytest.raises(CircuitOpenError):
            await create("down")

    asyncio.run(main())
    assert bodies == ["missing", "down", "down"]  # the refused call never started its body
    snap = breaker.snapshot()
    assert (snap.successes, snap.failures, snap.ignored, snap.refusals) == (0, 2, 1, 1)


def test_call_async(clock: Any) -> None:
    breaker = make(clock, failure_threshold=1, recovery_timeout=5)

    async def add(a: int, b: int = 1) -> int:
        await asyncio.sleep(0)
        return a + b

    async def broken() -> int:
        await asyncio.sleep(0)
        raise unavailable()

    async def main() -> None:
        assert await breaker.call_async(add, 2, b=3) == 5
        with pytest.raises(ServiceUnavailableError):
            await breaker.call_async(broken)
        assert breaker.state is CircuitState.OPEN
        with pytest.raises(CircuitOpenError):
            await breaker.call_async(add, 1)
        clock.advance(5)
        assert await breaker.call_async(add, 1) == 2  # the probe
        assert breaker.state is CircuitState.CLOSED

    asyncio.run(main())


def test_cancelled_probe_frees_its_slot_and_counts_neither_way(clock: Any) -> None:
    """asyncio.CancelledError is a BaseException: neutral. The cancelled probe's slot must come
    back, or a half-open breaker with one slot would refuse everything for ever."""
    breaker = make(clock, failure_threshold=1, recovery_timeout=5)

    @breaker
    async def fail() -> None:
        raise unavailable()

    async def main() -> None:
        with pytest.raises(ServiceUnavailableError):
            await fail()
        clock.advance(5)
        started = asyncio.Event()
        never = asyncio.Event()

        async def hang() -> str:
            started.set()
            await never.wait()
            return "late"

        async def quick() -> str:
            return "ok"

        task = asyncio.create_task(breaker.call_async(hang))
        await started.wait()
        assert breaker.snapshot().half_open_in_flight == 1
        with pytest.raises(CircuitOpenError, match="probe slot"):
            await breaker.call_async(quick)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        snap = breaker.snapshot()
        assert snap.state is CircuitState.HALF_OPEN  # neutral: not closed, not re-opened
        assert snap.half_open_in_flight == 0
        assert snap.ignored == 1
        assert await breaker.call_async(quick) == "ok"
        assert breaker.state is CircuitState.CLOSED

    asyncio.run(main())


def test_guard_across_await_with_concurrent_tasks(clock: Any) -> None:
    """Each guard is its own permit, so tasks interleaving on one thread do not mix them up."""
    breaker = make(clock, failure_threshold=1, recovery_timeout=5, half_open_max_calls=2)

    async def main() -> None:
        with pytest.raises(ServiceUnavailableError), breaker.guard():
            raise unavailable()
        clock.advance(5)
        first_in = asyncio.Event()
        second_in = asyncio.Event()

        async def first() -> None:
            with breaker.guard() as permit:
                assert permit.probe
                first_in.set()
                await second_in.wait()
                raise ResourceNotFoundError("missing", service="iot", operation="CreateThing")

        async def second() -> None:
            await first_in.wait()
            with breaker.guard():
                second_in.set()
                await asyncio.sleep(0)

        results = await asyncio.gather(first(), second(), return_exceptions=True)
        assert isinstance(results[0], ResourceNotFoundError)
        assert results[1] is None

    asyncio.run(main())
    snap = breaker.snapshot()
    assert snap.state is CircuitState.CLOSED
    assert snap.half_open_in_flight == 0
    assert (snap.successes, snap.failures, snap.ignored) == (1, 1, 1)
