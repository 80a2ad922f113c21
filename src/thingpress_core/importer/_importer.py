"""`CertificateImporter`: register certificates, create things, wire them up, at the quota.

One certificate costs the floor of IoT calls and no more::

    RegisterCertificateWithoutCA -> CreateThing(thingTypeName) -> AttachThingPrincipal
        -> AttachPolicy (one per policy) -> AddThingToThingGroup (one per group)

Every call is idempotent, so a second run repeats them and creates nothing. Rate limits,
breakers and botocore's retries live in `IoTService`; the importer adds what only it can do:
the checks that keep one device on one thing (`_steps`), a bounded window over a streamed
input and later rounds for transient failures (`_schedule`), and one report.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Union

from thingpress_core.errors import ConfigurationError, PreflightError, ResourceNotFoundError
from thingpress_core.importer._gate import PreflightGate, RunHalted
from thingpress_core.importer._journal import Journal, lost_since_for
from thingpress_core.importer._models import (
    MAX_NOTES,
    ImportInterrupted,
    ImportOptions,
    ImportOutcome,
    ImportReport,
)
from thingpress_core.importer._schedule import Run
from thingpress_core.importer._steps import attempt, log_outcome
from thingpress_core.importer._work import Work
from thingpress_core.ledger import RunRecord, Target, new_run_id

if TYPE_CHECKING:
    from typing import TypeAlias

    from thingpress_core.certificates import DeviceCertificate
    from thingpress_core.importer._protocol import IoTOperations
    from thingpress_core.ledger import Ledger, RunStatus
    from thingpress_core.manifests import ManifestEntry

__all__ = ["CertificateImporter", "ImportItem", "ProgressCallback"]

logger = logging.getLogger("thingpress_core.importer")

#: What `import_all` accepts: certificates, manifest entries (which may bring their thing
#: name and chain), or an exception a reader yielded in place of an entry it could not read
#: (reported as a failed outcome at step ``parse``).
ImportItem: TypeAlias = Union["DeviceCertificate", "ManifestEntry", Exception]
ProgressCallback: TypeAlias = Callable[[ImportOutcome], object]


class CertificateImporter:
    """Import device certificates into AWS IoT Core: one thing each, fully wired.

    Args:
        iot: the IoT facade to call. Defaults to ``IoTService()`` (settings from the
            environment), made on first use, so a dry run without preflight needs no AWS.
            Anything with the same methods works (`IoTOperations`), e.g. a test double.
        options: what to attach and how (`ImportOptions`).
        ledger: where each device's confirmed steps are recorded (`thingpress_core.ledger`):
            a device whose record shows every wanted step is reported ``already_present``
            with no AWS call, a partial one resumes at its first step not done, and each
            `import_all` is one run in it. None (default): no ledger.
        target: the account, region and endpoint the ledger keys records by. Default: read
            from ``iot`` (its factory's account id, region and endpoint).
        sleep: how to pause before a retry round (tests pass a no-op).
        clock: monotonic seconds, for the report's duration.

    Examples:
        ```python
        from thingpress_core.importer import CertificateImporter, ImportOptions
        from thingpress_core.manifests import read_manifest

        options = ImportOptions(policies=("DevicePolicy",), thing_groups=("Fleet",))
        importer = CertificateImporter(options=options)
        print(importer.import_all(read_manifest("devices.pem")).summary())
        ```
    """

    def __init__(
        self,
        iot: IoTOperations | None = None,
        *,
        options: ImportOptions,
        ledger: Ledger | None = None,
        target: Target | None = None,
        sleep: Callable[[float], object] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._iot = iot
        self._ledger = ledger
        self._target = target
        self._session_run: str | None = None
        self._options = options
        self._sleep = sleep
        self._clock = clock
        self._lock = threading.Lock()
        self._group_arn: str | None = None  # the thing group's ARN, once the preflight read it

    def __repr__(self) -> str:
        return f"CertificateImporter(options={self._options!r})"

    @property
    def options(self) -> ImportOptions:
        """The options `import_all` uses (and `import_certificate` unless given others)."""
        return self._options

    @property
    def iot(self) -> IoTOperations:
        """The IoT facade; an ``IoTService()`` is made on first use when none was given."""
        if self._iot is None:
            with self._lock:
                if self._iot is None:
                    from thingpress_core.services import IoTService

                    self._iot = IoTService()
        return self._iot

    # -- preflight -------------------------------------------------------------------------

    def preflight(self) -> None:
        """Check that every named policy, thing group, the thing type, the billing group and
        the CA certificate exist.

        Makes one read-only call per resource (GetPolicy, DescribeThingGroup,
        DescribeThingType, DescribeBillingGroup, DescribeCACertificate). Raises
        `PreflightError` listing everything missing (and a deprecated thing type, which
        CreateThing would refuse, or a CA that is not ACTIVE, which RegisterCertificate would
        refuse) in one message; other AWS errors (access denied, throttled) propagate as they
        are.
        """
        options = self._options
        iot = self.iot
        checks: list[tuple[str, str, str, Callable[[str], object]]] = [
            *(("policy", "policy", name, iot.get_policy) for name in options.policies),
            *(
                ("thing_group", "thing group", name, iot.describe_thing_group)
                for name in options.thing_groups
            ),
        ]
        if options.thing_type is not None:
            checks.append(("thing_type", "thing type", options.thing_type, iot.describe_thing_type))
        if options.billing_group is not None:
            checks.append(
                ("billing_group", "billing group", options.billing_group, iot.describe_billing_group)
            )
        if options.ca_certificate is not None:
            ca_id = options.ca_certificate.certificate_id
            checks.append(("ca_certificate", "CA certificate", ca_id, iot.describe_ca_certificate))
        missing: list[str] = []
        problems: list[str] = []
        for kind, label, name, describe in checks:
            try:
                info = describe(name)
                if kind == "thing_group" and options.policy_target == "thing_group":
                    self._group_arn = _arn_of(info)
            except ResourceNotFoundError:
                logger.info(
                    "preflight: %s %r does not exist",
                    label,
                    name,
                    extra={"operation": "preflight", "resource": f"{kind}:{name}"},
                )
                missing.append(f"{kind}:{name}")
                problems.append(
                    f"{label} {name} is not registered in the account"
                    if kind == "ca_certificate"
                    else f"{label} {name!r} does not exist"
                )
                continue
            if kind == "thing_type" and _deprecated(info):
                missing.append(f"{kind}:{name}")
                problems.append(f"{label} {name!r} is deprecated, so no thing can be created with it")
            if kind == "ca_certificate" and getattr(info, "status", None) != "ACTIVE":
                missing.append(f"{kind}:{name}")
                problems.append(
                    f"{label} {name} is {getattr(info, 'status', 'of unknown status')} in AWS IoT, "
                    "not ACTIVE, so no certificate can be registered with it"
                )
        if missing:
            raise PreflightError(
                "cannot import: " + "; ".join(problems) + " (create them first, or fix the names)",
                missing=missing,
            )

    def attach_group_policies(self) -> str:
        """Attach every policy to the thing group, once (``policy_target="thing_group"``).

        AttachPolicy with the group's ARN as the target, one call per policy (repeating it is
        harmless), after one DescribeThingGroup for the ARN unless the preflight read it.
        `import_all` calls it before the first certificate (right after the preflight, and
        even without one; not in a dry run); a caller of `import_certificate` calls it once
        itself (a Lambda consumer at cold start). Returns the group's ARN. Raises
        `ConfigurationError` in certificate mode, `PreflightError` when the group does not
        exist.
        """
        options = self._options
        if options.policy_target != "thing_group":
            raise ConfigurationError(
                "attach_group_policies needs ImportOptions(policy_target='thing_group')",
                variable="policy_target",
            )
        iot = self.iot
        group = options.thing_groups[0]
        arn = self._group_arn
        if arn is None:
            try:
                arn = _arn_of(iot.describe_thing_group(group))
            except ResourceNotFoundError:
                raise PreflightError(
                    f"cannot import: thing group {group!r} does not exist (create it first, or fix the name)",
                    missing=[f"thing_group:{group}"],
                ) from None
            self._group_arn = arn
        for policy in options.group_policies:
            iot.attach_policy(policy, arn)
            logger.info(
                "policy %s is attached to thing group %s (it applies to every thing in it)",
                policy,
                group,
                extra={"operation": "iot.AttachPolicy", "resource": f"thing_group:{group}"},
            )
        return arn

    def _before_first_call(self) -> None:
        """What runs once before the first certificate's calls: the preflight (unless turned
        off) and, in group-policy mode outside a dry run, the group's policies."""
        options = self._options
        if options.preflight:
            self.preflight()
        if options.policy_target == "thing_group" and not options.dry_run:
            self.attach_group_policies()

    @property
    def ledger(self) -> Ledger | None:
        """The ledger steps are recorded in, if any."""
        return self._ledger

    def target(self) -> Target:
        """The account, region and endpoint the ledger keys records by (read from the IoT
        service's factory unless given; one STS call, cached, when no account id is set)."""
        if self._target is None:
            factory = getattr(self.iot, "factory", None)
            if factory is None:
                raise ConfigurationError(
                    "with a ledger and an IoT service that has no factory, pass target= "
                    "(the account, region and endpoint the records belong to)",
                    variable="target",
                )
            self._target = Target(
                account_id=factory.account_id(),
                region=factory.region,
                endpoint=factory.settings.endpoint_url,
            )
        return self._target

    def _journal(self, run_id: str | None) -> Journal | None:
        if self._ledger is None:
            return None
        if run_id is None:
            run_id = self._session()
        return Journal(self._ledger, target=self.target().key, run_id=run_id)

    def _session(self) -> str:
        """The run `import_certificate` records under when it is given none: one per
        importer, begun on first use (a Lambda consumer passes the producer's run id)."""
        with self._lock:
            if self._session_run is None:
                run_id = new_run_id()
                assert self._ledger is not None
                self._ledger.begin_run(self._run_record(run_id, self._options, None, None))
                self._session_run = run_id
            return self._session_run

    def _run_record(
        self, run_id: str, options: ImportOptions, input_name: str | None, input_digest: str | None
    ) -> RunRecord:
        return RunRecord.start(
            run_id=run_id,
            target=self.target().key,
            options=options.summary(),
            input_name=input_name,
            input_digest=input_digest,
        )

    # -- one certificate -------------------------------------------------------------------

    def import_certificate(
        self,
        item: DeviceCertificate | ManifestEntry,
        *,
        options: ImportOptions | None = None,
        run_id: str | None = None,
    ) -> ImportOutcome:
        """Import one certificate (or manifest entry): verify, name, then the floor calls.

        Never raises for a problem with this certificate: a failure comes back as an outcome
        with ``status="failed"``, the step, the error and whether it was transient. Only the
        calls of the floor are made; no preflight, no retry round (botocore has already
        retried each call). With a ledger, the device's steps are recorded under ``run_id``
        (default: one run per importer, begun on first use).
        """
        work = Work.of(item, None)
        outcome = attempt(lambda: self.iot, work, options or self._options, self._journal(run_id))
        log_outcome(outcome, retrying=False)
        return outcome

    # -- many certificates -----------------------------------------------------------------

    def import_all(
        self,
        items: Iterable[ImportItem],
        *,
        progress: ProgressCallback | None = None,
        input_name: str | None = None,
        input_digest: str | None = None,
        run_id: str | None = None,
    ) -> ImportReport:
        """Import every item of a (possibly huge, possibly lazy) iterable; report the run.

        Runs `preflight` first (unless ``options.preflight`` is False) and raises its
        `PreflightError` before any certificate is sent. With a ledger (and not a dry run) the
        preflight waits for the first device the ledger does not show done, so a re-run over
        a finished ledger makes no AWS call; its failure (whatever the error, transient too)
        still ends the run with that same error before anything is written about a device: no
        certificate is reported, logged or counted as failed for it. Then reads ``items`` lazily, keeping
        at most ``2 * concurrency`` of them in flight, and imports them on ``concurrency``
        threads. A certificate whose failure was transient waits until the others are done
        (or until ``max(256, 32 * concurrency)`` are waiting) and is sent again after a pause,
        resuming at the step that failed, up to ``transient_rounds`` more times. A
        certificate that appears twice is imported once, then repeated after the first
        finished (so the repeat reports ``already_present``). Nothing about one certificate
        stops the run; if iterating ``items`` itself raises, that error is reported as a
        failed outcome and the run ends after the items already read.

        ``progress`` is called with each final outcome, on the calling thread.

        With a ledger, the run is recorded in it (``run_id``, default a new one, with the
        options and ``input_name`` / ``input_digest`` of what it read) and ended with its
        counts and status (``finished``, ``interrupted``, ``failed``). Each device the ledger
        shows done with these options is ``already_present`` without a call; a device partly
        done resumes at its first step not done (`ImportOptions.recheck` asks AWS again).
        """
        options = self._options
        started_at = datetime.now(timezone.utc)
        start = self._clock()
        needs_iot = options.preflight or not options.dry_run
        iot = self.iot if needs_iot else self._iot
        before = _snapshot(iot)
        # With a ledger, the preflight waits for the first device that needs AWS: a re-run over
        # a finished ledger makes no call at all. Without one (or in a dry run) it comes first.
        lazy = self._ledger is not None and not options.dry_run
        setup = options.preflight or (options.policy_target == "thing_group" and not options.dry_run)
        if setup and not lazy:
            self._before_first_call()
        journal = None
        if self._ledger is not None:
            run_id = run_id or new_run_id()
            key = self.target().key
            lost_since = lost_since_for(self._ledger, key)  # read before this run is one
            self._ledger.begin_run(self._run_record(run_id, options, input_name, input_digest))
            journal = Journal(self._ledger, target=key, run_id=run_id, lost_since=lost_since)
        gate = PreflightGate(self._before_first_call, lambda: self.iot) if setup and lazy else None
        notes: list[ImportOutcome] = []
        noted = 0

        def noting(outcome: ImportOutcome) -> None:
            nonlocal noted
            if outcome.note is not None:
                noted += 1
                if len(notes) < MAX_NOTES:
                    notes.append(outcome)
            if progress is not None:
                progress(outcome)

        run = Run(
            gate if gate is not None else (lambda: self.iot),
            options,
            noting,
            self._sleep,
            self._clock,
            journal,
        )
        interrupted = False
        halted: Exception | None = None
        try:
            run.run(items)
        except KeyboardInterrupt:
            interrupted = True
        except RunHalted as stop:
            halted = stop.error  # raised below, outside this handler, as the eager preflight raises it
        except BaseException:
            if journal is not None:
                self._end(journal, run, "failed")
            raise
        if halted is not None:
            if journal is not None:
                self._end(journal, run, "failed")
            raise halted
        if journal is not None:
            self._end(journal, run, "interrupted" if interrupted else "finished")
        after = _snapshot(iot)
        duration = max(self._clock() - start, 0.0)
        report = ImportReport(
            total=run.total,
            imported=run.imported,
            already_present=run.already_present,
            failed=run.failed,
            skipped=run.skipped,
            calls=_delta(before[0], after[0]),
            call_failures=_delta(before[1], after[1]),
            call_retries=_delta(before[2], after[2]),
            calls_refused=_delta(before[3], after[3]),
            failures=run.failures,
            noted=noted,
            notes=notes,
            retried=run.retried,
            rounds=run.rounds,
            dry_run=options.dry_run,
            interrupted=interrupted,
            unfinished=run.unfinished,
            run_id=journal.run_id if journal is not None else None,
            ledger=self._ledger.location if self._ledger is not None else None,
            started_at=started_at,
            duration_seconds=duration,
            rate_per_second=run.total / duration if duration > 0 else 0.0,
        )
        if interrupted:
            logger.warning(report.summary(), extra={"operation": "import_all"})
            raise ImportInterrupted(report)
        logger.info(report.summary(), extra={"operation": "import_all"})
        return report

    def _end(self, journal: Journal, run: Run, status: RunStatus) -> None:
        counts = {
            "total": run.total,
            "imported": run.imported,
            "already_present": run.already_present,
            "failed": run.failed,
            "skipped": run.skipped,
        }
        journal.ledger.end_run(
            journal.run_id, status=status, counts=counts, ended_at=datetime.now(timezone.utc)
        )


def _arn_of(info: object) -> str:
    """The ARN a describe call answered (`ThingGroupInfo.arn`)."""
    arn = getattr(info, "arn", None)
    if not isinstance(arn, str) or not arn:
        raise ConfigurationError(
            "the IoT service gave no thing group ARN (DescribeThingGroup); group-policy mode needs it",
            variable="policy_target",
        )
    return arn


def _deprecated(info: object) -> bool:
    return getattr(info, "deprecated", False) is True


_Counts = tuple[dict[str, int], dict[str, int], dict[str, int], dict[str, int]]


def _snapshot(iot: IoTOperations | None) -> _Counts:
    """Calls, failures, botocore retries and refused calls so far (the last two when known)."""
    if iot is None:
        return {}, {}, {}, {}
    stats = iot.stats()
    return (
        dict(stats.calls),
        dict(stats.failures),
        _int_map(getattr(stats, "retries", None)),
        _int_map(getattr(stats, "refused", None)),
    )


def _int_map(value: object) -> dict[str, int]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): v for k, v in value.items() if isinstance(v, int)}


def _delta(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    delta = {key: value - before.get(key, 0) for key, value in after.items()}
    return {key: value for key, value in sorted(delta.items()) if value > 0}
