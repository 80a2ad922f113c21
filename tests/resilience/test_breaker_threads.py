"""Many threads through one breaker: exact counts, and exactly N probes when half-open.

Synchronisation is by barriers and events, never by sleeping.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Callable
from typing import Any

import pytest

from thingpress_core.errors import CircuitOpenError, ResourceNotFoundError, ThrottledError
from thingpress_core.resilience import CircuitBreaker, CircuitBreakerSettings, CircuitState

THREADS = 16
TOTAL = 100_000
PER_THREAD = TOTAL // THREADS


def run_threads(target: Callable[[int], None], count: int = THREADS) -> None:
    errors: list[BaseException] = []

    def wrapped(index: int) -> None:
        try:
            target(index)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=wrapped, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive()
    assert errors == []


def test_closed_counts_are_exact_under_contention(clock: Any) -> None:
    breaker = CircuitBreaker(
        "iot.CreateThing", CircuitBreakerSettings(failure_threshold=1_000_000), clock=clock
    )
    invoked = itertools.count()
    start = threading.Barrier(THREADS)

    def work(i: int) -> None:
        if i % 10 == 1:
            raise ResourceNotFoundError("missing", service="iot", operation="CreateThing")
        if i % 10 == 2:
            raise ThrottledError("slow down", service="iot", operation="CreateThing")
        next(invoked)

    def worker(_: int) -> None:
        start.wait(timeout=30)
        for i in range(PER_THREAD):
            with contextlib.suppress(ResourceNotFoundError, ThrottledError):
                breaker.call(work, i)

    run_threads(worker)
    snap = breaker.snapshot()
    per_thread_errors = len([i for i in range(PER_THREAD) if i % 10 == 1])
    per_thread_failures = len([i for i in range(PER_THREAD) if i % 10 == 2])
    assert snap.calls == TOTAL
    assert snap.ignored == THREADS * per_thread_errors
    assert snap.failures == THREADS * per_thread_failures
    assert snap.successes == TOTAL - snap.ignored - snap.failures
    assert next(invoked) == snap.successes
    assert snap.rejections == 0
    assert breaker.state is CircuitState.CLOSED


def test_counts_stay_consistent_while_the_breaker_flaps() -> None:
    ticks = itertools.count()
    breaker = CircuitBreaker(
        "iot.CreateThing",
        CircuitBreakerSettings(failure_threshold=3, recovery_timeout=50, half_open_max_calls=2),
        clock=lambda: float(next(ticks)),  # time moves with every reading
    )
    invoked = itertools.count()
    start = threading.Barrier(THREADS)

    def work(i: int) -> None:
        next(invoked)
        if (i // 50) % 2 == 0:  # runs of 50 failures, then 50 successes
            raise ThrottledError("slow down", service="iot", operation="CreateThing")

    def worker(_: int) -> None:
        start.wait(timeout=30)
        for i in range(PER_THREAD):
            with contextlib.suppress(ThrottledError, CircuitOpenError):
                breaker.call(work, i)

    run_threads(worker)
    snap = breaker.snapshot()
    assert snap.calls + snap.rejections == TOTAL
    assert snap.calls == next(invoked)
    assert snap.successes + snap.failures + snap.ignored == snap.calls
    assert snap.rejections > 0
    assert snap.half_open_in_flight == 0


@pytest.mark.parametrize("max_calls", [1, 3])
def test_half_open_lets_exactly_max_calls_through(clock: Any, max_calls: int) -> None:
    breaker = CircuitBreaker(
        "iot.RegisterCertificateWithoutCA",
        CircuitBreakerSettings(failure_threshold=1, recovery_timeout=10, half_open_max_calls=max_calls),
        clock=clock,
    )
    with pytest.raises(ThrottledError):
        breaker.call(_throttle)
    clock.advance(10)

    entered = itertools.count()
    entered_lock = threading.Lock()
    entered_count = 0
    release = threading.Event()
    all_admitted = threading.Event()
    rejected: list[CircuitOpenError] = []
    rejected_lock = threading.Lock()
    done_rejecting = threading.Event()
    start = threading.Barrier(THREADS)

    def probe() -> str:
        nonlocal entered_count
        next(entered)
        with entered_lock:
            entered_count += 1
            if entered_count == max_calls:
                all_admitted.set()
        assert release.wait(timeout=30)
        return "ok"

    def worker(_: int) -> None:
        start.wait(timeout=30)
        try:
            breaker.call(probe)
        except CircuitOpenError as exc:
            with rejected_lock:
                rejected.append(exc)
                if len(rejected) == THREADS - max_calls:
                    done_rejecting.set()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    assert all_admitted.wait(timeout=30)
    assert done_rejecting.wait(timeout=30)
    # Every other caller has been refused while the probes are still running.
    assert entered_count == max_calls
    assert breaker.snapshot().half_open_in_flight == max_calls
    assert breaker.state is CircuitState.HALF_OPEN
    release.set()
    for thread in threads:
        thread.join(timeout=30)
        assert not thread.is_alive()
    assert next(entered) == max_calls
    assert len(rejected) == THREADS - max_calls
    assert all(exc.snapshot is not None and exc.retry_after is not None for exc in rejected)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.snapshot().rejections == THREADS - max_calls


def test_protected_calls_overlap(clock: Any) -> None:
    """The lock never covers the call: N threads can be inside it at the same time."""
    breaker = CircuitBreaker("x", clock=clock)
    inside = threading.Barrier(THREADS)

    def fn() -> None:
        inside.wait(timeout=30)  # completes only if all threads are inside at once

    run_threads(lambda _: breaker.call(fn))
    assert breaker.snapshot().successes == THREADS


def _throttle() -> None:
    raise ThrottledError("slow down", service="iot", operation="RegisterCertificateWithoutCA")
