"""Circuit breaker cost and concurrency against pybreaker, circuitbreaker and purgatory, same run.

1. Closed-state overhead per protected call of every call style (``call``, ``@breaker``,
   ``with breaker.guard()``, ``with breaker:``, ``acquire``/``record_success``), each as a
   ratio to ``.call`` in the same run. Target: every style <= 1.5x ``.call``.
2. The decorator against the fastest peer decorator (pybreaker, circuitbreaker, purgatory):
   ours <= the faster; each peer also on its own line, context managers beside ours.
3. Coroutines: ``await breaker.call_async(f)`` and an ``@breaker async def``, overhead over a
   bare ``await f()``, as a ratio to the sync ``.call`` overhead (for the record).
4. Eight threads calling a 20 ms function through one breaker, against the same calls made
   serially: ratio parallel / serial. Ours ~0.125 (the lock covers bookkeeping only);
   pybreaker ~1.0 (it holds its lock around the call).
5. RateLimiter.acquire when a token is free (no baseline; for the record).

Every figure subtracts a bare call of the same shape (one outer function calling a no-op), and
rounds are interleaved so a noisy neighbour hurts every candidate alike.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

from _harness import Result, best_of

BENCH = "resilience"
STYLE_TARGET = 1.5


def _noop() -> None:
    return None


async def _anoop() -> None:
    return None


def _bare() -> None:
    _noop()


def _our_styles() -> dict[str, Callable[[], None]]:
    from thingpress_core.resilience import CircuitBreaker

    breaker = CircuitBreaker("bench.Noop")
    decorated = breaker(_noop)
    call = breaker.call
    guard = breaker.guard
    acquire = breaker.acquire
    record_success = breaker.record_success
    record_failure = breaker.record_failure

    def via_call() -> None:
        call(_noop)

    def via_decorator() -> None:
        decorated()

    def via_guard() -> None:
        with guard():
            _noop()

    def via_with() -> None:
        with breaker:
            _noop()

    def via_acquire() -> None:
        permit = acquire()
        try:
            _noop()
        except BaseException as exc:
            record_failure(exc, permit)
            raise
        record_success(permit)

    return {
        ".call(fn)": via_call,
        "@breaker": via_decorator,
        "with breaker.guard()": via_guard,
        "with breaker": via_with,
        "acquire/record_success": via_acquire,
    }


def _peer_styles() -> tuple[dict[str, Callable[[], None]], list[str]]:
    import circuitbreaker
    import pybreaker

    notes: list[str] = []
    pb = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=30)
    cb = circuitbreaker.CircuitBreaker(failure_threshold=5, recovery_timeout=30, name="bench-noop")
    pb_decorated = pb(_noop)
    cb_decorated = cb(_noop)

    def pb_decorator() -> None:
        pb_decorated()

    def pb_with() -> None:
        with pb.calling():
            _noop()

    def cb_decorator() -> None:
        cb_decorated()

    peers: dict[str, Callable[[], None]] = {
        "pybreaker @decorator": pb_decorator,
        "pybreaker with .calling()": pb_with,
        "circuitbreaker @decorator": cb_decorator,
    }
    try:
        import purgatory
    except ImportError:
        notes.append("purgatory is not installed (pip install purgatory): left out")
        return peers, notes
    factory = purgatory.SyncCircuitBreakerFactory(default_threshold=5, default_ttl=30)
    pg_decorated = factory("bench-noop")(_noop)
    pg_breaker = factory.get_breaker("bench-noop-cm")

    def pg_decorator() -> None:
        pg_decorated()

    def pg_with() -> None:
        with pg_breaker:
            _noop()

    peers["purgatory @decorator"] = pg_decorator
    peers["purgatory with breaker"] = pg_with
    return peers, notes


def _async_styles() -> dict[str, Callable[[int], Coroutine[Any, Any, None]]]:
    from thingpress_core.resilience import CircuitBreaker

    breaker = CircuitBreaker("bench.AsyncNoop")
    call_async = breaker.call_async
    decorated = breaker(_anoop)

    async def bare(n: int) -> None:
        for _ in range(n):
            await _anoop()

    async def via_call_async(n: int) -> None:
        for _ in range(n):
            await call_async(_anoop)

    async def via_decorator(n: int) -> None:
        for _ in range(n):
            await decorated()

    async def via_guard(n: int) -> None:
        guard = breaker.guard
        for _ in range(n):
            with guard():
                await _anoop()

    return {
        "bare": bare,
        "await .call_async(fn)": via_call_async,
        "@breaker async def": via_decorator,
        "with breaker.guard(): await": via_guard,
    }


def _overheads(quick: bool) -> list[Result]:
    number = 50_000 if quick else 200_000
    rounds = 7 if quick else 15
    ours = _our_styles()
    peers, notes = _peer_styles()
    candidates: dict[str, Callable[[], None]] = {"bare": _bare, **ours, **peers}
    per_call: dict[str, float] = {}
    for _ in range(rounds):
        for label, fn in candidates.items():
            seconds = best_of(fn, repeat=1, number=number) / number
            per_call[label] = min(per_call.get(label, float("inf")), seconds)

    loop = asyncio.new_event_loop()
    try:
        async_number = number // 2
        async_per_call: dict[str, float] = {}
        for _ in range(rounds):
            for label, make in _async_styles().items():
                began = time.perf_counter()
                loop.run_until_complete(make(async_number))
                seconds = (time.perf_counter() - began) / async_number
                async_per_call[label] = min(async_per_call.get(label, float("inf")), seconds)
    finally:
        loop.close()

    bare = per_call.pop("bare")
    ns = {label: max(0.0, value - bare) * 1e9 for label, value in per_call.items()}
    call_ns = ns[".call(fn)"]
    results: list[Result] = []
    for label in ours:
        ratio = ns[label] / call_ns if call_ns else None
        results.append(
            Result(
                BENCH,
                f"closed-state overhead, {label}",
                ns[label],
                "ns",
                baseline=call_ns,
                baseline_name=".call(fn)",
                ratio=ratio,
                target=f"ratio <= {STYLE_TARGET}",
                ok=ratio is not None and ratio <= STYLE_TARGET,
            )
        )

    abare = async_per_call.pop("bare")
    for label, value in async_per_call.items():
        overhead = max(0.0, value - abare) * 1e9
        results.append(
            Result(
                BENCH,
                f"closed-state overhead, {label}",
                overhead,
                "ns",
                baseline=call_ns,
                baseline_name="sync .call(fn)",
                note=f"over a bare await ({abare * 1e9:.0f} ns per loop step subtracted)",
            )
        )

    ours_decorator = ns["@breaker"]
    peer_decorators = {label: value for label, value in ns.items() if label.endswith("@decorator")}
    fastest = min(peer_decorators, key=peer_decorators.__getitem__)
    peer_text = ", ".join(f"{label} {value:.0f} ns" for label, value in ns.items() if label in peers)
    results.append(
        Result(
            BENCH,
            "closed-state overhead per protected call (decorator)",
            ours_decorator,
            "ns",
            baseline=peer_decorators[fastest],
            baseline_name=fastest,
            target="ratio <= 1.0",
            ok=ours_decorator <= peer_decorators[fastest],
            note="; ".join([f"{peer_text}; bare call {bare * 1e9:.0f} ns subtracted", *notes]),
        )
    )
    best_ours = min(ns[label] for label in ours)
    for label in peers:
        results.append(
            Result(
                BENCH,
                f"our fastest style vs {label}",
                best_ours,
                "ns",
                baseline=ns[label],
                baseline_name=label,
            )
        )
    return results


def _slow() -> None:
    time.sleep(0.02)


def _parallel_ratio(protected: Callable[[], None], threads: int, per_thread: int) -> tuple[float, float]:
    def serial() -> None:
        for _ in range(threads * per_thread):
            protected()

    def parallel() -> float:
        # Threads start first and wait; the clock runs from their release to the last join.
        start = threading.Barrier(threads + 1)

        def worker() -> None:
            start.wait()
            for _ in range(per_thread):
                protected()

        pool = [threading.Thread(target=worker) for _ in range(threads)]
        for thread in pool:
            thread.start()
        start.wait()
        began = time.perf_counter()
        for thread in pool:
            thread.join()
        return time.perf_counter() - began

    serial_time = best_of(serial, repeat=1)
    parallel_time = min(parallel() for _ in range(3))
    return parallel_time, serial_time


def _concurrency(quick: bool) -> list[Result]:
    import circuitbreaker
    import pybreaker

    from thingpress_core.resilience import CircuitBreaker

    threads, per_thread = 8, (3 if quick else 8)
    ours_par, ours_ser = _parallel_ratio(CircuitBreaker("bench.Slow")(_slow), threads, per_thread)
    pb_par, pb_ser = _parallel_ratio(
        pybreaker.CircuitBreaker(fail_max=5, reset_timeout=30)(_slow), threads, per_thread
    )
    cb_par, cb_ser = _parallel_ratio(
        circuitbreaker.CircuitBreaker(failure_threshold=5, recovery_timeout=30, name="bench-slow")(_slow),
        threads,
        per_thread,
    )
    ours_ratio, pb_ratio, cb_ratio = ours_par / ours_ser, pb_par / pb_ser, cb_par / cb_ser
    calls = threads * per_thread
    return [
        Result(
            BENCH,
            f"{threads} threads x 20 ms calls through one breaker, parallel/serial",
            ours_ratio,
            "ratio",
            baseline=pb_ratio,
            baseline_name="pybreaker parallel/serial",
            ratio=ours_ratio,
            target="ratio <= 0.2 (ideal 0.125)",
            ok=ours_ratio <= 0.2,
            note=f"{calls} calls: ours {ours_par:.3f}s vs {ours_ser:.3f}s serial; pybreaker "
            f"{pb_par:.3f}s vs {pb_ser:.3f}s (ratio {pb_ratio:.2f}); circuitbreaker ratio "
            f"{cb_ratio:.2f} (no lock at all)",
        ),
    ]


def _limiter(quick: bool) -> list[Result]:
    from thingpress_core.resilience import RateLimiter

    number = 50_000 if quick else 200_000
    limiter = RateLimiter({"bench.Op": 1e12}, burst=1e4)
    seconds = best_of(lambda: limiter.acquire("bench.Op"), repeat=5, number=number) / number
    unlimited = best_of(lambda: limiter.acquire("bench.Unlimited"), repeat=5, number=number) / number
    return [
        Result(BENCH, "RateLimiter.acquire, token free", seconds * 1e9, "ns"),
        Result(BENCH, "RateLimiter.acquire, operation not limited", unlimited * 1e9, "ns"),
    ]


def run(quick: bool) -> list[Result]:
    return [*_overheads(quick), *_concurrency(quick), *_limiter(quick)]


if __name__ == "__main__":
    for result in run(quick=False):
        print(result)
