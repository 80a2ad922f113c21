"""What a rollback of one run undoes, device by device, and the plan a dry run prints.

A run's marks in a device's ledger record say what it did: each step (``register``,
``thing``, ``principal``, ``policy:P``, ``group:G``) carries the run that confirmed it and
whether that run **made** it or found it there. A rollback undoes exactly the steps the run
made, in the order AWS requires::

    UpdateCertificate INACTIVE (only if the run registered the certificate)
      -> DetachPolicy (each policy the run attached)
      -> DetachThingPrincipal (if the run attached the certificate to the thing)
      -> RemoveThingFromThingGroup (each group the run added the thing to)
      -> DeleteThing (if the run made the thing)
      -> DeleteCertificate (if the run registered the certificate)

Steps the run found are left as they were, and so are policies, groups and thing types
themselves: only attachments and the device's own thing and certificate are ever undone.
A policy a group-policy run attached to its thing group is in no device's record, so no plan
holds it: it stays on the group, shared by every device in it.
A device whose certificate or thing the run made, but on which a later run built (attached a
policy, added a group), is **blocked**: nothing of it is undone, and the message names the
runs to roll back first (newest first).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, ClassVar, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field

from thingpress_core.errors import ConfigurationError

if TYPE_CHECKING:
    from thingpress_core.ledger import DeviceRecord, Ledger, RunKind, RunRecord

__all__ = [
    "UNDO_OPERATIONS",
    "RollbackPlan",
    "RollbackStep",
    "Undo",
    "blocking_steps",
    "last_run",
    "plan_rollback",
    "rollback_target",
    "undo_steps",
]

#: One undo a rollback makes, in the order it makes them.
RollbackStep: TypeAlias = Literal[
    "deactivate",
    "detach_policy",
    "detach_principal",
    "remove_from_group",
    "delete_thing",
    "delete_certificate",
]

#: The IoT operation each undo calls (the key of its rate limit, breaker and counters).
UNDO_OPERATIONS: Mapping[RollbackStep, str] = {
    "deactivate": "iot.UpdateCertificate",
    "detach_policy": "iot.DetachPolicy",
    "detach_principal": "iot.DetachThingPrincipal",
    "remove_from_group": "iot.RemoveThingFromThingGroup",
    "delete_thing": "iot.DeleteThing",
    "delete_certificate": "iot.DeleteCertificate",
}

_ORDER: tuple[RollbackStep, ...] = tuple(UNDO_OPERATIONS)
_ROLLBACK_KINDS = frozenset({"import", "verify"})  # the kinds of run that make things
_MAX_LISTED = 20


@dataclasses.dataclass(frozen=True)
class Undo:
    """One undo: its `RollbackStep`, the ledger step it takes away (None for ``deactivate``,
    which takes none), and the policy or group it is about."""

    step: RollbackStep
    key: str | None
    subject: str | None = None

    @property
    def label(self) -> str:
        """``detach_policy:DevicePolicy``, ``delete_thing``: how reports name it."""
        return f"{self.step}:{self.subject}" if self.subject is not None else self.step


def _made_by(record: DeviceRecord, key: str, run_id: str) -> bool:
    mark = record.steps.get(key)
    return mark is not None and mark.run_id == run_id and mark.made


def undo_steps(record: DeviceRecord, run_id: str) -> list[Undo]:
    """The undos that take back what ``run_id`` made on this device, in AWS's order."""
    undos: list[Undo] = []
    registered = _made_by(record, "register", run_id)
    if registered:
        undos.append(Undo("deactivate", None))
    for key in sorted(record.steps):
        if key.startswith("policy:") and _made_by(record, key, run_id):
            undos.append(Undo("detach_policy", key, key.split(":", 1)[1]))
    if _made_by(record, "principal", run_id):
        undos.append(Undo("detach_principal", "principal"))
    for key in sorted(record.steps):
        if key.startswith("group:") and _made_by(record, key, run_id):
            undos.append(Undo("remove_from_group", key, key.split(":", 1)[1]))
    if _made_by(record, "thing", run_id):
        undos.append(Undo("delete_thing", "thing"))
    if registered:
        undos.append(Undo("delete_certificate", "register"))
    return undos


