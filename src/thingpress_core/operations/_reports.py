"""What the fleet operations report: one outcome per device, one report per operation.

Every report is "like an import's": ``total == changed + unchanged + failed`` (checked when the
report is built), ``failures`` lists each failed device with its step, reason, error and
whether it was transient, ``calls`` counts the IoT calls per operation (from the service's
own counters), and ``run_id``/``ledger`` name the run when a ledger recorded it.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Generic, Literal, TypeAlias, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from thingpress_core._vocabulary import RegistrationStatus
from thingpress_core.operations._models import Drift
from thingpress_core.operations._plan import RollbackPlan

__all__ = [
    "DeviceOutcome",
    "DeviceStatus",
    "OperationInterrupted",
    "OperationReport",
    "OperationStep",
    "RollbackOutcome",
    "RollbackReport",
    "StatusReport",
    "VerifyOutcome",
    "VerifyReport",
]

#: What happened to one device: ``changed`` (the operation changed something in AWS: a
#: repair, a status set, undos made), ``unchanged`` (nothing needed or nothing made: a device
#: verified, in sync or not, a status the ledger shows already, a device the run did not make),
#: ``failed``.
DeviceStatus: TypeAlias = Literal["changed", "unchanged", "failed"]

#: The step a device failed at. ``input``: the item was no device (a manifest entry that could
#: not be read); ``name``: no thing name could be made; ``ledger``: the ledger could not be
#: read or written; ``blocked``: a rollback left the device whole because a later run built on
#: it; the others name the IoT call (the reads of `verify_devices`, ``repair``, the
#: ``update_certificate`` of `set_status`, the undos of `rollback_run`).
OperationStep: TypeAlias = Literal[
    "input",
    "name",
    "ledger",
    "blocked",
    "describe_certificate",
    "describe_thing",
    "list_principal_things",
    "list_attached_policies",
    "list_thing_groups",
    "repair",
    "update_certificate",
    "deactivate",
    "detach_policy",
    "detach_principal",
    "remove_from_group",
    "delete_thing",
    "delete_certificate",
]


class DeviceOutcome(BaseModel):
    """What an operation did to one device.

    ``calls`` counts the IoT calls made for it over all its attempts; ``attempts`` the times
    it was sent (more than 1 when a transient failure sent it round again). For a failure,
    ``failed_step`` says where, ``error`` is one English line naming the certificate,
    ``error_type`` the exception's class, ``reason`` a machine word (``throttled``,
    ``not_found``, ``conflict``, ``blocked``, ...), ``transient`` whether trying later may
    succeed. ``index`` is the device's position in the input (a manifest entry's index).
    """

    model_config: ClassVar[ConfigDict] = ConfigDict(frozen=True, extra="forbid")

    certificate_id: str | None
    thing_name: str | None = None
    status: DeviceStatus
    failed_step: OperationStep | None = None
    error: str | None = None
    error_type: str | None = None
    transient: bool = False
    reason: str | None = None
    calls: int = Field(default=0, ge=0)
    attempts: int = Field(default=1, ge=0)
    index: int | None = None

    @property
    def ok(self) -> bool:
        """True unless the outcome is ``failed``."""
        return self.status != "failed"


class VerifyOutcome(DeviceOutcome):
    """One device verified: ``problems`` is the drift found (empty: in sync). ``repaired``:
    a repair ran the importer's steps for it and they succeeded (``status`` is ``changed``).
    ``note`` says why a drifted device was not repaired (no certificate body, or nothing the
    importer's steps can fix)."""

    problems: tuple[Drift, ...] = ()
    repaired: bool = False
    note: str | None = None

    @property
    def drifted(self) -> bool:
        """True when AWS differs from what was expected."""
        return bool(self.problems)


class RollbackOutcome(DeviceOutcome):
    """One device rolled back: ``undone`` lists each undo made (``detach_policy:P``,
    ``delete_thing``, ...), ``absent`` those AWS had undone already (it answered "not
    found"), ``kept`` the steps the run found and left (``policy:P``)."""

    undone: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()


OutcomeT = TypeVar("OutcomeT", bound=DeviceOutcome)


class OperationReport(BaseModel, Generic[OutcomeT]):
    """What one operation over many devices did; JSON with ``model_dump_json()``.

    ``total == changed + unchanged + failed`` always holds, and ``failures`` holds every
    failed outcome. ``calls``, ``call_failures``, ``call_retries`` (botocore's extra HTTP
    attempts) and ``calls_refused`` (by an open breaker or a rate-limit timeout) are per
    ``service.Operation``, the difference of the IoT service's counters over the operation.
    ``retried`` counts devices sent round again after a transient failure, ``rounds`` the
    rounds needed. An interrupted operation (Ctrl-C) has ``interrupted`` True: the counts
    cover the devices that finished, ``unfinished`` lists the certificate ids in flight or
    waiting for a round (devices not yet read are in neither).
    """

    model_config: ClassVar[ConfigDict] = ConfigDict(frozen=True, extra="forbid")

    total: int = Field(ge=0)
    changed: int = Field(ge=0)
    unchanged: int = Field(ge=0)
    failed: int = Field(ge=0)
    failures: list[OutcomeT] = Field(default_factory=list)
    calls: dict[str, int] = Field(default_factory=dict[str, int])
    call_failures: dict[str, int] = Field(default_factory=dict[str, int])
    call_retries: dict[str, int] = Field(default_factory=dict[str, int])
    calls_refused: dict[str, int] = Field(default_factory=dict[str, int])
    retried: int = Field(default=0, ge=0)
    rounds: int = Field(default=0, ge=0)
    interrupted: bool = False
    unfinished: list[str] = Field(default_factory=list[str])
    run_id: str | None = None
    ledger: str | None = None
    started_at: datetime
    duration_seconds: float = Field(ge=0.0)
    rate_per_second: float = Field(ge=0.0)

    @model_validator(mode="after")
    def _check_counts(self) -> OperationReport[OutcomeT]:
        if self.total != self.changed + self.unchanged + self.failed:
            raise ValueError(
                f"total {self.total} != changed {self.changed} + unchanged {self.unchanged} "
                f"+ failed {self.failed}"
            )
        if len(self.failures) != self.failed:
            raise ValueError(f"{len(self.failures)} failures listed but failed is {self.failed}")
        return self

    @property
    def ok(self) -> bool:
        """True when no device failed and the operation was not interrupted."""
        return self.failed == 0 and not self.interrupted

    @property
    def total_calls(self) -> int:
        """Every IoT call the operation made."""
        return sum(self.calls.values())

    def summary(self) -> str:
        """One English line, e.g. for a log or the end of a CLI run."""
        return (
            f"{self.total} devices: {self.changed} changed, {self.unchanged} unchanged, {self.failed} failed"
            + self._tail()
        )

    def _tail(self) -> str:
        text = f"; {self.total_calls} calls in {self.duration_seconds:.1f} s"
        if self.interrupted:
            text += f"; interrupted with {len(self.unfinished)} unfinished"
        return text


class VerifyReport(OperationReport[VerifyOutcome]):
    """The result of `verify_devices`.

    ``in_sync`` devices match what was expected; ``drifted`` devices do not (each is in
    ``drifted_devices`` with its problems; ``problems`` counts them by `ProblemCode`);
    ``changed`` counts the drifted devices a repair fixed. A device whose reads failed is only
    in ``failed``; one whose repair failed is in ``drifted`` and ``failed``.
    """

    in_sync: int = Field(ge=0)
    drifted: int = Field(ge=0)
    problems: dict[str, int] = Field(default_factory=dict[str, int])
    drifted_devices: list[VerifyOutcome] = Field(default_factory=list[VerifyOutcome])
    repair: bool = False
    expected: dict[str, object] = Field(default_factory=dict[str, object])

    @property
    def repaired(self) -> int:
        """Drifted devices a repair fixed."""
        return self.changed

    def summary(self) -> str:
        """One English line, e.g. for a log or the end of a CLI run."""
        text = f"{self.total} devices verified: {self.in_sync} in sync, {self.drifted} drifted"
        if self.problems:
            text += " (" + ", ".join(f"{code} {count}" for code, count in self.problems.items()) + ")"
        if self.repair:
            text += f", {self.changed} repaired"
        return text + f", {self.failed} failed" + self._tail()


class StatusReport(OperationReport[DeviceOutcome]):
    """The result of `set_status`: ``changed`` devices got UpdateCertificate (AWS does not
    say whether the status was already that), ``unchanged`` ones already had ``status`` by
    their ledger record (no call)."""

    status: RegistrationStatus

    def summary(self) -> str:
        """One English line."""
        return (
            f"{self.total} certificates set {self.status}: {self.changed} updated, {self.unchanged} "
            f"already {self.status} (ledger), {self.failed} failed" + self._tail()
        )


class RollbackReport(OperationReport[RollbackOutcome]):
    """The result of `rollback_run`: ``changed`` devices had undos made, ``unchanged`` ones
    had nothing the run made (``kept`` counts the steps it found and left). ``undone`` counts
    undos by `RollbackStep` (AWS's "not found" included, also counted in ``absent``). A
    blocked device is a failure at step ``blocked``. With ``dry_run`` nothing was called and
    ``plan`` says what would be."""

    of_run: str
    undone: dict[str, int] = Field(default_factory=dict[str, int])
    absent: int = Field(default=0, ge=0)
    kept: int = Field(default=0, ge=0)
    dry_run: bool = False
    plan: RollbackPlan | None = None

    def summary(self) -> str:
        """One English line."""
        if self.dry_run and self.plan is not None:
            return "dry run: " + self.plan.summary()
        undone = ", ".join(f"{step} {count}" for step, count in self.undone.items()) or "nothing"
        return (
            f"rollback of run {self.of_run}: {self.total} devices, {self.changed} rolled back ({undone}), "
            f"{self.unchanged} untouched, {self.failed} failed" + self._tail()
        )


class OperationInterrupted(KeyboardInterrupt):
    """Ctrl-C (or another ``KeyboardInterrupt``) during a fleet operation.

    ``report`` is the partial report: the devices that finished, and in
    ``report.unfinished`` the ids of those in flight or waiting for a retry round. With a
    ledger the run is recorded ``interrupted``; a rollback run again finishes the job.
    """

    def __init__(self, report: VerifyReport | StatusReport | RollbackReport) -> None:
        super().__init__(report.summary())
        self.report = report
