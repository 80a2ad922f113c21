"""`rollback_run`: undo what one run made, and nothing else; resumable through the ledger.

Calls per device the run made whole (P policies, G groups): UpdateCertificate (deactivate),
P x DetachPolicy, DetachThingPrincipal, G x RemoveThingFromThingGroup, DeleteThing,
DeleteCertificate: ``4 + P + G`` calls, no reads (the ledger says what to undo). Default
quotas: UpdateCertificate 10/s, DetachPolicy 15/s, DetachThingPrincipal 100/s,
RemoveThingFromThingGroup 100/s, DeleteThing 100/s, DeleteCertificate 10/s. So the rate is
``min(10, 15 / P, 100 / G)`` devices a second: UpdateCertificate and DeleteCertificate bind
at 10 devices a second with one policy, DetachPolicy from two policies on (7.5 a second).
`RollbackPlan.minimum_seconds` computes it for a plan.

A run in group-policy mode (``policy_target="thing_group"``) attached its policies to the thing
group, not to any certificate: rollback never detaches them. A group policy is shared by every
device in the group, including devices of other runs and devices made elsewhere, so it stays;
the rollback logs that it did (detach it by hand once the group is empty, if it should go).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from thingpress_core.errors import (
    ConfigurationError,
    InvalidRequestError,
    ResourceConflictError,
    ResourceNotFoundError,
)
from thingpress_core.ledger import DeviceRecord, Target
from thingpress_core.operations._models import RetryRounds
from thingpress_core.operations._plan import (
    Undo,
    blocked_message,
    blocking_steps,
    plan_rollback,
    rollback_target,
    undo_steps,
)
from thingpress_core.operations._reports import (
    OperationInterrupted,
    OperationStep,
    RollbackOutcome,
    RollbackReport,
)
from thingpress_core.operations._runner import Runner, Task
from thingpress_core.operations._session import Session, iot_target, parse_target

if TYPE_CHECKING:
    from thingpress_core.ledger import Ledger
    from thingpress_core.operations._protocol import FleetOperations

__all__ = ["rollback_run"]

logger = logging.getLogger("thingpress_core.operations")


class _Rollback(Task[RollbackOutcome]):
    """One device's undos, each saved in the ledger once AWS confirmed it; a retry (or a
    later rollback of the same run) resumes at the first undo not saved."""

    def __init__(
        self,
        record: DeviceRecord,
        iot: FleetOperations,
        ledger: Ledger,
        of_run: str,
        run_id: str,
    ) -> None:
        super().__init__(certificate_id=record.certificate_id, thing_name=record.thing_name, index=None)
        self._record = record
        self._iot = iot
        self._ledger = ledger
        self._of_run = of_run
        self._run_id = run_id
        self._undos: list[Undo] | None = None
        self._done = 0
        self._undone: list[str] = []
        self._absent: list[str] = []
        self._kept: tuple[str, ...] = ()
        self._detached = False  # this task detached the thing principal (AWS settles it later)

    def _outcome(self, **fields: object) -> RollbackOutcome:
        return RollbackOutcome.model_validate(
            {**fields, "undone": tuple(self._undone), "absent": tuple(self._absent), "kept": self._kept}
        )

    def attempt(self) -> RollbackOutcome:
        step: OperationStep = "ledger"
        doing = "reading its ledger record"
        try:
            if self._undos is None:
                fresh = self._ledger.device(self._record.target, self._record.certificate_id)
                record = self._record = fresh or self._record
                of_run = self._of_run
                self._kept = tuple(
                    sorted(k for k, m in record.steps.items() if m.run_id == of_run and not m.made)
                )
                blockers = blocking_steps(record, of_run)
                if blockers:
                    return self._outcome(
                        **self.failed_fields(
                            "blocked",
                            blocked_message(record, of_run, blockers).split(": ", 1)[1],
                            error_type=None,
                            transient=False,
                            reason="blocked",
                        )
                    )
                self._undos = undo_steps(record, of_run)
            for undo in self._undos[self._done :]:
                step, doing = undo.step, self._doing(undo)
                absent = False
                try:
                    self._undo(undo)
                except ResourceNotFoundError:
                    absent = True  # AWS has it undone already: done
                step, doing = "ledger", f"recording {undo.label} in the ledger"
                self._save(undo)
                self._done += 1
                self._undone.append(undo.label)
                if absent:
                    self._absent.append(undo.label)
        except Exception as exc:
            fields = self.failure(step, doing, exc)
            if self._settling(step, exc):
                fields["transient"] = True  # a detachment AWS has not finished: a later round
            return self._outcome(**fields)
        return self._outcome(**self.fields(), status="changed" if self._undone else "unchanged")

    def _arn(self) -> str:
        return self._record.certificate_arn or self._iot.certificate_arn(self._record.certificate_id)

    def _thing(self) -> str:
        name = self._record.thing_name
        if name is None:
            raise ConfigurationError(
                f"certificate {self._record.certificate_id}: its ledger record names no thing",
                variable="thing_name",
            )
        return name

    def _undo(self, undo: Undo) -> None:
        iot, certificate_id = self._iot, self._record.certificate_id
        if undo.step == "deactivate":
            self.call(iot.update_certificate_status, certificate_id, "INACTIVE")
        elif undo.step == "detach_policy":
            assert undo.subject is not None
            self.call(iot.detach_policy, undo.subject, self._arn())
        elif undo.step == "detach_principal":
            self.call(iot.detach_thing_principal, self._thing(), self._arn())
            self._detached = True
        elif undo.step == "remove_from_group":
            assert undo.subject is not None
            self.call(iot.remove_thing_from_group, self._thing(), undo.subject)
        elif undo.step == "delete_thing":
            self.call(iot.delete_thing, self._thing())
        else:
            self.call(iot.delete_certificate, certificate_id)

    def _save(self, undo: Undo) -> None:
        """Record the undo: the record without its step (the status, for a deactivation)."""
        record, now = self._record, datetime.now(timezone.utc)
        if undo.key is None:
            record = record.model_copy(
                update={"certificate_status": "INACTIVE", "run_id": self._run_id, "updated_at": now}
            )
            self._ledger.save(record)
        else:
            record = record.without_step(undo.key, run_id=self._run_id, at=now)
            self._ledger.save(record, removed=(undo.key,))
        self._record = record

    def _doing(self, undo: Undo) -> str:
        subject = f" {undo.subject!r}" if undo.subject is not None else ""
        return {
            "deactivate": "deactivating it (UpdateCertificate)",
            "detach_policy": f"detaching policy{subject}",
            "detach_principal": f"detaching it from thing {self._record.thing_name!r}",
            "remove_from_group": f"removing thing {self._record.thing_name!r} from group{subject}",
            "delete_thing": f"deleting thing {self._record.thing_name!r}",
            "delete_certificate": "deleting it (DeleteCertificate)",
        }[undo.step]

    def _settling(self, step: OperationStep, exc: BaseException) -> bool:
        """AWS detaches a thing principal asynchronously: right after it, DeleteThing and
        DeleteCertificate may still be refused as attached. Worth another round."""
        if not self._detached:
            return False
        if step == "delete_certificate":
            return isinstance(exc, ResourceConflictError) and exc.code == "DeleteConflictException"
        return step == "delete_thing" and isinstance(exc, InvalidRequestError | ResourceConflictError)


class _Tally:
    """The rollback-only counts, kept on the calling thread."""

    def __init__(self) -> None:
        self.undone: dict[str, int] = {}
        self.absent = self.kept = 0

    def add(self, outcome: RollbackOutcome) -> None:
        for label in outcome.undone:
            step = label.split(":", 1)[0]
            self.undone[step] = self.undone.get(step, 0) + 1
        self.absent += len(outcome.absent)
        self.kept += len(outcome.kept)

    def counts(self) -> dict[str, int]:
        return {
            "absent": self.absent,
            "kept": self.kept,
            **{f"undone_{k}": v for k, v in self.undone.items()},
        }


def rollback_run(
    iot: FleetOperations,
    ledger: Ledger,
    run_id: str,
    *,
    target: Target | str | None = None,
    dry_run: bool = False,
    concurrency: int = 8,
    progress: Callable[[RollbackOutcome], object] | None = None,
    retry: RetryRounds | None = None,
    sleep: Callable[[float], object] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> RollbackReport:
    """Undo what run ``run_id`` made, and nothing else.

    For each device the run touched (streamed from the ledger), exactly the steps whose mark
    says this run **made** them are undone, in the order AWS requires: deactivate the
    certificate (only if the run registered it), detach each policy, detach the thing
    principal, remove the thing from each group, delete the thing (only if the run made it),
    delete the certificate (only if the run registered it). A device the run found already
    there has no such marks and is left as it was; policies, groups and thing types are never
    deleted. A policy a group-policy run attached to its thing group is never detached (every
    device of the group shares it; the rollback logs that it stays). A device a later run
    built on is left whole and reported failed at step ``blocked`` (roll back the later run
    first). AWS's "not found" for an undo means it was undone already and counts as done.

    Resumable: each undo is saved in the ledger once AWS confirmed it (the step taken off the
    device's record), so a rollback interrupted (Ctrl-C, a crash, a device that failed) and
    run again finishes the job and repeats no undo. The rollback is a run of kind
    ``rollback`` (``of_run`` = ``run_id``) in the ledger.

    Args:
        iot: the IoT service; when it can say which account and region it talks to, they
            must be the run's (`ConfigurationError` otherwise).
        ledger: the ledger that recorded the run.
        run_id: the run to undo (`last_run` finds the newest import).
        target: when given, must be the run's target.
        dry_run: make no call and record nothing: the report's ``plan`` (`plan_rollback`)
            counts what would be undone, per step and per IoT operation.

    ``concurrency``, ``progress``, ``retry``, ``sleep`` and ``clock`` are as for
    `verify_devices`.

    Calls: ``4 + P + G`` per device the run made whole (P policies, G groups), no reads; at
    the default quotas ``min(10, 15 / P, 100 / G)`` devices a second (UpdateCertificate and
    DeleteCertificate, 10/s each, bind with one policy).

    Returns a `RollbackReport`; Ctrl-C raises `OperationInterrupted` carrying the partial one.
    Raises `ConfigurationError` for an unknown run, a run of another target, or a run that
    made nothing (a rollback, a status change).
    """
    key = target.key if isinstance(target, Target) else target
    run = rollback_target(ledger, run_id, key)
    if dry_run:
        started, start = datetime.now(timezone.utc), clock()
        plan = plan_rollback(ledger, run_id, target=run.target)
        return RollbackReport(
            total=plan.devices,
            changed=0,
            unchanged=plan.devices,
            failed=0,
            ledger=ledger.location,
            started_at=started,
            duration_seconds=max(clock() - start, 0.0),
            rate_per_second=0.0,
            of_run=run_id,
            kept=plan.kept,
            dry_run=True,
            plan=plan,
        )
    here = iot_target(iot)
    if here is not None and here.key != run.target:
        raise ConfigurationError(
            f"run {run_id!r} was made in {run.target}, but the IoT service talks to {here.key}: "
            "refusing to roll it back there",
            variable="target",
            value=here.key,
        )
    rollback_id: list[str] = []

    def make(item: object, position: int) -> Task[RollbackOutcome]:
        if not isinstance(item, DeviceRecord):  # the ledger's stream broke: stop, say so
            raise item if isinstance(item, BaseException) else TypeError(type(item).__name__)
        return _Rollback(item, iot, ledger, run_id, rollback_id[0])

    tally = _Tally()
    runner = Runner(
        make=make,
        concurrency=concurrency,
        retry=retry or RetryRounds(),
        observers=(tally.add, progress),
        sleep=sleep,
        clock=clock,
        name="thingpress-rollback",
    )
    session = Session(
        iot,
        ledger=ledger,
        target=parse_target(run.target),
        kind="rollback",
        options={"of_run": run_id},
        of_run=run_id,
        clock=clock,
    )
    session.begin()
    assert session.run_id is not None
    rollback_id.append(session.run_id)
    _note_group_policies(run.options)
    devices = ledger.devices(target=run.target, run_id=run_id)
    interrupted = session.drive(runner, devices, lambda: {**runner.counts(), **tally.counts()})
    report = RollbackReport(
        **session.report_fields(runner, interrupted=interrupted),
        of_run=run_id,
        undone=tally.undone,
        absent=tally.absent,
        kept=tally.kept,
    )
    if interrupted:
        logger.warning(report.summary(), extra={"operation": "rollback"})
        raise OperationInterrupted(report)
    logger.info(report.summary(), extra={"operation": "rollback"})
    return report


def _note_group_policies(options: Mapping[str, object]) -> None:
    """Say that a group-policy run's policies stay on the thing group (shared by every device)."""
    if options.get("policy_target") != "thing_group":
        return
    policies, groups = options.get("policies"), options.get("thing_groups")
    logger.info(
        "the run attached policies %s to thing group %s; rollback leaves them there (a group "
        "policy applies to every thing in the group, other runs' devices too)",
        ", ".join(str(p) for p in policies) if isinstance(policies, list) else "?",
        ", ".join(str(g) for g in groups) if isinstance(groups, list) else "?",
        extra={"operation": "rollback"},
    )
