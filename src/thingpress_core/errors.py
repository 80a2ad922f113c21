"""Everything thingpress-core raises, in one tree.

```
ThingpressError
├── ConfigurationError          (also ValueError)  a setting or option is invalid
├── CertificateError            (also ValueError)
│   ├── CertificateParseError                      bytes that are not a certificate
│   └── CertificateValidationError                 a certificate that is not acceptable
├── ManifestError               (also ValueError)  a vendor manifest that cannot be read
│   └── ManifestSignatureError                     a manifest entry whose signature fails
├── PreflightError                                 policies, groups or thing type missing
├── CircuitOpenError            (also RuntimeError) a breaker refused the call
├── RateLimitTimeoutError       (also TimeoutError) no token before the deadline
└── AwsServiceError                                an AWS call failed
    ├── ThrottledError                             throttled, after botocore's retries
    ├── ResourceNotFoundError   (also LookupError)
    ├── ResourceConflictError                      already exists, version conflict
    ├── AccessDeniedError       (also PermissionError)
    ├── InvalidRequestError     (also ValueError)  the request itself is wrong
    ├── LimitExceededError                         a hard limit, not a throttle
    └── ServiceUnavailableError                    5xx, timeouts, connection errors
```

Outside the tree, because it is not an error but Ctrl-C: `ImportInterrupted`, a
``KeyboardInterrupt`` whose ``report`` is the partial `ImportReport` of an interrupted
``import_all`` (code that knows nothing of it still stops as on any Ctrl-C).

Three more live beside the code that raises them: `thingpress_core.services.BatchSendError`
(an `AwsServiceError`: SQS messages that could not be sent), and in
`thingpress_core.integrations.aws_lambda`, `MessageParseError` (a `ThingpressError` and
`ValueError`: an SQS body that is not an import request) and `EnqueueError`.

Every error speaks English in one line and names the input it is about: the file, row or
entry, the certificate id, or the AWS operation. An `AwsServiceError` keeps the original
botocore exception as ``__cause__``.

botocore is never imported here at module level: mapping functions look at the exception
they are given, so ``import thingpress_core`` stays free of boto3.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import ValidationError

    from thingpress_core.importer import ImportReport
    from thingpress_core.resilience import CircuitSnapshot

__all__ = [
    "AccessDeniedError",
    "AwsServiceError",
    "CertificateError",
    "CertificateParseError",
    "CertificateValidationError",
    "CircuitOpenError",
    "ConfigurationError",
    "ImportInterrupted",
    "InvalidRequestError",
    "LimitExceededError",
    "ManifestError",
    "ManifestSignatureError",
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
        self.errors = tuple(errors)


class ManifestSignatureError(ManifestError):
    """A signed manifest entry whose signature, signer or payload does not verify."""


class PreflightError(ThingpressError):
    """Resources an import needs (policies, thing groups, thing type) do not exist.

    ``missing`` lists them as ``kind:name`` strings, e.g. ``policy:DevicePolicy``.
    """

    def __init__(self, message: str, *, missing: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.missing = tuple(missing)


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

    @classmethod
    def from_client_error(
        cls,
        error: BaseException,
        *,
        service: str,
        operation: str,
        certificate_id: str | None = None,
        thing_name: str | None = None,
    ) -> AwsServiceError:
        """Map a ``botocore.exceptions.ClientError`` to the matching subclass.

        The caller raises the result ``from error`` so the original stays as ``__cause__``.
        """
        response: Mapping[str, Any] = getattr(error, "response", None) or {}
        err: Mapping[str, Any] = response.get("Error") or {}
        meta: Mapping[str, Any] = response.get("ResponseMetadata") or {}
        code = str(err.get("Code") or "") or None
        message = str(err.get("Message") or err.get("message") or "") or ""
        status_raw = meta.get("HTTPStatusCode")
        http_status = (
            int(status_raw) if isinstance(status_raw, int | str) and str(status_raw).isdigit() else None
        )
        request_id = meta.get("RequestId") or None
        error_class = _class_for(code, http_status)
        return error_class(
            message or (code or "unknown error"),
            service=service,
            operation=operation,
            code=code,
            request_id=str(request_id) if request_id else None,
            http_status=http_status,
            certificate_id=certificate_id,
            thing_name=thing_name,
            resource_id=_opt_str(response.get("resourceId")),
            resource_arn=_opt_str(response.get("resourceArn")),
        )

    @classmethod
    def from_botocore_error(
        cls,
        error: BaseException,
        *,
        service: str,
        operation: str,
        certificate_id: str | None = None,
        thing_name: str | None = None,
    ) -> AwsServiceError:
        """Map a ``botocore.exceptions.BotoCoreError`` (no HTTP answer) to a subclass.

        Connection errors and timeouts become `ServiceUnavailableError`; parameter
        validation becomes `InvalidRequestError`; anything else stays `AwsServiceError`.
        """
        from botocore import exceptions as bce

        kind = type(error).__name__
        error_class: type[AwsServiceError]
        if isinstance(
            error,
            bce.ConnectionError
            | bce.HTTPClientError
            | bce.ConnectTimeoutError
            | bce.ReadTimeoutError
            | bce.EndpointConnectionError,
        ):
            error_class = ServiceUnavailableError
        elif isinstance(error, bce.ParamValidationError | bce.ValidationError):
            error_class = InvalidRequestError
        else:
            error_class = AwsServiceError
        if error_class is InvalidRequestError:
            text = _describe_validation(str(error))
        else:
            text = str(error).replace("\n", " ").strip()
        return error_class(
            text or kind,
            service=service,
            operation=operation,
            code=kind,
            certificate_id=certificate_id,
            thing_name=thing_name,
        )


_PARAM_PROBLEM = re.compile(
    r"(Invalid [a-z ]+? for parameter) ([\w.\[\]]+)"
    r'|(Missing required parameter|Unknown parameter) in [\w.\[\]]+: "([^"]+)"'
)


def _describe_validation(report: str) -> str:
    """botocore's parameter report without the rejected values (one may be a certificate body)."""
    problems = []
    for match in _PARAM_PROBLEM.finditer(report):
        if match.group(1):
            problems.append(f"{match.group(1)} {match.group(2)}")
        else:
            problems.append(f"{match.group(3)} {match.group(4)}")
    return "Parameter validation failed: " + ("; ".join(problems) or "see the request parameters")


