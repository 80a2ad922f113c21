from __future__ import annotations

from typing import Any

import pytest
from botocore import exceptions as bce
from botocore.exceptions import ClientError

from thingpress_core import errors as E
from thingpress_core.services._errors import map_botocore_error, map_client_error

_CASES: list[tuple[str, int, type[E.AwsServiceError]]] = [
    ("ThrottlingException", 400, E.ThrottledError),
    ("TooManyRequestsException", 429, E.ThrottledError),
    ("RequestLimitExceeded", 400, E.ThrottledError),
    ("SlowDown", 503, E.ThrottledError),
    ("RequestThrottled", 400, E.ThrottledError),
    ("ResourceNotFoundException", 404, E.ResourceNotFoundError),
    ("NoSuchKey", 404, E.ResourceNotFoundError),
    ("NoSuchBucket", 404, E.ResourceNotFoundError),
    ("QueueDoesNotExist", 400, E.ResourceNotFoundError),
    ("AWS.SimpleQueueService.NonExistentQueue", 400, E.ResourceNotFoundError),
    ("ResourceAlreadyExistsException", 409, E.ResourceConflictError),
    ("ConflictException", 409, E.ResourceConflictError),
    ("VersionConflictException", 409, E.ResourceConflictError),
    ("AccessDenied", 403, E.AccessDeniedError),
    ("AccessDeniedException", 403, E.AccessDeniedError),
    ("UnauthorizedException", 401, E.AccessDeniedError),
    ("InvalidRequestException", 400, E.InvalidRequestError),
    ("ValidationException", 400, E.InvalidRequestError),
    ("LimitExceededException", 410, E.LimitExceededError),
    ("ServiceUnavailableException", 503, E.ServiceUnavailableError),
    ("InternalFailureException", 500, E.ServiceUnavailableError),
    ("SomethingNewException", 502, E.ServiceUnavailableError),
    ("SomethingNewException", 400, E.AwsServiceError),
]


def _client_error(code: str, status: int, message: str = "It went wrong", **top: Any) -> ClientError:
    response: dict[str, Any] = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"RequestId": "req-1234", "HTTPStatusCode": status, "HTTPHeaders": {}},
        **top,
    }
    return ClientError(response, "RegisterCertificateWithoutCA")  # type: ignore[arg-type]


@pytest.mark.parametrize(("code", "status", "expected"), _CASES)
def test_client_error_mapping(code: str, status: int, expected: type[E.AwsServiceError]) -> None:
    original = _client_error(code, status)
    mapped = map_client_error(
        original, service="iot", operation="RegisterCertificateWithoutCA", certificate_id="ab" * 32
    )
    assert type(mapped) is expected
    assert (mapped.service, mapped.operation, mapped.code) == ("iot", "RegisterCertificateWithoutCA", code)
    assert mapped.http_status == status
    assert mapped.request_id == "req-1234"
    assert mapped.message == "It went wrong"
    assert mapped.certificate_id == "ab" * 32
    assert mapped.name == "iot.RegisterCertificateWithoutCA"
    line = str(mapped)
    assert "\n" not in line
    assert line.startswith("iot.RegisterCertificateWithoutCA failed: " + code)
    assert f"HTTP {status}" in line
    assert "req-1234" in line
    assert "ab" * 32 in line


def test_original_is_kept_as_cause() -> None:
    original = _client_error("ThrottlingException", 400)
    with pytest.raises(E.ThrottledError) as info:
        try:
            raise original
        except ClientError as exc:
            raise map_client_error(exc, service="iot", operation="CreateThing") from exc
    assert info.value.__cause__ is original


def test_conflict_carries_resource_id_and_arn_from_top_level() -> None:
    original = _client_error(
        "ResourceAlreadyExistsException",
        409,
        resourceId="f" * 64,
        resourceArn="arn:aws:iot:us-east-1:123456789012:cert/" + "f" * 64,
    )
    mapped = map_client_error(original, service="iot", operation="RegisterCertificateWithoutCA")
    assert isinstance(mapped, E.ResourceConflictError)
    assert mapped.resource_id == "f" * 64
    assert mapped.resource_arn is not None
    assert mapped.resource_arn.endswith("f" * 64)


def test_builtin_bases_keep_existing_handlers_working() -> None:
    assert issubclass(E.InvalidRequestError, ValueError)
    assert issubclass(E.ResourceNotFoundError, LookupError)
    assert issubclass(E.AccessDeniedError, PermissionError)
    assert issubclass(E.ConfigurationError, ValueError)
    assert issubclass(E.CertificateParseError, E.CertificateError)
    assert issubclass(E.CertificateError, ValueError)
    assert issubclass(E.ManifestSignatureError, E.ManifestError)
    assert issubclass(E.RateLimitTimeoutError, TimeoutError)
    for cls in (E.AwsServiceError, E.CircuitOpenError, E.ConfigurationError, E.ManifestError):
        assert issubclass(cls, E.ThingpressError)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            bce.EndpointConnectionError(endpoint_url="https://iot.us-east-1.amazonaws.com"),
            E.ServiceUnavailableError,
        ),
        (bce.ConnectTimeoutError(endpoint_url="https://iot"), E.ServiceUnavailableError),
        (bce.ReadTimeoutError(endpoint_url="https://iot"), E.ServiceUnavailableError),
        (bce.ConnectionClosedError(endpoint_url="https://iot"), E.ServiceUnavailableError),
        (bce.ParamValidationError(report="thingName is required"), E.InvalidRequestError),
        (bce.NoCredentialsError(), E.AccessDeniedError),  # permanent: the user must fix them
    ],
)
def test_botocore_error_mapping(error: bce.BotoCoreError, expected: type[E.AwsServiceError]) -> None:
    mapped = map_botocore_error(error, service="iot", operation="CreateThing")
    assert type(mapped) is expected
    assert mapped.code == type(error).__name__
    assert mapped.http_status is None
    assert str(mapped).startswith("iot.CreateThing failed: " + type(error).__name__)


def test_missing_fields_still_print_one_line() -> None:
    mapped = map_client_error(ClientError({}, "GetObject"), service="s3", operation="GetObject")  # type: ignore[arg-type]
    assert type(mapped) is E.AwsServiceError
    assert mapped.code is None
    assert str(mapped).startswith("s3.GetObject failed")


def test_configuration_error_from_validation_lists_every_field() -> None:
    from pydantic import BaseModel, ValidationError

    class Sample(BaseModel):
        a: int
        b: int

    with pytest.raises(ValidationError) as info:
        Sample(a="x", b="y")  # type: ignore[arg-type]
    err = E.ConfigurationError.from_validation_error(info.value, env_prefix="THINGPRESS_")
    assert "THINGPRESS_A='x'" in str(err)
    assert "THINGPRESS_B='y'" in str(err)
    assert err.variable == "THINGPRESS_A"


def test_parameter_validation_never_repeats_the_rejected_value() -> None:
    import boto3

    client = boto3.client("iot", region_name="us-east-1")
    secret = "-----BEGIN CERTIFICATE-----\nMIIBsecret, type: <class 'str'>, valid types: x\n"
    with pytest.raises(bce.ParamValidationError) as info:
        client.register_certificate_without_ca(certificatePem=secret.encode(), status=5)  # type: ignore[arg-type]
    mapped = map_botocore_error(info.value, service="iot", operation="RegisterCertificateWithoutCA")
    assert isinstance(mapped, E.InvalidRequestError)
    assert "certificatePem" in str(mapped)
    assert "status" in str(mapped)
    assert "MIIB" not in str(mapped)
    assert "BEGIN" not in str(mapped)
