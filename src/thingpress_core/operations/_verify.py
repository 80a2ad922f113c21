"""`verify_devices`: is every device still wired as intended? Read AWS back, report drift.

The reads per device, in order, each skipped when an earlier answer makes it pointless:

=============================  =========  ==============================================
call                           quota/s    made when
=============================  =========  ==============================================
DescribeCertificate            10         always (existence and status)
DescribeThing                  350        the device has a thing name
ListPrincipalThings            10         the certificate exists
ListAttachedPolicies           15         the certificate exists and policies are expected
ListThingGroupsForThing        100        the thing exists and groups are expected
=============================  =========  ==============================================

In group-policy mode (`ExpectedState.policy_target` ``"thing_group"``) the policies are read
once per verify from the thing group (DescribeThingGroup, then ListAttachedPolicies on its
ARN), not per certificate; a policy the group lacks is ``policy_missing`` drift of every
device, and a repair attaches it to the group once.

So a device in sync costs 3 reads, plus one for policies and one for groups when expected
(5 with both); a missing certificate costs 2 (or 3 with groups), a missing thing 3 (4 with
policies). DescribeCertificate and ListPrincipalThings are one call each per device at
10 requests a second each: they bind, and verify runs at most at 10 devices a second per
account at the default quotas (a list answer longer than 250 names takes one more call per
page). The rate limiter holds each operation at its quota (`DEFAULT_RATE_LIMITS`, or
``THINGPRESS_RESILIENCE__RATE_LIMITS`` for raised ones).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from thingpress_core.errors import ConfigurationError, ResourceNotFoundError
from thingpress_core.operations._devices import DeviceInput, prepare
from thingpress_core.operations._models import DeviceRef, Drift, ExpectedState, ProblemCode, RetryRounds
from thingpress_core.operations._repair import Repairer, left_unrepaired, repair_note
from thingpress_core.operations._reports import (
    OperationInterrupted,
    OperationStep,
    VerifyOutcome,
    VerifyReport,
)
from thingpress_core.operations._runner import Done, Runner, Task
from thingpress_core.operations._session import Session, resolve_target

if TYPE_CHECKING:
    from thingpress_core.importer import ImportOptions
    from thingpress_core.ledger import Ledger, Target
    from thingpress_core.operations._protocol import FleetOperations

__all__ = ["verify_devices"]

logger = logging.getLogger("thingpress_core.operations")


class _Verify(Task[VerifyOutcome]):
    """One device's reads and comparison (and repair); a retry resumes at the read that failed."""

    def __init__(
        self,
        ref: DeviceRef,
        iot: FleetOperations,
        expected: ExpectedState,
        repairer: Repairer | None,
        group_drift: tuple[Drift, ...] = (),
    ) -> None:
        super().__init__(certificate_id=ref.certificate_id, thing_name=ref.thing_name, index=ref.index)
        self._ref = ref
        self._iot = iot
        self._expected = expected
        self._repairer = repairer
        self._group_drift = group_drift  # found once for every device (group-policy mode)
        self._certificate_read = self._certificate_missing = False
        self._status: str | None = None
        self._arn: str | None = None
        self._thing_read = self._thing_missing = False
        self._thing_type: str | None = None
        self._things: tuple[str, ...] | None = None
        self._policies: tuple[str, ...] | None = None
        self._groups: tuple[str, ...] | None = None
        self._problems: tuple[Drift, ...] | None = None

    def attempt(self) -> VerifyOutcome:
        if self._problems is None:
            failed = self._read()
            if failed is not None:
                return failed
            self._problems = self._compare()
        problems = self._problems
        if not problems or self._repairer is None:
            return VerifyOutcome(**self.fields(), status="unchanged", problems=problems)
        codes: set[ProblemCode] = {p.code for p in problems}
        note = repair_note(self._ref, codes)
        if note is not None:
            return VerifyOutcome(**self.fields(), status="unchanged", problems=problems, note=note)
        try:
            result = self._repairer(self._ref)
        except Exception as exc:  # the ledger failed under the importer: the device's failure
            return VerifyOutcome(**self.failure("repair", "repairing it", exc), problems=problems)
        self.calls += result.calls
        if not result.ok:
            error = result.error or "failed"
            prefix = f"{self.where()}: "
            error = error[len(prefix) :] if error.startswith(prefix) else error
            fields = self.failed_fields(
                "repair",
                f"repairing it failed: {error}",
                error_type=result.error_type,
                transient=result.transient,
                reason=result.reason,
            )
            return VerifyOutcome(**fields, problems=problems)
        return VerifyOutcome(
            **self.fields(), status="changed", problems=problems, repaired=True, note=left_unrepaired(codes)
        )

    def _read(self) -> VerifyOutcome | None:
        """Make the reads not made yet; a failed outcome when one fails."""
        iot, name, certificate_id = self._iot, self._ref.thing_name, self._ref.certificate_id
        step: OperationStep = "describe_certificate"
        doing = "reading the certificate (DescribeCertificate)"
        try:
            if not self._certificate_read:
                try:
                    found = self.call(iot.describe_certificate, certificate_id)
                    self._status, self._arn = found.status, found.certificate_arn
                except ResourceNotFoundError:
                    self._certificate_missing = True
                self._certificate_read = True
            if name is not None and not self._thing_read:
                step, doing = "describe_thing", f"reading thing {name!r} (DescribeThing)"
                try:
                    self._thing_type = self.call(iot.describe_thing, name).thing_type
                except ResourceNotFoundError:
                    self._thing_missing = True
                self._thing_read = True
            arn = self._arn
            if not self._certificate_missing and arn is not None:
                if self._things is None:
                    step, doing = "list_principal_things", "listing its things (ListPrincipalThings)"
                    self._things = tuple(self.call(iot.list_principal_things, arn))
                if self._expected.certificate_policies and self._policies is None:
                    step, doing = "list_attached_policies", "listing its policies (ListAttachedPolicies)"
                    self._policies = tuple(self.call(iot.list_attached_policies, arn))
            wants_groups = bool(self._expected.thing_groups) and self._groups is None
            if name is not None and not self._thing_missing and wants_groups:
                step, doing = "list_thing_groups", f"listing the groups of thing {name!r}"
                self._groups = tuple(self.call(iot.list_thing_groups_for_thing, name))
        except ResourceNotFoundError:
            # gone between two reads: what vanished is what the failed read was about
            if step == "list_thing_groups":
                self._thing_missing = True
            else:
                self._certificate_missing = True
            return None
        except Exception as exc:
            return VerifyOutcome(**self.failure(step, doing, exc))
        return None

    def _compare(self) -> tuple[Drift, ...]:
        """The drift the reads show, in a fixed order."""
        ref, want = self._ref, self._expected
        cid, name = ref.certificate_id, ref.thing_name
        problems: list[Drift] = []

        def add(code: ProblemCode, detail: str, **values: str | None) -> None:
            problems.append(Drift(code=code, detail=f"certificate {cid}: {detail}", **values))

        status = want.status or ref.status
        if self._certificate_missing:
            add("certificate_missing", "not registered in AWS IoT")
        elif status is not None and self._status != status:
            add(
                "certificate_status",
                f"status is {self._status}, expected {status}",
                expected=status,
                found=self._status,
            )
        if name is not None:
            if self._thing_missing:
                add("thing_missing", f"thing {name!r} does not exist", subject=name)
            else:
                wanted_type = want.thing_type
                if wanted_type is not None and self._thing_type != wanted_type:
                    found = repr(self._thing_type) if self._thing_type else "no thing type"
                    add(
                        "thing_type",
                        f"thing {name!r} has {found}, expected {wanted_type!r}",
                        subject=name,
                        expected=wanted_type,
                        found=self._thing_type,
                    )
                if self._things is not None and name not in self._things:
                    add("principal_not_attached", f"not attached to thing {name!r}", subject=name)
        if self._things is not None and name is not None and not want.allow_multiple_things:
            others = [t for t in self._things if t != name]
            if others:
                shown = ", ".join(repr(t) for t in others[:5]) + (
                    f" and {len(others) - 5} more" if len(others) > 5 else ""
                )
                add("other_things", f"also attached to thing(s) {shown}", found=",".join(others))
        problems.extend(
            Drift(code=d.code, detail=f"certificate {cid}: {d.detail}", subject=d.subject)
            for d in self._group_drift
        )
        if self._policies is not None:
            for policy in want.certificate_policies:
                if policy not in self._policies:
                    add("policy_missing", f"policy {policy!r} is not attached", subject=policy)
        if self._groups is not None and name is not None:
            for group in want.thing_groups:
                if group not in self._groups:
                    add("group_missing", f"thing {name!r} is not in thing group {group!r}", subject=group)
        return tuple(problems)


