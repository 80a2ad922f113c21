"""One certificate's import: a resumable work item and the steps it runs.

A `_Work` remembers how far its import got, so a retry round resumes at the step that
failed and never repeats a confirmed one::

    verify -> name -> RegisterCertificateWithoutCA -> CreateThing -> AttachThingPrincipal
        -> AttachPolicy (one per policy) -> AddThingToThingGroup (one per group)

Two safety checks ride on answers the floor calls give anyway, so the common path costs no
extra call:

- A thing is created with an attribute naming its certificate (`OWNER_ATTRIBUTE`). AWS
  answers a repeat for the same certificate like a creation and refuses one for another
  certificate (409): only then is the thing read (DescribeThing, and ListThingPrincipals for a
  thing made without the attribute) to tell a name collision from a thing to adopt.
- A registration that answers "already registered" lists the things the certificate is on
  (ListPrincipalThings) before attaching it, so a device is never put on a second thing.
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from thingpress_core.certificates import (
    DeviceCertificate,
    check_validity,
    verify_certificate,
)
from thingpress_core.errors import (
    AwsServiceError,
    CircuitOpenError,
    InvalidRequestError,
    ResourceConflictError,
)
from thingpress_core.importer._gate import RunHalted
from thingpress_core.importer._models import (
    FailedStep,
    ImportOptions,
    ImportOutcome,
    OutcomeStatus,
)
from thingpress_core.importer._reasons import describe_step, reason_of, refused
from thingpress_core.importer._refusal import Refusal
from thingpress_core.importer._things import check_claimed, claim_thing
from thingpress_core.importer._work import StepTarget, Work, counted, one_line, where
from thingpress_core.resilience import is_transient

if TYPE_CHECKING:
    from thingpress_core.importer._journal import Journal
    from thingpress_core.importer._protocol import IoTOperations

__all__ = ["Work", "attempt", "failure", "log_outcome", "prepare", "where"]

logger = logging.getLogger("thingpress_core.importer")

_OPERATION: dict[FailedStep, str] = {
    "register": "iot.RegisterCertificateWithoutCA",  # iot.RegisterCertificate with a CA
    "thing": "iot.CreateThing",
    "attach_principal": "iot.AttachThingPrincipal",
    "attach_policy": "iot.AttachPolicy",
    "add_to_group": "iot.AddThingToThingGroup",
}


def failure(work: Work, step: FailedStep, target: str | None, exc: Exception) -> ImportOutcome:
    """The failed outcome of ``work`` at ``step``; remembers a breaker's ``retry_after``."""
    if isinstance(exc, CircuitOpenError) and exc.retry_after is not None:
        work.retry_after = exc.retry_after
    if refused(exc):
        work.attempts = max(work.attempts - 1, 0)  # nothing was sent: not a try
    conflict = exc if isinstance(exc, Refusal) else None
    return ImportOutcome(
        certificate_id=work.certificate_id,
        thing_name=work.thing_name,
        status=OutcomeStatus.FAILED,
        failed_step=step,
        error=one_line(
            f"{where(work.certificate_id, work.index)}: {describe_step(step, target)} failed: {exc}"
        ),
        error_type=type(exc).__name__,
        transient=is_transient(exc),
        reason=reason_of(exc),
        other_certificate_id=conflict.other_certificate_id if conflict else None,
        other_things=conflict.other_things if conflict else (),
        calls=work.calls,
        attempts=work.attempts,
        index=work.index,
    )


def _finished(work: Work, status: OutcomeStatus, held: _StatusSeen | None = None) -> ImportOutcome:
    note = None
    if held is not None:
        if held.changed:
            note = f"certificate status was {held.status} in AWS; set to the one asked"
        else:
            note = (
                f"certificate status is {held.status} in {held.source}, not the one asked; "
                "recheck (--recheck) sets it"
            )
    return ImportOutcome(
        certificate_id=work.certificate_id,
        thing_name=work.thing_name,
        status=status,
        calls=work.calls,
        attempts=work.attempts,
        index=work.index,
        certificate_status=held.status if held is not None else None,
        note=note,
    )


def attempt(
    iot: Callable[[], IoTOperations], work: Work, options: ImportOptions, journal: Journal | None = None
) -> ImportOutcome:
    """Run the steps ``work`` has not finished yet; return its outcome for this attempt.

    With a ``journal`` (a ledger), the device's record is read before its first call (a done
    device costs no call) and every step AWS confirms is saved. Never raises for a problem
    with the certificate: every failure is an outcome. After `prepare` left ``work`` ready
    for its calls, this is the rest of that same attempt.
    """
    return _noted(work, _attempt(iot, work, options, journal), journal)


