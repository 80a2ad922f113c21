"""handle_sqs_event / sqs_handler / SQSConsumer with a real CertificateImporter over an in-memory IoT."""

from __future__ import annotations

import base64
import datetime
import gc
import json
import logging
import weakref
from types import SimpleNamespace
from typing import Any

import pytest

from thingpress_core.certificates import DeviceCertificate, encode_for_transport
from thingpress_core.certificates.generate import generate_device_certificates
from thingpress_core.errors import (
    AccessDeniedError,
    ConfigurationError,
    InvalidRequestError,
    ResourceNotFoundError,
    ServiceUnavailableError,
)
from thingpress_core.importer import CertificateImporter, ImportOptions
from thingpress_core.integrations.aws_lambda import (
    ImportBatch,
    ImportRequest,
    SQSConsumer,
    handle_sqs_event,
    sqs_handler,
)


@pytest.fixture(scope="module")
def certs() -> list[DeviceCertificate]:
    return list(generate_device_certificates(12, cn_prefix="consumer-"))


@pytest.fixture(scope="module")
def expired() -> DeviceCertificate:
    """A certificate the importer refuses before any call (reason ``expired``)."""
    start = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)
    return next(
        generate_device_certificates(
            1, cn_prefix="expired-", not_before=start, not_after=start + datetime.timedelta(days=1)
        )
    )


def body_for(cert: DeviceCertificate, **fields: Any) -> str:
    return ImportRequest(
        certificate=encode_for_transport(cert), thing_name=cert.common_name, **fields
    ).to_body()


def importer_over(iot: Any, **options: Any) -> CertificateImporter:
    return CertificateImporter(iot, options=ImportOptions(**options))


def test_every_record_imported_gives_no_item_failures(
    fakes: SimpleNamespace, certs: list[DeviceCertificate]
) -> None:
    iot = fakes.FakeIoT()
    iot.existing |= {"policy:P", "thing_group:G"}
    event = fakes.sqs_event([body_for(c, policies=("P",), thing_groups=("G",)) for c in certs[:5]])
    response = handle_sqs_event(event, importer=importer_over(iot))
    assert response == {"batchItemFailures": []}
    assert len(iot.certificates) == 5
    assert {name for name, _ in iot.groups} == {c.common_name for c in certs[:5]}
    assert len(iot.policies) == 5


def test_transient_permanent_malformed_and_corrupt_records_in_one_batch(
    fakes: SimpleNamespace, certs: list[DeviceCertificate], caplog: pytest.LogCaptureFixture
) -> None:
    iot = fakes.FakeIoT()
    good_a, throttled, rejected, good_b = certs[0], certs[1], certs[2], certs[3]
    iot.failures[throttled.certificate_id] = [fakes.throttled()]
    iot.failures[rejected.certificate_id] = [
        InvalidRequestError("bad certificate", service="iot", operation="RegisterCertificateWithoutCA")
    ]
    corrupt = json.dumps({"schema_version": 1, "certificate": base64.b64encode(b"garbage").decode()})
    bodies = [
        body_for(good_a),
        body_for(throttled),
        "{not json",
        body_for(rejected),
        corrupt,
        body_for(good_b),
    ]
    consumer = SQSConsumer(importer_over(iot), give_up_after=None)
    with caplog.at_level(logging.INFO, logger="thingpress_core.integrations.aws_lambda"):
        result = consumer.process(fakes.sqs_event(bodies))
    dispositions = [r.disposition for r in result.records]
    assert dispositions == ["succeeded", "retry", "malformed", "failed", "failed", "succeeded"]
    assert result.response() == {"batchItemFailures": [{"itemIdentifier": "m1"}, {"itemIdentifier": "m2"}]}
    assert set(iot.certificates) == {good_a.certificate_id, good_b.certificate_id}
    text = caplog.text
    assert "m2 does not parse" in text
    assert rejected.certificate_id in text
    assert "failed permanently" in text
    assert "the certificate cannot be read" in text
    assert "SQS batch of 6" in text
    # the throttled record succeeds on redelivery
    again = consumer.process(fakes.sqs_event([bodies[1]]))
    assert again.records[0].disposition == "succeeded"
    assert throttled.certificate_id in iot.certificates


