"""`RateLimiter`: a token bucket per operation that backs off when AWS throttles.

Each bucket refills at the operation's current rate and holds at most ``burst`` tokens, so
any interval of ``t`` seconds admits at most ``burst + rate × t`` calls. A caller that finds
the bucket empty *reserves* the next token (the balance goes negative), computes its wait
under the lock, releases the lock, and sleeps once: no busy-waiting, no lock held while
sleeping, and concurrent waiters are served in the order they arrived without over-admitting.

AIMD: `record_throttle` multiplies the current rate by ``decrease_factor`` (at most once per
``decrease_cooldown`` seconds, so one overload seen by many threads counts once), never below
``floor`` × the configured rate. `record_success` adds ``increase × configured / rate``, i.e.
about ``increase`` × the configured rate per second of successful calls, until the configured
rate is reached again. A process told a quota higher than the real one therefore settles in a
saw-tooth just under the real quota.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping

from thingpress_core.errors import ConfigurationError, RateLimitTimeoutError
from thingpress_core.resilience._settings import ResilienceSettings

__all__ = ["RateLimiter"]

logger = logging.getLogger("thingpress_core.resilience")


class _Bucket:
    __slots__ = ("capacity", "configured", "last", "last_decrease", "rate", "tokens")

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self.configured = rate
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self.last = now
        self.last_decrease: float | None = None

    def refill(self, now: float) -> None:
        elapsed = now - self.last
        if elapsed > 0:
            self.tokens = min(self.capacity, self.tokens + elapsed * self.rate)
            self.last = now


class RateLimiter:
    """Per-operation token buckets, thread-safe, with AIMD backoff on throttling.

    ``rates`` maps ``service.Operation`` to requests per second, or is a
    `ResilienceSettings` whose `~ResilienceSettings.effective_rate_limits` (rate × quota
    share) and ``rate_*`` fields are used (with a mapping, the ``rate_*`` defaults; the
    environment is not read). Operations without a rate are not limited.
    ``clock`` and ``sleep`` are injectable so tests run on fake time. Keyword arguments given
    here win over the settings.
    """

    def __init__(
        self,
        rates: Mapping[str, float] | ResilienceSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = time.sleep,
        burst: float | None = None,
        decrease_factor: float | None = None,
        increase: float | None = None,
        floor: float | None = None,
        decrease_cooldown: float | None = None,
    ) -> None:
        if isinstance(rates, ResilienceSettings):
            settings, table = rates, rates.effective_rate_limits()
        else:
            # The documented field defaults, not the environment: a limiter built from a plain
            # mapping behaves the same wherever it runs.
            settings, table = ResilienceSettings.model_construct(), dict(rates)
        self._burst = _check("burst", settings.rate_burst if burst is None else burst, low=1.0)
        self._decrease = _check(
            "decrease_factor",
            settings.rate_decrease_factor if decrease_factor is None else decrease_factor,
            low=0.0,
            high=1.0,
            open_low=True,
            open_high=True,
        )
        self._increase = _check(
            "increase", settings.rate_increase if increase is None else increase, low=0.0, open_low=True
        )
        self._floor = _check(
            "floor", settings.rate_floor if floor is None else floor, low=0.0, high=1.0, open_low=True
        )
        self._cooldown = _check(
            "decrease_cooldown",
            settings.rate_decrease_cooldown if decrease_cooldown is None else decrease_cooldown,
            low=0.0,
        )
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        now = clock()
        self._buckets: dict[str, _Bucket] = {}
        for name, rate in table.items():
            if math.isinf(rate) and rate > 0:
                continue  # unlimited
            _check(f"rate of {name}", rate, low=0.0, open_low=True)
            self._buckets[name] = _Bucket(rate, self._burst, now)

    # ---------------------------------------------------------------------- inspection

    def rate(self, name: str) -> float | None:
        """The current rate of ``name`` in requests per second; None when not limited."""
        bucket = self._buckets.get(name)
        return None if bucket is None else bucket.rate

    def configured_rate(self, name: str) -> float | None:
        """The rate ``name`` was configured with (the ceiling of its recovery)."""
        bucket = self._buckets.get(name)
        return None if bucket is None else bucket.configured

    def rates(self) -> dict[str, float]:
        """The current rate of every limited operation, for monitoring."""
        with self._lock:
            return {name: bucket.rate for name, bucket in sorted(self._buckets.items())}

    @property
    def burst(self) -> float:
        """Tokens an idle bucket holds."""
        return self._burst

    # ------------------------------------------------------------------------ acquiring

    def acquire(self, name: str, timeout: float | None = None) -> float:
        """Take one token for ``name``, sleeping until it is due; returns the seconds waited.

        Raises `RateLimitTimeoutError` (without taking a token) when the wait would exceed
        ``timeout`` seconds; ``timeout=0`` never waits.
        """
        bucket = self._buckets.get(name)
        if bucket is None:
            return 0.0
        with self._lock:
            now = self._clock()
            bucket.refill(now)
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            wait = (1.0 - bucket.tokens) / bucket.rate
            if timeout is None or wait <= timeout:
                bucket.tokens -= 1.0  # reserved: the next waiter queues behind this one
                rate = bucket.rate
            else:
                rate = -1.0
        if rate < 0:
            raise RateLimitTimeoutError(
                f"no {name} token within {timeout:g} s (next in {wait:.2f} s at {bucket.rate:.3g}/s)",
                name=name,
                timeout=float(timeout or 0.0),
            )
        self._sleep(wait)
        return wait

    # ----------------------------------------------------------------------------- AIMD

    def record_throttle(self, name: str) -> None:
        """AWS throttled ``name``: multiply its rate by the decrease factor (floored)."""
        bucket = self._buckets.get(name)
        if bucket is None:
            return
        with self._lock:
            now = self._clock()
            if bucket.last_decrease is not None and now - bucket.last_decrease < self._cooldown:
                return
            bucket.refill(now)
            old = bucket.rate
            bucket.rate = max(bucket.configured * self._floor, old * self._decrease)
            bucket.last_decrease = now
        logger.info(
            "rate of %s lowered from %.3g/s to %.3g/s after throttling",
            name,
            old,
            bucket.rate,
            extra={"operation": name},
        )

    def record_success(self, name: str) -> None:
        """A call to ``name`` succeeded: climb back toward the configured rate."""
        bucket = self._buckets.get(name)
        if bucket is None or bucket.rate >= bucket.configured:
            return
        with self._lock:
            if bucket.rate < bucket.configured:
                bucket.refill(self._clock())
                step = self._increase * bucket.configured / bucket.rate
                bucket.rate = min(bucket.configured, bucket.rate + step)

    def reset(self, name: str | None = None) -> None:
        """Restore the configured rate of one operation, or of all."""
        with self._lock:
            now = self._clock()
            for key, bucket in self._buckets.items():
                if name is None or key == name:
                    bucket.refill(now)
                    bucket.rate = bucket.configured
                    bucket.last_decrease = None


def _check(
    what: str,
    value: object,
    *,
    low: float,
    high: float | None = None,
    open_low: bool = False,
    open_high: bool = False,
) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
        ok = (
            math.isfinite(number)
            and (number > low if open_low else number >= low)
            and (high is None or (number < high if open_high else number <= high))
        )
        if ok:
            return number
    bound = f"{'>' if open_low else '>='} {low:g}"
    if high is not None:
        bound += f" and {'<' if open_high else '<='} {high:g}"
    raise ConfigurationError(
        f"RateLimiter {what} must be a finite number {bound}, got {value!r}", variable=what, value=value
    )
