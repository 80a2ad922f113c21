"""The functions' CloudWatch metrics: one embedded-metric-format record per invocation, on stdout.

Each test reads what a handler printed and parses it as CloudWatch Logs would: a JSON object
with an ``_aws`` directive whose every metric names a top-level number (or up to 100 numbers),
and whose dimension keys hold strings.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
from types import SimpleNamespace
from typing import Any

import pytest

from thingpress_core.certificates import encode_for_transport
from thingpress_core.certificates.generate import generate_device_certificates
from thingpress_core.clients import ClientFactory
from thingpress_core.errors import ConfigurationError
from thingpress_core.importer import OWNER_ATTRIBUTE, CertificateImporter, ImportOptions
from thingpress_core.integrations._metrics import (
    CALLS_PREFIX,
    CONSUMER_METRICS,
    PRODUCER_METRICS,
    ThrottleTally,
    emf_record,
)
from thingpress_core.integrations.aws_lambda import (
    ImportRequest,
    LambdaRuntime,
    LambdaSettings,
    s3_handler,
    sqs_handler,
)
from thingpress_core.resilience import DEFAULT_RATE_LIMITS, CircuitBreakerSettings, ResilienceSettings
from thingpress_core.settings import ThingpressSettings
from thingpress_core.testing import FaultInjector


def emf_lines(text: str) -> list[dict[str, Any]]:
    """Every EMF record in ``text``, checked against the format's rules."""
    records = []
    for line in text.splitlines():
        if not line.startswith("{"):
            continue
        record = json.loads(line)
        if "_aws" not in record:
            continue
        directive = record["_aws"]
        assert isinstance(directive["Timestamp"], int)
        (metrics,) = directive["CloudWatchMetrics"]
        assert metrics["Namespace"]
        assert not metrics["Namespace"].startswith("AWS/")
        for dimension_set in metrics["Dimensions"]:
            for key in dimension_set:
                assert isinstance(record[key], str), key
                assert record[key], key
        names = [m["Name"] for m in metrics["Metrics"]]
        assert len(names) == len(set(names)) <= 100
        for name in names:
            value = record[name]
            values = value if isinstance(value, list) else [value]
            assert 1 <= len(values) <= 100, name
            assert all(isinstance(v, (int, float)) and math.isfinite(v) for v in values), name
        records.append(record)
    return records


def metric_names(record: dict[str, Any]) -> set[str]:
    return {m["Name"] for m in record["_aws"]["CloudWatchMetrics"][0]["Metrics"]}


def units(record: dict[str, Any]) -> dict[str, str]:
    return {m["Name"]: m["Unit"] for m in record["_aws"]["CloudWatchMetrics"][0]["Metrics"]}


class Context:
    aws_request_id = "8f5e-req"

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


def ticking(step: float) -> Any:
    """A monotonic clock that advances ``step`` seconds per reading."""
    counter = itertools.count()
    return lambda: next(counter) * step


def test_one_consumer_record_per_invocation_with_the_documented_names(
    fakes: SimpleNamespace, capsys: pytest.CaptureFixture[str]
) -> None:
    iot = fakes.FakeIoT()
    certs = list(generate_device_certificates(3, cn_prefix="emf-"))
    iot.certificates[certs[1].certificate_id] = "ACTIVE"  # registered before: already present
    iot.things[certs[1].common_name or ""] = None
    iot.attributes[certs[1].common_name or ""] = {}
    bodies = [ImportRequest.from_certificate(c).to_body() for c in certs] + ["{not json"]
    runtime = LambdaRuntime(
        settings=LambdaSettings(pipeline="fleet-a", metrics_namespace="Fleet/Imports"),
        importer=CertificateImporter(iot, options=ImportOptions()),
        clock=ticking(0.125),
    )

    response = sqs_handler(fakes.sqs_event(bodies), Context(), runtime=runtime)
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == ["m3"]

    (record,) = emf_lines(capsys.readouterr().out)
    assert record["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Fleet/Imports"
    assert record["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Pipeline", "Function"]]
    assert (record["Pipeline"], record["Function"]) == ("fleet-a", "consumer")
    calls = {n for n in metric_names(record) if n.startswith(CALLS_PREFIX)}
    assert metric_names(record) - calls == set(CONSUMER_METRICS)
    assert {n: u for n, u in units(record).items() if n not in calls} == dict(CONSUMER_METRICS)
    assert calls == {f"{CALLS_PREFIX}{op}" for op, n in iot.calls.items() if n}
    assert record[f"{CALLS_PREFIX}iot.RegisterCertificateWithoutCA"] == 3
    assert record["Calls"] == sum(iot.calls.values())
    assert (record["Records"], record["Redelivered"], record["Failed"]) == (4, 1, 0)
    assert record["Imported"] + record["AlreadyPresent"] == 3
    assert record["RecordLatency"] == [125.0, 125.0, 125.0, 125.0]  # one value per record started
    assert (record["Throttled"], record["Retried"]) == (0, 0)  # a fake IoT: nothing to count
    assert record["redeliver"] == {"malformed": 1}
    assert record["request_id"] == "8f5e-req"


