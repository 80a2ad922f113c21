"""LambdaRuntime, the batch loop and the per-record function, each on its own."""

from __future__ import annotations

import ast
import dataclasses
import datetime
import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from thingpress_core.certificates import DeviceCertificate, encode_for_transport
from thingpress_core.certificates.generate import generate_device_certificates
from thingpress_core.clients import ClientFactory
from thingpress_core.errors import (
    AccessDeniedError,
    ConfigurationError,
    InvalidRequestError,
    ResourceNotFoundError,
)
from thingpress_core.importer import CertificateImporter, ImportOptions, OutcomeStatus
from thingpress_core.integrations.aws_lambda import (
    BatchLoop,
    BatchResult,
    ImportBatch,
    ImportRequest,
    LambdaRuntime,
    LambdaSettings,
    PreflightCache,
    RecordDurations,
    RecordResult,
    default_runtime,
    process_record,
    sqs_handler,
)
from thingpress_core.resilience import DEFAULT_RATE_LIMITS, CircuitBreakerSettings, ResilienceSettings
from thingpress_core.services import IoTService
from thingpress_core.settings import ThingpressSettings

SRC = Path(__file__).resolve().parents[2] / "src" / "thingpress_core"


@pytest.fixture(scope="module")
def certs() -> list[DeviceCertificate]:
    return list(generate_device_certificates(8, cn_prefix="runtime-"))


@pytest.fixture(scope="module")
def expired() -> DeviceCertificate:
    start = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)
    return next(generate_device_certificates(1, cn_prefix="old-", not_before=start, not_after=start))


def body_for(cert: DeviceCertificate, **fields: Any) -> str:
    return ImportRequest(
        certificate=encode_for_transport(cert), thing_name=cert.common_name, **fields
    ).to_body()


def record(body: str | None, message_id: str = "m0") -> dict[str, Any]:
    return {"messageId": message_id, **({"body": body} if body is not None else {})}


# -- the runtime -------------------------------------------------------------------------


def test_from_settings_builds_every_service_over_one_factory(factory: ClientFactory) -> None:
    runtime = LambdaRuntime.from_settings(LambdaSettings(queue_url="q", policies=("P",)), factory)
    iot = runtime.importer.iot
    assert isinstance(iot, IoTService)
    assert runtime.iot is iot
    assert runtime.s3 is not None
    assert runtime.sqs is not None
    assert iot.factory is factory
    assert runtime.s3.factory is factory
    assert runtime.sqs.factory is factory
    assert runtime.factory is factory
    assert runtime.importer.options.policies == ("P",)
    assert runtime.registry is iot.registry
    with pytest.raises(dataclasses.FrozenInstanceError):
        runtime.settings = LambdaSettings()  # type: ignore[misc]


def test_sqs_handler_with_a_runtime_over_moto(factory: ClientFactory, certs: list[DeviceCertificate]) -> None:
    settings = ThingpressSettings(
        region="us-east-1",
        account_id="123456789012",
        resilience=ResilienceSettings(
            rate_limits=dict.fromkeys(DEFAULT_RATE_LIMITS, math.inf),
            breaker_defaults=CircuitBreakerSettings(enabled=False),
        ),
    )
    moto_factory = ClientFactory(settings)
    moto_factory.iot().create_policy(
        policyName="P",
        policyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
    )
    runtime = LambdaRuntime.from_settings(LambdaSettings(), moto_factory)
    event = {"Records": [record(body_for(certs[0], policies=("P",)))]}
    assert sqs_handler(event, None, runtime=runtime) == {"batchItemFailures": []}
    again = runtime.process_sqs_event(event)
    assert (again.certificates("imported"), again.certificates(OutcomeStatus.ALREADY_PRESENT)) == (0, 1)
    registered = moto_factory.iot().list_certificates()["certificates"]
    assert [c["certificateId"] for c in registered] == [certs[0].certificate_id]


def test_default_runtime_is_built_once_and_forgotten_on_clear(monkeypatch: pytest.MonkeyPatch) -> None:
    first = default_runtime()
    assert default_runtime() is first
    assert first.settings.safety_margin == 10.0
    monkeypatch.setenv("THINGPRESS_LAMBDA_SAFETY_MARGIN", "5")
    assert default_runtime() is first  # the environment is read once per process
    default_runtime.cache_clear()
    second = default_runtime()
    assert second is not first
    assert second.settings.safety_margin == 5.0


def test_a_runtime_that_cannot_be_built_is_tried_again(monkeypatch: pytest.MonkeyPatch) -> None:
    event = {"Records": [record("{}", "a"), record("{}", "b")]}
    monkeypatch.setenv("THINGPRESS_LAMBDA_GIVE_UP_AFTER", "0")
    assert sqs_handler(event) == {"batchItemFailures": [{"itemIdentifier": "a"}, {"itemIdentifier": "b"}]}
    assert default_runtime.cache_info().currsize == 0  # the failure is not remembered
    monkeypatch.delenv("THINGPRESS_LAMBDA_GIVE_UP_AFTER")
    assert sqs_handler({"Records": []}) == {"batchItemFailures": []}
    assert default_runtime.cache_info().currsize == 1


