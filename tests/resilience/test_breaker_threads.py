"""Many threads through one breaker: exact counts, and exactly N probes when half-open.

Synchronisation is by barriers and events, never by sleeping.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Callable, Iterator
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
    assert snap.refusals == 0
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
    assert snap.calls + snap.refusals == TOTAL
    assert snap.calls == next(invoked)
    assert snap.successes + snap.failures + snap.ignored == snap.calls
    assert snap.refusals > 0
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
    assert breaker.snapshot().refusals == THREADS - max_calls


@pytest.mark.parametrize("style", ["call", "guard", "acquire"])
def test_probes_of_an_earlier_phase_keep_their_slots(clock: Any, style: str) -> None:
    """Issue 11 item 11. Two probe slots: A and B are admitted, B fails (open again), the
    open period ends while A still runs, and C and D arrive together. Only one of them may
    join A: three calls at once is one more than half-open allows."""
    breaker = CircuitBreaker(
        "iot.RegisterCertificateWithoutCA",
        CircuitBreakerSettings(
            failure_threshold=1, recovery_timeout=10, recovery_backoff=1, half_open_max_calls=2
        ),
        clock=clock,
    )

    def through(fn: Callable[[], str]) -> str:
        if style == "call":
            return breaker.call(fn)
        if style == "guard":
            with breaker.guard():
                return fn()
        permit = breaker.acquire()
        try:
            result = fn()
        except BaseException as exc:
            breaker.record_failure(exc, permit)
            raise
        breaker.record_success(permit)
        return result

    with pytest.raises(ThrottledError):
        through(_throttle_str)
    clock.advance(10)

    lock = threading.Lock()
    running = 0
    peak = 0

    @contextlib.contextmanager
    def inside() -> Iterator[None]:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        try:
            yield
        finally:
            with lock:
                running -= 1

    a_inside = threading.Event()
    release = threading.Event()

    def probe_a() -> str:
        with inside():
            a_inside.set()
            assert release.wait(timeout=30)
            return "a"

    def probe_b() -> str:
        with inside():
            return _throttle_str()

    settled = threading.Semaphore(0)  # one release per C/D: admitted and running, or refused
    start_cd = threading.Barrier(2)
    refused: list[CircuitOpenError] = []

    def probe_cd() -> str:
        with inside():
            settled.release()
            assert release.wait(timeout=30)
            return "cd"

    def worker_cd() -> None:
        start_cd.wait(timeout=30)
        try:
            through(probe_cd)
        except CircuitOpenError as exc:
            refused.append(exc)
            settled.release()

    thread_a = threading.Thread(target=through, args=(probe_a,))
    others = [threading.Thread(target=worker_cd) for _ in range(2)]
    thread_a.start()
    try:
        assert a_inside.wait(timeout=30)
        with pytest.raises(ThrottledError):
            through(probe_b)  # the second probe fails: open again, A still running
        assert breaker.state is CircuitState.OPEN
        clock.advance(10)
        for thread in others:
            thread.start()
        for _ in range(2):
            assert settled.acquire(timeout=30)
        assert peak == 2  # A and one newcomer; before the fix A, C and D ran at once
        assert len(refused) == 1
        assert "probe slot(s) are busy" in str(refused[0])
        assert breaker.snapshot().half_open_in_flight == 2
    finally:
        release.set()
        for thread in [thread_a, *others]:
            if thread.ident is not None:
                thread.join(timeout=30)
                assert not thread.is_alive()
    # A answered in an earlier phase: counted, decided nothing; the newcomer's success closed it.
    snap = breaker.snapshot()
    assert snap.state is CircuitState.CLOSED
    assert snap.half_open_in_flight == 0
    assert (snap.successes, snap.failures, snap.refusals) == (2, 2, 1)


def test_every_call_style_counts_exactly_under_contention(clock: Any) -> None:
    """guard(), ``with breaker:`` (a per-thread stack), acquire/record and the decorator from
    many threads at once: every outcome lands once, on the right permit."""
    breaker = CircuitBreaker("x", CircuitBreakerSettings(failure_threshold=1_000_000), clock=clock)
    per_thread = 2_000
    start = threading.Barrier(THREADS)

    def work(i: int) -> None:
        if i % 7 == 3:
            raise ThrottledError("slow down", service="iot", operation="X")

    decorated = breaker(work)

    def worker(index: int) -> None:
        start.wait(timeout=30)
        for i in range(per_thread):
            with contextlib.suppress(ThrottledError):
                style = (index + i) % 4
                if style == 0:
                    with breaker.guard():
                        work(i)
                elif style == 1:
                    with breaker, breaker:  # nested blocks in one thread: one permit each
                        work(i)
                elif style == 2:
                    permit = breaker.acquire()
                    try:
                        work(i)
                    except ThrottledError as exc:
                        breaker.record_failure(exc, permit)
                        raise
                    breaker.record_success(permit)
                else:
                    decorated(i)

    run_threads(worker)
    snap = breaker.snapshot()
    failures_per_thread = len([i for i in range(per_thread) if i % 7 == 3])
    nested = sum(1 for index in range(THREADS) for i in range(per_thread) if (index + i) % 4 == 1)
    nested_failures = sum(
        1 for index in range(THREADS) for i in range(per_thread) if (index + i) % 4 == 1 and i % 7 == 3
    )
    # A failing nested block reports the failure at both levels.
    assert snap.failures == THREADS * failures_per_thread + nested_failures
    assert snap.calls == THREADS * per_thread + nested
    assert snap.successes == snap.calls - snap.failures
    assert snap.ignored == 0


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


def _throttle_str() -> str:
    _throttle()
    return "unreachable"