def prepare(work: Work, options: ImportOptions, journal: Journal | None) -> ImportOutcome | None:
    """Begin a first attempt with what needs no AWS call: check, name, read the ledger.

    Returns the outcome when that decides it (done in the ledger, refused, invalid, a dry
    run); else None, and ``work`` is left ready for `attempt` to make its calls as the rest
    of this attempt. The scheduling thread calls it when the ledger reads locally (SQLite),
    so a device the ledger shows done never waits for a worker thread.
    """
    work.attempts += 1
    work.retry_after = None
    decided, where = _local(work, options, journal)
    if decided is None:
        work.prepared = where
        return None
    return _noted(work, decided, journal)


def _noted(work: Work, outcome: ImportOutcome, journal: Journal | None) -> ImportOutcome:
    """``outcome``, its failure remembered in the ledger when a call was involved."""
    if journal is not None and outcome.status is OutcomeStatus.FAILED and outcome.failed_step not in _LOCAL:
        journal.failed(work, outcome.failed_step or "import", outcome.error or "")
    return outcome


# Steps that fail before any call: nothing to remember in a ledger.
_LOCAL = frozenset({"input", "parse", "verify", "name"})


def _attempt(
    iot: Callable[[], IoTOperations], work: Work, options: ImportOptions, journal: Journal | None
) -> ImportOutcome:
    if work.outcome is not None and work.certificate is None:
        return work.outcome
    prepared = work.prepared
    if prepared is not None:  # `prepare` ran this attempt's first part
        work.prepared = None
        return _calls(iot, work, options, journal, prepared)
    work.attempts += 1
    work.retry_after = None
    decided, where = _local(work, options, journal)
    if decided is not None:
        return decided
    return _calls(iot, work, options, journal, where)


def _local(
    work: Work, options: ImportOptions, journal: Journal | None
) -> tuple[ImportOutcome | None, StepTarget]:
    """An attempt's part before any call: check, name, the ledger's record on the first
    attempt, a dry run's end. Returns the outcome when that decides, and the step (with its
    target) a failure of the first call is reported at."""
    certificate = work.certificate
    assert certificate is not None
    step: FailedStep = "verify"
    target: str | None = _verify_target(options)
    try:
        if not work.verified:
            _check(work, certificate, options)
            work.verified = True
        step, target = "name", None
        name = work.name(options)
        if journal is not None and work.attempts == 1:
            step, target = "thing", name
            decided = _thing_config_checked(work, options, journal.consult(work, name, options))
            if decided is not None:
                return decided, (step, target)
        if options.dry_run:
            return _finished(work, OutcomeStatus.SKIPPED), (step, target)
    except Exception as exc:
        return failure(work, step, target, exc), (step, target)
    return None, (step, target)


def _calls(
    iot: Callable[[], IoTOperations],
    work: Work,
    options: ImportOptions,
    journal: Journal | None,
    where: StepTarget,
) -> ImportOutcome:
    """An attempt's calls, each step AWS confirmed saved in the ledger (``where``: the step a
    failure before the first call is reported at)."""
    certificate = work.certificate
    assert certificate is not None
    name = work.thing_name
    assert name is not None
    step, target = where
    register_started: _dt.datetime | None = None
    held = _ledger_status(work, options)
    try:
        client = iot()
        if work.suspect_name and not work.thing_done:
            # a certificate of this run claimed this name: see whose thing it is before
            # registering (a stand-in that replaces a thing instead of refusing CreateThing
            # must not merge two devices either)
            step, target = "thing", name
            check_claimed(client, work, name)
            work.suspect_name = False
        step = "register"
        if work.certificate_arn is None:
            held = None
            register_started = _dt.datetime.now(_dt.timezone.utc)
            registered_arn, held = _register(client, work, certificate, options)
            if journal is not None:
                journal.register(work, arn=registered_arn, status=options.status, name=name)
        arn = work.certificate_arn
        assert arn is not None
        step, target = "thing", name
        if not work.thing_done:
            adopted = claim_thing(client, work, name, options)
            work.thing_done = True
            if journal is not None:
                journal.confirm(
                    work,
                    "thing",
                    found=adopted,
                    thing_name=name,
                    thing_type=options.thing_type,
                    thing_config=options.thing_config(),
                )
        step = "attach_principal"
        if not work.principal_done:
            _attach_principal(client, work, name, arn, options)
            work.principal_done = True
            if journal is not None:
                journal.confirm(work, "principal")
        step = "attach_policy"
        for policy in options.certificate_policies:  # none when they go to the thing group
            if policy in work.policies_done:
                continue
            target = policy
            counted(work, client.attach_policy, policy, arn)
            work.policies_done.add(policy)
            if journal is not None:
                journal.policy(work, policy)
        step = "add_to_group"
        for group in options.thing_groups:
            if group in work.groups_done:
                continue
            target = group
            counted(work, client.add_thing_to_group, name, group)
            work.groups_done.add(group)
            if journal is not None:
                journal.group(work, group)
    except RunHalted:
        raise  # the run's preflight failed: the run's error, not this certificate's
    except Exception as exc:
        if register_started is not None and step == "register" and work.register_sent is None:
            # The request may have reached AWS with its answer lost, or the check that follows
            # a lost answer (DescribeCertificate) may have failed: a later "already registered"
            # is then checked against the time it was sent. Any failure of this step counts, so
            # no such case is missed; the creation time keeps it exact (a certificate registered
            # before this run stays already_present), at one DescribeCertificate on that path.
            work.register_sent = register_started
        return failure(work, step, target, exc)
    # imported: this run registered the certificate, or finished a device an earlier run of the
    # ledger had registered (an interrupted import that this run completed)
    finished_ours = work.ours and work.calls > 0
    status = OutcomeStatus.IMPORTED if work.created or finished_ours else OutcomeStatus.ALREADY_PRESENT
    return _finished(work, status, held)


