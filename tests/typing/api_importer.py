"""Type-checked only (mypy --strict, pyright strict), never run: the importer's public API."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from thingpress_core.certificates import DeviceCertificate, TrustStore
from thingpress_core.errors import PreflightError
from thingpress_core.importer import (
    CallCounts,
    CertificateImporter,
    FailedStep,
    ImportItem,
    ImportOptions,
    ImportOutcome,
    ImportReport,
    IoTOperations,
    OutcomeStatus,
    ProgressCallback,
    RegistrationResult,
)
from thingpress_core.manifests import ManifestEntry
from thingpress_core.services import IoTService


def options(store: TrustStore) -> ImportOptions:
    by_cn = ImportOptions(policies=("DevicePolicy",), thing_groups=("Fleet",), thing_type="Sensor")
    by_id = ImportOptions(naming="certificate_id", thing_name_prefix="plant1-", status="INACTIVE")

    def serial_name(cert: DeviceCertificate) -> str:
        return cert.serial_number

    custom = ImportOptions(
        naming=serial_name,
        concurrency=16,
        trust_store=store,
        dry_run=True,
        preflight=False,
        transient_rounds=2,
        retry_pause=0.5,
        retry_deadline=None,
        allow_expired=True,
        allow_multiple_things=True,
    )
    calls: int = by_cn.calls_per_certificate()
    policies: tuple[str, ...] = by_cn.policies
    groups: tuple[str, ...] = by_id.thing_groups
    rounds: int = custom.transient_rounds
    _ = (calls, policies, groups, rounds)
    return by_cn


def importer(service: IoTService, opts: ImportOptions) -> CertificateImporter:
    # IoTService satisfies the structural type the importer is written against.
    iot: IoTOperations = service
    default = CertificateImporter(options=opts)
    given = CertificateImporter(iot, options=opts, sleep=lambda seconds: None, clock=lambda: 0.0)
    same: ImportOptions = given.options
    facade: IoTOperations = default.iot
    _ = (same, facade)
    return given


def one(imp: CertificateImporter, cert: DeviceCertificate, entry: ManifestEntry, opts: ImportOptions) -> None:
    outcome: ImportOutcome = imp.import_certificate(cert)
    outcome = imp.import_certificate(entry, options=opts)
    status: OutcomeStatus = outcome.status
    step: FailedStep | None = outcome.failed_step
    certificate_id: str | None = outcome.certificate_id
    thing_name: str | None = outcome.thing_name
    error: str | None = outcome.error
    error_type: str | None = outcome.error_type
    transient: bool = outcome.transient
    calls: int = outcome.calls
    attempts: int = outcome.attempts
    index: int | None = outcome.index
    ok: bool = outcome.ok
    _ = (status, step, certificate_id, thing_name, error, error_type, transient, calls, attempts, index, ok)


def many(imp: CertificateImporter, certs: list[DeviceCertificate], entries: Iterator[ManifestEntry]) -> str:
    try:
        imp.preflight()
    except PreflightError as exc:
        missing: tuple[str, ...] = exc.missing
        _ = missing

    seen: list[ImportOutcome] = []
    progress: ProgressCallback = seen.append
    report: ImportReport = imp.import_all(certs, progress=progress)
    report = imp.import_all(entries)
    mixed: list[ImportItem] = [*certs, ValueError("entry 3: not base64")]
    report = imp.import_all(iter(mixed), progress=lambda outcome: print(outcome.status))

    counts: tuple[int, int, int, int, int] = (
        report.total,
        report.imported,
        report.already_present,
        report.failed,
        report.skipped,
    )
    calls: dict[str, int] = report.calls
    call_failures: dict[str, int] = report.call_failures
    call_retries: dict[str, int] = report.call_retries
    calls_refused: dict[str, int] = report.calls_refused
    failures: list[ImportOutcome] = report.failures
    started: datetime = report.started_at
    numbers: tuple[float, float, int, int, int] = (
        report.duration_seconds,
        report.rate_per_second,
        report.total_calls,
        report.retried,
        report.rounds,
    )
    flags: tuple[bool, bool] = (report.ok, report.dry_run)
    _ = (counts, calls, call_failures, call_retries, calls_refused, failures, started, numbers, flags)
    return report.model_dump_json() + report.summary()


def protocol_parts(stats: CallCounts, registration: RegistrationResult) -> None:
    calls: int = stats.calls["iot.CreateThing"] + stats.failures["iot.CreateThing"]
    arn: str = registration.certificate_arn + registration.certificate_id
    created: bool = registration.created
    _ = (calls, arn, created)
