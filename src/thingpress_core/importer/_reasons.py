"""How a failed import step reads in an outcome: the words for the step, the machine-readable
reason of an error, and whether an error refused the call before it was sent."""

from __future__ import annotations

from thingpress_core.errors import (
    AccessDeniedError,
    AwsServiceError,
    CertificateError,
    CircuitOpenError,
    InvalidRequestError,
    LedgerError,
    LimitExceededError,
    RateLimitTimeoutError,
    ResourceConflictError,
    ResourceNotFoundError,
    ServiceUnavailableError,
    ThrottledError,
)
from thingpress_core.importer._models import FailedStep
from thingpress_core.importer._refusal import Refusal

__all__ = ["describe_step", "reason_of", "refused"]

# Most specific first: an error's class gives an outcome's machine-readable reason. The one table:
# import outcomes and fleet operations (verify, status, rollback) read their reasons from it.
_AWS_REASONS: tuple[tuple[type[BaseException], str], ...] = (
    (ThrottledError, "throttled"),
    (ServiceUnavailableError, "service_unavailable"),
    (ResourceNotFoundError, "not_found"),
    (AccessDeniedError, "access_denied"),
    (InvalidRequestError, "invalid_request"),
    (LimitExceededError, "limit_exceeded"),
    (ResourceConflictError, "conflict"),
    (AwsServiceError, "aws_error"),
    (CircuitOpenError, "circuit_open"),
    (RateLimitTimeoutError, "rate_limited"),
    (LedgerError, "ledger"),
)


def describe_step(step: FailedStep, target: str | None) -> str:
    """What the importer was doing at ``step`` (about ``target``), for an outcome's error line."""
    if step == "verify":
        return f"checking it ({target})" if target else "checking it"
    if step == "name":
        return "choosing its thing name"
    if step == "register":
        return "registering it"
    if step == "thing":
        return f"creating thing {target!r}"
    if step == "attach_principal":
        return f"attaching it to thing {target!r}"
    if step == "attach_policy":
        return f"attaching policy {target!r}"
    if step == "add_to_group":
        return f"adding its thing to group {target!r}"
    return "reading it"


def reason_of(exc: BaseException) -> str:
    """The outcome's machine-readable ``reason`` for ``exc``."""
    if isinstance(exc, Refusal):
        return exc.reason
    if isinstance(exc, CertificateError):
        return exc.reason or "invalid"
    for cls, reason in _AWS_REASONS:
        if isinstance(exc, cls):
            return reason
    return "error"


def refused(exc: BaseException) -> bool:
    """True when ``exc`` refused the call before it was sent and says when to try again."""
    if isinstance(exc, CircuitOpenError):
        return exc.retry_after is not None  # forced open: no end in sight, so it counts
    return isinstance(exc, RateLimitTimeoutError)
