"""Everything thingpress-core raises, in one tree.

```
ThingpressError
├── ConfigurationError             a bad setting or option (also ValueError)
├── MissingExtraError              a dependency is missing (also ImportError)
├── CertificateError               (also ValueError)
│   ├── CertificateParseError      bytes that are no certificate
│   └── CertificateValidationError a certificate not acceptable
├── ManifestError                  a manifest not readable (also ValueError)
│   └── ManifestSignatureError     an entry's signature fails
├── PreflightError                 policy, group or type missing
├── CircuitOpenError               a breaker refused (also RuntimeError)
├── RateLimitTimeoutError          no token in time (also TimeoutError)
├── MessageParseError              an SQS body is no request (also ValueError)
├── EnqueueError                   sending to SQS failed
├── LedgerError                    ledger storage failed or closed
│   └── LedgerBusyError            another process writes it
└── AwsServiceError                an AWS call failed
    ├── ThrottledError             throttled after the retries
    ├── ResourceNotFoundError      (also LookupError)
    ├── ResourceConflictError      exists already, version conflict
    ├── AccessDeniedError          (also PermissionError)
    ├── InvalidRequestError        the request itself is wrong (also ValueError)
    ├── LimitExceededError         a hard limit, not a throttle
    ├── ServiceUnavailableError    5xx, timeouts, connections
    └── BatchSendError             SQS messages not sent
```

Not in the tree, because it is no error but Ctrl-C: `thingpress_core.importer.ImportInterrupted`,
a ``KeyboardInterrupt`` whose ``report`` is the partial report of an interrupted ``import_all``.

The modules that raise `BatchSendError` (`thingpress_core.services`), `MessageParseError` and
`EnqueueError` (`thingpress_core.integrations.aws_lambda`) re-export them under the same names.

Every error speaks English in one line and names the input it is about: the file, row or
entry, the certificate id, or the AWS operation. An `AwsServiceError` keeps the original
botocore exception as ``__cause__``.

This module holds the classes only and knows nothing of botocore: the mapping from botocore's
exceptions lives beside the one call path (``thingpress_core.services._errors``), the only
code that sees them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError

    # modules that import nothing else of this package: errors.py stays at the bottom
    from thingpress_core.integrations._reports import EnqueueReport
    from thingpress_core.resilience._models import CircuitSnapshot
    from thingpress_core.services._failed import FailedMessage

__all__ = [
    "AccessDeniedError",
    "AwsServiceError",
    "BatchSendError",
    "CertificateError",
    "CertificateParseError",
    "CertificateValidationError",
    "CircuitOpenError",
    "ConfigurationError",
    "EnqueueError",
    "InvalidRequestError",
    "LedgerBusyError",
    "LedgerError",
    "LimitExceededError",
    "ManifestError",
    "ManifestSignatureError",
    "MissingExtraError",
    "MessageParseError",
    "PreflightError",
    "RateLimitTimeoutError",
    "ResourceConflictError",
    "ResourceNotFoundError",
    "ServiceUnavailableError",
    "ThingpressError",
    "ThrottledError",
]


class ThingpressError(Exception):
    """The root of every exception thingpress-core raises on purpose."""


class ConfigurationError(ThingpressError, ValueError):
    """A setting, option or environment variable has an invalid value.

    ``variable`` names the environment variable (or field) and ``value`` the rejected input.
    """

    def __init__(self, message: str, *, variable: str | None = None, value: object = None) -> None:
        super().__init__(message)
        self.variable = variable
        self.value = value

    @classmethod
    def from_validation_error(
        cls, error: ValidationError, *, env_prefix: str | None = None, model: str | None = None
    ) -> ConfigurationError:
        """Turn a pydantic ``ValidationError`` into one error naming every bad field.

        With ``env_prefix`` (e.g. ``"THINGPRESS_"``) each field is named as its environment
        variable (nested fields joined with ``__``); otherwise by its dotted path, and the
        message names ``model``. An error about the input as a whole (not a mapping at all) is
        named after ``model``.

        The result carries ``error`` as ``__cause__`` (pydantic's full report, for debugging):
        raise it with ``raise ... from error``, never ``from None``. Configuration classes
        need not call this: the bases in ``thingpress_core._config`` do.
        """
        problems: list[str] = []
        first_variable: str | None = None
        first_value: object = None
        for item in error.errors(include_url=False):
            parts = [str(p) for p in item.get("loc", ()) if p != "__root__"]
            if not parts:
                name = model or "value"
            elif env_prefix is not None:
                name = env_prefix + "__".join(p.upper() for p in parts)
            else:
                name = ".".join(parts)
            value = item.get("input")
            shown = _short_repr(value)
            problems.append(f"{name}={shown}: {item.get('msg', 'invalid value')}")
            if first_variable is None:
                first_variable, first_value = name, value
        where = f" in {model}" if model and env_prefix is None else ""
        message = f"invalid configuration{where}: " + "; ".join(problems)
        result = cls(message, variable=first_variable, value=first_value)
        result.__cause__ = error
        return result


def _short_repr(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class MissingExtraError(ThingpressError, ImportError):
    """A feature needs an optional dependency that is not installed.

    ``extra`` names the package extra that brings it (``manifests``, ``sandbox``, ``cli``); the
    message says what to run, e.g. ``pip install 'thingpress-core[manifests]'``.
    """

    def __init__(self, message: str, *, extra: str) -> None:
        super().__init__(message)
        self.extra = extra


class CertificateError(ThingpressError, ValueError):
    """A certificate could not be used. ``certificate_id`` and ``source`` say which."""

    def __init__(
        self,
        message: str,
        *,
        certificate_id: str | None = None,
        source: str | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.certificate_id = certificate_id
        self.source = source
        self.reason = reason


class CertificateParseError(CertificateError):
    """Input that is not a certificate in any accepted encoding."""

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        index: int | None = None,
        certificate_id: str | None = None,
    ) -> None:
        super().__init__(message, certificate_id=certificate_id, source=source, reason="parse")
        self.index = index


class CertificateValidationError(CertificateError):
    """A certificate that parses but is not acceptable.

    ``reason`` is a short machine-readable word: ``expired``, ``not_yet_valid``,
    ``untrusted``, ``is_ca``, ``invalid_name``, ...
    """


class ManifestError(ThingpressError, ValueError):
    """A manifest file (or one entry in it) that cannot be read.

    ``source`` names the file, ``index`` the entry or row (0-based; messages show it 1-based as
    "entry N" or "row N").
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        index: int | None = None,
        errors: Sequence[ManifestError] = (),
    ) -> None:
        super().__init__(message)
        self.source = source
        self.index = index
        self.errors: tuple[ManifestError, ...] = tuple(errors)


