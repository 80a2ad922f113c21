"""Circuit breakers, a registry, per-operation rate limiting and error classification."""

from thingpress_core.resilience.settings import ResilienceSettings

__all__ = ["ResilienceSettings"]
