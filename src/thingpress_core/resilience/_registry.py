"""`CircuitBreakerRegistry`: one breaker per ``service.Operation``, made on first use."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Protocol

from thingpress_core.resilience._breaker import CircuitBreaker, CircuitListener, Classifier
from thingpress_core.resilience._models import CircuitSnapshot
from thingpress_core.resilience._settings import ResilienceSettings


class HoldsResilience(Protocol):
    """Anything with a ``resilience`` field.

    Such as [`ThingpressSettings`][thingpress_core.settings.ThingpressSettings].
    """

    @property
    def resilience(self) -> ResilienceSettings: ...


__all__ = ["CircuitBreakerRegistry"]


class CircuitBreakerRegistry:
    """Thread-safe home of the breakers of one process (or one import).

    ``get(name)`` builds the breaker for ``name`` on first use from
    ``settings.breaker_defaults`` merged with ``settings.breakers[name]``; later calls return
    the same object. Listeners added here are attached to every breaker, present and future.

    ``settings`` is a `ResilienceSettings`, a
    [`ThingpressSettings`][thingpress_core.settings.ThingpressSettings] (its ``resilience`` is
    used) or None (``ResilienceSettings()``: the environment). Anything else is a `TypeError`
    at once, not a failure on the first call.
    """

    def __init__(
        self,
        settings: ResilienceSettings | HoldsResilience | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        classify: Classifier | None = None,
    ) -> None:
        self._settings = _resilience_settings(settings)
        self._clock = clock
        self._classify = classify
        self._lock = threading.Lock()
        self._breakers: dict[str, CircuitBreaker] = {}
        self._listeners: tuple[CircuitListener, ...] = ()

    @property
    def settings(self) -> ResilienceSettings:
        """The settings breakers are built from."""
        return self._settings

    def get(self, name: str) -> CircuitBreaker:
        """The breaker for ``name`` (e.g. ``iot.CreateThing``), created on first use."""
        breaker = self._breakers.get(name)
        if breaker is not None:
            return breaker
        with self._lock:
            breaker = self._breakers.get(name)
            if breaker is None:
                breaker = CircuitBreaker(
                    name,
                    self._settings.breaker_settings(name),
                    clock=self._clock,
                    classify=self._classify,
                )
                for listener in self._listeners:
                    breaker.add_listener(listener)
                self._breakers[name] = breaker
            return breaker

    def snapshot(self) -> dict[str, CircuitSnapshot]:
        """A snapshot of every breaker made so far, keyed and sorted by name."""
        with self._lock:
            breakers = sorted(self._breakers.items())
        return {name: breaker.snapshot() for name, breaker in breakers}

    def reset(self, name: str | None = None) -> None:
        """Reset one breaker (unknown names are ignored) or, with no name, all of them."""
        with self._lock:
            if name is None:
                targets = list(self._breakers.values())
            else:
                found = self._breakers.get(name)
                targets = [found] if found is not None else []
        for breaker in targets:
            breaker.reset()

    def add_listener(self, listener: CircuitListener) -> None:
        """Attach ``listener`` to every breaker, including those made later."""
        with self._lock:
            self._listeners = (*self._listeners, listener)
            breakers = list(self._breakers.values())
        for breaker in breakers:
            breaker.add_listener(listener)

    def names(self) -> list[str]:
        """Names of the breakers made so far, sorted."""
        with self._lock:
            return sorted(self._breakers)

    def __contains__(self, name: object) -> bool:
        return name in self._breakers

    def __iter__(self) -> Iterator[CircuitBreaker]:
        with self._lock:
            breakers = [self._breakers[name] for name in sorted(self._breakers)]
        return iter(breakers)

    def __len__(self) -> int:
        return len(self._breakers)


def _resilience_settings(settings: object) -> ResilienceSettings:
    if settings is None:
        return ResilienceSettings()
    if isinstance(settings, ResilienceSettings):
        return settings
    # a ThingpressSettings (or anything holding one): looked up, not imported, because
    # thingpress_core.settings builds on this package
    inner = getattr(settings, "resilience", None)
    if isinstance(inner, ResilienceSettings):
        return inner
    raise TypeError(
        "CircuitBreakerRegistry takes ResilienceSettings or ThingpressSettings, "
        f"not {type(settings).__name__}"
    )
