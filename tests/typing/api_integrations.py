"""Type-checked only (mypy --strict, pyright strict), never run: the SQS/Lambda integration API."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from thingpress_core.certificates import DeviceCertificate
from thingpress_core.importer import CertificateImporter, ImportOptions
from thingpress_core.integrations.aws_lambda import (
    DEFAULT_SAFETY_MARGIN,
    MAX_MANIFEST_BYTES,
    MAX_MESSAGE_BYTES,
    BatchResult,
    EnqueueError,
    EnqueueFailure,
    EnqueueProgress,
    EnqueueReport,
    ImportBatch,
    ImportRequest,
    ImportSource,
    LambdaContext,
    LambdaSettings,
    MessageParseError,
    RecordDisposition,
    RecordResult,
    S3EventReport,
    S3ObjectReport,
    SQSConsumer,
    build_importer,
    enqueue_manifest,
    handle_s3_event,
    handle_sqs_event,
    parse_message,
    s3_handler,
)
from thingpress_core.manifests import ManifestEntry
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
        manifest_options={"verifiers": ["signer.pem"]},
    )
    report = handle_s3_event(event)
    objects: tuple[S3ObjectReport, ...] = report.objects
    sent: int = report.sent
    data: dict[str, Any] = s3_handler(event, Context())
    print(objects, sent, data)


def settings() -> None:
    env = LambdaSettings(queue_url="https://queue", per_message=2)
    options: ImportOptions = env.import_options()
    importer: CertificateImporter = build_importer(ThingpressSettings(region="eu-west-1"), options=options)
    importer = build_importer()
    margin: float = env.safety_margin
    print(importer, margin)
