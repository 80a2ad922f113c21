"""The Lambda pipeline on a DynamoDB ledger (moto): runs, run ids in messages, leases, no repeat."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from thingpress_core.certificates import DeviceCertificate
from thingpress_core.certificates.generate import generate_device_certificates
from thingpress_core.clients import ClientFactory
from thingpress_core.errors import ConfigurationError, MessageParseError
from thingpress_core.integrations.aws_lambda import (
    ImportRequest,
    LambdaRuntime,
    LambdaSettings,
    enqueue_manifest,
)
from thingpress_core.ledger import DynamoDBLedger
from thingpress_core.resilience import (
    DEFAULT_RATE_LIMITS,
    CircuitBreakerSettings,
    ResilienceSettings,
)
from thingpress_core.services import ReceivedMessage
from thingpress_core.settings import ThingpressSettings

TABLE = "fleet-ledger"


def fast_factory() -> ClientFactory:
    resilience = ResilienceSettings(
        rate_limits=dict.fromkeys(DEFAULT_RATE_LIMITS, math.inf),
        breaker_defaults=CircuitBreakerSettings(enabled=False),
    )
    return ClientFactory(
        ThingpressSettings(
            region="us-east-1", account_id="123456789012", total_max_attempts=2, resilience=resilience
        )
    )


def as_event(messages: list[ReceivedMessage]) -> dict[str, Any]:
    return {
        "Records": [
            {"messageId": m.message_id, "receiptHandle": m.receipt_handle, "body": m.body} for m in messages
        ]
    }


def s3_event(bucket: str, key: str) -> dict[str, Any]:
    return {
        "Records": [{"eventSource": "aws:s3", "s3": {"bucket": {"name": bucket}, "object": {"key": key}}}]
    }


@pytest.fixture
def pipeline(aws: None) -> dict[str, Any]:
    factory = fast_factory()
    iot = factory.iot()
    iot.create_policy(
        policyName="DevicePolicy",
        policyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
    )
    url = factory.sqs().create_queue(QueueName="imports")["QueueUrl"]
    factory.s3().create_bucket(Bucket="manifests")
    assert DynamoDBLedger.create_table(TABLE, factory=factory) is True
    settings = LambdaSettings(queue_url=url, ledger_table=TABLE, policies=("DevicePolicy",))
    return {"factory": factory, "url": url, "settings": settings}


def runtime(pipeline: dict[str, Any]) -> LambdaRuntime:
    return LambdaRuntime.from_settings(pipeline["settings"], pipeline["factory"])


def drain(rt: LambdaRuntime, url: str) -> tuple[list[ReceivedMessage], list[str]]:
    """Every message of the queue, handled once; (messages, item failures)."""
    assert rt.sqs is not None
    seen: list[ReceivedMessage] = []
    failures: list[str] = []
    for _ in range(50):
        messages = rt.sqs.receive(url, max_messages=10, visibility_timeout=0)
        if not messages:
            break
        seen.extend(messages)
        failed = [f["itemIdentifier"] for f in rt.handle_sqs_event(as_event(messages))["batchItemFailures"]]
        failures.extend(failed)
        rt.sqs.delete_batch(url, [m.receipt_handle for m in messages if m.message_id not in failed])
    return seen, failures


def calls_by_name(rt: LambdaRuntime) -> dict[str, int]:
    return {name: n for name, n in rt.iot.stats().calls.items() if name.startswith("iot.") and n}


def iot_calls(rt: LambdaRuntime) -> int:
    return sum(n for name, n in rt.iot.stats().calls.items() if name.startswith("iot."))


def test_s3_run_is_recorded_and_every_device_lands_under_it(pipeline: dict[str, Any]) -> None:
    certs: list[DeviceCertificate] = list(generate_device_certificates(12, cn_prefix="lam-"))
    pipeline["factory"].s3().put_object(
        Bucket="manifests", Key="reel.pem", Body="".join(c.pem for c in certs).encode()
    )
    rt = runtime(pipeline)
    assert rt.ledger is not None
    assert rt.ledger.location == f"dynamodb://{TABLE}"

    answer = rt.handle_s3_event(s3_event("manifests", "reel.pem"))
    run_id = answer["objects"][0]["run_id"]
    assert run_id
    assert answer["objects"][0]["enqueue"]["sent"] == 12

    run = rt.ledger.run(run_id)
    assert run is not None
    assert (run.status, run.input_name, run.counts["enqueued"]) == ("enqueued", "s3://manifests/reel.pem", 12)
    assert run.input_digest is not None
    assert run.input_digest.startswith("sha256:")
    assert run.options["policies"] == ["DevicePolicy"]

    messages, failures = drain(rt, pipeline["url"])
    assert failures == []
    assert {ImportRequest.parse(m.body).run_id for m in messages} == {run_id}
    target = rt.importer.target().key
    records = list(rt.ledger.devices(target=target, run_id=run_id))
    assert sorted(r.certificate_id for r in records) == sorted(c.certificate_id for c in certs)
    assert all(
        r.complete_for(
            thing_name=r.thing_name or "",
            policies=("DevicePolicy",),
            thing_groups=(),
            thing_type=None,
            status="ACTIVE",
        )
        for r in records
    )
    assert all(r.steps["register"].run_id == run_id for r in records)


def test_a_redelivered_message_costs_no_iot_call(pipeline: dict[str, Any]) -> None:
    certs = list(generate_device_certificates(5, cn_prefix="again-"))
    rt = runtime(pipeline)
    assert rt.sqs is not None
    enqueue_manifest(iter(certs), pipeline["url"], options=pipeline["settings"].import_options(), sqs=rt.sqs)
    messages = rt.sqs.receive(pipeline["url"], max_messages=10, visibility_timeout=0)
    assert len(messages) == 5

    first = rt.process_sqs_event(as_event(messages))
    assert first.certificates("imported") == 5
    before = iot_calls(rt)
    assert before > 0

    # the same process gets the same messages again: the ledger answers, IoT is not asked
    second = rt.process_sqs_event(as_event(messages))
    assert second.certificates("already_present") == 5
    assert second.item_failures == []
    assert iot_calls(rt) == before

    # a cold start checks its option set once (a read), then the ledger answers again
    again = runtime(pipeline)
    third = again.process_sqs_event(as_event(messages))
    assert third.certificates("already_present") == 5
    assert calls_by_name(again) == {"iot.GetPolicy": 1}


def test_a_device_leased_by_another_worker_is_redelivered_untouched(pipeline: dict[str, Any]) -> None:
    cert = next(generate_device_certificates(1, cn_prefix="race-"))
    rt = runtime(pipeline)
    assert rt.sqs is not None
    assert rt.ledger is not None
    enqueue_manifest(iter([cert]), pipeline["url"], options=pipeline["settings"].import_options(), sqs=rt.sqs)
    messages = rt.sqs.receive(pipeline["url"], max_messages=10, visibility_timeout=0)
    target = rt.importer.target().key

    assert rt.ledger.claim(target, cert.certificate_id, owner="other-worker", seconds=60)
    busy = rt.process_sqs_event(as_event(messages))
    assert busy.redelivered()["busy"] == 1
    assert busy.item_failures == [messages[0].message_id]
    assert calls_by_name(rt) == {"iot.GetPolicy": 1}  # the option set's preflight, nothing more
    assert rt.ledger.device(target, cert.certificate_id) is None

    rt.ledger.release(target, cert.certificate_id, owner="other-worker")
    done = rt.process_sqs_event(as_event(messages))
    assert done.certificates("imported") == 1
    assert done.item_failures == []
    # the lease was given back: another worker may take it at once
    assert rt.ledger.claim(target, cert.certificate_id, owner="third-worker", seconds=60)


def test_two_workers_race_for_one_device_and_one_wins(pipeline: dict[str, Any]) -> None:
    rt = runtime(pipeline)
    assert rt.ledger is not None
    cert = next(generate_device_certificates(1, cn_prefix="both-"))
    target = rt.importer.target().key
    other = DynamoDBLedger(TABLE, factory=pipeline["factory"])
    wins = [
        rt.ledger.claim(target, cert.certificate_id, owner="a", seconds=60),
        other.claim(target, cert.certificate_id, owner="b", seconds=60),
    ]
    assert wins == [True, False]


def test_ledger_table_setting_is_checked() -> None:
    with pytest.raises(ConfigurationError) as caught:
        LambdaSettings(ledger_table="no")
    assert "THINGPRESS_LAMBDA_LEDGER_TABLE" in str(caught.value) or caught.value.variable == "ledger_table"


def test_ledger_table_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THINGPRESS_LAMBDA_LEDGER_TABLE", "fleet.ledger-1")
    monkeypatch.setenv("THINGPRESS_LAMBDA_LEASE_SECONDS", "45")
    settings = LambdaSettings()
    assert (settings.ledger_table, settings.lease_seconds) == ("fleet.ledger-1", 45.0)


def test_run_id_travels_in_the_request_and_is_checked() -> None:
    cert = next(generate_device_certificates(1, cn_prefix="rid-"))
    body = ImportRequest.from_certificate(cert, run_id="20261201T101500Z-3f9a1c").to_body()
    assert ImportRequest.parse(body).run_id == "20261201T101500Z-3f9a1c"
    assert "run_id" not in ImportRequest.from_certificate(cert).to_body()
    hostile = json.loads(body)
    hostile["run_id"] = "x" * 65
    with pytest.raises(MessageParseError):
        ImportRequest.parse(json.dumps(hostile))