def test_a_record_without_a_body_and_a_non_sqs_event(
    fakes: SimpleNamespace, certs: list[DeviceCertificate]
) -> None:
    consumer = SQSConsumer(importer_over(fakes.FakeIoT()))
    assert consumer.handle(fakes.sqs_event([None])) == {"batchItemFailures": [{"itemIdentifier": "m0"}]}
    assert consumer.handle({"something": "else"}) == {"batchItemFailures": []}
    assert consumer.handle({"Records": ["not a record"]}) == {
        "batchItemFailures": [{"itemIdentifier": "record-0"}]
    }


def test_an_unexpected_exception_is_an_item_failure_not_a_crash(
    fakes: SimpleNamespace, certs: list[DeviceCertificate]
) -> None:
    iot = fakes.FakeIoT()

    def boom(cert: DeviceCertificate) -> None:
        if cert == certs[0]:
            raise KeyError("bug")

    iot.on_register = boom
    importer = importer_over(iot)
    consumer = SQSConsumer(importer)
    # the importer turns exceptions into outcomes; make the consumer itself meet one
    original = importer.import_certificate

    def exploding(item: Any, *, options: Any = None, run_id: str | None = None) -> Any:
        if item.certificate == certs[1]:
            raise RuntimeError("not an outcome")
        return original(item, options=options, run_id=run_id)

    importer.import_certificate = exploding  # type: ignore[method-assign]
    result = consumer.process(fakes.sqs_event([body_for(certs[0]), body_for(certs[1]), body_for(certs[2])]))
    assert [r.disposition for r in result.records] == ["failed", "retry", "succeeded"]
    assert "RuntimeError" in (result.records[1].reason or "")


def test_remaining_time_cutoff(fakes: SimpleNamespace, certs: list[DeviceCertificate]) -> None:
    iot = fakes.FakeIoT()
    consumer = SQSConsumer(importer_over(iot), safety_margin=10.0)
    event = fakes.sqs_event([body_for(c) for c in certs[:4]])
    # too little time from the start: nothing is touched, everything comes back
    result = consumer.process(event, fakes.FakeContext(9_000))
    assert [r.disposition for r in result.records] == ["deferred"] * 4
    assert not iot.certificates
    assert consumer.handle(event, fakes.FakeContext(9_000))["batchItemFailures"][0] == {
        "itemIdentifier": "m0"
    }
    # time runs out after two records
    remaining = iter([60_000, 30_000, 9_999, 9_999])
    result = consumer.process(event, fakes.FakeContext(lambda: next(remaining)))
    assert [r.disposition for r in result.records] == ["succeeded", "succeeded", "deferred", "deferred"]
    assert len(iot.certificates) == 2
    assert "Lambda time left" in (result.records[2].reason or "")


def test_the_slowest_record_raises_the_bar(fakes: SimpleNamespace, certs: list[DeviceCertificate]) -> None:
    now = [0.0]

    def clock() -> float:
        now[0] += 7.5  # every clock reading is 7.5 s later: one record "takes" 7.5 s
        return now[0]

    consumer = SQSConsumer(importer_over(fakes.FakeIoT()), safety_margin=10.0, clock=clock)
    # 15 s left: enough for the first (no history), then 10 + 7.5 > 15 stops the second
    result = consumer.process(fakes.sqs_event([body_for(c) for c in certs[:3]]), fakes.FakeContext(15_000))
    assert [r.disposition for r in result.records] == ["succeeded", "deferred", "deferred"]
    assert result.records[0].seconds == pytest.approx(7.5)


def test_consecutive_transient_failures_defer_the_rest(
    fakes: SimpleNamespace, certs: list[DeviceCertificate]
) -> None:
    iot = fakes.FakeIoT()
    for cert in certs[:3]:
        iot.failures[cert.certificate_id] = [
            ServiceUnavailableError("down", service="iot", operation="RegisterCertificateWithoutCA")
        ]
    consumer = SQSConsumer(importer_over(iot), give_up_after=2)
    result = consumer.process(fakes.sqs_event([body_for(c) for c in certs[:5]]))
    assert [r.disposition for r in result.records] == ["retry", "retry", "deferred", "deferred", "deferred"]
    assert iot.calls["iot.RegisterCertificateWithoutCA"] == 2
    assert len(result.item_failures) == 5


