"""`CertificateImporter`: register certificates, create things, wire them up, at the quota.

One certificate costs the floor of IoT calls and no more::

    RegisterCertificateWithoutCA -> CreateThing(thingTypeName) -> AttachThingPrincipal
        -> AttachPolicy (one per policy) -> AddThingToThingGroup (one per group)

Every call is idempotent, so a second run repeats them and creates nothing. Rate limits,
breakers and botocore's retries live in `IoTService`; the importer adds what only it can do:
a bounded window over a streamed input, a later round for certificates whose failure was
transient (resuming at the step that failed), and one report.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import datetime, timezone
from typing import TYPE_CHECKING, TypeVar, Union

from thingpress_core.certificates import (
    DeviceCertificate,
    is_valid_thing_name,
    thing_name_for,
    verify_certificate,
)
from thingpress_core.errors import (
    AwsServiceError,
    CertificateValidationError,
    CircuitOpenError,
    PreflightError,
    ResourceNotFoundError,
)
from thingpress_core.importer._models import (
    FailedStep,
    ImportOptions,
    ImportOutcome,
    ImportReport,
    OutcomeStatus,
)
from thingpress_core.resilience import is_transient

if TYPE_CHECKING:
    from typing import TypeAlias

    from thingpress_core.importer._protocol import IoTOperations
    from thingpress_core.manifests import ManifestEntry

__all__ = ["CertificateImporter", "ImportItem", "ProgressCallback"]

logger = logging.getLogger("thingpress_core.importer")

_T = TypeVar("_T")

#: What `import_all` accepts: certificates, manifest entries (which may bring their thing
#: name and chain), or an exception a reader yielded in place of an entry it could not read
#: (reported as a failed outcome at step ``parse``).
ImportItem: TypeAlias = Union["DeviceCertificate", "ManifestEntry", Exception]
ProgressCallback: TypeAlias = Callable[[ImportOutcome], object]

_OPERATION: dict[FailedStep, str] = {
    "register": "iot.RegisterCertificateWithoutCA",
    "thing": "iot.CreateThing",
    "attach_principal": "iot.AttachThingPrincipal",
    "attach_policy": "iot.AttachPolicy",
    "add_to_group": "iot.AddThingToThingGroup",
}
_MAX_ERROR_CHARS = 600
_MAX_PAUSE = 30.0
_MAX_BREAKER_WAIT = 60.0
_MIN_WAITING = 256


class _Work:
    """One input item and how far its import got; resumed where it stopped on a retry."""

    __slots__ = (
        "attempts",
        "calls",
        "certificate",
        "certificate_arn",
        "certificate_id",
        "chain",
        "created",
        "given_name",
        "groups_done",
        "index",
        "outcome",
        "policies_done",
        "principal_done",
        "retry_after",
        "thing_done",
        "thing_name",
        "verified",
    )

    def __init__(
        self,
        *,
        index: int | None,
        certificate: DeviceCertificate | None = None,
        given_name: str | None = None,
        chain: tuple[DeviceCertificate, ...] = (),
        outcome: ImportOutcome | None = None,
    ) -> None:
        self.index = index
        self.certificate = certificate
        self.certificate_id = certificate.certificate_id if certificate is not None else None
        self.given_name = given_name
        self.chain = chain
        self.outcome = outcome  # set up front when the item is not importable at all
        self.thing_name: str | None = None
        self.verified = False
        self.certificate_arn: str | None = None
        self.created = False
        self.thing_done = False
        self.principal_done = False
        self.policies_done = 0
        self.groups_done = 0
        self.calls = 0
        self.attempts = 0
        self.retry_after: float | None = None

    @classmethod
    def of(cls, item: object, position: int | None) -> _Work:
        if isinstance(item, DeviceCertificate):
            return cls(index=position, certificate=item)
        if isinstance(item, BaseException):
            index = getattr(item, "index", None)
            index = index if isinstance(index, int) else position
            certificate_id = getattr(item, "certificate_id", None)
            where = _where(certificate_id if isinstance(certificate_id, str) else None, index)
            return cls(
                index=index,
                outcome=ImportOutcome(
                    certificate_id=certificate_id if isinstance(certificate_id, str) else None,
                    status=OutcomeStatus.FAILED,
                    failed_step="parse",
                    error=_one_line(f"{where}: could not be read: {item}"),
                    error_type=type(item).__name__,
                    attempts=0,
                    index=index,
                ),
            )
        # A ManifestEntry, recognised by shape so the importer does not import the readers.
        certificate = getattr(item, "certificate", None)
        if isinstance(certificate, DeviceCertificate):
            index = getattr(item, "index", None)
            given = getattr(item, "thing_name", None)
            chain = getattr(item, "chain", ())
            return cls(
                index=index if isinstance(index, int) else position,
                certificate=certificate,
                given_name=given if isinstance(given, str) else None,
                chain=tuple(c for c in chain if isinstance(c, DeviceCertificate)),
            )
        return cls(
            index=position,
            outcome=ImportOutcome(
                certificate_id=None,
                status=OutcomeStatus.FAILED,
                failed_step="input",
                error=f"{_where(None, position)}: expected a DeviceCertificate or ManifestEntry, "
                f"got {type(item).__name__}",
                error_type="TypeError",
                attempts=0,
                index=position,
            ),
        )


def _where(certificate_id: str | None, index: int | None) -> str:
    if certificate_id:
        return f"certificate {certificate_id}"
    if index is not None:
        return f"item {index + 1}"
    return "item"


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_ERROR_CHARS else text[: _MAX_ERROR_CHARS - 3] + "..."


def _describe(step: FailedStep, target: str | None) -> str:
    if step == "verify":
        return "verifying it against the trust store"
    if step == "name":
        return "choosing its thing name"
    if step == "register":
        return "registering it"
    if step == "thing":
        return f"creating thing {target!r}"
    if step == "attach_principal":
        return f"attaching it to thing {target!r}"
    if step == "attach_policy":
        return f"attaching policy {target!r}"
    if step == "add_to_group":
        return f"adding its thing to group {target!r}"
    return "reading it"


class CertificateImporter:
    """Import device certificates into AWS IoT Core: one thing each, fully wired.

    Args:
        iot: the IoT facade to call. Defaults to ``IoTService()`` (settings from the
            environment), made on first use, so a dry run without preflight needs no AWS.
            Anything with the same methods works (`IoTOperations`), e.g. a test double.
        options: what to attach and how (`ImportOptions`).
        sleep: how to pause before a retry round (tests pass a no-op).
        clock: monotonic seconds, for the report's duration.

    Example:
        >>> importer = CertificateImporter(  # doctest: +SKIP
        ...     options=ImportOptions(policies=("DevicePolicy",), thing_groups=("Fleet",)))
        >>> report = importer.import_all(read_manifest("devices.pem"))  # doctest: +SKIP
        >>> print(report.summary())  # doctest: +SKIP
    """

    def __init__(
        self,
        iot: IoTOperations | None = None,
        *,
        options: ImportOptions,
        sleep: Callable[[float], object] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._iot = iot
        self._options = options
        self._sleep = sleep
        self._clock = clock
        self._lock = threading.Lock()

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
        """Check that every named policy, thing group and the thing type exist.

        Makes one read-only call per resource (GetPolicy, DescribeThingGroup,
        DescribeThingType). Raises `PreflightError` listing everything missing (and a
        deprecated thing type, which CreateThing would refuse) in one message; other AWS
        errors (access denied, throttled) propagate as they are.
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
        missing: list[str] = []
        problems: list[str] = []
        for kind, label, name, describe in checks:
            try:
                info = describe(name)
            except ResourceNotFoundError:
                logger.info(
                    "preflight: %s %r does not exist",
                    label,
                    name,
                    extra={"operation": "preflight", "resource": f"{kind}:{name}"},
                )
                missing.append(f"{kind}:{name}")
                problems.append(f"{label} {name!r} does not exist")
                continue
            if kind == "thing_type" and _deprecated(info):
                missing.append(f"{kind}:{name}")
                problems.append(f"{label} {name!r} is deprecated, so no thing can be created with it")
        if missing:
            raise PreflightError(
                "cannot import: " + "; ".join(problems) + " (create them first, or fix the names)",
                missing=missing,
            )

    # -- one certificate -------------------------------------------------------------------

    def import_certificate(
        self, item: DeviceCertificate | ManifestEntry, *, options: ImportOptions | None = None
    ) -> ImportOutcome:
        """Import one certificate (or manifest entry): verify, name, then the floor calls.

        Never raises for a problem with this certificate: a failure comes back as an outcome
        with ``status="failed"``, the step, the error and whether it was transient. Only the
        calls of the floor are made; no preflight, no retry round (botocore has already
        retried each call).
        """
        work = _Work.of(item, None)
        outcome = self._attempt(work, options or self._options)
        _log_outcome(outcome, retrying=False)
        return outcome

    def _attempt(self, work: _Work, options: ImportOptions) -> ImportOutcome:
        """Run the steps `work` has not finished yet; return its outcome for this attempt."""
        if work.outcome is not None and work.certificate is None:
            return work.outcome
        certificate = work.certificate
        assert certificate is not None
        work.attempts += 1
        work.retry_after = None
        step: FailedStep = "verify"
        target: str | None = None
        try:
            if options.trust_store is not None and not work.verified:
                verify_certificate(certificate, options.trust_store, intermediates=work.chain)
                work.verified = True
            step = "name"
            if work.thing_name is None:
                work.thing_name = self._name_for(work, options)
            name = work.thing_name
            if options.dry_run:
                return self._outcome(work, OutcomeStatus.SKIPPED)
            iot = self.iot
            step = "register"
            if work.certificate_arn is None:
                registration = _counted(work, iot.register_certificate, certificate, status=options.status)
                work.certificate_arn = registration.certificate_arn
                work.created = work.created or registration.created
            arn = work.certificate_arn
            step, target = "thing", name
            if not work.thing_done:
                thing = _counted(work, iot.ensure_thing, name, thing_type=options.thing_type)
                # AWS answers a repeated CreateThing exactly like a new one, so only the
                # registration says whether this device is new; an updated thing type is news
                # (and cost a second call, UpdateThing, after CreateThing's conflict).
                if getattr(thing, "updated", False) is True:
                    work.calls += 1
                    work.created = True
                work.thing_done = True
            step = "attach_principal"
            if not work.principal_done:
                _counted(work, iot.attach_thing_principal, name, arn)
                work.principal_done = True
            step = "attach_policy"
            for policy in options.policies[work.policies_done :]:
                target = policy
                _counted(work, iot.attach_policy, policy, arn)
                work.policies_done += 1
            step = "add_to_group"
            for group in options.thing_groups[work.groups_done :]:
                target = group
                _counted(work, iot.add_thing_to_group, name, group)
                work.groups_done += 1
        except Exception as exc:
            return self._failure(work, step, target, exc)
        status = OutcomeStatus.IMPORTED if work.created else OutcomeStatus.ALREADY_PRESENT
        return self._outcome(work, status)

    def _name_for(self, work: _Work, options: ImportOptions) -> str:
        certificate = work.certificate
        assert certificate is not None
        if work.given_name is not None:
            name = work.given_name
        else:
            name = thing_name_for(certificate, strategy=options.thing_name, prefix=options.thing_name_prefix)
        if not is_valid_thing_name(name):
            raise CertificateValidationError(
                f"thing name {name[:140]!r} is not valid: 1 to 128 of letters, digits, ':', '_' and '-'",
                certificate_id=certificate.certificate_id,
                reason="invalid_name",
            )
        return name

    @staticmethod
    def _outcome(work: _Work, status: OutcomeStatus) -> ImportOutcome:
        return ImportOutcome(
            certificate_id=work.certificate_id,
            thing_name=work.thing_name,
            status=status,
            calls=work.calls,
            attempts=work.attempts,
            index=work.index,
        )

    @staticmethod
    def _failure(work: _Work, step: FailedStep, target: str | None, exc: Exception) -> ImportOutcome:
        if isinstance(exc, CircuitOpenError) and exc.retry_after is not None:
            work.retry_after = exc.retry_after
        return ImportOutcome(
            certificate_id=work.certificate_id,
            thing_name=work.thing_name,
            status=OutcomeStatus.FAILED,
            failed_step=step,
            error=_one_line(
                f"{_where(work.certificate_id, work.index)}: {_describe(step, target)} failed: {exc}"
            ),
            error_type=type(exc).__name__,
            transient=is_transient(exc),
            calls=work.calls,
            attempts=work.attempts,
            index=work.index,
        )

    # -- many certificates -----------------------------------------------------------------

    def import_all(
        self,
        items: Iterable[ImportItem],
        *,
        progress: ProgressCallback | None = None,
    ) -> ImportReport:
        """Import every item of a (possibly huge, possibly lazy) iterable; report the run.

        Runs `preflight` first (unless ``options.preflight`` is False) and raises its
        `PreflightError` before touching any certificate. Then reads ``items`` lazily, keeping
        at most ``2 * concurrency`` of them in flight, and imports them on ``concurrency``
        threads. A certificate whose failure was transient waits until the others are done
        (or until ``max(256, 32 * concurrency)`` are waiting) and is sent again after a pause,
        resuming at the step that failed, up to ``transient_rounds`` more times. A
        certificate that appears twice is imported once, then repeated after the first
        finished (so the repeat reports ``already_present``). Nothing about one certificate
        stops the run; if iterating ``items`` itself raises, that error is reported as a
        failed outcome and the run ends after the items already read.

        ``progress`` is called with each final outcome, on the calling thread.
        """
        options = self._options
        started_at = datetime.now(timezone.utc)
        start = self._clock()
        needs_iot = options.preflight or not options.dry_run
        iot = self.iot if needs_iot else self._iot
        before = _snapshot(iot)
        if options.preflight:
            self.preflight()
        run = _Run(self, options, progress, self._sleep)
        run.run(items)
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
            retried=run.retried,
            rounds=run.rounds,
            dry_run=options.dry_run,
            started_at=started_at,
            duration_seconds=duration,
            rate_per_second=run.total / duration if duration > 0 else 0.0,
        )
        logger.info(report.summary(), extra={"operation": "import_all"})
        return report


