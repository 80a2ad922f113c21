"""Type-checked, never run: every public signature of thingpress_core.services and .testing."""

from __future__ import annotations

import io
from collections.abc import Iterator

from thingpress_core.certificates import DeviceCertificate
from thingpress_core.clients import ClientFactory
from thingpress_core.resilience import CircuitBreakerRegistry, RateLimiter
from thingpress_core.services import (
    BatchSendError,
    BatchSendReport,
    CallStats,
    CertificateDescription,
    CertificateRegistration,
    FailedMessage,
    IoTService,
    PolicyInfo,
    QueueDepth,
    ReceivedMessage,
    S3Object,
    S3ObjectRef,
    S3ObjectStream,
    S3Service,
    SQSService,
    Thing,
    ThingGroupInfo,
    ThingTypeInfo,
)
from thingpress_core.settings import ThingpressSettings
from thingpress_core.testing import QUOTA_PRESETS, FaultInjector, Injection


def iot_api(cert: DeviceCertificate, factory: ClientFactory) -> None:
    iot = IoTService(factory)
    iot2 = IoTService(
        settings=ThingpressSettings(), registry=CircuitBreakerRegistry(), limiter=RateLimiter({})
    )
    iot3 = IoTService()
    reg: CertificateRegistration = iot.register_certificate(cert)
    reg = iot.register_certificate(cert, status="INACTIVE")
    created: bool = reg.created
    thing: Thing = iot.ensure_thing("t", thing_type="sensor", attributes={"a": "b"})
    updated: bool = thing.updated
    iot.attach_thing_principal(thing.name, reg.certificate_arn, exclusive=True)
    iot.attach_policy("p", reg.certificate_arn)
    iot.add_thing_to_group("t", "g")
    desc: CertificateDescription = iot.describe_certificate(reg.certificate_id)
    iot.update_certificate_status(desc.certificate_id, "REVOKED")
    policy: PolicyInfo = iot.get_policy("p")
    group: ThingGroupInfo = iot.describe_thing_group("g")
    thing_type: ThingTypeInfo = iot.describe_thing_type("sensor")
    policies: tuple[str, ...] = iot.list_attached_policies(reg.certificate_arn)
    lazy_policies: Iterator[str] = iot.iter_attached_policies(reg.certificate_arn)
    groups: tuple[str, ...] = iot.list_thing_groups_for_thing("t")
    lazy_groups: Iterator[str] = iot.iter_thing_groups_for_thing("t")
    principals: tuple[str, ...] = iot.list_thing_principals("t")
    things: tuple[str, ...] = iot.list_principal_things(reg.certificate_arn)
    iot.detach_policy("p", reg.certificate_arn)
    iot.detach_thing_principal("t", reg.certificate_arn)
    iot.remove_thing_from_group("t", "g")
    iot.delete_thing("t")
    iot.delete_thing("t", expected_version=3)
    iot.delete_certificate(reg.certificate_id)
    iot.delete_certificate(reg.certificate_id, force_delete=True)
    arn: str = iot.certificate_arn(reg.certificate_id)
    thing_arn: str = iot.thing_arn("t")
    stats: CallStats = iot.stats()
    total: int = stats.total_calls + (stats + iot2.stats()).total_failures
    calls: dict[str, int] = stats.calls
    iot.reset_stats()
    registry: CircuitBreakerRegistry = iot.registry
    limiter: RateLimiter = iot.limiter
    same_factory: ClientFactory = iot3.factory
    settings: ThingpressSettings = iot.settings
    del created, updated, policy, group, thing_type, arn, thing_arn, total, calls
    del policies, lazy_policies, groups, lazy_groups, principals, things
    del registry, limiter, same_factory, settings


def s3_api(factory: ClientFactory, iot: IoTService) -> None:
    s3 = S3Service(factory, registry=iot.registry, limiter=iot.limiter)
    obj: S3Object = s3.get_object("b", "k", max_bytes=10)
    body: bytes = obj.body
    with s3.open_object("b", "k") as stream:
        text = io.TextIOWrapper(io.BufferedReader(stream))
        size: int | None = stream.size
    same: S3ObjectStream = stream
    ref: S3ObjectRef = s3.put_object("b", "k", b"data", content_type="text/plain")
    ref = s3.put_object("b", "k", "text")
    listing: Iterator[S3ObjectRef] = s3.list_objects("b", "prefix/", page_size=100)
    refs: list[S3ObjectRef] = S3ObjectRef.from_event({"Records": []})
    version: str | None = refs[0].version_id
    del body, text, size, same, ref, listing, version


def sqs_api(factory: ClientFactory) -> None:
    sqs = SQSService(factory, sleep=lambda seconds: None, seed=1)
    report: BatchSendReport = sqs.send_messages(
        "url", ["a", "b"], max_attempts=3, backoff_base=0.1, backoff_cap=1.0
    )
    report = sqs.send_messages("url", (s for s in ["a"]))
    failed: tuple[FailedMessage, ...] = report.failed
    index: int = failed[0].index
    sent: int = report.sent
    ok: bool = report.ok
    report.raise_for_failures()
    depth: QueueDepth = sqs.queue_depth("url")
    messages: list[ReceivedMessage] = sqs.receive(
        "url", max_messages=5, wait_seconds=1, visibility_timeout=30
    )
    deleted: int = sqs.delete_batch("url", [m.receipt_handle for m in messages])
    try:
        report.raise_for_failures()
    except BatchSendError as exc:
        failures: tuple[FailedMessage, ...] = exc.failures
        del failures
    del index, sent, ok, depth, deleted


def testing_api(factory: ClientFactory, iot: IoTService) -> None:
    with FaultInjector(factory, seed=1, sleep=lambda s: None, clock=lambda: 0.0, fast_retries=True) as faults:
        chained: FaultInjector = (
            faults.throttle("iot.CreateThing", times=2)
            .server_error("iot.AttachPolicy", status=503, rate=0.5)
            .connection_error("iot.AttachThingPrincipal", kind="closed", after=1)
            .error("iot.CreateThing", code="ResourceAlreadyExistsException", status=409, fields={"a": 1})
            .partial_batch_failure(entries=[0, 2], sender_fault=False, code="InternalError")
            .latency("sqs.SendMessageBatch", 0.1)
            .lost_response("iot.RegisterCertificateWithoutCA", kind="read_timeout", times=1)
            .quota("aws-iot-defaults", scale=0.5)
            .quota({"iot.CreateThing": 5.0}, burst=2.0)
        )
        records: list[Injection] = faults.records
        counts: dict[str, int] = faults.counts
        attempts: dict[str, int] = faults.attempts
        delays: list[float] = faults.retry_delays
        n: int = faults.count("iot.CreateThing", kind="throttle")
        faults.clear()
    faults.detach()
    FaultInjector(iot.factory.iot())
    rate: float = QUOTA_PRESETS["aws-iot-defaults"]["iot.CreateThing"]
    del chained, records, counts, attempts, delays, n, rate