def test_metrics_can_be_turned_off(
    fakes: SimpleNamespace, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("THINGPRESS_LAMBDA_METRICS", "false")
    runtime = LambdaRuntime(
        settings=LambdaSettings(), importer=CertificateImporter(fakes.FakeIoT(), options=ImportOptions())
    )
    cert = next(generate_device_certificates(1, cn_prefix="quiet-"))
    sqs_handler(fakes.sqs_event([ImportRequest.from_certificate(cert).to_body()]), runtime=runtime)
    assert emf_lines(capsys.readouterr().out) == []


def test_records_and_logs_carry_ids_never_a_certificate(
    fakes: SimpleNamespace, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="thingpress_core")
    iot = fakes.FakeIoT()
    good, bad = list(generate_device_certificates(2, cn_prefix="ids-"))
    iot.things["taken"] = None
    iot.attributes["taken"] = {OWNER_ATTRIBUTE: "0" * 64}  # another certificate's thing
    bodies = [
        ImportRequest.from_certificate(good).to_body(),
        ImportRequest.from_certificate(bad).model_copy(update={"thing_name": "taken"}).to_body(),
    ]
    sqs_handler(fakes.sqs_event(bodies), Context(), runtime=fakes.runtime_over(iot))
    out = capsys.readouterr().out
    (record,) = emf_lines(out)
    secrets = [c.pem.splitlines()[1] for c in (good, bad)] + [
        encode_for_transport(c)[:40] for c in (good, bad)
    ]
    for text in [
        out,
        *(r.getMessage() for r in caplog.records),
        *(json.dumps(r.__dict__, default=str) for r in caplog.records),
    ]:
        assert not any(s in text for s in secrets)
    summary = [r for r in caplog.records if getattr(r, "operation", None) == "sqs.batch"]
    assert len(summary) == 1
    # the consumer's line for the failed certificate names the message and the certificate
    (failure,) = [r for r in caplog.records if r.name.endswith("aws_lambda") and r.levelno == logging.ERROR]
    assert (getattr(failure, "message_id", None), getattr(failure, "certificate_id", None)) == (
        "m1",
        bad.certificate_id,
    )
    assert record["Failed"] == 1
    assert record["Records"] == 2


def fast_settings(**extra: Any) -> ThingpressSettings:
    return ThingpressSettings(
        region="us-east-1",
        account_id="123456789012",
        total_max_attempts=3,
        resilience=ResilienceSettings(
            rate_limits=dict.fromkeys(DEFAULT_RATE_LIMITS, math.inf),
            breaker_defaults=CircuitBreakerSettings(enabled=False),
        ),
        **extra,
    )


def test_throttled_attempts_and_retries_are_counted_on_the_real_call_path(
    aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    factory = ClientFactory(fast_settings())
    certs = list(generate_device_certificates(6, cn_prefix="thr-"))
    runtime = LambdaRuntime.from_settings(LambdaSettings(), factory)
    event = {
        "Records": [
            {"messageId": f"t{i}", "body": ImportRequest.from_certificate(c).to_body()}
            for i, c in enumerate(certs)
        ]
    }
    with FaultInjector(factory, seed=3, fast_retries=True) as faults:
        faults.throttle("iot.CreateThing", rate=0.4)
        sqs_handler(event, Context(), runtime=runtime)
        injected = faults.count("iot.CreateThing")
    assert injected > 0
    (record,) = emf_lines(capsys.readouterr().out)
    assert record["Throttled"] == injected  # every throttled attempt, retried or not
    assert record["throttled_by_operation"] == {"iot.CreateThing": injected}
    stats = runtime.iot.stats()
    assert record["Retried"] == sum(getattr(stats, "retries", {}).values())
    assert record["Retried"] > 0
    assert record[f"{CALLS_PREFIX}iot.CreateThing"] == stats.calls["iot.CreateThing"]

    # the next invocation counts only its own: the counters are differences
    again = list(generate_device_certificates(1, cn_prefix="calm-"))
    calm = {"Records": [{"messageId": "c0", "body": ImportRequest.from_certificate(again[0]).to_body()}]}
    sqs_handler(calm, Context(), runtime=runtime)
    (second,) = emf_lines(capsys.readouterr().out)
    assert (second["Throttled"], second["Retried"], second["Records"]) == (0, 0, 1)
    assert second[f"{CALLS_PREFIX}iot.RegisterCertificateWithoutCA"] == 1


def test_the_producer_prints_its_record_even_when_it_raises(
    aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    factory = ClientFactory(fast_settings())
    runtime = LambdaRuntime.from_settings(LambdaSettings(pipeline="p"), factory)  # no queue URL
    event = {"Records": [{"eventSource": "aws:s3", "s3": {"bucket": {"name": "b"}, "object": {"key": "k"}}}]}
    with pytest.raises(ConfigurationError):
        s3_handler(event, Context(), runtime=runtime)
    (record,) = emf_lines(capsys.readouterr().out)
    assert (record["Function"], record["error_type"]) == ("producer", "ConfigurationError")
    assert metric_names(record) == set(PRODUCER_METRICS)
    assert (record["Objects"], record["Enqueued"]) == (0, 0)


def test_the_producer_counts_objects_certificates_and_messages(
    aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    factory = ClientFactory(fast_settings())
    url = factory.sqs().create_queue(QueueName="q")["QueueUrl"]
    factory.s3().create_bucket(Bucket="manifest-bucket")
    certs = list(generate_device_certificates(5, cn_prefix="prod-"))
    factory.s3().put_object(
        Bucket="manifest-bucket", Key="m/ok.pem", Body="".join(c.pem for c in certs).encode()
    )
    runtime = LambdaRuntime.from_settings(LambdaSettings(queue_url=url, per_message=2), factory)
    keys = ("m/ok.pem", "m/missing.pem")
    event = {
        "Records": [
            {"eventSource": "aws:s3", "s3": {"bucket": {"name": "manifest-bucket"}, "object": {"key": k}}}
            for k in keys
        ]
    }
    s3_handler(event, Context(), runtime=runtime)
    (record,) = emf_lines(capsys.readouterr().out)
    assert (record["Objects"], record["ObjectsFailed"]) == (2, 1)
    assert (record["Enqueued"], record["EnqueueFailed"], record["Messages"]) == (5, 0, 3)
    assert record[f"{CALLS_PREFIX}s3.GetObject"] == 2
    assert record[f"{CALLS_PREFIX}sqs.SendMessageBatch"] == 1


def test_a_record_keeps_within_the_format_limits() -> None:
    metrics: dict[str, tuple[str, float | list[float]]] = {f"M{i}": ("Count", i) for i in range(120)}
    metrics["Latency"] = ("Milliseconds", [float(i) for i in range(150)])
    record = emf_record(namespace="N", dimensions={"Pipeline": "p"}, metrics=metrics, timestamp=1.5)
    assert record["_aws"]["Timestamp"] == 1500
    assert len(record["_aws"]["CloudWatchMetrics"][0]["Metrics"]) == 100
    assert "M99" in record
    assert "M100" not in record
    assert "Latency" not in record  # past the 100th metric


def test_a_tally_watches_a_client_once() -> None:
    class Events:
        def __init__(self) -> None:
            self.handlers: dict[str, Any] = {}

        def register(self, name: str, handler: Any, unique_id: str) -> None:
            self.handlers.setdefault(unique_id, (name, handler))

    client = SimpleNamespace(meta=SimpleNamespace(events=Events()))
    tally = ThrottleTally()
    tally.watch(client, "iot")
    tally.watch(client, "iot")
    ((name, handler),) = client.meta.events.handlers.values()
    assert name == "needs-retry.iot"
    operation = SimpleNamespace(name="CreateThing")
    handler(response=(None, {"Error": {"Code": "ThrottlingException"}}), operation=operation)
    handler(response=(None, {"Error": {"Code": "InvalidRequestException"}}), operation=operation)
    handler(response=(None, {}), operation=operation)
    assert tally.snapshot() == {"iot.CreateThing": 1}
