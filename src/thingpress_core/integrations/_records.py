"""One SQS record: what became of it (`RecordResult`) and the function that decides (`process_record`).

`process_record` knows nothing of the batch, the Lambda time budget or the other records: it
parses one body, checks the option set once (`PreflightCache`), imports each certificate
and says, in the importer's words, how many were imported, already present, failed or
skipped, and whether SQS must deliver the record again and why (`RedeliverReason`). The
batch loop (`BatchLoop`, in ``_batch``) decides when to stop and builds the partial batch
response from these results.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal, cast, get_args

from pydantic import BaseModel, ConfigDict, Field

from thingpress_core.errors import CertificateError, MessageParseError, PreflightError, ThingpressError
from thingpress_core.integrations._messages import parse_message

if TYPE_CHECKING:
    from thingpress_core.importer import (
        CertificateImporter,
        ImportOptions,
        ImportOutcome,
        IoTOperations,
        OutcomeStatus,
    )

logger = logging.getLogger("thingpress_core.integrations.aws_lambda")

#: Why a record is an item failure (SQS delivers it again):
#: ``transient``: throttled after retries, 5xx, circuit open, or preflight could not run;
#: ``deployment``: what the deployment must fix: resources missing (preflight), an IAM
#: permission missing (`AccessDeniedError`) or a resource gone (`ResourceNotFoundError`);
#: ``malformed``: the body does not parse (the dead-letter queue collects it);
#: ``out_of_time``: not started, the Lambda ran short of time;
#: ``gave_up``: not started after too many transient failures in a row;
#: ``unexpected``: an exception no one expected (a bug), so nothing is lost;
#: ``busy``: another worker holds the device's ledger lease (a message delivered twice).
RedeliverReason = Literal[
    "transient", "deployment", "malformed", "out_of_time", "gave_up", "unexpected", "busy"
]

#: The consumer's former one-word verdict, kept as `RecordResult.disposition` for existing
#: callers: ``succeeded``, ``failed`` (a permanent failure, not redelivered), ``retry``
#: (transient, deployment or unexpected), ``malformed`` and ``deferred`` (not started).
RecordDisposition = Literal["succeeded", "failed", "retry", "malformed", "deferred"]

_NOT_STARTED: Final = frozenset({"out_of_time", "gave_up"})
_STATUSES: Final = ("imported", "already_present", "failed", "skipped")  # OutcomeStatus values


class RecordResult(BaseModel):
    """What became of one SQS record.

    The counts speak the importer's vocabulary (`OutcomeStatus`): certificates ``imported``,
    ``already_present``, ``failed`` (permanently: not redelivered) and ``skipped`` (dry run).
    ``redeliver`` is None when Lambda may delete the record, else why SQS must deliver it
    again (`RedeliverReason`). ``reason`` is one English line for logs, e.g. the first
    permanent failure or what stopped the record. ``seconds`` is the time the record took.
    """

    model_config: ClassVar[ConfigDict] = ConfigDict(frozen=True, extra="forbid")

    message_id: str
    imported: int = Field(default=0, ge=0)
    already_present: int = Field(default=0, ge=0)
    failed: int = Field(default=0, ge=0)
    skipped: int = Field(default=0, ge=0)
    redeliver: RedeliverReason | None = None
    reason: str | None = None
    certificate_ids: tuple[str, ...] = ()
    seconds: float = Field(default=0.0, ge=0.0)

    @property
    def item_failure(self) -> bool:
        """True when SQS should deliver the record again."""
        return self.redeliver is not None

    @property
    def started(self) -> bool:
        """False when the batch loop returned the record untried."""
        return self.redeliver not in _NOT_STARTED

    def count(self, status: OutcomeStatus | str) -> int:
        """Certificates of this record with ``status`` (an `OutcomeStatus` or its value)."""
        name = str(status)
        if name not in _STATUSES:
            raise ValueError(f"unknown outcome status {name[:40]!r}; one of {', '.join(_STATUSES)}")
        return cast(int, getattr(self, name))

    @property
    def disposition(self) -> RecordDisposition:
        """The former one-word verdict (`RecordDisposition`), derived from the fields."""
        if self.redeliver == "malformed":
            return "malformed"
        if self.redeliver in _NOT_STARTED:
            return "deferred"
        if self.redeliver is not None:
            return "retry"
        return "failed" if self.failed else "succeeded"


class BatchResult(BaseModel):
    """Every record of one SQS event, and the partial batch response to return.

    ``stopped`` says why the loop returned the remaining records untried, if it did.
    """

    model_config: ClassVar[ConfigDict] = ConfigDict(frozen=True, extra="forbid")

    records: tuple[RecordResult, ...] = ()
    stopped: str | None = None

    @property
    def item_failures(self) -> list[str]:
        """Message ids to report in ``batchItemFailures``."""
        return [r.message_id for r in self.records if r.item_failure]

    def certificates(self, status: OutcomeStatus | str) -> int:
        """Certificates with ``status`` over every record."""
        return sum(r.count(status) for r in self.records)

    def redelivered(self) -> dict[RedeliverReason, int]:
        """Item failures per `RedeliverReason` (every reason present, zero or not)."""
        counts: dict[RedeliverReason, int] = dict.fromkeys(get_args(RedeliverReason), 0)
        for record in self.records:
            if record.redeliver is not None:
                counts[record.redeliver] += 1
        return counts

    def count(self, disposition: RecordDisposition) -> int:
        """Records with this `RecordDisposition` (the former vocabulary)."""
        return sum(1 for r in self.records if r.disposition == disposition)

    def response(self) -> dict[str, list[dict[str, str]]]:
        """``{"batchItemFailures": [{"itemIdentifier": message_id}, ...]}``."""
        return {"batchItemFailures": [{"itemIdentifier": m} for m in self.item_failures]}

    def summary(self) -> str:
        """One English line for the per-batch log."""
        again = {k: v for k, v in self.redelivered().items() if v}
        detail = f" ({', '.join(f'{n} {k}' for k, n in again.items())})" if again else ""
        text = (
            f"SQS batch of {len(self.records)} records: {self.certificates('imported')} imported, "
            f"{self.certificates('already_present')} already present, {self.certificates('failed')} "
            f"failed, {self.certificates('skipped')} skipped; {len(self.item_failures)} item "
            f"failures{detail}"
        )
        return text + (f" ({self.stopped})" if self.stopped else "")


def record_id(record: object, position: int | None = None) -> str:
    """The record's ``messageId``, else ``record-<position>`` (or ``record``)."""
    if isinstance(record, Mapping):
        value = cast(Mapping[str, object], record).get("messageId")
        if isinstance(value, str) and value:
            return value
    return "record" if position is None else f"record-{position}"