class ManifestSignatureError(ManifestError):
    """A signed manifest entry whose signature, signer or payload does not verify."""


class PreflightError(ThingpressError):
    """Resources an import needs (policies, thing groups, thing type) do not exist.

    ``missing`` lists them as ``kind:name`` strings, e.g. ``policy:DevicePolicy``.
    """

    def __init__(self, message: str, *, missing: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.missing: tuple[str, ...] = tuple(missing)


class CircuitOpenError(ThingpressError, RuntimeError):
    """A circuit breaker refused the call without making it.

    ``snapshot`` is the breaker's state when it refused; ``retry_after`` the seconds until it
    will let a probe through (None when it is forced open by an operator).
    """

    def __init__(
        self,
        message: str,
        *,
        name: str,
        snapshot: CircuitSnapshot | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.name = name
        self.snapshot = snapshot
        self.retry_after = retry_after


class RateLimitTimeoutError(ThingpressError, TimeoutError):
    """The rate limiter could not hand out a token for ``name`` within the timeout."""

    def __init__(self, message: str, *, name: str, timeout: float) -> None:
        super().__init__(message)
        self.name = name
        self.timeout = timeout


class MessageParseError(ThingpressError, ValueError):
    """An SQS message body that is neither an import request nor a legacy Thingpress message.

    ``message_id`` names the SQS message when known; ``reason`` is a short word:
    ``too_large``, ``encoding``, ``json``, ``not_an_object``, ``unknown_format``,
    ``unsupported_version``, ``invalid`` (fields fail validation), ``legacy`` (a legacy
    message that cannot be converted), ``count`` (several requests where one was expected).
    """

    def __init__(self, message: str, *, message_id: str | None = None, reason: str = "invalid") -> None:
        super().__init__(message)
        self.message_id = message_id
        self.reason = reason


class EnqueueError(ThingpressError):
    """Sending a manifest to SQS failed as a whole (queue missing, access denied, SQS unwell).

    ``report`` says what was sent before the failure; the SQS error is ``__cause__``.
    """

    def __init__(self, message: str, *, report: EnqueueReport) -> None:
        super().__init__(message)
        self.report = report


class LedgerError(ThingpressError):
    """A ledger could not do what was asked: its storage failed, or it is closed or read-only.
    ``location`` names the ledger (a file path or ``dynamodb://TABLE``)."""

    def __init__(self, message: str, *, location: str) -> None:
        super().__init__(message)
        self.location = location


class LedgerBusyError(LedgerError):
    """Another process has the ledger open for writing (or this one has, through another
    object). ``pid`` and ``since`` say which process and since when, when the lock file tells."""

    def __init__(self, location: str, *, pid: int | None, since: str | None, mine: bool = False) -> None:
        if mine:
            message = f"ledger {location} is already open for writing in this process; close it first"
        else:
            holder = f"pid {pid}, since {since}" if pid is not None else "pid unknown"
            message = (
                f"ledger {location} is in use by another process ({holder}); "
                "wait for it to finish or use another ledger"
            )
        super().__init__(message, location=location)
        self.pid = pid
        self.since = since


class AwsServiceError(ThingpressError):
    """An AWS call failed. The original botocore exception is ``__cause__``.

    Attributes: ``service`` (``iot``), ``operation`` (``RegisterCertificateWithoutCA``),
    ``code`` (AWS error code), ``message``, ``request_id``, ``http_status``, where known
    ``certificate_id``, ``thing_name``, ``resource_id`` and ``resource_arn``, and
    ``uncertain_attempts``: the HTTP attempts of this call that AWS may have carried out
    without the answer arriving (the connection dropped after the request was sent, or a 5xx);
    a throttled attempt was not carried out and is not counted.
    """

    def __init__(
        self,
        message: str,
        *,
        service: str,
        operation: str,
        code: str | None = None,
        request_id: str | None = None,
        http_status: int | None = None,
        certificate_id: str | None = None,
        thing_name: str | None = None,
        resource_id: str | None = None,
        resource_arn: str | None = None,
        uncertain_attempts: int = 0,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.service = service
        self.operation = operation
        self.code = code
        self.request_id = request_id
        self.http_status = http_status
        self.certificate_id = certificate_id
        self.thing_name = thing_name
        self.resource_id = resource_id
        self.resource_arn = resource_arn
        self.uncertain_attempts = uncertain_attempts

    @property
    def name(self) -> str:
        """The ``service.Operation`` key, e.g. ``iot.CreateThing``."""
        return f"{self.service}.{self.operation}"

    def __str__(self) -> str:
        parts = [f"{self.name} failed"]
        detail = self.code or "error"
        if self.http_status is not None:
            detail += f" (HTTP {self.http_status})"
        parts.append(f": {detail}")
        if self.message:
            parts.append(f": {self.message}")
        context = []
        if self.certificate_id:
            context.append(f"certificate {self.certificate_id}")
        if self.thing_name:
            context.append(f"thing {self.thing_name}")
        if self.request_id:
            context.append(f"request id {self.request_id}")
        if context:
            parts.append(" [" + ", ".join(context) + "]")
        return "".join(parts).replace("\n", " ")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class ThrottledError(AwsServiceError):
    """The service throttled the call and botocore's retries did not get it through."""


class ResourceNotFoundError(AwsServiceError, LookupError):
    """The named resource (thing, certificate, policy, queue, object) does not exist."""


class ResourceConflictError(AwsServiceError):
    """The resource exists already, or with another configuration or version, or its current
    state (a certificate still active or attached) forbids the request."""


class AccessDeniedError(AwsServiceError, PermissionError):
    """The credentials in use may not make this call."""


class InvalidRequestError(AwsServiceError, ValueError):
    """The request is malformed: a bad parameter, an invalid thing name, ..."""


class LimitExceededError(AwsServiceError):
    """A hard AWS limit was hit (e.g. an 11th policy on a certificate); not a throttle."""


class ServiceUnavailableError(AwsServiceError):
    """The service is unwell or out of reach: HTTP 5xx, timeouts, connection errors."""


class BatchSendError(AwsServiceError):
    """Some messages of an SQS batch were not sent; ``failures`` lists every one.

    An `AwsServiceError` (service ``sqs``, operation ``SendMessageBatch``), so callers that
    handle AWS failures in one place handle it too. ``sent`` counts the messages that went.
    """

    def __init__(self, message: str, *, failures: tuple[FailedMessage, ...], sent: int) -> None:
        codes = {f.code for f in failures}
        super().__init__(
            message,
            service="sqs",
            operation="SendMessageBatch",
            code=codes.pop() if len(codes) == 1 else "BatchEntriesFailed",
        )
        self.failures = failures
        self.sent = sent
