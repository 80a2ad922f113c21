"""Circuit breaker cost and concurrency against pybreaker and circuitbreaker, same run.

1. Closed-state overhead per protected call (decorated no-op, bare call subtracted): ours
   against the faster of pybreaker and circuitbreaker. Target: ours <= the faster.
2. Eight threads calling a 20 ms function through one breaker, against the same calls made
   serially: ratio parallel / serial. Ours ~0.125 (the lock covers bookkeeping only);
   pybreaker ~1.0 (it holds its lock around the call).
3. RateLimiter.acquire when a token is free (no baseline; for the record).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from _harness import Result, best_of

BENCH = "resilience"


def _noop() -> None:
    return None


def _overheads(quick: bool) -> list[Result]:
    import circuitbreaker
    import pybreaker

    from thingpress_core.resilience import CircuitBreaker

    number = 50_000 if quick else 300_000
    repeat = 5 if quick else 9
    candidates: dict[str, Callable[[], None]] = {
        "bare": _noop,
        "thingpress_core": CircuitBreaker("bench.Noop")(_noop),
        "pybreaker": pybreaker.CircuitBreaker(fail_max=5, reset_timeout=30)(_noop),
        "circuitbreaker": circuitbreaker.CircuitBreaker(
            failure_threshold=5, recovery_timeout=30, name="bench-noop"
        )(_noop),
    }
    per_call: dict[str, float] = {}
    # Interleave the rounds so a noisy neighbour hurts every candidate alike.
    for _ in range(repeat):
        for label, fn in candidates.items():
            seconds = best_of(fn, repeat=1, number=number) / number
            per_call[label] = min(per_call.get(label, float("inf")), seconds)
    bare = per_call.pop("bare")
    ns = {label: max(0.0, value - bare) * 1e9 for label, value in per_call.items()}
    faster_name = min(("pybreaker", "circuitbreaker"), key=lambda k: ns[k])
    ours = ns["thingpress_core"]
    return [
        Result(
            BENCH,
            "closed-state overhead per protected call",
            ours,
            "ns",
            baseline=ns[faster_name],
            baseline_name=faster_name,
            target="ratio <= 1.0",
            ok=ours <= ns[faster_name],
            note=f"pybreaker {ns['pybreaker']:.0f} ns, circuitbreaker {ns['circuitbreaker']:.0f} ns; "
            f"bare call {bare * 1e9:.0f} ns subtracted",
        ),
        Result(
            BENCH,
            "closed-state overhead vs pybreaker",
            ours,
            "ns",
            baseline=ns["pybreaker"],
            baseline_name="pybreaker",
        ),
        Result(
            BENCH,
            "closed-state overhead vs circuitbreaker",
            ours,
            "ns",
            baseline=ns["circuitbreaker"],
            baseline_name="circuitbreaker",
        ),
    ]


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