class PreflightCache:
    """Which option sets (policies, thing groups, thing type) this process has checked.

    The first record naming a set checks that its resources exist (read-only calls, see
    `CertificateImporter.preflight`). A set that passed is not checked again; one that
    failed is checked again after ``retry_after`` seconds, and meanwhile its records are
    item failures without a call. Thread-safe; ``clock`` is monotonic seconds, for tests.
    """

    def __init__(self, *, retry_after: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.retry_after = retry_after
        self._clock = clock
        self._lock = threading.Lock()
        self._passed: set[tuple[object, ...]] = set()
        self._failed: dict[tuple[object, ...], tuple[float, RedeliverReason, str]] = {}

    def __repr__(self) -> str:
        return f"PreflightCache(passed={len(self._passed)}, failed={len(self._failed)})"

    def clear(self) -> None:
        """Forget every verdict."""
        with self._lock:
            self._passed.clear()
            self._failed.clear()

    def check(
        self, iot: IoTOperations, options: ImportOptions, *, message_id: str | None = None
    ) -> tuple[RedeliverReason, str] | None:
        """None when the option set may be imported; else why not, as (reason, English line)."""
        if options.dry_run or not (options.policies or options.thing_groups or options.thing_type):
            return None
        key = (options.policies, options.thing_groups, options.thing_type)
        with self._lock:
            if key in self._passed:
                return None
            recent = self._failed.get(key)
            if recent is not None and self._clock() - recent[0] < self.retry_after:
                return recent[1], recent[2]
        extra = {"operation": "preflight", "message_id": message_id}
        try:
            from thingpress_core.importer import CertificateImporter

            CertificateImporter(iot, options=options).preflight()
        except PreflightError as exc:
            verdict: tuple[RedeliverReason, str] = ("deployment", f"preflight failed: {exc}")
            logger.error(
                "record %s: %s; records naming them are item failures until the resources exist",
                message_id,
                exc,
                extra={**extra, "missing": list(exc.missing)},
            )
        except ThingpressError as exc:  # throttled, unwell, access denied: try again later
            from thingpress_core.resilience import is_transient

            verdict = ("transient" if is_transient(exc) else "deployment", f"preflight could not run: {exc}")
            logger.warning(
                "record %s: preflight could not run (%s); delivered again later", message_id, exc, extra=extra
            )
            if verdict[0] == "transient":
                return verdict  # not remembered: the next record may find the service well again
        else:
            with self._lock:
                self._passed.add(key)
                self._failed.pop(key, None)
            return None
        with self._lock:
            self._failed[key] = (self._clock(), verdict[0], verdict[1])
        return verdict


def process_record(
    importer: CertificateImporter,
    record: object,
    *,
    options: ImportOptions | None = None,
    preflight: PreflightCache | None = None,
    message_id: str | None = None,
    lease_owner: str | None = None,
    lease_seconds: float = 300.0,
) -> RecordResult:
    """Import the certificates of one SQS record and say what became of it.

    ``record`` is one item of an SQS event's ``Records`` (whatever arrived: a record that is
    not an object or has no body is reported ``malformed``, not crashed on). Each request's
    policies, groups, thing type and status replace those of ``options`` (default: the
    importer's). With ``preflight`` each option set is checked once (`PreflightCache`).

    A transient failure, or one the deployment must fix, stops the record (the rest of a
    batch message waits for the redelivery); a permanent failure of one certificate (a
    corrupt, expired or rejected certificate, a thing name taken by another certificate) is
    counted, logged with the certificate id and reason, and the record goes on. Raises only
    on a bug; `BatchLoop` turns that into an ``unexpected`` item failure.

    With a ledger on the importer, each device is recorded under the request's ``run_id``,
    and a device the ledger shows done costs no IoT call. With ``lease_owner`` (unique per
    worker), the device is leased in the ledger for ``lease_seconds`` while it is imported;
    a device another worker holds makes the record ``busy`` (delivered again later), so a
    message SQS delivers twice at once is imported once.
    """
    message_id = message_id if message_id is not None else record_id(record)
    base = options if options is not None else importer.options
    body = cast(Mapping[str, object], record).get("body") if isinstance(record, Mapping) else None
    try:
        if body is None:
            raise MessageParseError(f"SQS message {message_id} has no body", message_id=message_id)
        requests = parse_message(cast("str | bytes", body), message_id=message_id)  # it checks the type
    except MessageParseError as exc:
        logger.error(
            "record %s does not parse (%s): %s; reported as an item failure so the "
            "dead-letter queue collects it after maxReceiveCount",
            message_id,
            exc.reason,
            exc,
            extra={"operation": "sqs.parse", "message_id": message_id, "reason": exc.reason},
        )
        return RecordResult(message_id=message_id, redeliver="malformed", reason=str(exc))

    ids: list[str] = []
    counts: dict[str, int] = dict.fromkeys(_STATUSES, 0)
    first_failure: str | None = None

    def result(redeliver: RedeliverReason | None = None, reason: str | None = None) -> RecordResult:
        return RecordResult(
            message_id=message_id,
            certificate_ids=tuple(ids),
            redeliver=redeliver,
            reason=reason if redeliver is not None else first_failure,
            **counts,
        )

    for request in requests:
        request_options = request.options_for(base)
        if preflight is not None:
            refusal = preflight.check(importer.iot, request_options, message_id=message_id)
            if refusal is not None:
                return result(*refusal)
        try:
            entry = request.to_entry()
        except CertificateError as exc:
            counts["failed"] += 1
            first_failure = first_failure or str(exc)
            logger.error(
                "record %s: the certificate cannot be read, dropped: %s",
                message_id,
                exc,
                extra={
                    "operation": "sqs.certificate",
                    "message_id": message_id,
                    "thing_name": request.thing_name,
                    "reason": exc.reason,
                },
            )
            continue
        cert_id = entry.certificate.certificate_id
        lease = _Lease(importer, cert_id, lease_owner, lease_seconds) if lease_owner else None
        try:
            if lease is not None and not lease.take():
                return result("busy", f"certificate {cert_id} is being imported by another worker")
        except ThingpressError as exc:  # the ledger could not answer
            from thingpress_core.resilience import is_transient

            logger.warning(
                "record %s: the ledger lease on certificate %s could not be taken (%s); delivered again",
                message_id,
                cert_id,
                exc,
                extra={"operation": "ledger.claim", "message_id": message_id, "certificate_id": cert_id},
            )
            return result("transient" if is_transient(exc) else "deployment", f"ledger: {exc}")
        try:
            outcome = importer.import_certificate(entry, options=request_options, run_id=request.run_id)
        finally:
            if lease is not None:
                lease.give_back()
        ids.append(cert_id)
        redeliver = _redeliver_for(outcome)
        if redeliver is not None:
            logger.warning(
                "record %s: certificate %s failed at %s (%s, not the certificate's fault); "
                "it will be delivered again",
                message_id,
                outcome.certificate_id,
                outcome.failed_step,
                outcome.error_type,
                extra=_outcome_extra(outcome, message_id),
            )
            return result(redeliver, outcome.error)
        counts[str(outcome.status)] += 1
        if not outcome.ok:
            first_failure = first_failure or outcome.error
            logger.error(
                "record %s: certificate %s (thing %s) failed permanently at %s: %s; not redelivered",
                message_id,
                outcome.certificate_id,
                outcome.thing_name,
                outcome.failed_step,
                outcome.error,
                extra=_outcome_extra(outcome, message_id),
            )
    return result()


class _Lease:
    """A device's lease in the importer's ledger, taken before its import and given back after."""

    def __init__(self, importer: CertificateImporter, cert_id: str, owner: str, seconds: float) -> None:
        self.importer, self.cert_id, self.owner, self.seconds = importer, cert_id, owner, seconds
        self.held = False

    def take(self) -> bool:
        ledger = self.importer.ledger
        if ledger is None:
            return True
        target = self.importer.target().key
        self.held = ledger.claim(target, self.cert_id, owner=self.owner, seconds=self.seconds)
        return self.held

    def give_back(self) -> None:
        ledger = self.importer.ledger
        if ledger is None or not self.held:
            return
        try:
            ledger.release(self.importer.target().key, self.cert_id, owner=self.owner)
        except ThingpressError as exc:  # it expires on its own
            logger.warning(
                "the ledger lease on certificate %s was not given back (%s); it expires by itself",
                self.cert_id,
                exc,
                extra={"operation": "ledger.release", "certificate_id": self.cert_id},
            )


def _redeliver_for(outcome: ImportOutcome) -> RedeliverReason | None:
    """Whether a failed outcome goes back to SQS, read from its flags (never its wording)."""
    if outcome.ok:  # imported, already present or skipped
        return None
    if outcome.transient:
        return "transient"
    if outcome.reason in _DEPLOYMENT_REASONS:
        return "deployment"
    return None


#: Outcome reasons that say the deployment, not the certificate, is wrong: an IAM permission
#: missing (`AccessDeniedError`), a policy or group deleted after preflight
#: (`ResourceNotFoundError`). The record goes back to SQS so nothing is lost, and the
#: dead-letter queue collects it if nobody fixes the cause.
_DEPLOYMENT_REASONS: Final = frozenset({"access_denied", "not_found"})


def _outcome_extra(outcome: ImportOutcome, message_id: str) -> dict[str, Any]:
    return {
        "operation": "import",
        "message_id": message_id,
        "certificate_id": outcome.certificate_id,
        "thing_name": outcome.thing_name,
        "failed_step": outcome.failed_step,
        "error_type": outcome.error_type,
    }
