"""handle_s3_event / s3_handler: a manifest lands in S3 and its certificates reach SQS."""

from __future__ import annotations

from typing import Any

import pytest

from thingpress_core.certificates.generate import generate_device_certificates, generated_manifest_lines
from thingpress_core.clients import ClientFactory
from thingpress_core.errors import ConfigurationError
from thingpress_core.importer import ImportOptions
from thingpress_core.integrations.aws_lambda import (
    EnqueueError,
    ImportRequest,
    ImportSource,
    LambdaRuntime,
    LambdaSettings,
    default_runtime,
    handle_s3_event,
    parse_message,
    s3_handler,
)
from thingpress_core.services import S3Service, SQSService
from thingpress_core.testing import FaultInjector

OPTIONS = ImportOptions(policies=("DevicePolicy",))


def s3_event(bucket: str, *keys: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": 1}},
            }
            for key in keys
        ]
    }


@pytest.fixture
def setup(factory: ClientFactory) -> dict[str, Any]:
    factory.s3().create_bucket(Bucket="manifests")
    url = factory.sqs().create_queue(QueueName="imports")["QueueUrl"]
    return {"url": url, "s3": S3Service(factory), "sqs": SQSService(factory), "factory": factory}


def received(sqs: SQSService, url: str) -> list[ImportRequest]:
    out: list[ImportRequest] = []
    while True:
        messages = sqs.receive(url, max_messages=10)
        if not messages:
            return out
        for m in messages:
            out.extend(parse_message(m.body))
        sqs.delete_batch(url, [m.receipt_handle for m in messages])


def test_a_generated_manifest_is_enqueued_with_its_source(setup: dict[str, Any]) -> None:
    certs = list(generate_device_certificates(12, cn_prefix="s3-"))
    body = ("\n".join(generated_manifest_lines(certs)) + "\n").encode()
    setup["factory"].s3().put_object(Bucket="manifests", Key="in/batch 1.txt", Body=body)
    report = handle_s3_event(
        s3_event("manifests", "in/batch+1.txt"),  # S3 events URL-encode keys
        queue_url=setup["url"],
        options=OPTIONS,
        s3=setup["s3"],
        sqs=setup["sqs"],
        max_bytes=1_000_000,
    )
    assert report.ok
    assert report.sent == 12
    (obj,) = report.objects
    assert (obj.key, obj.format, obj.size) == ("in/batch 1.txt", "generated", len(body))
    requests = received(setup["sqs"], setup["url"])
    assert len(requests) == 12
    indices = sorted(r.source.index for r in requests if r.source is not None and r.source.index is not None)
    assert indices == list(range(12))
    first = next(r for r in requests if r.source is not None and r.source.index == 0)
    assert first.source == ImportSource(vendor="generated", bucket="manifests", key="in/batch 1.txt", index=0)
    assert first.policies == ("DevicePolicy",)
    assert first.to_entry().certificate == certs[0]


def test_per_object_failures_do_not_stop_the_others(setup: dict[str, Any]) -> None:
    certs = list(generate_device_certificates(3, cn_prefix="s3b-"))
    pem = "".join(c.pem for c in certs).encode()
    client = setup["factory"].s3()
    client.put_object(Bucket="manifests", Key="good.pem", Body=pem)
    client.put_object(Bucket="manifests", Key="big.pem", Body=pem * 10)
    event = s3_event("manifests", "missing.pem", "big.pem", "good.pem")
    report = handle_s3_event(
        event,
        queue_url=setup["url"],
        options=OPTIONS,
        s3=setup["s3"],
        sqs=setup["sqs"],
        max_bytes=len(pem) + 10,
    )
    missing, big, good = report.objects
    assert missing.error_type == "ResourceNotFoundError"
    assert not missing.transient
    assert big.error_type == "InvalidRequestError"
    assert "big.pem" in (big.error or "")
    assert good.ok
    assert good.format == "pem"
    assert good.enqueue is not None
    assert good.enqueue.sent == 3
    assert not report.ok
    assert len(received(setup["sqs"], setup["url"])) == 3


def test_an_unreadable_manifest_is_reported(setup: dict[str, Any]) -> None:
    setup["factory"].s3().put_object(Bucket="manifests", Key="notes.txt", Body=b"hello, not a manifest\n")
    report = handle_s3_event(
        s3_event("manifests", "notes.txt"),
        queue_url=setup["url"],
        options=OPTIONS,
        s3=setup["s3"],
        sqs=setup["sqs"],
    )
    (obj,) = report.objects
    assert not obj.ok
    # the bad line is a failure of the enqueue (reported in place), not a skipped entry
    assert obj.skipped == 0
    assert obj.enqueue is not None
    assert obj.enqueue.sent == 0
    (failure,) = obj.enqueue.failed
    assert (failure.index, failure.code) == (0, "ManifestError")
    assert failure.reason == "notes.txt: line 1: not base64 text"
    # bytes no reader recognises at all
    setup["factory"].s3().put_object(Bucket="manifests", Key="blob.bin", Body=bytes(range(256)) * 4)
    report = handle_s3_event(
        s3_event("manifests", "blob.bin"),
        queue_url=setup["url"],
        options=OPTIONS,
        s3=setup["s3"],
        sqs=setup["sqs"],
    )
    (obj,) = report.objects
    assert not obj.ok
    assert (obj.error_type, obj.transient, obj.enqueue) == ("ManifestError", False, None)
    assert "cannot tell the manifest format" in (obj.error or "")
    assert obj.size == 1024


