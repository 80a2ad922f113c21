"""End to end in moto: enqueue, receive in batches of 10, handle, delete successes, repeat."""

from __future__ import annotations

import collections
import json
import math
from typing import Any

import pytest

from thingpress_core.certificates import DeviceCertificate
from thingpress_core.certificates.generate import generate_device_certificates
from thingpress_core.clients import ClientFactory
from thingpress_core.importer import CertificateImporter, ImportOptions
from thingpress_core.integrations.aws_lambda import (
    SQSConsumer,
    build_importer,
    default_runtime,
    enqueue_manifest,
    handle_sqs_event,
)
from thingpress_core.resilience import (
    DEFAULT_RATE_LIMITS,
    CircuitBreakerRegistry,
    CircuitBreakerSettings,
    ResilienceSettings,
)
from thingpress_core.services import IoTService, ReceivedMessage, SQSService
from thingpress_core.settings import ThingpressSettings
from thingpress_core.testing import FaultInjector

OPTIONS = ImportOptions(policies=("DevicePolicy",), thing_groups=("Fleet",), thing_type="Sensor")


def unlimited_settings(**extra: Any) -> ThingpressSettings:
    """Two botocore attempts, no rate limits (moto does not need pacing), breakers off."""
    resilience = ResilienceSettings(
        rate_limits=dict.fromkeys(DEFAULT_RATE_LIMITS, math.inf),
        breaker_defaults=CircuitBreakerSettings(enabled=False),
    )
    values: dict[str, Any] = {
        "region": "us-east-1",
        "account_id": "123456789012",
        "total_max_attempts": 2,
        "resilience": resilience,
    }
    values.update(extra)
    return ThingpressSettings(**values)


def create_resources(factory: ClientFactory) -> None:
    iot = factory.iot()
    iot.create_policy(
        policyName="DevicePolicy",
        policyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]}
        ),
    )
    iot.create_thing_group(thingGroupName="Fleet")
    iot.create_thing_type(thingTypeName="Sensor")


def as_event(messages: list[ReceivedMessage]) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": m.message_id,
                "receiptHandle": m.receipt_handle,
                "body": m.body,
                "attributes": m.attributes,
                "eventSource": "aws:sqs",
            }
            for m in messages
        ]
    }


def all_pages(method: Any, key: str, **params: Any) -> list[Any]:
    items: list[Any] = []
    token: str | None = None
    while True:
        answer = method(**params, **({"nextToken": token} if token else {}))
        items.extend(answer.get(key, []))
        token = answer.get("nextToken")
        if not token:
            return items


def test_250_certificates_through_sqs_with_throttling(aws: None) -> None:
    settings = unlimited_settings()
    factory = ClientFactory(settings)
    create_resources(factory)
    sqs = SQSService(factory, settings=settings)
    url = factory.sqs().create_queue(QueueName="imports")["QueueUrl"]
    certs: list[DeviceCertificate] = list(generate_device_certificates(250, cn_prefix="e2e-"))

    report = enqueue_manifest(iter(certs), url, options=OPTIONS, sqs=sqs)
    assert (report.total, report.sent, report.failed) == (250, 250, ())

    importer = CertificateImporter(IoTService(factory, settings=settings), options=ImportOptions())
    deliveries: collections.Counter[str] = collections.Counter()
    retried = rounds = 0
    with FaultInjector(factory, seed=11, fast_retries=True) as faults:
        faults.throttle("iot.RegisterCertificateWithoutCA", rate=0.45)
        faults.throttle("iot.CreateThing", rate=0.25)
        faults.server_error("iot.AddThingToThingGroup", rate=0.15)
        for _ in range(400):  # bounded: a record looping forever fails the test
            rounds += 1
            messages = sqs.receive(url, max_messages=10, visibility_timeout=0)
            if not messages:
                break
            deliveries.update(m.message_id for m in messages)
            response = handle_sqs_event(as_event(messages), importer=importer)
            failed = {item["itemIdentifier"] for item in response["batchItemFailures"]}
            retried += len(failed)
            done = [m.receipt_handle for m in messages if m.message_id not in failed]
            assert sqs.delete_batch(url, done) == len(done)
        else:
            pytest.fail("the queue did not drain in 400 rounds")
        injected = faults.count()
    assert injected > 50  # the faults really fired
    assert retried > 0  # and some records came back
    assert len(deliveries) == 250  # every message was seen
    assert max(deliveries.values()) < 10  # and none looped
    depth = sqs.queue_depth(url)
    assert depth.total == 0

    iot = factory.iot()
    registered = all_pages(iot.list_certificates, "certificates", pageSize=250)
    assert sorted(c["certificateId"] for c in registered) == sorted(c.certificate_id for c in certs)
    things = all_pages(iot.list_things, "things", maxResults=250)
    assert sorted(t["thingName"] for t in things) == sorted(c.common_name or "" for c in certs)
    assert {t.get("thingTypeName") for t in things} == {"Sensor"}
    in_group = all_pages(iot.list_things_in_thing_group, "things", thingGroupName="Fleet", maxResults=250)
    assert len(set(in_group)) == 250
    for cert in certs[::25]:  # exactly one principal per thing, the right one
        principals = iot.list_thing_principals(thingName=cert.common_name or "")["principals"]
        assert principals == [f"arn:aws:iot:us-east-1:123456789012:cert/{cert.certificate_id}"]


