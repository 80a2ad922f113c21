"""The benchmark harness: every figure is a ratio to a baseline measured in the same run.

A benchmark module ``benchmarks/bench_<area>.py`` defines ``run(quick: bool) -> list[Result]``.
``quick`` (``nox -s bench -- --quick`` or ``THINGPRESS_BENCH_QUICK=1``) shrinks the work for a
smoke run. ``benchmarks/run.py`` imports every module, prints one table and writes JSON.
"""

from __future__ import annotations

import dataclasses
import gc
import statistics
import time
from collections.abc import Callable
from typing import Any


@dataclasses.dataclass(frozen=True)
class Result:
    """One measured figure beside its baseline.

    ``ratio`` is ``value / baseline`` unless given; ``target`` states what the issue asks
    (e.g. ``"ratio >= 0.9"``) and ``ok`` whether this run met it (None when not judged).
    """

    benchmark: str
    name: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_name: str | None = None
    ratio: float | None = None
    target: str | None = None
    ok: bool | None = None
    note: str = ""

    def __post_init__(self) -> None:
        if self.ratio is None and self.baseline not in (None, 0):
            assert self.baseline is not None
            object.__setattr__(self, "ratio", self.value / self.baseline)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def best_of(fn: Callable[[], object], *, repeat: int = 5, number: int = 1) -> float:
    """Best wall time in seconds of ``number`` calls of ``fn``, over ``repeat`` rounds."""
    times = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        for _ in range(number):
            fn()
        times.append(time.perf_counter() - start)
    return min(times)


def median_of(fn: Callable[[], object], *, repeat: int = 5, number: int = 1) -> float:
    """Median wall time in seconds of ``number`` calls of ``fn``, over ``repeat`` rounds."""
    times = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        for _ in range(number):
            fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cpu_of(fn: Callable[[], object], *, repeat: int = 3) -> float:
    """Best process CPU time in seconds of one call of ``fn`` over ``repeat`` rounds."""
    times = []
    for _ in range(repeat):
        gc.collect()
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return min(times)
