"""FaultInjector: what it injects, how it counts, and that botocore's retries see it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from thingpress_core.errors import ConfigurationError
from thingpress_core.testing import QUOTA_PRESETS, FaultInjector, Injection


def _client(service: str, attempts: int = 3) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        service,
        region_name="us-east-1",
        config=Config(retries={"mode": "standard", "total_max_attempts": attempts}),
    )


@pytest.fixture
def iot_client(aws: None) -> Any:
    return _client("iot")


@pytest.fixture
def sqs_client(aws: None) -> Any:
    return _client("sqs")


def test_throttle_by_count_goes_through_botocore_retries(iot_client: Any) -> None:
    with FaultInjector(iot_client, fast_retries=True) as faults:
        faults.throttle("CreateThing", times=2)
        response = iot_client.create_thing(thingName="t")
    assert response["ResponseMetadata"]["RetryAttempts"] == 2
    assert faults.records == [
        Injection("iot.CreateThing", "throttle", 1, "HTTP 400 ThrottlingException", "throttle CreateThing"),
        Injection("iot.CreateThing", "throttle", 2, "HTTP 400 ThrottlingException", "throttle CreateThing"),
    ]
    assert faults.attempts == {"iot.CreateThing": 3}
    assert len(faults.retry_delays) == 2
    assert all(d >= 0 for d in faults.retry_delays)


def test_throttle_past_the_attempts_raises_throttling_exception(iot_client: Any) -> None:
    from botocore.exceptions import ClientError

    with FaultInjector(iot_client, fast_retries=True) as faults:
        faults.throttle("iot.DescribeThing")
        with pytest.raises(ClientError) as info:
            iot_client.describe_thing(thingName="t")
    assert info.value.response["Error"]["Code"] == "ThrottlingException"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert faults.count("iot.DescribeThing", kind="throttle") == 3


def test_injected_answer_has_no_side_effect_in_moto(iot_client: Any) -> None:
    from botocore.exceptions import ClientError

    with FaultInjector(iot_client) as faults:
        faults.error("iot.CreateThing", code="InvalidRequestException", status=400, times=1)
        with pytest.raises(ClientError):
            iot_client.create_thing(thingName="ghost")
    assert iot_client.list_things()["things"] == []


def test_error_fields_reach_the_response(iot_client: Any) -> None:
    from botocore.exceptions import ClientError

    with FaultInjector(iot_client) as faults:
        faults.error(
            "iot.RegisterCertificateWithoutCA",
            code="ResourceAlreadyExistsException",
            status=409,
            fields={"resourceId": "abc", "resourceArn": "arn:x"},
        )
        with pytest.raises(ClientError) as info:
            iot_client.register_certificate_without_ca(certificatePem="x", status="ACTIVE")
    assert info.value.response["resourceId"] == "abc"
    assert info.value.response["resourceArn"] == "arn:x"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409


def test_server_error_and_connection_error(iot_client: Any) -> None:
    from botocore.exceptions import (
        ClientError,
        ConnectionClosedError,
        EndpointConnectionError,
        ReadTimeoutError,
    )

    with FaultInjector(iot_client, fast_retries=True) as faults:
        faults.server_error("iot.ListThings", status=503, times=3)
        with pytest.raises(ClientError) as info:
            iot_client.list_things()
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
        for kind, exc_type in [
            ("endpoint", EndpointConnectionError),
            ("closed", ConnectionClosedError),
            ("read_timeout", ReadTimeoutError),
        ]:
            faults.clear()
            faults.connection_error("iot.ListThings", kind=kind)  # type: ignore[arg-type]
            with pytest.raises(exc_type):
                iot_client.list_things()
    assert faults.count(kind="connection_error") == 9
    assert faults.count(kind="server_error") == 3


def test_connection_error_then_success(iot_client: Any) -> None:
    with FaultInjector(iot_client, fast_retries=True) as faults:
        faults.connection_error("iot.ListThings", times=1)
        assert iot_client.list_things()["things"] == []
    assert faults.counts == {"iot.ListThings": 1}


def test_rate_trigger_is_seeded(iot_client: Any) -> None:
    def run(seed: int) -> tuple[list[int], int]:
        with FaultInjector(iot_client, seed=seed, fast_retries=True) as faults:
            faults.throttle("iot.ListThings", rate=0.5)
            for _ in range(20):
                with contextlib.suppress(Exception):
                    iot_client.list_things()
            return [r.attempt for r in faults.records], faults.attempts["iot.ListThings"]

    first, attempts = run(5)
    assert (first, attempts) == run(5)
    assert 0 < len(first) < attempts  # some requests throttled, not all
    assert first != run(6)[0]


def test_after_skips_requests(iot_client: Any) -> None:
    with FaultInjector(iot_client) as faults:
        faults.error("iot.ListThings", code="InvalidRequestException", after=2, times=1)
        iot_client.list_things()
        iot_client.list_things()
        with pytest.raises(Exception, match="InvalidRequestException"):
            iot_client.list_things()
        iot_client.list_things()
    assert [r.attempt for r in faults.records] == [3]


def test_latency_uses_injected_sleep(iot_client: Any) -> None:
    slept: list[float] = []
    with FaultInjector(iot_client, sleep=slept.append) as faults:
        faults.latency("iot.ListThings", 0.25, times=2)
        for _ in range(3):
            iot_client.list_things()
    assert slept == [0.25, 0.25]
    assert faults.count(kind="latency") == 2


def test_quota_preset_throttles_above_the_rate(iot_client: Any) -> None:
    now = [0.0]
    with FaultInjector(iot_client, clock=lambda: now[0], fast_retries=True) as faults:
        faults.quota("aws-iot-defaults", scale=0.3)  # DescribeCertificate: 3/s, burst 3
        outcomes = []
        for _ in range(5):
            try:
                iot_client.describe_certificate(certificateId="0" * 64)
            except Exception as exc:
                outcomes.append(type(exc).__name__)
        assert outcomes.count("ThrottlingException") == 2, outcomes
        now[0] += 1.0  # a second later the bucket is full again
        with pytest.raises(Exception, match="ResourceNotFound"):
            iot_client.describe_certificate(certificateId="0" * 64)
    assert QUOTA_PRESETS["aws-iot-defaults"]["iot.RegisterCertificateWithoutCA"] == 10.0


def test_quota_custom_rates(iot_client: Any) -> None:
    with FaultInjector(iot_client, clock=lambda: 0.0, fast_retries=True) as faults:
        faults.quota({"iot.ListThings": 1.0})
        iot_client.list_things()
        with pytest.raises(Exception, match="ThrottlingException"):
            iot_client.list_things()


def test_partial_batch_failure_on_sqs(sqs_client: Any) -> None:
    url = sqs_client.create_queue(QueueName="q")["QueueUrl"]
    assert sqs_client.meta.service_model.protocol == "json"
    with FaultInjector(sqs_client) as faults:
        faults.partial_batch_failure(entries=[1, 3], code="InternalError")
        response = sqs_client.send_message_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"m{i}"} for i in range(5)]
        )
    assert [e["Id"] for e in response["Successful"]] == ["0", "2", "4"]
    assert [(e["Id"], e["SenderFault"], e["Code"]) for e in response["Failed"]] == [
        ("1", False, "InternalError"),
        ("3", False, "InternalError"),
    ]
    attrs = sqs_client.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    assert attrs["Attributes"]["ApproximateNumberOfMessages"] == "3"


def test_partial_batch_failure_entry_rate(sqs_client: Any) -> None:
    url = sqs_client.create_queue(QueueName="q")["QueueUrl"]
    with FaultInjector(sqs_client, seed=2) as faults:
        faults.partial_batch_failure(entry_rate=1.0)
        response = sqs_client.send_message_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": "m"} for i in range(4)]
        )
    assert response["Successful"] == []
    assert len(response["Failed"]) == 4


def test_sqs_throttle_is_json_protocol(sqs_client: Any) -> None:
    from botocore.exceptions import ClientError

    with FaultInjector(sqs_client, fast_retries=True) as faults:
        faults.throttle("sqs.ListQueues")
        with pytest.raises(ClientError) as info:
            sqs_client.list_queues()
    assert info.value.response["Error"]["Code"] == "ThrottlingException"


def test_attaches_to_a_factory_lazily(factory: Any) -> None:
    with FaultInjector(factory, fast_retries=True) as faults:
        assert faults.attempts == {}
        faults.throttle("iot.ListThings", times=1)
        assert factory.iot().list_things()["things"] == []
    assert faults.counts == {"iot.ListThings": 1}


def test_detach_restores_everything(iot_client: Any) -> None:
    faults = FaultInjector(iot_client, fast_retries=True)
    faults.throttle("iot.ListThings")
    faults.detach()
    faults.detach()  # idempotent
    assert iot_client.list_things()["things"] == []
    assert faults.records == []
    with pytest.raises(ConfigurationError, match="detached"):
        faults.throttle("iot.ListThings")
    # the retry policy is botocore's own again: a throttle sleeps a real (tiny) backoff
    emitter = iot_client.meta.events
    inner = getattr(emitter, "_emitter", emitter)
    handler = inner._unique_id_handlers["retry-config-iot"]["handler"]
    assert type(handler.__self__._retry_policy).__name__ == "RetryPolicy"


@pytest.mark.parametrize(
    ("operation", "match"),
    [
        ("iot.createThing", "no operation"),
        ("CreateThing", "name the service"),
        ("s3.GetObject", "no 's3' client"),
    ],
)
def test_bad_operation_names(aws: None, operation: str, match: str) -> None:
    with (
        FaultInjector([_client("iot"), _client("sqs")]) as faults,
        pytest.raises(ConfigurationError, match=match),
    ):
        faults.throttle(operation)


def test_bad_arguments(iot_client: Any) -> None:
    with FaultInjector(iot_client) as faults:
        with pytest.raises(ConfigurationError):
            faults.throttle("ListThings", rate=1.5)
        with pytest.raises(ConfigurationError):
            faults.throttle("ListThings", times=-1)
        with pytest.raises(ConfigurationError):
            faults.server_error("ListThings", status=404)
        with pytest.raises(ConfigurationError):
            faults.latency("ListThings", -1)
        with pytest.raises(ConfigurationError):
            faults.quota("nope")
        with pytest.raises(ConfigurationError):
            faults.partial_batch_failure("iot.ListThings")
    with pytest.raises(ConfigurationError):
        FaultInjector(object())  # type: ignore[arg-type]


def test_wildcard_matches_every_operation(iot_client: Any) -> None:
    with FaultInjector(iot_client) as faults:
        faults.error("iot.*", code="InvalidRequestException")
        for call in (iot_client.list_things, iot_client.list_thing_groups):
            with pytest.raises(Exception, match="InvalidRequestException"):
                call()
    assert faults.counts == {"iot.ListThings": 1, "iot.ListThingGroups": 1}


def test_s3_errors_are_rest_xml(aws: None) -> None:
    from botocore.exceptions import ClientError

    s3 = _client("s3", attempts=1)
    with FaultInjector(s3) as faults:
        faults.error("s3.HeadBucket", code="AccessDenied", status=403)
        faults.error("s3.ListBuckets", code="AccessDenied", status=403, message="a <b> & c")
        with pytest.raises(ClientError) as info:
            s3.list_buckets()
    assert info.value.response["Error"] == {"Code": "AccessDenied", "Message": "a <b> & c"}


@pytest.fixture
def threaded(iot_client: Any) -> Iterator[FaultInjector]:
    with FaultInjector(iot_client, seed=9) as faults:
        yield faults


def test_counts_are_exact_under_threads(iot_client: Any, threaded: FaultInjector) -> None:
    from concurrent.futures import ThreadPoolExecutor

    threaded.latency("iot.ListThings", 0.0, times=30)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: iot_client.list_things(), range(50)))
    assert threaded.attempts == {"iot.ListThings": 50}
    assert threaded.count("iot.ListThings") == 30