def test_s3_handler_reads_its_settings_from_the_environment(
    setup: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    certs = list(generate_device_certificates(4, cn_prefix="env-"))
    setup["factory"].s3().put_object(
        Bucket="manifests", Key="m.pem", Body="".join(c.pem for c in certs).encode()
    )
    monkeypatch.setenv("THINGPRESS_LAMBDA_QUEUE_URL", setup["url"])
    monkeypatch.setenv("THINGPRESS_LAMBDA_POLICIES", '["P1", "P2"]')
    monkeypatch.setenv("THINGPRESS_LAMBDA_THING_GROUPS", "G1,G2")
    monkeypatch.setenv("THINGPRESS_LAMBDA_THING_TYPE", "Sensor")
    monkeypatch.setenv("THINGPRESS_LAMBDA_PER_MESSAGE", "2")
    # no runtime given: the handler builds the process's one from the environment (moto is
    # in-process, so the services it makes from THINGPRESS_* reach it too)
    result = s3_handler(s3_event("manifests", "m.pem"))
    assert result["objects"][0]["enqueue"]["sent"] == 4
    assert result["objects"][0]["enqueue"]["messages"] == 2
    requests = received(setup["sqs"], setup["url"])
    assert {(r.policies, r.thing_groups, r.thing_type) for r in requests} == {
        (("P1", "P2"), ("G1", "G2"), "Sensor")
    }
    assert default_runtime().settings.per_message == 2  # built once, kept for the next event


def test_s3_handler_raises_on_a_transient_failure(setup: dict[str, Any]) -> None:
    runtime = LambdaRuntime.from_settings(LambdaSettings(queue_url=setup["url"]), setup["factory"])
    with FaultInjector(setup["factory"], fast_retries=True) as faults:
        faults.throttle("s3.GetObject")
        with pytest.raises(EnqueueError, match=r"s3://manifests/m\.pem"):
            s3_handler(s3_event("manifests", "m.pem"), runtime=runtime)
        assert faults.count("s3.GetObject") >= 1


def test_missing_queue_url_and_bad_format_are_configuration_errors(setup: dict[str, Any]) -> None:
    runtime = LambdaRuntime.from_settings(LambdaSettings(), setup["factory"])
    with pytest.raises(ConfigurationError, match="THINGPRESS_LAMBDA_QUEUE_URL"):
        runtime.process_s3_event(s3_event("manifests", "x"))
    with pytest.raises(ConfigurationError, match="unknown manifest format"):
        handle_s3_event(
            s3_event("manifests", "x"),
            queue_url="q",
            options=OPTIONS,
            s3=setup["s3"],
            sqs=setup["sqs"],
            format="zip",
        )


def test_lambda_settings_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THINGPRESS_LAMBDA_PER_MESSAGE", "0")
    with pytest.raises(ConfigurationError, match="THINGPRESS_LAMBDA_PER_MESSAGE"):
        LambdaSettings()
    monkeypatch.delenv("THINGPRESS_LAMBDA_PER_MESSAGE")
    settings = LambdaSettings(policies=("A",), naming="certificate_id", status="INACTIVE")
    options = settings.import_options()
    assert (options.policies, options.naming, options.status) == (("A",), "certificate_id", "INACTIVE")
    with pytest.raises(ConfigurationError, match="THINGPRESS_LAMBDA_QEUE_URL"):
        LambdaSettings(qeue_url="https://queue")  # type: ignore[call-arg]  # refused at run time too


def test_the_manifest_format_setting_applies(setup: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    # Content that detection would call PEM, forced to "generated" by the environment: every
    # line then fails as a generated entry.
    certs = list(generate_device_certificates(2, cn_prefix="fmt-"))
    setup["factory"].s3().put_object(
        Bucket="manifests", Key="m.pem", Body="".join(c.pem for c in certs).encode()
    )
    monkeypatch.setenv("THINGPRESS_LAMBDA_MANIFEST_FORMAT", "generated")
    monkeypatch.setenv("THINGPRESS_LAMBDA_QUEUE_URL", setup["url"])
    report = LambdaRuntime.from_environment(factory=setup["factory"]).process_s3_event(
        s3_event("manifests", "m.pem")
    )
    (obj,) = report.objects
    assert obj.format == "generated"
    assert report.sent == 0


def test_handle_s3_event_uses_its_arguments_not_the_environment(
    setup: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    certs = list(generate_device_certificates(2, cn_prefix="args-"))
    setup["factory"].s3().put_object(
        Bucket="manifests", Key="m.pem", Body="".join(c.pem for c in certs).encode()
    )
    monkeypatch.setenv("THINGPRESS_LAMBDA_MANIFEST_FORMAT", "generated")
    monkeypatch.setenv("THINGPRESS_LAMBDA_QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/1/elsewhere")
    monkeypatch.setenv("THINGPRESS_LAMBDA_POLICIES", "FromTheEnvironment")
    report = handle_s3_event(
        s3_event("manifests", "m.pem"),
        queue_url=setup["url"],
        options=OPTIONS,
        s3=setup["s3"],
        sqs=setup["sqs"],
    )
    (obj,) = report.objects
    assert (obj.format, report.sent) == ("pem", 2)  # detected, not the variable's "generated"
    assert {r.policies for r in received(setup["sqs"], setup["url"])} == {("DevicePolicy",)}