def test_preflight_runs_once_per_option_set(fakes: SimpleNamespace, certs: list[DeviceCertificate]) -> None:
    iot = fakes.FakeIoT()
    iot.existing |= {"policy:P", "policy:Q", "thing_type:T"}
    consumer = SQSConsumer(importer_over(iot))
    bodies = [body_for(c, policies=("P",), thing_type="T") for c in certs[:3]]
    bodies.append(body_for(certs[3], policies=("Q",)))
    consumer.process(fakes.sqs_event(bodies))
    consumer.process(fakes.sqs_event(bodies))  # a later invocation reuses the cache
    assert iot.calls["describe.policy"] == 2  # P once, Q once
    assert iot.calls["describe.thing_type"] == 1


def test_missing_resources_are_item_failures_until_they_exist(
    fakes: SimpleNamespace, certs: list[DeviceCertificate]
) -> None:
    now = [0.0]
    iot = fakes.FakeIoT()
    consumer = SQSConsumer(importer_over(iot), preflight_retry_after=60.0, clock=lambda: now[0])
    event = fakes.sqs_event([body_for(c, policies=("Later",)) for c in certs[:2]])
    result = consumer.process(event)
    assert [r.disposition for r in result.records] == ["retry", "retry"]
    assert "preflight failed" in (result.records[0].reason or "")
    assert iot.calls["describe.policy"] == 1  # the failure is remembered, not re-checked per record
    assert not iot.certificates
    iot.existing.add("policy:Later")
    now[0] = 61.0
    result = consumer.process(event)
    assert [r.disposition for r in result.records] == ["succeeded", "succeeded"]


def test_a_batch_message_is_one_record(fakes: SimpleNamespace, certs: list[DeviceCertificate]) -> None:
    iot = fakes.FakeIoT()
    iot.failures[certs[1].certificate_id] = [fakes.throttled()]
    requests = tuple(ImportRequest.parse(body_for(c)) for c in certs[:3])
    body = ImportBatch(requests=requests).to_body()
    consumer = SQSConsumer(importer_over(iot))
    first = consumer.process(fakes.sqs_event([body]))
    assert first.records[0].disposition == "retry"
    second = consumer.process(fakes.sqs_event([body]))
    assert second.records[0].disposition == "succeeded"
    assert second.records[0].already_present == 1
    assert second.records[0].imported == 2
    assert len(iot.certificates) == 3


def test_legacy_message_imports_with_its_options(
    fakes: SimpleNamespace, certs: list[DeviceCertificate]
) -> None:
    iot = fakes.FakeIoT()
    iot.existing |= {"policy:DevicePolicy", "thing_group:Group1", "thing_type:Sensor"}
    legacy = json.dumps(
        {
            "certificate": str(base64.b64encode(certs[5].pem.encode())),
            "thing": "legacy-device",
            "policies": [{"name": "DevicePolicy"}],
            "thing_groups": [{"arn": "arn:aws:iot:us-east-1:123456789012:thinggroup/Group1"}],
            "thing_type_name": "Sensor",
        }
    )
    assert handle_sqs_event(fakes.sqs_event([legacy]), importer=importer_over(iot)) == {
        "batchItemFailures": []
    }
    assert iot.things == {"legacy-device": "Sensor"}
    assert ("legacy-device", "Group1") in iot.groups
    assert iot.certificates == {certs[5].certificate_id: "ACTIVE"}


def test_deployment_errors_are_redelivered_not_dropped(
    fakes: SimpleNamespace, certs: list[DeviceCertificate]
) -> None:
    iot = fakes.FakeIoT()
    iot.failures[certs[7].certificate_id] = [
        AccessDeniedError("not authorized", service="iot", operation="RegisterCertificateWithoutCA")
    ]
    iot.failures[certs[8].certificate_id] = [
        ResourceNotFoundError("no such group", service="iot", operation="AddThingToThingGroup")
    ]
    result = SQSConsumer(importer_over(iot)).process(
        fakes.sqs_event([body_for(certs[7]), body_for(certs[8])])
    )
    assert [r.disposition for r in result.records] == ["retry", "retry"]


def test_a_certificate_refused_before_any_call_is_a_permanent_failure(
    fakes: SimpleNamespace, expired: DeviceCertificate
) -> None:
    # Thing names that are not valid are mapped to valid ones by the importer now; an
    # expired certificate is what the importer refuses outright.
    iot = fakes.FakeIoT()
    result = SQSConsumer(importer_over(iot)).process(fakes.sqs_event([body_for(expired)]))
    assert result.records[0].disposition == "failed"
    assert result.item_failures == []
    assert not iot.certificates


