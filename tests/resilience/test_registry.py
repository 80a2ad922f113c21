"""CircuitBreakerRegistry: one breaker per operation, overrides, monitoring, reset."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from thingpress_core.errors import ThrottledError
from thingpress_core.resilience import (
    CircuitBreakerRegistry,
    CircuitEvent,
    CircuitState,
    ResilienceSettings,
)


def throttle() -> None:
    raise ThrottledError("slow down", service="iot", operation="RegisterCertificateWithoutCA")


def test_get_builds_once_from_defaults_and_overrides(clock: Any) -> None:
    settings = ResilienceSettings(
        breaker_defaults={"failure_threshold": 4, "recovery_timeout": 20},
        breakers={"iot.RegisterCertificateWithoutCA": {"failure_threshold": 2}},
    )
    registry = CircuitBreakerRegistry(settings, clock=clock)
    register = registry.get("iot.RegisterCertificateWithoutCA")
    assert registry.get("iot.RegisterCertificateWithoutCA") is register
    assert register.settings.failure_threshold == 2
    assert register.settings.recovery_timeout == 20
    assert registry.get("iot.CreateThing").settings.failure_threshold == 4
    assert registry.names() == ["iot.CreateThing", "iot.RegisterCertificateWithoutCA"]
    assert "iot.CreateThing" in registry
    assert len(registry) == 2
    assert [b.name for b in registry] == registry.names()
    assert registry.settings is settings


def test_snapshot_and_reset(clock: Any) -> None:
    registry = CircuitBreakerRegistry(
        ResilienceSettings(breaker_defaults={"failure_threshold": 1}), clock=clock
    )
    a = registry.get("iot.RegisterCertificateWithoutCA")
    b = registry.get("iot.CreateThing")
    for breaker in (a, b):
        with pytest.raises(ThrottledError):
            breaker.call(throttle)
    snaps = registry.snapshot()
    assert list(snaps) == ["iot.CreateThing", "iot.RegisterCertificateWithoutCA"]
    assert all(s.state is CircuitState.OPEN for s in snaps.values())
    registry.reset("iot.CreateThing")
    assert b.state is CircuitState.CLOSED
    assert a.state is CircuitState.OPEN
    registry.reset("unknown.Operation")
    registry.reset()
    assert a.state is CircuitState.CLOSED


def test_listeners_reach_present_and_future_breakers(clock: Any) -> None:
    registry = CircuitBreakerRegistry(
        ResilienceSettings(breaker_defaults={"failure_threshold": 1}), clock=clock
    )
    early = registry.get("iot.AttachPolicy")
    events: list[CircuitEvent] = []
    registry.add_listener(events.append)
    late = registry.get("iot.CreateThing")
    for breaker in (early, late):
        with pytest.raises(ThrottledError):
            breaker.call(throttle)
    assert [e.name for e in events] == ["iot.AttachPolicy", "iot.CreateThing"]


def test_concurrent_get_returns_one_breaker(clock: Any) -> None:
    registry = CircuitBreakerRegistry(clock=clock)
    start = threading.Barrier(16)
    seen: list[object] = []
    lock = threading.Lock()

    def worker() -> None:
        start.wait(timeout=30)
        for i in range(200):
            breaker = registry.get(f"iot.Op{i % 20}")
            with lock:
                seen.append((breaker.name, id(breaker)))

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(registry) == 20
    assert len(set(seen)) == 20


def test_default_settings() -> None:
    registry = CircuitBreakerRegistry()
    assert registry.get("iot.CreateThing").settings.failure_threshold == 5


def test_thingpress_settings_are_accepted_for_their_resilience(clock: Any) -> None:
    from thingpress_core.settings import ThingpressSettings

    settings = ThingpressSettings(resilience=ResilienceSettings(breaker_defaults={"failure_threshold": 7}))
    registry = CircuitBreakerRegistry(settings, clock=clock)
    assert registry.settings is settings.resilience
    assert registry.get("iot.CreateThing").settings.failure_threshold == 7


def test_other_settings_fail_at_once_with_a_type_error() -> None:
    from thingpress_core.resilience import CircuitBreakerSettings

    with pytest.raises(
        TypeError, match="takes ResilienceSettings or ThingpressSettings, not CircuitBreakerSettings"
    ):
        CircuitBreakerRegistry(CircuitBreakerSettings())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not dict"):
        CircuitBreakerRegistry({"breaker_defaults": {}})  # type: ignore[arg-type]


def test_default_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THINGPRESS_RESILIENCE__BREAKER_DEFAULTS__FAILURE_THRESHOLD", "2")
    assert CircuitBreakerRegistry().get("iot.CreateThing").settings.failure_threshold == 2