class _Tally:
    """The verify-only counts, kept on the calling thread."""

    def __init__(self) -> None:
        self.in_sync = self.drifted = 0
        self.problems: dict[str, int] = {}
        self.drifted_devices: list[VerifyOutcome] = []

    def add(self, outcome: VerifyOutcome) -> None:
        if outcome.problems:
            self.drifted += 1
            self.drifted_devices.append(outcome)
            for problem in outcome.problems:
                self.problems[problem.code] = self.problems.get(problem.code, 0) + 1
        elif outcome.status == "unchanged":
            self.in_sync += 1

    def counts(self) -> dict[str, int]:
        return {"in_sync": self.in_sync, "drifted": self.drifted}


def verify_devices(
    iot: FleetOperations,
    devices: Iterable[DeviceInput],
    *,
    expected: ExpectedState | ImportOptions,
    repair: bool = False,
    concurrency: int = 8,
    progress: Callable[[VerifyOutcome], object] | None = None,
    ledger: Ledger | None = None,
    target: Target | str | None = None,
    retry: RetryRounds | None = None,
    sleep: Callable[[float], object] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> VerifyReport:
    """Read what AWS holds for each device and report its drift from ``expected``.

    Args:
        iot: the IoT service (`IoTService`, or anything with its methods: `FleetOperations`).
        devices: `DeviceRef`s (e.g. `ledger_devices`), manifest entries or certificates
            (named as the importer names them with ``expected``'s naming), read lazily.
        expected: the wiring every device should have (`ExpectedState`, or the
            `ImportOptions` of the import).
        repair: run the importer's own steps for each drifted device that has its
            certificate body (from a manifest); see below.
        concurrency: worker threads (the rate limiter holds each API at its quota).
        progress: called with each device's final outcome, on the calling thread.
        ledger: records a run of kind ``verify`` with its counts; device records are not
            changed (a repair records the steps it confirms, under this run's id).
        target: the account, region and endpoint the ledger keys records by (default: read
            from ``iot``).
        retry: rounds for devices whose reads failed transiently (`RetryRounds`).
        sleep: the pause before a round (tests pass a fake).
        clock: the monotonic clock (tests pass a fake).

    Reads per device (each skipped when an earlier answer makes it pointless):
    DescribeCertificate (10/s), DescribeThing (350/s), ListPrincipalThings (10/s),
    ListAttachedPolicies (15/s, only when policies are expected), ListThingGroupsForThing
    (100/s, only when groups are expected). A device in sync costs 3 to 5 reads; DescribeCertificate
    and ListPrincipalThings bind at one call per device each, so at the default quotas
    verify checks at most 10 devices a second per account.

    Drift (`Drift`, codes `ProblemCode`): ``certificate_missing``, ``certificate_status``
    (against ``expected.status``, else the status the device's ledger record holds),
    ``thing_missing``, ``thing_type``, ``principal_not_attached``, ``other_things`` (unless
    ``expected.allow_multiple_things``), ``policy_missing``, ``group_missing``. Extra policies
    or groups are not drift. A missing thing's attachment and groups are not reported again.
    A device without a thing name is checked for its certificate only (existence, status,
    policies).

    Repair cannot register a certificate, or run any importer step, without the certificate's
    body: devices from a ledger are reported, not repaired (the outcome's ``note`` says so).
    Nor does the importer change a certificate's status (`set_status` does) or detach it from
    other things (a person decides which thing is right).

    Returns a `VerifyReport`; Ctrl-C raises `OperationInterrupted` carrying the partial one.
    """
    want = expected if isinstance(expected, ExpectedState) else ExpectedState.from_options(expected)
    repairer: Repairer | None = None
    group_drift: tuple[Drift, ...] = ()

    def make(item: object, position: int) -> Task[VerifyOutcome]:
        ref = prepare(item, position, naming=want.naming, prefix=want.thing_name_prefix)
        if isinstance(ref, dict):
            return Done(VerifyOutcome(**ref))
        return _Verify(ref, iot, want, repairer, group_drift)

    tally = _Tally()
    runner = Runner(
        make=make,
        concurrency=concurrency,
        retry=retry or RetryRounds(),
        observers=(tally.add, progress),
        sleep=sleep,
        clock=clock,
        name="thingpress-verify",
    )
    where = resolve_target(iot, target) if ledger is not None else None
    session = Session(
        iot,
        ledger=ledger,
        target=where,
        kind="verify",
        options={**want.summary(), "repair": repair},
        clock=clock,
    )
    if want.policy_target == "thing_group":  # before the run begins: an error leaves no record
        group_drift = _group_policies(iot, want, repair=repair)
    session.begin()
    if repair:  # made once the run has its id: the steps a repair confirms are recorded under it
        # a device's repair never attaches a group's policies to its certificate
        device_want = want.model_copy(update={"policies": want.certificate_policies})
        repairer = Repairer(iot, device_want, ledger=ledger, target=where, run_id=session.run_id)
    interrupted = session.drive(runner, devices, lambda: {**runner.counts(), **tally.counts()})
    report = VerifyReport(
        **session.report_fields(runner, interrupted=interrupted),
        in_sync=tally.in_sync,
        drifted=tally.drifted,
        problems=dict(sorted(tally.problems.items())),
        drifted_devices=tally.drifted_devices,
        repair=repair,
        expected=want.summary(),
    )
    if interrupted:
        logger.warning(report.summary(), extra={"operation": "verify"})
        raise OperationInterrupted(report)
    logger.info(report.summary(), extra={"operation": "verify"})
    return report


def _group_policies(iot: FleetOperations, want: ExpectedState, *, repair: bool) -> tuple[Drift, ...]:
    """Group-policy mode: read the thing group's policies once (DescribeThingGroup for its ARN,
    ListAttachedPolicies); the drift every device shares, one per policy the group lacks. With
    ``repair`` a missing policy is attached to the group (AttachPolicy) and still reported."""
    group = want.thing_groups[0]
    try:
        arn = getattr(iot.describe_thing_group(group), "arn", None)
    except ResourceNotFoundError:
        detail = f"thing group {group!r} does not exist, so its policy {{policy!r}} reaches no device"
        return tuple(
            Drift(code="policy_missing", detail=detail.format(policy=p), subject=p) for p in want.policies
        )
    if not isinstance(arn, str) or not arn:
        raise ConfigurationError(
            f"the IoT service gave no ARN for thing group {group!r}", variable="expected"
        )
    attached = set(iot.list_attached_policies(arn))
    missing = [p for p in want.policies if p not in attached]
    for policy in missing:
        logger.warning(
            "policy %s is not attached to thing group %s%s",
            policy,
            group,
            "; attaching it" if repair else "",
            extra={"operation": "verify", "resource": f"thing_group:{group}"},
        )
        if repair:
            iot.attach_policy(policy, arn)
    return tuple(
        Drift(
            code="policy_missing",
            detail=f"policy {p!r} is not attached to its thing group {group!r}",
            subject=p,
        )
        for p in missing
    )
