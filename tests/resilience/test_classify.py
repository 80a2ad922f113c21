"""The shared classification of exceptions."""

from __future__ import annotations

import pytest

from thingpress_core.errors import (
    AccessDeniedError,
    AwsServiceError,
    CircuitOpenError,
    InvalidRequestError,
    LimitExceededError,
    RateLimitTimeoutError,
    ResourceConflictError,
    ResourceNotFoundError,
    ServiceUnavailableError,
    ThrottledError,
)
from thingpress_core.resilience import is_service_failure, is_throttle, is_transient

KW = {"service": "iot", "operation": "CreateThing"}

CASES: list[tuple[BaseException, bool, bool, bool]] = [
    # exception, is_throttle, is_transient, is_service_failure
    (ThrottledError("t", **KW), True, True, True),
    (ServiceUnavailableError("u", **KW), False, True, True),
    (CircuitOpenError("open", name="iot.CreateThing"), False, True, False),
    (RateLimitTimeoutError("late", name="iot.CreateThing", timeout=1), False, True, False),
    (TimeoutError("slow"), False, True, True),
    (ConnectionRefusedError("refused"), False, True, True),
    (InvalidRequestError("bad", **KW), False, False, False),
    (ResourceNotFoundError("missing", **KW), False, False, False),
    (ResourceConflictError("exists", **KW), False, False, False),
    (AccessDeniedError("denied", **KW), False, False, False),
    (LimitExceededError("hard limit", **KW), False, False, False),
    (AwsServiceError("other", **KW), False, False, False),
    (ValueError("x"), False, False, False),
]


@pytest.mark.parametrize(("exc", "throttle", "transient", "failure"), CASES)
def test_classification(exc: BaseException, throttle: bool, transient: bool, failure: bool) -> None:
    assert is_throttle(exc) is throttle
    assert is_transient(exc) is transient
    assert is_service_failure(exc) is failure


def test_botocore_errors_are_classified_once_mapped_by_the_call_path() -> None:
    # The classifiers know only our own errors; the call path maps botocore's first.
    from botocore import exceptions as bce

    from thingpress_core.services import map_aws_error

    for exc in (
        bce.EndpointConnectionError(endpoint_url="https://iot.us-east-1.amazonaws.com"),
        bce.ConnectTimeoutError(endpoint_url="https://iot.us-east-1.amazonaws.com"),
        bce.ReadTimeoutError(endpoint_url="https://iot.us-east-1.amazonaws.com"),
    ):
        assert not is_transient(exc)  # unmapped, it is not ours: neutral
        mapped = map_aws_error(exc, service="iot", operation="CreateThing")
        assert is_transient(mapped)
        assert is_service_failure(mapped)
        assert not is_throttle(mapped)
    validation = map_aws_error(bce.ParamValidationError(report="bad"), service="iot", operation="CreateThing")
    assert not is_transient(validation)
    assert not is_service_failure(validation)


def test_import_does_not_load_botocore() -> None:
    import subprocess
    import sys

    code = (
        "import sys, thingpress_core, thingpress_core.resilience; "
        "from thingpress_core.resilience import is_transient; is_transient(ValueError()); "
        "print('botocore' in sys.modules or 'boto3' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