def test_legacy_message_imports_end_to_end(aws: None) -> None:
    import base64

    settings = unlimited_settings()
    factory = ClientFactory(settings)
    create_resources(factory)
    iot_client = factory.iot()
    iot_client.create_thing_group(thingGroupName="Group1")
    cert = next(generate_device_certificates(1, cn_prefix="legacy-"))
    body = json.dumps(
        {
            "certificate": str(base64.b64encode(cert.pem.encode("ascii"))),
            "thing": "legacy-thing-1",
            "policies": [{"name": "DevicePolicy"}],
            "thing_groups": [{"arn": "arn:aws:iot:us-east-1:123456789012:thinggroup/Group1"}],
            "thing_type_name": "Sensor",
        }
    )
    importer = CertificateImporter(IoTService(factory, settings=settings), options=ImportOptions())
    event = {"Records": [{"messageId": "legacy-1", "body": body, "eventSource": "aws:sqs"}]}
    assert handle_sqs_event(event, importer=importer) == {"batchItemFailures": []}
    thing = iot_client.describe_thing(thingName="legacy-thing-1")
    assert thing["thingTypeName"] == "Sensor"
    groups = iot_client.list_thing_groups_for_thing(thingName="legacy-thing-1")["thingGroups"]
    assert [g["groupName"] for g in groups] == ["Group1"]
    arn = f"arn:aws:iot:us-east-1:123456789012:cert/{cert.certificate_id}"
    assert iot_client.list_attached_policies(target=arn)["policies"][0]["policyName"] == "DevicePolicy"
    assert (
        iot_client.describe_certificate(certificateId=cert.certificate_id)["certificateDescription"]["status"]
        == "ACTIVE"
    )


def test_an_open_breaker_makes_records_item_failures(aws: None) -> None:
    settings = unlimited_settings(
        resilience=ResilienceSettings(rate_limits=dict.fromkeys(DEFAULT_RATE_LIMITS, math.inf))
    )
    factory = ClientFactory(settings)
    registry = CircuitBreakerRegistry(settings.resilience)
    registry.get("iot.RegisterCertificateWithoutCA").force_open()
    importer = CertificateImporter(
        IoTService(factory, settings=settings, registry=registry), options=ImportOptions()
    )
    certs = list(generate_device_certificates(4, cn_prefix="breaker-"))
    from thingpress_core.integrations.aws_lambda import ImportRequest

    bodies = [ImportRequest.from_certificate(c).to_body() for c in certs]
    event = {"Records": [{"messageId": f"b{i}", "body": b} for i, b in enumerate(bodies)]}
    result = SQSConsumer(importer, give_up_after=2).process(event)
    assert [r.disposition for r in result.records] == ["retry", "retry", "deferred", "deferred"]
    reason = result.records[0].reason or ""
    assert "iot.RegisterCertificateWithoutCA" in reason, reason
    assert "open" in reason, reason
    assert "2 transient failures in a row" in (result.records[2].reason or "")
    assert factory.iot().list_certificates()["certificates"] == []


