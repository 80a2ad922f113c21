"""Circuit breakers, a registry, per-operation rate limiting and error classification.

The services call AWS through ``rate limiter -> circuit breaker -> boto3``, each keyed by
``service.Operation`` (``iot.RegisterCertificateWithoutCA``). See ``docs/resilience.md``.
"""

from thingpress_core._public import publish
from thingpress_core.resilience._breaker import CircuitBreaker, CircuitListener, Classifier
from thingpress_core.resilience._classify import is_service_failure, is_throttle, is_transient
from thingpress_core.resilience._concurrency import (
    DEFAULT_CONCURRENCY_CAP,
    DEFAULT_HEADROOM,
    ConcurrencyPlan,
    plan_concurrency,
)
from thingpress_core.resilience._models import CircuitEvent, CircuitPermit, CircuitSnapshot, CircuitState
from thingpress_core.resilience._ratelimit import RateLimiter
from thingpress_core.resilience._registry import CircuitBreakerRegistry
from thingpress_core.resilience._settings import (
    DEFAULT_RATE_LIMITS,
    CircuitBreakerSettings,
    ResilienceSettings,
)

__all__ = [
    "DEFAULT_CONCURRENCY_CAP",
    "DEFAULT_HEADROOM",
    "DEFAULT_RATE_LIMITS",
    "CircuitBreaker",
    "CircuitBreakerRegistry",
    "CircuitBreakerSettings",
    "CircuitEvent",
    "CircuitListener",
    "CircuitPermit",
    "CircuitSnapshot",
    "CircuitState",
    "Classifier",
    "ConcurrencyPlan",
    "RateLimiter",
    "ResilienceSettings",
    "is_service_failure",
    "is_throttle",
    "is_transient",
    "plan_concurrency",
]

# Tracebacks, reprs and the API docs name this package, so the private modules can move.
publish(__name__, globals())
