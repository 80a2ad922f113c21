"""Type-checked only (mypy --strict, pyright strict), never run: every public signature of
thingpress_core.resilience, including that the decorator keeps the wrapped signature."""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from typing import Any

from thingpress_core.errors import CircuitOpenError, RateLimitTimeoutError
from thingpress_core.resilience import (
    DEFAULT_CONCURRENCY_CAP,
    DEFAULT_RATE_LIMITS,
    CircuitBreaker,
    CircuitBreakerRegistry,
    CircuitBreakerSettings,
    CircuitEvent,
    CircuitListener,
    CircuitPermit,
    CircuitSnapshot,
    CircuitState,
    Classifier,
    ConcurrencyPlan,
    RateLimiter,
    ResilienceSettings,
    is_service_failure,
    is_throttle,
    is_transient,
    plan_concurrency,
)
from thingpress_core.settings import ThingpressSettings

# settings
cbs = CircuitBreakerSettings(
    failure_threshold=3,
    failure_rate_threshold=50.0,
    window_size=20,
    minimum_calls=10,
    recovery_timeout=30.0,
    recovery_backoff=2.0,
    max_recovery_timeout=300.0,
    half_open_max_calls=1,
    success_threshold=1,
    enabled=True,
)
merged: CircuitBreakerSettings = cbs.merged(CircuitBreakerSettings(failure_threshold=2))
merged_none: CircuitBreakerSettings = cbs.merged(None)
rs = ResilienceSettings(
    breaker_defaults=cbs,
    breakers={"iot.RegisterCertificateWithoutCA": CircuitBreakerSettings(failure_threshold=2)},
    rate_limits={"iot.CreateThing": 50.0},
    quota_share=0.1,
    rate_burst=1.0,
    rate_decrease_factor=0.7,
    rate_increase=0.05,
    rate_floor=0.05,
    rate_decrease_cooldown=1.0,
)
per_op: CircuitBreakerSettings = rs.breaker_settings("iot.CreateThing")
effective: dict[str, float] = rs.effective_rate_limits()
limits: dict[str, float] = rs.rate_limits
share: float = rs.quota_share
quota: float = DEFAULT_RATE_LIMITS["iot.CreateThing"]
from_env: ResilienceSettings = ThingpressSettings().resilience

# breaker
breaker = CircuitBreaker("iot.CreateThing")
breaker2 = CircuitBreaker("iot.CreateThing", cbs, clock=time.monotonic, classify=is_service_failure)
classifier: Classifier = lambda exc: isinstance(exc, TimeoutError)  # noqa: E731
breaker3 = CircuitBreaker("x", None, clock=lambda: 0.0, classify=classifier)


def create(name: str, *, thing_type: str | None = None) -> dict[str, str]:
    return {"name": name}


result: dict[str, str] = breaker.call(create, "thing-1", thing_type="t")
protected = breaker(create)
again: dict[str, str] = protected("thing-1", thing_type=None)
protected("thing-1", thing_type="t")


@breaker
def decorated(count: int) -> list[int]:
    return list(range(count))


numbers: list[int] = decorated(3)

with breaker as entered:
    same: CircuitBreaker = entered

with breaker.guard() as guard_permit:
    guarded: CircuitPermit = guard_permit

permit: CircuitPermit = breaker.acquire()
breaker.record_success(permit)
breaker.record_failure(ValueError("x"), permit)
breaker.record_success()
breaker.record_failure(ValueError("x"))
with breaker.acquire() as entered_permit:
    is_probe: bool = entered_permit.probe
    generation: int = entered_permit.generation

# coroutines: the decorator keeps an async def's parameters and its awaited result


async def fetch(name: str, *, retries: int = 0) -> dict[str, str]:
    return {"name": name}


@breaker
async def fetch_many(count: int) -> list[str]:
    return [str(i) for i in range(count)]


protected_fetch: Callable[[str], Coroutine[Any, Any, dict[str, str]]] = breaker(fetch)