def test_quota_share_divides_the_consumer_rates(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = ThingpressSettings(region="us-east-1", resilience=ResilienceSettings(quota_share=0.1))
    importer = build_importer(settings, options=ImportOptions())
    iot = importer.iot
    assert isinstance(iot, IoTService)
    assert iot.limiter.rate("iot.RegisterCertificateWithoutCA") == pytest.approx(1.0)
    assert iot.limiter.rate("iot.CreateThing") == pytest.approx(10.0)
    assert iot.limiter.rate("iot.AttachPolicy") == pytest.approx(1.5)
    # the default runtime reads the same from the environment, once per process
    monkeypatch.setenv("THINGPRESS_RESILIENCE__QUOTA_SHARE", "0.1")
    monkeypatch.setenv("THINGPRESS_REGION", "us-east-1")
    monkeypatch.setenv("THINGPRESS_LAMBDA_SAFETY_MARGIN", "12.5")
    monkeypatch.setenv("THINGPRESS_LAMBDA_POLICIES", "A, B")
    runtime = default_runtime()
    default_iot = runtime.importer.iot
    assert isinstance(default_iot, IoTService)
    assert default_iot.limiter.rate("iot.RegisterCertificateWithoutCA") == pytest.approx(1.0)
    assert runtime.batch_loop().safety_margin == 12.5
    assert runtime.importer.options.policies == ("A", "B")
    assert runtime.registry is default_iot.registry
    assert default_runtime() is runtime


def test_malformed_goes_to_the_dlq_and_corrupt_is_dropped_without_touching_batch_mates(aws: None) -> None:
    from thingpress_core.integrations.aws_lambda import ImportRequest

    settings = unlimited_settings()
    factory = ClientFactory(settings)
    client = factory.sqs()
    dlq_url = client.create_queue(QueueName="imports-dlq")["QueueUrl"]
    dlq_arn = client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    url = client.create_queue(
        QueueName="imports",
        Attributes={"RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"})},
    )["QueueUrl"]
    sqs = SQSService(factory, settings=settings)
    certs = list(generate_device_certificates(8, cn_prefix="mates-"))
    bodies = [ImportRequest.from_certificate(c).to_body() for c in certs]
    corrupt = ImportRequest(certificate="bm90IGEgY2VydGlmaWNhdGU=", thing_name="corrupt").to_body()
    bodies[3:3] = ["{this is not json", corrupt]
    assert sqs.send_messages(url, bodies).sent == 10

    importer = CertificateImporter(IoTService(factory, settings=settings), options=ImportOptions())
    outcomes: collections.Counter[str] = collections.Counter()
    for _ in range(20):
        messages = sqs.receive(url, max_messages=10, visibility_timeout=0)
        if not messages:
            break
        result = SQSConsumer(importer).process(as_event(messages))
        outcomes.update(r.disposition for r in result.records)
        failed = set(result.item_failures)
        sqs.delete_batch(url, [m.receipt_handle for m in messages if m.message_id not in failed])
    else:
        pytest.fail("the queue did not drain")
    assert outcomes["succeeded"] == 8
    assert outcomes["failed"] == 1  # the corrupt certificate: logged, deleted, never redelivered
    assert outcomes["malformed"] == 3  # delivered maxReceiveCount times, then moved
    dead = client.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10).get("Messages", [])
    assert [m["Body"] for m in dead] == ["{this is not json"]
    registered = factory.iot().list_certificates()["certificates"]
    assert sorted(c["certificateId"] for c in registered) == sorted(c.certificate_id for c in certs)