def test_settings_without_s3_services_say_so(fakes: SimpleNamespace) -> None:
    runtime = fakes.runtime_over(fakes.FakeIoT(), queue_url="https://queue")
    with pytest.raises(ConfigurationError, match="no S3 or SQS service"):
        runtime.process_s3_event({"Records": []})


# -- process_record: one record, the importer's vocabulary --------------------------------


def test_counts_speak_the_importers_vocabulary(
    fakes: SimpleNamespace, certs: list[DeviceCertificate], expired: DeviceCertificate
) -> None:
    iot = fakes.FakeIoT()
    importer = CertificateImporter(iot, options=ImportOptions())
    importer.import_certificate(certs[1])  # registered before
    requests = tuple(ImportRequest.parse(body_for(c)) for c in (certs[0], certs[1], expired))
    result = process_record(importer, record(ImportBatch(requests=requests).to_body()))
    assert (result.imported, result.already_present, result.failed, result.skipped) == (1, 1, 1, 0)
    assert result.count(OutcomeStatus.IMPORTED) == 1
    assert result.count("failed") == 1
    assert result.redeliver is None
    assert not result.item_failure
    assert result.disposition == "failed"
    assert "expired" in (result.reason or "")
    with pytest.raises(ValueError, match="unknown outcome status"):
        result.count("retry")


def test_a_dry_run_counts_skipped(fakes: SimpleNamespace, certs: list[DeviceCertificate]) -> None:
    iot = fakes.FakeIoT()
    importer = CertificateImporter(iot, options=ImportOptions(dry_run=True))
    result = process_record(
        importer, record(body_for(certs[2], policies=("Missing",))), preflight=PreflightCache()
    )
    assert (result.skipped, result.imported, result.already_present) == (1, 0, 0)
    assert result.disposition == "succeeded"
    assert iot.calls == {}  # no preflight and no import call in a dry run


class PolicyGoneError(ResourceNotFoundError):
    """A narrower not-found error: still the deployment's problem."""


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (AccessDeniedError("denied", service="iot", operation="RegisterCertificateWithoutCA"), "deployment"),
        (ResourceNotFoundError("gone", service="iot", operation="AttachPolicy"), "deployment"),
        (PolicyGoneError("gone", service="iot", operation="AttachPolicy"), "deployment"),
        (InvalidRequestError("rejected", service="iot", operation="RegisterCertificateWithoutCA"), None),
    ],
)
def test_what_goes_back_to_sqs_is_read_from_the_outcome(
    fakes: SimpleNamespace, certs: list[DeviceCertificate], error: Exception, expected: str | None
) -> None:
    iot = fakes.FakeIoT()
    iot.failures[certs[3].certificate_id] = [error]
    result = process_record(CertificateImporter(iot, options=ImportOptions()), record(body_for(certs[3])))
    assert result.redeliver == expected
    assert result.failed == (0 if expected else 1)


def test_transient_and_malformed_records(fakes: SimpleNamespace, certs: list[DeviceCertificate]) -> None:
    iot = fakes.FakeIoT()
    iot.failures[certs[4].certificate_id] = [fakes.throttled()]
    importer = CertificateImporter(iot, options=ImportOptions())
    assert process_record(importer, record(body_for(certs[4]))).redeliver == "transient"
    assert process_record(importer, record("{not json")).redeliver == "malformed"
    assert process_record(importer, record(None)).redeliver == "malformed"
    not_a_record = process_record(importer, ["a", "list"])
    assert (not_a_record.message_id, not_a_record.redeliver) == ("record", "malformed")


def test_preflight_verdicts(fakes: SimpleNamespace, certs: list[DeviceCertificate]) -> None:
    now = [0.0]
    iot = fakes.FakeIoT()
    importer = CertificateImporter(iot, options=ImportOptions())
    cache = PreflightCache(retry_after=30.0, clock=lambda: now[0])
    body = body_for(certs[5], policies=("Later",))
    missing = process_record(importer, record(body), preflight=cache)
    assert (missing.redeliver, missing.disposition) == ("deployment", "retry")
    assert process_record(importer, record(body), preflight=cache).redeliver == "deployment"
    assert iot.calls["describe.policy"] == 1  # remembered for retry_after seconds
    iot.existing.add("policy:Later")
    now[0] = 31.0
    assert process_record(importer, record(body), preflight=cache).redeliver is None
    cache.clear()
    assert process_record(importer, record(body), preflight=cache).already_present == 1
    assert iot.calls["describe.policy"] == 3