async def use_async() -> None:
    one: dict[str, str] = await breaker(fetch)("thing-1", retries=2)
    many: list[str] = await fetch_many(3)
    called: dict[str, str] = await breaker.call_async(fetch, "thing-1", retries=1)
    pending: Coroutine[Any, Any, list[str]] = fetch_many(2)
    awaited: list[str] = await pending
    with breaker.guard():
        inside: dict[str, str] = await fetch("thing-2")
    print(one, many, called, awaited, inside)
    await fetch_many("3")  # type: ignore[arg-type]  # must fail: the decorator kept `count: int`
    await breaker.call_async(fetch, "x", retry=1)  # type: ignore[call-arg]  # must fail: no `retry`
    not_a_list: int = await fetch_many(1)  # type: ignore[assignment]  # must fail: list[str]
    print(not_a_list)


decorated("3")  # type: ignore[arg-type]  # must fail: the sync decorator kept `count: int`
state: CircuitState = breaker.state
snap: CircuitSnapshot = breaker.snapshot()
name: str = breaker.name
enabled: bool = breaker.enabled
settings_of: CircuitBreakerSettings = breaker.settings
failures: int = snap.failures
rate: float | None = snap.failure_rate
retry_after: float | None = snap.retry_after


def on_event(event: CircuitEvent) -> None:
    old: CircuitState = event.old_state
    new: CircuitState = event.new_state
    at: float = event.at
    reason: str = event.reason
    print(event.name, old, new, at, reason)


listener: CircuitListener = on_event
breaker.add_listener(on_event)
breaker.remove_listener(on_event)
breaker.force_open()
breaker.disable()
breaker.enable()
breaker.reset()

try:
    breaker.call(create, "x")
except CircuitOpenError as exc:
    when: float | None = exc.retry_after
    seen: CircuitSnapshot | None = exc.snapshot

# registry
registry = CircuitBreakerRegistry()
registry2 = CircuitBreakerRegistry(rs, clock=time.monotonic, classify=is_service_failure)
got: CircuitBreaker = registry.get("iot.CreateThing")
snaps: dict[str, CircuitSnapshot] = registry.snapshot()
registry.reset()
registry.reset("iot.CreateThing")
registry.add_listener(on_event)
names: list[str] = registry.names()
members: list[CircuitBreaker] = list(registry)
settings_back: ResilienceSettings = registry.settings

# rate limiter
limiter = RateLimiter({"iot.CreateThing": 10.0})
limiter2 = RateLimiter(
    rs,
    clock=time.monotonic,
    sleep=time.sleep,
    burst=2.0,
    decrease_factor=0.7,
    increase=0.05,
    floor=0.05,
    decrease_cooldown=1.0,
)
waited: float = limiter.acquire("iot.CreateThing")
waited2: float = limiter.acquire("iot.CreateThing", timeout=1.0)
limiter.record_throttle("iot.CreateThing")
limiter.record_success("iot.CreateThing")
current: float | None = limiter.rate("iot.CreateThing")
configured: float | None = limiter.configured_rate("iot.CreateThing")
all_rates: dict[str, float] = limiter.rates()
burst: float = limiter.burst
limiter.reset()
limiter.reset("iot.CreateThing")

try:
    limiter.acquire("iot.CreateThing", timeout=0)
except RateLimitTimeoutError as late:
    timeout: float = late.timeout

# classification
flags: tuple[bool, bool, bool] = (
    is_throttle(ValueError()),
    is_transient(ValueError()),
    is_service_failure(ValueError()),
)

# concurrency from the quotas
plan: ConcurrencyPlan = plan_concurrency(
    {"iot.RegisterCertificateWithoutCA": 1, "iot.AttachPolicy": 1}, DEFAULT_RATE_LIMITS, latency=0.05
)
workers: int = plan.workers
binding: str | None = plan.binding_operation
eta: float = plan.expected_seconds(1_000_000)
capped: ConcurrencyPlan = plan_concurrency({}, DEFAULT_RATE_LIMITS, latency=0.0, cap=DEFAULT_CONCURRENCY_CAP)
line: str = plan.summary()