def blocking_steps(record: DeviceRecord, run_id: str) -> dict[str, str]:
    """Steps of other runs that stand on a resource ``run_id`` made, by step key -> run id.

    A certificate the run registered holds the policies and the thing attachment of any
    later run; a thing the run made holds the attachment and the groups. Deleting either
    would undo that later run's work, so the device is left whole until that run is rolled
    back first.
    """
    made_certificate = _made_by(record, "register", run_id)
    made_thing = _made_by(record, "thing", run_id)
    if not made_certificate and not made_thing:
        return {}
    found: dict[str, str] = {}
    for key, mark in record.steps.items():
        if mark.run_id == run_id:
            continue
        on_certificate = made_certificate and (key == "principal" or key.startswith("policy:"))
        on_thing = made_thing and (key == "principal" or key.startswith("group:"))
        if on_certificate or on_thing:
            found[key] = mark.run_id
    return found


def blocked_message(record: DeviceRecord, run_id: str, blockers: Mapping[str, str]) -> str:
    """One English line: why the device is left whole, and what to roll back first."""
    runs = sorted(set(blockers.values()), reverse=True)
    steps = ", ".join(sorted(blockers))
    return (
        f"certificate {record.certificate_id}: run {run_id} made it, but run(s) {', '.join(runs)} "
        f"added {steps} to it since; roll back {', '.join(runs)} first (newest first)"
    )


class RollbackPlan(BaseModel):
    """What rolling back one run would do: counts per undo and per IoT operation.

    ``devices`` is every device the run touched; ``to_undo`` those with something to undo;
    ``untouched`` those the run made nothing on (it found them); ``blocked`` those a later run
    built on (see `blocking_steps`; ``blocked_devices`` lists the first 20 with the reason).
    ``steps`` counts undos by `RollbackStep`, ``calls`` by IoT operation; ``kept`` counts the
    steps the run found, which stay. ``devices == to_undo + untouched + blocked``.
    """

    model_config: ClassVar[ConfigDict] = ConfigDict(frozen=True, extra="forbid")

    run_id: str
    target: str
    kind: str
    devices: int = Field(ge=0)
    to_undo: int = Field(ge=0)
    untouched: int = Field(ge=0)
    blocked: int = Field(ge=0)
    steps: dict[str, int] = Field(default_factory=dict[str, int])
    calls: dict[str, int] = Field(default_factory=dict[str, int])
    kept: int = Field(default=0, ge=0)
    blocked_devices: list[str] = Field(default_factory=list[str])

    @property
    def total_calls(self) -> int:
        """Every IoT call the rollback would make (none are reads)."""
        return sum(self.calls.values())

    def minimum_seconds(self, rate_limits: Mapping[str, float] | None = None) -> float:
        """The shortest time the calls can take at these per-operation rates (default: the
        rate limiter's defaults, AWS's quotas): the slowest operation's calls over its rate.
        An operation without a rate counts as unlimited."""
        if rate_limits is None:
            from thingpress_core.resilience import DEFAULT_RATE_LIMITS

            rate_limits = DEFAULT_RATE_LIMITS
        longest = 0.0
        for operation, count in self.calls.items():
            rate = rate_limits.get(operation)
            if rate is not None and rate > 0:
                longest = max(longest, count / rate)
        return longest

    def summary(self) -> str:
        """One English line."""
        return (
            f"rollback of run {self.run_id} ({self.target}): {self.devices} devices, {self.to_undo} to undo, "
            f"{self.untouched} untouched (found, not made), {self.blocked} blocked; "
            f"{self.total_calls} calls"
        )

    def lines(self) -> list[str]:
        """The plan for a person: the summary, then one line per undo and per blocked device."""
        out = [self.summary()]
        for step in _ORDER:
            count = self.steps.get(step, 0)
            if count:
                out.append(f"  {step:<20} {count:>9}  ({UNDO_OPERATIONS[step]})")
        if self.kept:
            out.append(f"  {'kept (found)':<20} {self.kept:>9}  steps the run found: left as they are")
        out.extend(f"  blocked: {line}" for line in self.blocked_devices)
        if self.blocked > len(self.blocked_devices):
            out.append(f"  ... and {self.blocked - len(self.blocked_devices)} more blocked")
        return out