def _counted(work: _Work, method: Callable[..., _T], *args: object, **kwargs: object) -> _T:
    """Call ``method`` and count it as one IoT call when it reached AWS."""
    try:
        result = method(*args, **kwargs)
    except AwsServiceError:
        work.calls += 1
        raise
    work.calls += 1
    return result


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
        _int_map(getattr(stats, "rejected", None)),
    )


def _int_map(value: object) -> dict[str, int]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): v for k, v in value.items() if isinstance(v, int)}


def _delta(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    delta = {key: value - before.get(key, 0) for key, value in after.items()}
    return {key: value for key, value in sorted(delta.items()) if value > 0}


def _log_outcome(outcome: ImportOutcome, *, retrying: bool) -> None:
    extra = {
        "certificate_id": outcome.certificate_id,
        "thing_name": outcome.thing_name,
        "operation": _OPERATION.get(outcome.failed_step, "import") if outcome.failed_step else "import",
        "status": outcome.status.value,
    }
    if outcome.status is not OutcomeStatus.FAILED:
        logger.debug(
            "%s: %s", _where(outcome.certificate_id, outcome.index), outcome.status.value, extra=extra
        )
    elif retrying:
        logger.info("%s; will retry after the others", outcome.error, extra=extra)
    else:
        logger.warning("%s", outcome.error, extra=extra)


class _Run:
    """The scheduling loop of one `import_all`: window, duplicates, retry rounds, tally."""

    def __init__(
        self,
        importer: CertificateImporter,
        options: ImportOptions,
        progress: ProgressCallback | None,
        sleep: Callable[[float], object],
    ) -> None:
        self._importer = importer
        self._options = options
        self._progress = progress
        self._sleep = sleep
        self._window = 2 * options.concurrency
        # At most this many certificates wait for a retry round; past it, the round starts early.
        self._max_waiting = max(_MIN_WAITING, 32 * options.concurrency)
        self._pending: dict[Future[ImportOutcome], _Work] = {}
        self._active: set[str] = set()  # certificate ids in flight or waiting for a round
        self._held: dict[str, deque[_Work]] = {}  # duplicates waiting for their first to finish
        self._held_count = 0
        self._next_round: list[_Work] = []
        self._pool: ThreadPoolExecutor | None = None
        self.total = self.imported = self.already_present = self.failed = self.skipped = 0
        self.failures: list[ImportOutcome] = []
        self.retried = 0
        self.rounds = 0

    def run(self, items: Iterable[object]) -> None:
        self._pool = ThreadPoolExecutor(
            max_workers=self._options.concurrency, thread_name_prefix="thingpress-import"
        )
        try:
            self._loop(items)
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def _loop(self, items: Iterable[object]) -> None:
        source = iter(items)
        position = 0
        exhausted = False
        queue: deque[_Work] = deque()
        while True:
            while len(self._pending) + self._held_count < self._window:
                if queue:
                    self._submit(queue.popleft())
                    continue
                if exhausted or len(self._next_round) >= self._max_waiting:
                    break
                try:
                    item = next(source)
                except StopIteration:
                    exhausted = True
                    break
                except Exception as exc:  # the reader itself broke: report it, stop reading
                    exhausted = True
                    logger.error(
                        "reading the input failed after %d items: %s",
                        position,
                        exc,
                        extra={"operation": "read"},
                    )
                    item = exc
                self._admit(_Work.of(item, position))
                position += 1
            if self._pending:
                done, _ = wait(self._pending, return_when=FIRST_COMPLETED)
                for future in done:
                    work = self._pending.pop(future)
                    self._finish(work, future.result())
                continue
            # Nothing in flight. Either the input is done, or so many certificates wait for a
            # round (an outage, an open breaker) that reading on would only queue more: retry.
            if not self._next_round:
                assert exhausted  # held duplicates imply their first is pending or waiting
                return
            queue = deque(self._next_round)
            self._next_round = []
            self.rounds += 1
            self._pause(queue)

    def _pause(self, queue: deque[_Work]) -> None:
        tries = max(work.attempts for work in queue)
        delay = min(self._options.retry_pause * 2 ** (tries - 1), _MAX_PAUSE)
        waits = [work.retry_after for work in queue if work.retry_after is not None]
        if waits:
            delay = max(delay, min(max(waits), _MAX_BREAKER_WAIT))
        logger.info(
            "retry round %d: %d certificates after %.1f s",
            self.rounds,
            len(queue),
            delay,
            extra={"operation": "retry"},
        )
        if delay > 0:
            self._sleep(delay)

    def _admit(self, work: _Work) -> None:
        if work.certificate is None and work.outcome is not None:
            self._record(work.outcome)
            return
        certificate_id = work.certificate_id
        assert certificate_id is not None
        if certificate_id in self._active:
            self._held.setdefault(certificate_id, deque()).append(work)
            self._held_count += 1
            return
        self._active.add(certificate_id)
        self._submit(work)

    def _submit(self, work: _Work) -> None:
        assert self._pool is not None
        future = self._pool.submit(self._importer._attempt, work, self._options)
        self._pending[future] = work

    def _finish(self, work: _Work, outcome: ImportOutcome) -> None:
        if (
            outcome.status is OutcomeStatus.FAILED
            and outcome.transient
            and work.attempts <= self._options.transient_rounds
        ):
            if work.attempts == 1:
                self.retried += 1
            _log_outcome(outcome, retrying=True)
            self._next_round.append(work)
            return
        self._record(outcome)
        certificate_id = work.certificate_id
        if certificate_id is None:
            return
        waiting = self._held.get(certificate_id)
        if waiting:
            self._held_count -= 1
            follower = waiting.popleft()
            if not waiting:
                del self._held[certificate_id]
            self._submit(follower)
        else:
            self._active.discard(certificate_id)

    def _record(self, outcome: ImportOutcome) -> None:
        self.total += 1
        status = outcome.status
        if status is OutcomeStatus.IMPORTED:
            self.imported += 1
        elif status is OutcomeStatus.ALREADY_PRESENT:
            self.already_present += 1
        elif status is OutcomeStatus.SKIPPED:
            self.skipped += 1
        else:
            self.failed += 1
            self.failures.append(outcome)
        _log_outcome(outcome, retrying=False)
        if self._progress is not None:
            self._progress(outcome)
