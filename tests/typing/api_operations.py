"""Type-checked only (mypy --strict, pyright strict), never run: thingpress_core.operations."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from thingpress_core.certificates import DeviceCertificate
from thingpress_core.importer import ImportOptions
from thingpress_core.ledger import Ledger, RunRecord, Target
from thingpress_core.manifests import ManifestEntry
from thingpress_core.operations import (
    UNDO_OPERATIONS,
    DeviceInput,
    DeviceOutcome,
    DeviceRef,
    DeviceStatus,
    Drift,
    ExpectedState,
    FleetOperations,
    OperationInterrupted,
    OperationStep,
    ProblemCode,
    RetryRounds,
    RollbackOutcome,
    RollbackPlan,
    RollbackReport,
    RollbackStep,
    StatusReport,
    VerifyOutcome,
    VerifyReport,
    last_run,
    ledger_devices,
    plan_rollback,
    rollback_run,
    set_status,
    verify_devices,
)
from thingpress_core.services import IoTService


def devices(ledger: Ledger, entry: ManifestEntry, cert: DeviceCertificate) -> list[DeviceInput]:
    target = Target(account_id="123456789012", region="eu-west-1")
    from_ledger: Iterator[DeviceRef] = ledger_devices(ledger, target=target, run_id="r")
    by_key: Iterator[DeviceRef] = ledger_devices(ledger, target=target.key)
    ref = DeviceRef(certificate_id="0" * 64, thing_name="t", certificate_arn=None, source="m.csv", index=3)
    named = DeviceRef.from_entry(entry, naming="certificate_id", prefix="plant1-")
    record = ledger.device(target.key, ref.certificate_id)
    if record is not None:
        ref = DeviceRef.from_record(record)
    body: DeviceCertificate | None = named.certificate
    del from_ledger, by_key, body
    return [ref, named, entry, cert, ValueError("unreadable")]


def expectations(options: ImportOptions, run: RunRecord) -> ExpectedState:
    explicit = ExpectedState(
        policies=("DevicePolicy",),
        thing_groups=("Fleet",),
        thing_type="Sensor",
        status="ACTIVE",
        allow_multiple_things=False,
        naming="common_name",
        thing_name_prefix=None,
    )
    summary: dict[str, object] = explicit.summary()
    del summary
    ExpectedState.from_options(options)
    return ExpectedState.from_run(run)


def verify(iot: IoTService, ledger: Ledger, items: list[DeviceInput], options: ImportOptions) -> None:
    fleet: FleetOperations = iot  # IoTService satisfies the structural type

    def seen(outcome: VerifyOutcome) -> None:
        drift: tuple[Drift, ...] = outcome.problems
        codes: list[ProblemCode] = [d.code for d in drift]
        step: OperationStep | None = outcome.failed_step
        status: DeviceStatus = outcome.status
        del codes, step, status

    report: VerifyReport = verify_devices(
        fleet,
        items,
        expected=ExpectedState(),
        repair=True,
        concurrency=16,
        progress=seen,
        ledger=ledger,
        target=Target(account_id="123456789012", region="eu-west-1"),
        retry=RetryRounds(rounds=2, pause=0.5, deadline=None),
        sleep=lambda seconds: None,
        clock=lambda: 0.0,
    )
    verify_devices(iot, items, expected=options)
    counts: tuple[int, int, int, int, int] = (
        report.in_sync,
        report.drifted,
        report.repaired,
        report.failed,
        report.total_calls,
    )
    drifted: list[VerifyOutcome] = report.drifted_devices
    line: str = report.summary()
    started: datetime = report.started_at
    del counts, drifted, line, started


def status(iot: IoTService, ledger: Ledger, items: list[DeviceInput]) -> None:
    def seen(outcome: DeviceOutcome) -> None:
        ok: bool = outcome.ok
        del ok

    report: StatusReport = set_status(iot, items, "ACTIVE", ledger=ledger, target="123456789012/eu-west-1")
    set_status(iot, items, "INACTIVE", concurrency=4, progress=seen, retry=RetryRounds())
    failures: list[DeviceOutcome] = report.failures
    del failures


def rollback(iot: IoTService, ledger: Ledger) -> None:
    run: RunRecord | None = last_run(ledger, "123456789012/eu-west-1", kind="import")
    if run is None:
        return
    plan: RollbackPlan = plan_rollback(ledger, run.run_id, target=run.target)
    per_step: dict[str, int] = plan.steps
    seconds: float = plan.minimum_seconds({"iot.DeleteCertificate": 10.0})
    lines: list[str] = plan.lines()
    step: RollbackStep = "delete_thing"
    operation: str = UNDO_OPERATIONS[step]
    del per_step, seconds, lines, operation

    def seen(outcome: RollbackOutcome) -> None:
        undone: tuple[str, ...] = outcome.undone
        del undone

    try:
        report: RollbackReport = rollback_run(
            iot, ledger, run.run_id, target=None, dry_run=False, concurrency=8, progress=seen
        )
    except OperationInterrupted as stopped:
        partial = stopped.report
        del partial
        return
    planned: RollbackPlan | None = rollback_run(iot, ledger, run.run_id, dry_run=True).plan
    undone: dict[str, int] = report.undone
    of_run: str = report.of_run
    del planned, undone, of_run


def mistakes(iot: IoTService, items: list[DeviceInput]) -> None:
    set_status(iot, items, "REVOKED")  # type: ignore[arg-type]  # must fail: ACTIVE or INACTIVE only
    ExpectedState(polices=("P",))  # type: ignore[call-arg]  # must fail: misspelt field
    verify_devices(iot, items)  # type: ignore[call-arg]  # must fail: expected= is required