def _attach_principal(client: IoTOperations, work: Work, name: str, arn: str, options: ImportOptions) -> None:
    """AttachThingPrincipal, exclusively when asked. AWS does not document its answer to an
    exclusive attachment of a certificate that is on another thing; an InvalidRequestException
    or ResourceAlreadyExistsException of that call is taken as that refusal, and the things
    the certificate is on are listed (one more call, on this path only) to name them."""
    if not options.exclusive:
        counted(work, client.attach_thing_principal, name, arn)
        return
    try:
        counted(work, client.attach_thing_principal, name, arn, exclusive=True)
    except (InvalidRequestError, ResourceConflictError) as exc:
        if exc.code not in _EXCLUSIVE_REFUSALS:
            raise
        try:
            others = tuple(t for t in counted(work, client.list_principal_things, arn) if t != name)
        except AwsServiceError:
            others = ()
        shown = f" {', '.join(others[:5])}" + (f" and {len(others) - 5} more" if len(others) > 5 else "")
        raise Refusal(
            f"certificate {work.certificate_id} is attached to another thing{shown if others else ''} "
            f"and AWS refused to attach it exclusively to thing {name!r} ({exc.code}); "
            "detach it from the other thing first, or import without exclusive association",
            reason="certificate_on_other_thing",
            other_things=others,
        ) from exc


# AWS's answers to an exclusive AttachThingPrincipal for a certificate on another thing (not
# documented; both are taken as that case).
_EXCLUSIVE_REFUSALS = frozenset({"InvalidRequestException", "ResourceAlreadyExistsException"})


def _verify_target(options: ImportOptions) -> str:
    if options.trust_store is not None:
        return "against the trust store"
    if options.ca_certificate is not None:
        return "against the CA certificate"
    return "its validity"


def _ledger_status(work: Work, options: ImportOptions) -> _StatusSeen | None:
    """The status the ledger holds for a certificate it registered, when it is not the one
    asked (no call: AWS is read only with ``recheck``)."""
    record = work.record
    if record is None or record.certificate_status in (None, options.status):
        return None
    return _StatusSeen(record.certificate_status or "", "the ledger", changed=False)


class _StatusSeen:
    """A certificate status other than the one asked, where it was seen, and whether it was set."""

    __slots__ = ("changed", "source", "status")

    def __init__(self, status: str, source: str, *, changed: bool) -> None:
        self.status = status
        self.source = source
        self.changed = changed


