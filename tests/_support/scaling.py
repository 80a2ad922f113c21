"""Check that work grows linearly with input, as a ratio measured in the same process.

No absolute time is asserted (a loaded CI machine would make that flaky): the cost of a 4x
larger input is compared with the cost of the smaller one. Linear work gives about 4, the
quadratic behaviour of a backtracking regular expression about 16.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable


def _best(run: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        gc.collect()
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def growth_ratio(run: Callable[[int], object], n: int, *, factor: int = 4, repeat: int = 3) -> float:
    """Best time of ``run(factor * n)`` divided by the best time of ``run(n)``."""
    small = _best(lambda: run(n), repeat)
    large = _best(lambda: run(factor * n), repeat)
    return large / max(small, 1e-9)