def test_consumer_settings_are_checked(fakes: SimpleNamespace) -> None:
    with pytest.raises(ConfigurationError):
        SQSConsumer(importer_over(fakes.FakeIoT()), safety_margin=-1)
    with pytest.raises(ConfigurationError):
        SQSConsumer(importer_over(fakes.FakeIoT()), give_up_after=0)


def test_handle_sqs_event_remembers_preflight_per_importer_without_keeping_it_alive(
    fakes: SimpleNamespace, certs: list[DeviceCertificate]
) -> None:
    iot = fakes.FakeIoT()
    iot.existing.add("policy:P")
    importer = importer_over(iot)
    event = fakes.sqs_event([body_for(certs[9], policies=("P",))])
    assert handle_sqs_event(event, importer=importer) == {"batchItemFailures": []}
    assert handle_sqs_event(event, importer=importer) == {"batchItemFailures": []}
    assert iot.calls["describe.policy"] == 1  # the second event reused the first's preflight
    # The remembered state must not keep the importer alive (a per-invocation importer would
    # otherwise leak one importer and consumer per event).
    ref = weakref.ref(importer)
    del importer
    gc.collect()
    assert ref() is None


def test_default_consumer_failure_returns_every_record(
    fakes: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("THINGPRESS_LAMBDA_SAFETY_MARGIN", "-5")
    expected = {"batchItemFailures": [{"itemIdentifier": "m0"}, {"itemIdentifier": "m1"}]}
    assert sqs_handler(fakes.sqs_event(["{}", "{}"])) == expected
    assert handle_sqs_event(fakes.sqs_event(["{}", "{}"])) == expected
    # with an importer of its own the handler still reads THINGPRESS_LAMBDA_*
    assert (
        handle_sqs_event(fakes.sqs_event(["{}", "{}"]), importer=importer_over(fakes.FakeIoT())) == expected
    )


def test_no_log_line_carries_a_certificate_body(
    fakes: SimpleNamespace,
    certs: list[DeviceCertificate],
    expired: DeviceCertificate,
    caplog: pytest.LogCaptureFixture,
) -> None:
    iot = fakes.FakeIoT()
    iot.failures[certs[1].certificate_id] = [fakes.throttled()]
    iot.failures[certs[2].certificate_id] = [
        InvalidRequestError("rejected", service="iot", operation="RegisterCertificateWithoutCA")
    ]
    refused = ImportRequest(certificate=encode_for_transport(expired), thing_name="not valid!")
    legacy = {"certificate": str(base64.b64encode(certs[4].pem.encode())), "cert_format": "DER"}
    bodies = [
        body_for(certs[0]),
        body_for(certs[1]),
        body_for(certs[2]),
        refused.to_body(),
        json.dumps(legacy),
        "{" + encode_for_transport(certs[5]),  # not JSON
        json.dumps({"schema_version": 1, "certificate": encode_for_transport(certs[6]), "x": 1}),
    ]
    consumer = SQSConsumer(importer_over(iot), give_up_after=None)
    with caplog.at_level(logging.DEBUG, logger="thingpress_core"):
        result = consumer.process(fakes.sqs_event(bodies))
    assert [r.disposition for r in result.records] == [
        "succeeded",
        "retry",
        "failed",
        "failed",
        "malformed",
        "malformed",
        "malformed",
    ]
    secrets: list[str] = []
    for cert in [*certs[:7], expired]:
        secrets += cert.pem.splitlines()[1:-1]
        text = encode_for_transport(cert)
        secrets += [text[i : i + 40] for i in range(0, len(text) - 40, 40)]
    assert caplog.records
    for record in caplog.records:
        texts = [record.getMessage(), *(str(v) for v in vars(record).values())]
        assert not any(secret in text for secret in secrets for text in texts), record.getMessage()


def test_a_batch_message_stopped_by_preflight_keeps_the_counts_of_what_it_did(
    fakes: SimpleNamespace, certs: list[DeviceCertificate]
) -> None:
    iot = fakes.FakeIoT()
    first = ImportRequest.parse(body_for(certs[10]))
    second = ImportRequest.parse(body_for(certs[11], policies=("NotYet",)))
    body = ImportBatch(requests=(first, second)).to_body()
    (record,) = SQSConsumer(importer_over(iot)).process(fakes.sqs_event([body])).records
    assert record.disposition == "retry"
    assert (record.imported, record.already_present, record.failed) == (1, 0, 0)
    assert record.certificate_ids == (certs[10].certificate_id,)
    assert "NotYet" in (record.reason or "")