def test_a_preflight_that_could_not_run_is_transient_and_not_remembered(
    fakes: SimpleNamespace, certs: list[DeviceCertificate]
) -> None:
    iot = fakes.FakeIoT()
    throttles = [fakes.throttled("GetPolicy")]

    def get_policy(name: str, /) -> object:
        iot.calls["describe.policy"] += 1
        if throttles:
            raise throttles.pop()
        return SimpleNamespace(name=name)

    iot.get_policy = get_policy
    importer = CertificateImporter(iot, options=ImportOptions())
    cache = PreflightCache()
    body = body_for(certs[6], policies=("P",))
    first = process_record(importer, record(body), preflight=cache)
    assert first.redeliver == "transient"
    assert "preflight could not run" in (first.reason or "")
    assert process_record(importer, record(body), preflight=cache).imported == 1
    assert iot.calls["describe.policy"] == 2


# -- the batch loop: time, give-up, crashes; the per-record function is scripted ----------


def scripted(*results: RecordResult | Exception) -> Any:
    pending = list(results)

    def handler(record: object, message_id: str) -> RecordResult:
        item = pending.pop(0)
        if isinstance(item, Exception):
            raise item
        return item.model_copy(update={"message_id": message_id})

    return handler


def sqs_event(count: int) -> dict[str, Any]:
    return {"Records": [record("{}", f"m{i}") for i in range(count)]}


def test_only_transient_failures_count_towards_giving_up() -> None:
    loop = BatchLoop(give_up_after=2)
    deployment = RecordResult(message_id="", redeliver="deployment")
    transient = RecordResult(message_id="", redeliver="transient")
    batch = loop.run(sqs_event(5), scripted(deployment, deployment, deployment, transient, transient))
    assert [r.redeliver for r in batch.records] == ["deployment"] * 3 + ["transient"] * 2
    batch = loop.run(sqs_event(4), scripted(transient, transient))
    assert [r.redeliver for r in batch.records] == ["transient", "transient", "gave_up", "gave_up"]
    assert batch.stopped == "2 transient failures in a row"
    assert not batch.records[2].started


def test_a_crashing_record_is_an_item_failure_and_the_rest_go_on() -> None:
    ok = RecordResult(message_id="", imported=1)
    batch = BatchLoop().run(sqs_event(3), scripted(ok, RuntimeError("bug"), ok))
    assert [r.redeliver for r in batch.records] == [None, "unexpected", None]
    assert batch.response() == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    assert batch.redelivered()["unexpected"] == 1
    assert batch.certificates("imported") == 2


def test_record_durations_carry_over_between_events(fakes: SimpleNamespace) -> None:
    durations = RecordDurations()
    now = [0.0]

    def clock() -> float:
        now[0] += 4.0  # each reading 4 s later: one record takes 4 s
        return now[0]

    loop = BatchLoop(safety_margin=10.0, durations=durations, clock=clock)
    first = loop.run(sqs_event(1), scripted(RecordResult(message_id="")), fakes.FakeContext(13_000))
    assert first.records[0].seconds == pytest.approx(4.0)
    assert durations.slowest() == pytest.approx(4.0)
    # a later event, a new loop over the same durations: 13 s left < 10 + 4
    later = BatchLoop(safety_margin=10.0, durations=durations, clock=clock)
    second = later.run(sqs_event(2), scripted(), fakes.FakeContext(13_000))
    assert [r.redeliver for r in second.records] == ["out_of_time", "out_of_time"]
    assert [r.disposition for r in second.records] == ["deferred", "deferred"]


def test_batch_loop_settings_are_checked() -> None:
    with pytest.raises(ConfigurationError, match="safety_margin"):
        BatchLoop(safety_margin=-1)
    with pytest.raises(ConfigurationError, match="give_up_after"):
        BatchLoop(give_up_after=0)


def test_the_summary_line_counts_certificates_and_item_failures() -> None:
    batch = BatchResult(
        records=(
            RecordResult(message_id="a", imported=2, already_present=1),
            RecordResult(message_id="b", failed=1),
            RecordResult(message_id="c", redeliver="malformed"),
            RecordResult(message_id="d", redeliver="out_of_time"),
        ),
        stopped="1.0 s of Lambda time left, 10.0 s needed",
    )
    assert batch.summary() == (
        "SQS batch of 4 records: 2 imported, 1 already present, 1 failed, 0 skipped; "
        "2 item failures (1 malformed, 1 out_of_time) (1.0 s of Lambda time left, 10.0 s needed)"
    )
    assert batch.count("failed") == 1
    assert batch.count("deferred") == 1


# -- hygiene the issue asked for ------------------------------------------------------------


def test_no_global_statement_in_src() -> None:
    offenders = [
        f"{path.relative_to(SRC)}:{node.lineno}"
        for path in SRC.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Global)
    ]
    assert offenders == []


def test_no_private_usage_ignores_in_the_integration() -> None:
    texts = {p.name: p.read_text(encoding="utf-8") for p in (SRC / "integrations").glob("*.py")}
    assert texts  # the package was found
    assert [name for name, text in texts.items() if "reportPrivateUsage" in text] == []


def test_no_integration_test_patches_module_state() -> None:
    here = Path(__file__).parent
    texts = {p.name: p.read_text(encoding="utf-8") for p in here.glob("*.py")}
    needle = "monkeypatch." + "setattr"  # split so this file does not find itself
    assert [name for name, text in texts.items() if needle in text] == []
