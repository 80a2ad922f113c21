"""The one call path every AWS call takes.

For each AWS call, in order:

1. the rate limiter takes a token for ``service.Operation`` (waits; may raise
   `RateLimitTimeoutError`),
2. the circuit breaker of that name admits the call (or raises `CircuitOpenError`),
3. the boto3 method runs; botocore does its own retries, configured from the settings,
4. a ``ClientError`` / ``BotoCoreError`` is mapped to the `AwsServiceError` tree
   (`_errors`) and raised ``from`` the original,
5. the outcome goes to the breaker (its classifier decides what counts as a failure) and to
   the limiter (a throttle slows it, a success lets it recover),
6. the call is counted (`CallStats`).

Facades (`_call.ServiceFacade`) never catch botocore exceptions; to turn an expected answer
into a result they pass its mapped class as ``expected`` (logged at DEBUG, not counted as a
failure) and catch it. `ClientFactory.account_id` uses the same path for STS. This module
knows no client factory or settings, so both can build on it.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from thingpress_core.errors import AwsServiceError, CircuitOpenError, RateLimitTimeoutError
from thingpress_core.resilience import is_service_failure, is_throttle
from thingpress_core.services._errors import is_throttling_code, map_botocore_error, map_client_error
from thingpress_core.services._models import CallStats

if TYPE_CHECKING:
    from thingpress_core.resilience import CircuitBreaker, CircuitBreakerRegistry, CircuitPermit, RateLimiter

__all__ = ["CallCounter", "CallPath", "watch_throttles"]

R = TypeVar("R")

# Per thread, the attempts of the call in progress whose answer AWS may have acted on without
# it arriving (botocore retries on the calling thread, so a thread-local is exact).
_attempts = threading.local()


@functools.cache
def _botocore_errors() -> tuple[type[BaseException], type[BaseException]]:
    """botocore's ``ClientError`` and ``BotoCoreError``, imported on the first call, not at
    import time (``import thingpress_core`` stays free of botocore)."""
    from botocore.exceptions import BotoCoreError, ClientError

    return ClientError, BotoCoreError


@functools.cache
def _never_sent() -> tuple[type[BaseException], ...]:
    """botocore errors raised before a request left this machine (so AWS never saw it)."""
    from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError

    return ConnectTimeoutError, EndpointConnectionError


def _uncertain(response: object, caught: object) -> bool:
    """Whether one HTTP attempt may have been carried out by AWS though it failed."""
    if isinstance(caught, BaseException):
        return not isinstance(caught, _never_sent())
    if isinstance(response, tuple) and response:
        status = getattr(response[0], "status_code", 0)
        return isinstance(status, int) and status >= 500
    return False


class CallCounter:
    """Thread-safe per-operation counters behind `CallStats`."""

    __slots__ = ("_calls", "_failures", "_lock", "_refused", "_retries")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[str, int] = {}
        self._failures: dict[str, int] = {}
        self._refused: dict[str, int] = {}
        self._retries: dict[str, int] = {}

    def call(self, name: str) -> None:
        with self._lock:
            self._calls[name] = self._calls.get(name, 0) + 1

    def failure(self, name: str) -> None:
        with self._lock:
            self._failures[name] = self._failures.get(name, 0) + 1

    def refused(self, name: str) -> None:
        with self._lock:
            self._refused[name] = self._refused.get(name, 0) + 1

    def retries(self, name: str, count: int) -> None:
        if count > 0:
            with self._lock:
                self._retries[name] = self._retries.get(name, 0) + count

    def snapshot(self) -> CallStats:
        with self._lock:
            return CallStats(
                calls=dict(sorted(self._calls.items())),
                failures=dict(sorted(self._failures.items())),
                refused=dict(sorted(self._refused.items())),
                retries=dict(sorted(self._retries.items())),
            )

    def reset(self) -> None:
        with self._lock:
            self._calls.clear()
            self._failures.clear()
            self._refused.clear()
            self._retries.clear()


def _retry_attempts(response: object) -> int:
    if isinstance(response, Mapping):
        meta = response.get("ResponseMetadata")
        if isinstance(meta, Mapping):
            value = meta.get("RetryAttempts")
            if isinstance(value, int):
                return value
    return 0


class CallPath:
    """Rate limit → breaker → boto3 → error mapping → counters, for one service."""

    __slots__ = ("_counter", "_limiter", "_logger", "_registry", "_service")

    def __init__(
        self,
        service: str,
        *,
        registry: CircuitBreakerRegistry,
        limiter: RateLimiter,
        counter: CallCounter,
        logger: logging.Logger,
    ) -> None:
        self._service = service
        self._registry = registry
        self._limiter = limiter
        self._counter = counter
        self._logger = logger

    def call(
        self,
        operation: str,
        method: Callable[..., R],
        params: Mapping[str, Any],
        *,
        certificate_id: str | None = None,
        thing_name: str | None = None,
        expected: tuple[type[AwsServiceError], ...] = (),
    ) -> R:
        """Make one AWS call; see the module docstring. Raises the mapped error."""
        name = f"{self._service}.{operation}"
        counter = self._counter
        # nothing may fail between the breaker's admission and the try below: a probe permit
        # that is never reported would hold its half-open slot
        client_error, botocore_error = _botocore_errors()
        try:
            self._limiter.acquire(name)
            breaker = self._registry.get(name)
            permit = breaker.acquire()
        except (CircuitOpenError, RateLimitTimeoutError) as refused:
            counter.refused(name)
            self._logger.info(
                "%s refused before the call: %s",
                name,
                refused,
                extra=_extra(name, certificate_id, thing_name),
            )
            raise
        _attempts.uncertain = 0
        try:
            counter.call(name)
            result = method(**params)
        except client_error as exc:
            mapped = map_client_error(
                exc,
                service=self._service,
                operation=operation,
                certificate_id=certificate_id,
                thing_name=thing_name,
            )
            mapped.uncertain_attempts = _attempts.uncertain
            counter.retries(name, _retry_attempts(getattr(exc, "response", None)))
            self._failed(name, mapped, breaker, permit, expected, certificate_id, thing_name)
            raise mapped from exc
        except botocore_error as exc:
            mapped = map_botocore_error(
                exc,
                service=self._service,
                operation=operation,
                certificate_id=certificate_id,
                thing_name=thing_name,
            )
            mapped.uncertain_attempts = _attempts.uncertain
            self._failed(name, mapped, breaker, permit, expected, certificate_id, thing_name)
            raise mapped from exc
        except BaseException as exc:
            breaker.record_failure(exc, permit)
            counter.failure(name)
            raise
        breaker.record_success(permit)
        self._limiter.record_success(name)
        counter.retries(name, _retry_attempts(result))
        return result

    def _failed(
        self,
        name: str,
        mapped: AwsServiceError,
        breaker: CircuitBreaker,
        permit: CircuitPermit,
        expected: tuple[type[AwsServiceError], ...],
        certificate_id: str | None,
        thing_name: str | None,
    ) -> None:
        breaker.record_failure(mapped, permit)
        if is_throttle(mapped):
            self._limiter.record_throttle(name)
        extra = _extra(name, certificate_id, thing_name)
        if expected and isinstance(mapped, expected):
            self._logger.debug("%s answered %s (expected)", name, mapped.code, extra=extra)
            return
        self._counter.failure(name)
        if is_service_failure(mapped):
            self._logger.warning("%s", mapped, extra=extra)
        else:
            self._logger.info("%s", mapped, extra=extra)


def _extra(name: str, certificate_id: str | None, thing_name: str | None) -> dict[str, Any]:
    return {"operation": name, "certificate_id": certificate_id, "thing_name": thing_name}


def watch_throttles(client: Any, service: str, limiter: RateLimiter) -> None:
    """Tell ``limiter`` about every throttled attempt ``client`` makes, retries included.

    botocore retries a throttled call on its own, so the call path sees a throttle only when
    every attempt failed. The limiter slows down sooner, and stays under the real quota, when
    it hears of each throttled attempt: this hooks botocore's per-attempt ``needs-retry`` event
    and returns None so botocore's own retry decision stands. Registered once per limiter.

    The same hook counts the attempts AWS may have carried out without their answer arriving
    (a dropped connection after the send, a 5xx): a mapped error carries that count as
    ``uncertain_attempts``, so a later "already exists" can be told from a lost answer.
    """

    def on_attempt(
        response: object = None, operation: object = None, caught_exception: object = None, **_: object
    ) -> None:
        if _uncertain(response, caught_exception):
            _attempts.uncertain = getattr(_attempts, "uncertain", 0) + 1
        if not isinstance(response, tuple) or len(response) < 2 or operation is None:
            return
        parsed = response[1]
        error = parsed.get("Error") if isinstance(parsed, Mapping) else None
        code = error.get("Code") if isinstance(error, Mapping) else None
        if isinstance(code, str) and is_throttling_code(code):
            limiter.record_throttle(f"{service}.{getattr(operation, 'name', '')}")

    events = getattr(getattr(client, "meta", None), "events", None)
    if events is None:  # a stand-in client without botocore's event system: nothing to hook
        return
    events.register(
        f"needs-retry.{service}", on_attempt, unique_id=f"thingpress-core-throttles-{id(limiter)}"
    )
