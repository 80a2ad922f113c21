"""botocore's exceptions mapped to the `thingpress_core.errors` tree: the one place that knows them.

The call path (`_call`) maps every ``ClientError`` and ``BotoCoreError`` here before the
breaker, the limiter or any caller sees it, so the rest of the package (the resilience
classifiers, the importer, the Lambda consumer) only ever deals with our own errors.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from thingpress_core.errors import (
    AccessDeniedError,
    AwsServiceError,
    InvalidRequestError,
    LimitExceededError,
    ResourceConflictError,
    ResourceNotFoundError,
    ServiceUnavailableError,
    ThrottledError,
)

__all__ = ["is_throttling_code", "map_aws_error", "map_botocore_error", "map_client_error"]


def map_aws_error(
    error: BaseException,
    *,
    service: str,
    operation: str,
    certificate_id: str | None = None,
    thing_name: str | None = None,
) -> AwsServiceError:
    """Map a botocore ``ClientError`` (an AWS answer) or ``BotoCoreError`` (no answer).

    The caller raises the result ``from error`` so the original stays as ``__cause__``.
    """
    if getattr(error, "response", None) is not None:
        return map_client_error(
            error, service=service, operation=operation, certificate_id=certificate_id, thing_name=thing_name
        )
    return map_botocore_error(
        error, service=service, operation=operation, certificate_id=certificate_id, thing_name=thing_name
    )


def map_client_error(
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
    http_status = int(status_raw) if isinstance(status_raw, int | str) and str(status_raw).isdigit() else None
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


def map_botocore_error(
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
    elif isinstance(error, _credential_errors()):
        # no credentials, or ones botocore cannot load (a failing credential_process, an SSO
        # profile not signed in): no call can succeed until the user fixes them, so not transient
        return AccessDeniedError(
            f"the AWS credentials cannot be loaded ({' '.join(str(error).split()) or kind}): set "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, choose another profile, or sign in with "
            "'aws sso login'",
            service=service,
            operation=operation,
            code=kind,
            certificate_id=certificate_id,
            thing_name=thing_name,
        )
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


def _credential_errors() -> tuple[type[BaseException], ...]:
    """botocore's errors for credentials it has not got or cannot load."""
    from botocore import exceptions as bce

    names = (
        "NoCredentialsError",
        "PartialCredentialsError",
        "CredentialRetrievalError",
        "SSOError",  # SSOTokenLoadError, UnauthorizedSSOTokenError
        "TokenRetrievalError",
        "NoAuthTokenError",
    )
    return tuple(getattr(bce, name) for name in names if hasattr(bce, name))


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
        [
            "ResourceAlreadyExistsException",
            "ConflictException",
            "VersionConflictException",
            # IoT: the resource's state forbids the request (DeleteCertificate on an ACTIVE
            # certificate, HTTP 406; on one still attached to a thing or policy, HTTP 409).
            # Retrying cannot help; changing the resource first (deactivate, detach) does.
            "CertificateStateException",
            "DeleteConflictException",
            # DynamoDB: a write's condition did not hold; a table exists or is changing
            "ConditionalCheckFailedException",
            "ResourceInUseException",
            "TransactionConflictException",
        ],
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
