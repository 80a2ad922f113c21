"""Which exceptions mean "the service is unwell", "slow down", or "try again later".

The services, the breakers and the importer share these answers. botocore is never imported
here: its exceptions are recognised only if botocore is already loaded (it must be, for one
of them to exist).
"""

from __future__ import annotations

import sys

from thingpress_core.errors import (
    CircuitOpenError,
    RateLimitTimeoutError,
    ServiceUnavailableError,
    ThrottledError,
)

__all__ = ["is_service_failure", "is_throttle", "is_transient"]

_BOTOCORE_TRANSIENT = (
    "ConnectionError",
    "HTTPClientError",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "EndpointConnectionError",
    "ConnectionClosedError",
)


def _is_botocore_transient(exc: BaseException) -> bool:
    module = sys.modules.get("botocore.exceptions")
    if module is None:
        return False
    for name in _BOTOCORE_TRANSIENT:
        cls = getattr(module, name, None)
        if isinstance(cls, type) and isinstance(exc, cls):
            return True
    return False


def is_throttle(exc: BaseException) -> bool:
    """True when ``exc`` says the service throttled the call (`ThrottledError`)."""
    return isinstance(exc, ThrottledError)


def is_service_failure(exc: BaseException) -> bool:
    """The default breaker classifier: does ``exc`` say the service is unwell?

    True for `ThrottledError` (it reaches the breaker only after botocore's retries),
    `ServiceUnavailableError` (5xx), builtin `TimeoutError` and `ConnectionError`, and
    botocore's connection errors and timeouts. Everything else, including a caller's
    mistake (invalid request, not found, conflict, access denied), our own
    `RateLimitTimeoutError` and `CircuitOpenError`, and any non-AWS exception, is neutral.
    """
    if isinstance(exc, ThrottledError | ServiceUnavailableError):
        return True
    if isinstance(exc, RateLimitTimeoutError | CircuitOpenError):
        return False  # our own refusals say nothing about the service
    if isinstance(exc, TimeoutError | ConnectionError):
        return True
    return _is_botocore_transient(exc)


def is_transient(exc: BaseException) -> bool:
    """True when trying the same call again later may succeed.

    `ThrottledError`, `ServiceUnavailableError`, `CircuitOpenError`, `RateLimitTimeoutError`,
    builtin timeouts and connection errors, and botocore's connection errors and timeouts.
    """
    if isinstance(
        exc,
        ThrottledError | ServiceUnavailableError | CircuitOpenError | RateLimitTimeoutError,
    ):
        return True
    if isinstance(exc, TimeoutError | ConnectionError):
        return True
    return _is_botocore_transient(exc)