def _thing_config_checked(
    work: Work, options: ImportOptions, decided: ImportOutcome | None
) -> ImportOutcome | None:
    """The ledger's verdict, unless the thing was made with other attributes or another billing
    group than these options ask: then its CreateThing is made again (AWS brings the thing in
    line, see `claim_thing`), and the other steps resume from the record."""
    record = work.record
    if record is None or options.recheck:
        return decided
    wanted = options.thing_config()
    if record.thing_config == wanted:
        if (
            decided is None
            and wanted is not None
            and work.thing_name is not None
            and record.complete_for(
                thing_name=work.thing_name,
                policies=options.certificate_policies,
                thing_groups=options.thing_groups,
                thing_type=options.thing_type,
                status=options.status,
                thing_config=wanted,
            )
        ):
            # done with this configuration (the ledger's own check does not know it)
            return ImportOutcome(
                certificate_id=work.certificate_id,
                thing_name=work.thing_name,
                status=OutcomeStatus.ALREADY_PRESENT,
                calls=0,
                attempts=work.attempts,
                index=work.index,
            )
        return decided
    if decided is not None and decided.status is OutcomeStatus.ALREADY_PRESENT:
        if record.done("register") and record.certificate_arn:
            work.certificate_arn = record.certificate_arn
        work.principal_done = record.done("principal")
        work.groups_done.update(g for g in record.groups() if g in options.thing_groups)
        work.policies_done.update(p for p in record.policies() if p in options.certificate_policies)
        decided = None
    work.thing_done = False
    return decided


def _check(work: Work, certificate: DeviceCertificate, options: ImportOptions) -> None:
    """Validity (unless allowed) and the trust store's verdict, before any call."""
    trust = options.trust()
    if trust is not None:
        at = None
        if options.allow_expired:
            # verify the chain as of a moment the device certificate was valid
            now = _dt.datetime.now(_dt.timezone.utc)
            at = min(max(now, certificate.not_before), certificate.not_after)
        verify_certificate(certificate, trust, intermediates=work.chain, at=at)
    elif not options.allow_expired:
        check_validity(certificate)


def _register(
    client: IoTOperations, work: Work, certificate: DeviceCertificate, options: ImportOptions
) -> tuple[str, _StatusSeen | None]:
    """Register the certificate (with its CA when one is given); returns its ARN and, with
    ``recheck``, the other status AWS held for a certificate registered before (then set)."""
    extra: dict[str, object] = {}
    if options.ca_certificate is not None:
        extra["ca_certificate"] = options.ca_certificate
    registration = counted(
        work,
        client.register_certificate,
        certificate,
        status=options.status,
        created_after=work.register_sent,
        **extra,
    )
    arn = registration.certificate_arn
    if not registration.created and not options.allow_multiple_things:
        things = counted(work, client.list_principal_things, arn)
        others = tuple(t for t in things if t != work.thing_name)
        if others and work.thing_name not in things:
            shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
            raise Refusal(
                f"it is registered already and attached to thing(s) {shown}; not attaching it to a "
                f"second thing {work.thing_name!r} (allow_multiple_things, or "
                "--allow-multiple-things, attaches it anyway)",
                reason="certificate_on_other_thing",
                other_things=others,
            )
    held = None
    if not registration.created and options.recheck:
        held = _reconcile_status(client, work, registration.certificate_id, options)
    work.certificate_arn = arn
    work.created = work.created or registration.created
    work.registered = work.registered or registration.created
    return arn, held


def _reconcile_status(
    client: IoTOperations, work: Work, certificate_id: str, options: ImportOptions
) -> _StatusSeen | None:
    """Read the status of a certificate registered before and set the one asked when AWS holds
    an ACTIVE or INACTIVE one that differs (a revoked or transferred certificate is reported,
    not changed)."""
    found = counted(work, client.describe_certificate, certificate_id).status
    if found == options.status:
        return None
    if found in ("ACTIVE", "INACTIVE"):
        counted(work, client.update_certificate_status, certificate_id, options.status)
        logger.info(
            "certificate %s was %s; set to %s",
            certificate_id,
            found,
            options.status,
            extra={"operation": "iot.UpdateCertificate", "certificate_id": certificate_id},
        )
        return _StatusSeen(found, "AWS", changed=True)
    return _StatusSeen(found, "AWS", changed=False)


def log_outcome(outcome: ImportOutcome, *, retrying: bool) -> None:
    """Log one outcome: DEBUG when done, INFO when it goes round again, WARNING when failed."""
    extra = {
        "certificate_id": outcome.certificate_id,
        "thing_name": outcome.thing_name,
        "operation": _OPERATION.get(outcome.failed_step, "import") if outcome.failed_step else "import",
        "status": outcome.status.value,
    }
    if outcome.status is not OutcomeStatus.FAILED:
        logger.debug(
            "%s: %s", where(outcome.certificate_id, outcome.index), outcome.status.value, extra=extra
        )
    elif retrying:
        logger.info("%s; will retry after the others", outcome.error, extra=extra)
    else:
        logger.warning("%s", outcome.error, extra=extra)
