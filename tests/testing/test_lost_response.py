"""FaultInjector.lost_response: the service acts on a request whose answer never arrives."""

from __future__ import annotations

from typing import Any

import pytest

from thingpress_core.errors import ConfigurationError
from thingpress_core.testing import FaultInjector, Injection


def _client(service: str, attempts: int = 3, **kwargs: Any) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        service,
        region_name="us-east-1",
        config=Config(retries={"mode": "standard", "total_max_attempts": attempts}),
        **kwargs,
    )


@pytest.fixture
def iot_client(aws: None) -> Any:
    return _client("iot")


@pytest.fixture
def pem() -> str:
    from thingpress_core.certificates.generate import generate_device_certificates

    return next(generate_device_certificates(1)).pem


def test_a_lost_register_answer_comes_back_as_409_after_one_retry(iot_client: Any, pem: str) -> None:
    from botocore.exceptions import ClientError

    with FaultInjector(iot_client, fast_retries=True) as faults:
        faults.lost_response("iot.RegisterCertificateWithoutCA", times=1)
        with pytest.raises(ClientError) as info:
            iot_client.register_certificate_without_ca(certificatePem=pem, status="ACTIVE")
    error = info.value.response
    assert error["Error"]["Code"] == "ResourceAlreadyExistsException"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 409
    assert error["ResponseMetadata"]["RetryAttempts"] == 1
    assert len(iot_client.list_certificates()["certificates"]) == 1  # the first attempt registered it
    assert faults.records == [
        Injection(
            "iot.RegisterCertificateWithoutCA",
            "lost_response",
            1,
            "HTTP 200 answer lost",
            "lost_response iot.RegisterCertificateWithoutCA",
        )
    ]
    assert faults.attempts == {"iot.RegisterCertificateWithoutCA": 2}  # the relay is not counted again
    assert len(faults.retry_delays) == 1  # botocore's own retry decision, with its backoff skipped


def test_other_retry_handlers_see_a_dropped_connection_not_a_success(iot_client: Any) -> None:
    from botocore.exceptions import ConnectionClosedError

    seen: list[tuple[object, str | None]] = []

    def on_attempt(response: Any = None, caught_exception: Any = None, **_: Any) -> None:
        status = None if response is None else response[1]["ResponseMetadata"]["HTTPStatusCode"]
        seen.append((status, type(caught_exception).__name__ if caught_exception else None))

    iot_client.meta.events.register("needs-retry.iot", on_attempt)
    with FaultInjector(iot_client, fast_retries=True) as faults:
        faults.lost_response("iot.CreateThing", times=1)
        response = iot_client.create_thing(thingName="t1")
    assert seen == [(None, ConnectionClosedError.__name__), (200, None)]
    assert response["ResponseMetadata"]["RetryAttempts"] == 1  # CreateThing repeated is a success


@pytest.mark.parametrize(
    ("kind", "error"),
    [("closed", "ConnectionClosedError"), ("read_timeout", "ReadTimeoutError")],
)
def test_every_answer_lost_ends_in_the_connection_error_after_the_last_attempt(
    iot_client: Any, kind: Any, error: str
) -> None:
    with FaultInjector(iot_client, fast_retries=True) as faults:
        faults.lost_response("iot.CreateThing", kind=kind)
        with pytest.raises(Exception) as info:
            iot_client.create_thing(thingName="t1")
    assert type(info.value).__name__ == error
    assert faults.attempts == {"iot.CreateThing": 3}  # botocore's attempt limit still holds
    assert faults.count("iot.CreateThing", kind="lost_response") == 3
    assert [t["thingName"] for t in iot_client.list_things()["things"]] == ["t1"]  # moto did act


def test_triggers_and_other_rules_combine(iot_client: Any) -> None:
    slept: list[float] = []
    with FaultInjector(iot_client, sleep=slept.append, fast_retries=True) as faults:
        faults.latency("iot.CreateThing", 0.5, times=1)
        faults.lost_response("iot.CreateThing", after=1, times=1)
        iot_client.create_thing(thingName="first")  # let through (after=1), with latency
        response = iot_client.create_thing(thingName="second")  # answer lost once, then retried
    assert slept == [0.5]
    assert response["ResponseMetadata"]["RetryAttempts"] == 1
    assert [(r.kind, r.attempt) for r in faults.records] == [("latency", 1), ("lost_response", 2)]


def test_bad_kind_is_a_configuration_error(iot_client: Any) -> None:
    with FaultInjector(iot_client) as faults, pytest.raises(ConfigurationError, match="kind"):
        faults.lost_response("iot.CreateThing", kind="endpoint")  # type: ignore[arg-type]


def test_a_lost_answer_over_http_reaches_moto_server(pem: str) -> None:
    from botocore.exceptions import ClientError

    from thingpress_core.sandbox import Sandbox

    with Sandbox() as box:
        iot = box.factory.iot()
        with FaultInjector(box.factory, fast_retries=True) as faults:
            faults.lost_response("iot.RegisterCertificateWithoutCA", times=1)
            with pytest.raises(ClientError) as info:
                iot.register_certificate_without_ca(certificatePem=pem, status="ACTIVE")
        assert info.value.response["ResponseMetadata"]["RetryAttempts"] == 1
        assert info.value.response["Error"]["Code"] == "ResourceAlreadyExistsException"
        assert len(iot.list_certificates()["certificates"]) == 1
    assert faults.count(kind="lost_response") == 1


def test_the_package_keeps_its_public_names_and_stays_out_of_import_thingpress_core() -> None:
    import os
    import subprocess
    import sys

    import thingpress_core.testing as testing

    assert testing.__all__ == [
        "QUOTA_PRESETS",
        "ConnectionErrorKind",
        "FaultInjector",
        "FaultKind",
        "Injection",
    ]
    assert FaultInjector.__module__ == "thingpress_core.testing"
    code = (
        "import sys, thingpress_core; a = 'thingpress_core.testing' in sys.modules;"
        "import thingpress_core.testing; print(a, 'botocore' in sys.modules)"
    )
    python = os.environ.get("THINGPRESS_TEST_SUBPROCESS_PYTHON", sys.executable)
    out = subprocess.run([python, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.split() == ["False", "False"]  # botocore loads only when an injector attaches
