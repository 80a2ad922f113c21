"""Type-checked only (mypy --strict, pyright strict), never run: the SQS/Lambda integration API."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from thingpress_core.certificates import DeviceCertificate
from thingpress_core.clients import ClientFactory
from thingpress_core.importer import CertificateImporter, ImportOptions, IoTOperations, OutcomeStatus
from thingpress_core.integrations.aws_lambda import (
    DEFAULT_SAFETY_MARGIN,
    MAX_MANIFEST_BYTES,
    MAX_MESSAGE_BYTES,
    BatchLoop,
    BatchResult,
    EnqueueError,
    EnqueueFailure,
    EnqueueProgress,
    EnqueueReport,
    ImportBatch,
    ImportRequest,
    ImportSource,
    LambdaContext,
    LambdaRuntime,
    LambdaSettings,
    MessageParseError,
    PreflightCache,
    RecordDisposition,
    RecordDurations,
    RecordResult,
    RedeliverReason,
    S3EventReport,
    S3ObjectReport,
    SQSConsumer,
    build_importer,
    default_runtime,
    enqueue_manifest,
    handle_s3_event,
    handle_sqs_event,
    parse_message,
    process_record,
    s3_handler,
    sqs_handler,
)
from thingpress_core.manifests import ManifestEntry
from thingpress_core.resilience import CircuitBreakerRegistry
from thingpress_core.services import S3Service, SQSService
from thingpress_core.settings import ThingpressSettings


class Context:
    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def messages(cert: DeviceCertificate, entry: ManifestEntry) -> None:
    source = ImportSource(vendor="microchip", bucket="b", key="k", index=0)
    label: str = source.label()
    request = ImportRequest(certificate="x", thing_name=None, policies=("P",), source=source)
    body: str = request.to_body()
    again: ImportRequest = ImportRequest.parse(body)
    again = ImportRequest.parse(body.encode(), message_id="m-1")
    options: ImportOptions = ImportOptions()
    built: ImportRequest = ImportRequest.from_certificate(cert, options=options, source=source, index=3)
    built = ImportRequest.from_certificate(entry)
    as_entry: ManifestEntry = built.to_entry()
    options = built.options_for(options)
    version: Literal[1] = request.schema_version
    status: Literal["ACTIVE", "INACTIVE"] | None = request.status
    batch = ImportBatch(requests=(request, again))
    all_of: tuple[ImportRequest, ...] = parse_message(
        batch.to_body(), message_id=None, max_bytes=MAX_MESSAGE_BYTES
    )
    try:
        parse_message(b"{}")
    except MessageParseError as exc:
        reason: str = exc.reason
        message_id: str | None = exc.message_id
        print(reason, message_id)
    print(label, as_entry, options, version, status, all_of)


def producer(certs: Iterator[DeviceCertificate], entries: list[ManifestEntry], sqs: SQSService) -> None:
    def bar(progress: EnqueueProgress) -> None:
        print(progress.total, progress.sent, progress.failed, progress.messages)

    report: EnqueueReport = enqueue_manifest(certs, "https://queue", options=ImportOptions())
    report = enqueue_manifest(
        entries,
        "https://queue",
        options=ImportOptions(policies=("P",)),
        sqs=sqs,
        per_message=5,
        source=ImportSource(vendor="espressif"),
        progress=bar,
        max_message_bytes=262_144,
    )
    failures: tuple[EnqueueFailure, ...] = report.failed
    ok: bool = report.ok
    summary: str = report.summary()
    try:
        enqueue_manifest([], "q", options=ImportOptions())
    except EnqueueError as exc:
        partial: EnqueueReport = exc.report
        print(partial)
    print(failures, ok, summary)


def consumer(importer: CertificateImporter, event: dict[str, Any]) -> None:
    context: LambdaContext = Context()
    response: dict[str, list[dict[str, str]]] = handle_sqs_event(event)
    response = handle_sqs_event(event, context, importer=importer)
    worker = SQSConsumer(
        importer,
        options=ImportOptions(),
        safety_margin=DEFAULT_SAFETY_MARGIN,
        give_up_after=None,
        preflight=True,
        preflight_retry_after=60.0,
        clock=lambda: 0.0,
    )
    result: BatchResult = worker.process(event, context)
    records: tuple[RecordResult, ...] = result.records
    disposition: RecordDisposition = records[0].disposition
    failures: list[str] = result.item_failures
    response = worker.handle(event)
    retry: bool = records[0].item_failure
    print(response, disposition, failures, retry)


def s3(event: dict[str, Any], s3: S3Service, sqs: SQSService) -> None:
    report: S3EventReport = handle_s3_event(
        event,
        None,
        queue_url="https://queue",
        options=ImportOptions(),
        s3=s3,
        sqs=sqs,
        max_bytes=MAX_MANIFEST_BYTES,
        format="microchip",
        per_message=1,
        verifiers=("signer.pem",),
        manifest_options={"verifiers": ["signer.pem"]},
    )
    report = handle_s3_event(event, queue_url="https://queue", options=ImportOptions(), s3=s3, sqs=sqs)
    handle_s3_event(event)  # type: ignore[call-arg]  # queue, options and services are required
    objects: tuple[S3ObjectReport, ...] = report.objects
    sent: int = report.sent
    data: dict[str, Any] = s3_handler(event, Context())
    print(objects, sent, data)


def runtime(event: dict[str, Any], importer: CertificateImporter, factory: ClientFactory) -> None:
    built: LambdaRuntime = LambdaRuntime.from_environment()
    built = LambdaRuntime.from_environment(factory=factory)
    built = LambdaRuntime.from_settings(LambdaSettings(queue_url="https://queue"), factory)
    built = LambdaRuntime(
        settings=LambdaSettings(),
        importer=importer,
        factory=factory,
        s3=S3Service(factory),
        sqs=SQSService(factory),
        preflight=PreflightCache(retry_after=30.0, clock=lambda: 0.0),
        durations=RecordDurations(size=10),
        clock=lambda: 0.0,
    )
    built = default_runtime()
    default_runtime.cache_clear()
    settings: LambdaSettings = built.settings
    iot: IoTOperations = built.iot
    registry: CircuitBreakerRegistry | None = built.registry
    s3: S3Service | None = built.s3
    loop: BatchLoop = built.batch_loop()
    batch: BatchResult = built.process_sqs_event(event, Context())
    response: dict[str, list[dict[str, str]]] = built.handle_sqs_event(event)
    response = sqs_handler(event, Context(), runtime=built)
    response = sqs_handler(event)
    report: S3EventReport = built.process_s3_event(event)
    data: dict[str, Any] = built.handle_s3_event(event, None)
    data = s3_handler(event, runtime=built)
    one: RecordResult = built.process_record({"messageId": "m", "body": "{}"}, "m")
    print(settings, iot, registry, s3, loop, batch, response, report, data, one)


def records(importer: CertificateImporter, event: dict[str, Any]) -> None:
    result: RecordResult = process_record(
        importer, {"body": "{}"}, options=ImportOptions(), preflight=PreflightCache(), message_id="m-1"
    )
    why: RedeliverReason | None = result.redeliver
    counts: tuple[int, int, int, int] = (
        result.imported,
        result.already_present,
        result.failed,
        result.skipped,
    )
    imported: int = result.count(OutcomeStatus.IMPORTED) + result.count("failed")
    started: bool = result.started
    text: str | None = result.reason

    def handler(record: object, message_id: str) -> RecordResult:
        return process_record(importer, record, message_id=message_id)

    loop = BatchLoop(safety_margin=5.0, give_up_after=None, durations=RecordDurations(), clock=lambda: 0.0)
    batch: BatchResult = loop.run(event, handler, Context())
    per_reason: dict[RedeliverReason, int] = batch.redelivered()
    total: int = batch.certificates(OutcomeStatus.ALREADY_PRESENT)
    line: str = batch.summary()
    stopped: str | None = batch.stopped
    verdict: tuple[RedeliverReason, str] | None = PreflightCache().check(importer.iot, ImportOptions())
    print(why, counts, imported, started, text, per_reason, total, line, stopped, verdict)


def settings(factory: ClientFactory) -> None:
    env = LambdaSettings(queue_url="https://queue", per_message=2)
    LambdaSettings(qeue_url="https://queue")  # type: ignore[call-arg]  # a misspelt setting is caught
    LambdaSettings(per_message="2")  # type: ignore[arg-type]  # the constructor is typed
    options: ImportOptions = env.import_options()
    importer: CertificateImporter = build_importer(ThingpressSettings(region="eu-west-1"), options=options)
    importer = build_importer()
    importer = build_importer(options=options, factory=factory)
    margin: float = env.safety_margin
    print(importer, margin)
