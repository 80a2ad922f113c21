"""`ServiceFacade`: the base class that wires a facade to the one call path (`_path`).

It holds the lazily built client factory, settings, breakers, limiter and counters that every
facade shares, and hands each facade its `CallPath`.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from thingpress_core.services._path import CallCounter, CallPath, watch_throttles

if TYPE_CHECKING:
    from thingpress_core.clients import ClientFactory
    from thingpress_core.resilience import CircuitBreakerRegistry, RateLimiter
    from thingpress_core.services._models import CallStats
    from thingpress_core.settings import ThingpressSettings

__all__ = ["ServiceFacade"]


class ServiceFacade:
    """Shared wiring of the facades: lazy factory, settings, breakers, limiter and counters.

    Nothing heavy is built until first needed. Facades built from one another share the
    factory, registry and limiter: ``SQSService(iot.factory, registry=iot.registry,
    limiter=iot.limiter)``.
    """

    _service: str = ""
    _logger_name: str = "thingpress_core.services"

    def __init__(
        self,
        factory: ClientFactory | None = None,
        *,
        settings: ThingpressSettings | None = None,
        registry: CircuitBreakerRegistry | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        self._factory = factory
        self._settings = settings
        self._registry = registry
        self._limiter = limiter
        self._lock = threading.Lock()
        self._counter = CallCounter()
        self._path: CallPath | None = None
        self._client: Any = None
        self._log = logging.getLogger(self._logger_name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(calls={self._counter.snapshot().total_calls})"

    @property
    def settings(self) -> ThingpressSettings:
        """The settings: as given, else the factory's, else `ThingpressSettings()`."""
        if self._settings is None:
            with self._lock:
                if self._settings is None:
                    if self._factory is not None:
                        self._settings = self._factory.settings
                    else:
                        from thingpress_core.settings import ThingpressSettings

                        self._settings = ThingpressSettings()
        return self._settings

    @property
    def factory(self) -> ClientFactory:
        """The `ClientFactory` clients come from (built from `settings` on first use)."""
        if self._factory is None:
            settings = self.settings
            with self._lock:
                if self._factory is None:
                    from thingpress_core.clients import ClientFactory

                    self._factory = ClientFactory(settings)
        return self._factory

    @property
    def registry(self) -> CircuitBreakerRegistry:
        """The circuit breakers, one per ``service.Operation``."""
        if self._registry is None:
            settings = self.settings
            with self._lock:
                if self._registry is None:
                    from thingpress_core.resilience import CircuitBreakerRegistry

                    self._registry = CircuitBreakerRegistry(settings.resilience)
        return self._registry

    @property
    def limiter(self) -> RateLimiter:
        """The per-operation rate limiter."""
        if self._limiter is None:
            settings = self.settings
            with self._lock:
                if self._limiter is None:
                    from thingpress_core.resilience import RateLimiter

                    self._limiter = RateLimiter(settings.resilience)
        return self._limiter

    def stats(self) -> CallStats:
        """Calls, failures, refusals and botocore retries so far, per ``service.Operation``."""
        return self._counter.snapshot()

    def reset_stats(self) -> None:
        """Set every counter back to zero."""
        self._counter.reset()

    def _service_client(self) -> Any:
        """This facade's boto3 client, fetched once, with its throttles reported to the limiter."""
        client = self._client
        if client is None:
            limiter = self.limiter
            client = self.factory.client(self._service)  # type: ignore[call-overload]  # _service is one of the literals
            watch_throttles(client, self._service, limiter)
            self._client = client
        return client

    def _call_path(self) -> CallPath:
        path = self._path
        if path is None:
            registry, limiter = self.registry, self.limiter
            path = CallPath(
                self._service, registry=registry, limiter=limiter, counter=self._counter, logger=self._log
            )
            self._path = path
        return path