def _opt_str(value: object) -> str | None:
    return str(value) if value else None


class ImportInterrupted(KeyboardInterrupt):
    """Ctrl-C (or another ``KeyboardInterrupt``) during ``CertificateImporter.import_all``.

    ``report`` is the partial `~thingpress_core.importer.ImportReport`: the certificates
    that finished, and in ``report.unfinished`` the ids of those in flight or waiting for a
    retry round. A ``KeyboardInterrupt`` on purpose: callers that do not handle it stop as
    they would on any Ctrl-C.
    """

    def __init__(self, report: ImportReport) -> None:
        super().__init__(report.summary())
        self.report = report


class ThrottledError(AwsServiceError):
    """The service throttled the call and botocore's retries did not get it through."""


class ResourceNotFoundError(AwsServiceError, LookupError):
    """The named resource (thing, certificate, policy, queue, object) does not exist."""


class ResourceConflictError(AwsServiceError):
    """The resource exists already, or with another configuration or version."""


class AccessDeniedError(AwsServiceError, PermissionError):
    """The credentials in use may not make this call."""


class InvalidRequestError(AwsServiceError, ValueError):
    """The request is malformed: a bad parameter, an invalid thing name, ..."""


class LimitExceededError(AwsServiceError):
    """A hard AWS limit was hit (e.g. an 11th policy on a certificate); not a throttle."""


class ServiceUnavailableError(AwsServiceError):
    """The service is unwell or out of reach: HTTP 5xx, timeouts, connection errors."""


_CODE_MAP: dict[str, type[AwsServiceError]] = {
    **dict.fromkeys(
        [
            "ThrottlingException",
            "Throttling",
            "TooManyRequestsException",
            "RequestLimitExceeded",
            "SlowDown",
            "RequestThrottled",
            "RequestThrottledException",
            "ProvisionedThroughputExceededException",
            "AWS.SimpleQueueService.RequestThrottled",
        ],
        ThrottledError,
    ),
    **dict.fromkeys(
        [
            "ResourceNotFoundException",
            "NoSuchKey",
            "NoSuchBucket",
            "NotFound",
            "QueueDoesNotExist",
            "AWS.SimpleQueueService.NonExistentQueue",
        ],
        ResourceNotFoundError,
    ),
    **dict.fromkeys(
        ["ResourceAlreadyExistsException", "ConflictException", "VersionConflictException"],
        ResourceConflictError,
    ),
    **dict.fromkeys(
        ["AccessDenied", "AccessDeniedException", "UnauthorizedException", "UnrecognizedClientException"],
        AccessDeniedError,
    ),
    **dict.fromkeys(
        [
            "InvalidRequestException",
            "ValidationException",
            "ValidationError",
            "InvalidParameterValue",
            "InvalidParameterException",
            "MalformedPolicyDocumentException",
            "CertificateValidationException",
            "InvalidArgument",
        ],
        InvalidRequestError,
    ),
    "LimitExceededException": LimitExceededError,
    **dict.fromkeys(
        [
            "ServiceUnavailableException",
            "ServiceUnavailable",
            "InternalFailureException",
            "InternalFailure",
            "InternalError",
            "InternalServerError",
        ],
        ServiceUnavailableError,
    ),
}


def is_throttling_code(code: str | None) -> bool:
    """True when an AWS error code means "throttled" (it maps to `ThrottledError`)."""
    return code is not None and _CODE_MAP.get(code) is ThrottledError


def _class_for(code: str | None, http_status: int | None) -> type[AwsServiceError]:
    if code is not None and code in _CODE_MAP:
        return _CODE_MAP[code]
    if http_status is not None and 500 <= http_status <= 599:
        return ServiceUnavailableError
    return AwsServiceError
