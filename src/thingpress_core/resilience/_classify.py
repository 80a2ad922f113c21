"""Which exceptions mean "the service is unwell", "slow down", or "try again later".

The services, the breakers and the importer share these answers. They look at our own errors
only: the call path maps every botocore exception to the `thingpress_core.errors` tree before
a breaker or a caller sees it, so nothing here needs to know botocore.
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


def is_throttle(exc: BaseException) -> bool:
    """True when ``exc`` says the service throttled the call (`ThrottledError`)."""
    return isinstance(exc, ThrottledError)


def is_service_failure(exc: BaseException) -> bool:
    """The default breaker classifier: does ``exc`` say the service is unwell?

    True for `ThrottledError` (it reaches the breaker only after botocore's retries),
    `ServiceUnavailableError` (5xx, timeouts and connection errors, as the call path maps
    them) and the builtin `TimeoutError` and `ConnectionError` (for calls made without the
    call path). Everything else, including a caller's mistake (invalid request, not found,
    conflict, access denied), our own `RateLimitTimeoutError` and `CircuitOpenError`, and any
    other exception, is neutral.
    """
    if isinstance(exc, ThrottledError | ServiceUnavailableError):
        return True
    if isinstance(exc, RateLimitTimeoutError | CircuitOpenError):
        return False  # our own refusals say nothing about the service
    return isinstance(exc, TimeoutError | ConnectionError) or _async_timeout(exc)


def is_transient(exc: BaseException) -> bool:
    """True when trying the same call again later may succeed.

    `ThrottledError`, `ServiceUnavailableError`, `CircuitOpenError`, `RateLimitTimeoutError`,
    and the builtin timeouts and connection errors.
    """
    return isinstance(
        exc,
        ThrottledError
        | ServiceUnavailableError
        | CircuitOpenError
        | RateLimitTimeoutError
        | TimeoutError
        | ConnectionError,
    ) or _async_timeout(exc)


def _async_timeout(exc: BaseException) -> bool:
    """``asyncio.TimeoutError``, which is not the builtin ``TimeoutError`` before Python 3.11.

    asyncio is looked up, not imported: if it is not loaded, no exception of it exists.
    """
    if sys.version_info >= (3, 11):
        return False
    asyncio = sys.modules.get("asyncio")
    timeout = getattr(asyncio, "TimeoutError", None)
    return isinstance(timeout, type) and isinstance(exc, timeout)