def rollback_target(ledger: Ledger, run_id: str, target: str | None) -> RunRecord:
    """The run record of ``run_id``; raises `ConfigurationError` for an unknown run, a run of
    another target, or a run that made nothing to undo (a rollback, a status change)."""
    run = ledger.run(run_id)
    if run is None:
        raise ConfigurationError(
            f"run {run_id!r} is not in ledger {ledger.location} (the ledger's runs list them)",
            variable="run_id",
            value=run_id,
        )
    if target is not None and run.target != target:
        raise ConfigurationError(
            f"run {run_id!r} was made in {run.target}, not in {target}: refusing to roll it back there",
            variable="target",
            value=target,
        )
    if run.kind not in _ROLLBACK_KINDS:
        hint = "; a status change is undone by setting the other status" if run.kind != "rollback" else ""
        raise ConfigurationError(
            f"run {run_id!r} is a {run.kind} run, which made nothing to roll back{hint}",
            variable="run_id",
            value=run_id,
        )
    return run


def plan_rollback(ledger: Ledger, run_id: str, *, target: str | None = None) -> RollbackPlan:
    """What `rollback_run` would do for ``run_id``, read from the ledger alone (no AWS call).

    Streams the devices the run touched (memory does not grow with their number) and counts
    the undos per step and per IoT operation. ``target`` (a `Target` key), when given, must
    be the run's. Raises `ConfigurationError` for an unknown run or one that made nothing.
    """
    run = rollback_target(ledger, run_id, target)
    steps: dict[str, int] = {}
    calls: dict[str, int] = {}
    devices = to_undo = untouched = blocked = kept = 0
    listed: list[str] = []
    for record in ledger.devices(target=run.target, run_id=run_id):
        devices += 1
        kept += sum(1 for mark in record.steps.values() if mark.run_id == run_id and not mark.made)
        blockers = blocking_steps(record, run_id)
        if blockers:
            blocked += 1
            if len(listed) < _MAX_LISTED:
                listed.append(blocked_message(record, run_id, blockers))
            continue
        undos = undo_steps(record, run_id)
        if not undos:
            untouched += 1
            continue
        to_undo += 1
        for undo in undos:
            steps[undo.step] = steps.get(undo.step, 0) + 1
            operation = UNDO_OPERATIONS[undo.step]
            calls[operation] = calls.get(operation, 0) + 1
    return RollbackPlan(
        run_id=run_id,
        target=run.target,
        kind=run.kind,
        devices=devices,
        to_undo=to_undo,
        untouched=untouched,
        blocked=blocked,
        steps={step: steps[step] for step in _ORDER if step in steps},
        calls=dict(sorted(calls.items())),
        kept=kept,
        blocked_devices=listed,
    )


def last_run(ledger: Ledger, target: str | None = None, kind: RunKind = "import") -> RunRecord | None:
    """The newest run of ``kind`` (of one target, when given), or None: what ``--last`` means.

    Runs are compared by start time (then id, which sorts by start time too)."""
    found: RunRecord | None = None
    for run in ledger.runs(target=target):
        if run.kind != kind:
            continue
        if found is None or (run.started_at, run.run_id) > (found.started_at, found.run_id):
            found = run
    return found
