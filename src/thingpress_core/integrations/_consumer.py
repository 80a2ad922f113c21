"""The consumer: `SQSConsumer` and `handle_sqs_event` import SQS records, one at a time.

A record is an item failure (SQS delivers it again) when its failure is transient, when it
does not parse, when the resources it names are missing, when a permission is missing, or
when the Lambda runs short of time before reaching it. A permanent failure is logged and
not redelivered.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast

from pydantic import BaseModel, ConfigDict

from thingpress_core.errors import CertificateError, ConfigurationError, PreflightError, ThingpressError
from thingpress_core.integrations._messages import MessageParseError, parse_message
from thingpress_core.integrations._settings import DEFAULT_SAFETY_MARGIN, LambdaSettings, build_importer

if TYPE_CHECKING:
    from thingpress_core.importer import CertificateImporter, ImportOptions, ImportOutcome
    from thingpress_core.resilience import CircuitBreakerRegistry

logger = logging.getLogger("thingpress_core.integrations.aws_lambda")


class LambdaContext(Protocol):
    """The part of the Lambda context object the consumer uses."""

    def get_remaining_time_in_millis(self) -> int: ...


#: What became of one SQS record. ``succeeded``: imported or already present (deleted by
#: Lambda). ``failed``: a permanent failure, logged, not redelivered. ``retry``: a transient
#: failure, missing resources or a missing permission (item failure). ``malformed``: the body does not parse
#: (item failure, so the dead-letter queue collects it). ``deferred``: not started, time ran
#: short or the service kept failing (item failure).
RecordDisposition = Literal["succeeded", "failed", "retry", "malformed", "deferred"]

_ITEM_FAILURES: frozenset[str] = frozenset({"retry", "malformed", "deferred"})


class RecordResult(BaseModel):
    """The consumer's verdict on one SQS record."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    message_id: str
    disposition: RecordDisposition
    certificate_ids: tuple[str, ...] = ()
    imported: int = 0
    already_present: int = 0
    failed: int = 0
    reason: str | None = None
    seconds: float = 0.0

    @property
    def item_failure(self) -> bool:
        """True when SQS should deliver the record again."""
        return self.disposition in _ITEM_FAILURES


class BatchResult(BaseModel):
    """Every record of one SQS event, and the partial batch response to return."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    records: tuple[RecordResult, ...] = ()

    @property
    def item_failures(self) -> list[str]:
        """Message ids to report in ``batchItemFailures``."""
        return [r.message_id for r in self.records if r.item_failure]

    def count(self, disposition: RecordDisposition) -> int:
        return sum(1 for r in self.records if r.disposition == disposition)

    def response(self) -> dict[str, list[dict[str, str]]]:
        """``{"batchItemFailures": [{"itemIdentifier": message_id}, ...]}``."""
        return {"batchItemFailures": [{"itemIdentifier": m} for m in self.item_failures]}


class _Memory:
    """What a consumer keeps between events: recent record durations and preflight verdicts.

    It holds no reference to the importer, so `handle_sqs_event` can keep one per importer
    in a `weakref.WeakKeyDictionary` without keeping the importer alive.
    """

    def __init__(self, retry_after: float, clock: Callable[[], float]) -> None:
        self.durations: deque[float] = deque(maxlen=50)
        self.retry_after = retry_after
        self.clock = clock
        self.passed: set[tuple[object, ...]] = set()
        self.failed: dict[tuple[object, ...], tuple[float, PreflightError]] = {}
        self.lock = threading.Lock()


def _options_key(options: ImportOptions) -> tuple[object, ...]:
    return (options.policies, options.thing_groups, options.thing_type)


class SQSConsumer:
    """Imports the records of SQS events with one importer, one record at a time.

    Args:
        importer: the `CertificateImporter` (and so the one `IoTService`, rate limiter and
            breakers) every record goes through.
        options: the base options; each request's policies, groups, thing type and status
            replace those fields. Default: the importer's own options.
        safety_margin: seconds of Lambda time kept in hand. A record is started only while
            ``remaining > safety_margin + slowest`` where ``slowest`` is the longest record
            of the last 50 this process handled; the rest become item failures.
        give_up_after: after this many consecutive transient failures in one event, the
            records not yet started are returned as item failures untried (the service is
            throttling or unwell; hammering it further helps nobody). None: never.
        preflight: check each distinct set of policies, groups and thing type once per
            process before its first certificate. A set that fails is checked again after
            ``preflight_retry_after`` seconds; meanwhile its records are item failures.
        registry: the breakers to summarise in the per-event log line. Default: the
            importer's `IoTService` registry, when it has one.
        clock: monotonic seconds, for tests.
    """

    def __init__(
        self,
        importer: CertificateImporter,
        *,
        options: ImportOptions | None = None,
        safety_margin: float = DEFAULT_SAFETY_MARGIN,
        give_up_after: int | None = 3,
        preflight: bool = True,
        preflight_retry_after: float = 60.0,
        registry: CircuitBreakerRegistry | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if safety_margin < 0:
            raise ConfigurationError(
                f"safety_margin must be >= 0, got {safety_margin}", variable="safety_margin"
            )
        if give_up_after is not None and give_up_after < 1:
            raise ConfigurationError(
                f"give_up_after must be >= 1, got {give_up_after}", variable="give_up_after"
            )
        self.importer = importer
        self.options = options if options is not None else importer.options
        self.safety_margin = safety_margin
        self.give_up_after = give_up_after
        self.preflight = preflight
        if registry is None:
            registry = getattr(importer.iot, "registry", None)
        from thingpress_core.resilience import CircuitBreakerRegistry

        self.registry = registry if isinstance(registry, CircuitBreakerRegistry) else None
        self._clock = clock
        self._memory = _Memory(preflight_retry_after, clock)

    # -- public

    def handle(
        self, event: Mapping[str, Any], context: LambdaContext | None = None
    ) -> dict[str, list[dict[str, str]]]:
        """Process an SQS event; return the partial batch response for Lambda."""
        return self.process(event, context).response()

    def process(self, event: Mapping[str, Any], context: LambdaContext | None = None) -> BatchResult:
        """Process an SQS event and return every record's verdict. Never raises."""
        raw = cast(object, event)  # Lambda hands over whatever JSON arrived
        records = raw.get("Records") if isinstance(raw, Mapping) else None
        if not isinstance(records, list):
            logger.error(
                "event is not an SQS event (no Records list); nothing processed",
                extra={"operation": "sqs.event"},
            )
            return BatchResult()
        results: list[RecordResult] = []
        consecutive_transient = 0
        stop_reason: str | None = None
        for position, record in enumerate(records):
            message_id = _record_id(record, position)
            if stop_reason is None:
                stop_reason = self._time_short(context)
            if (
                stop_reason is None
                and self.give_up_after is not None
                and consecutive_transient >= self.give_up_after
            ):
                stop_reason = f"{consecutive_transient} transient failures in a row"
            if stop_reason is not None:
                results.append(
                    RecordResult(message_id=message_id, disposition="deferred", reason=stop_reason)
                )
                continue
            started = self._clock()
            try:
                result = self._process_record(record, message_id)
            except Exception as exc:  # never let one record crash the batch
                logger.exception(
                    "record %s: unexpected %s; it will be delivered again",
                    message_id,
                    type(exc).__name__,
                    extra={"operation": "sqs.record", "message_id": message_id},
                )
                result = RecordResult(
                    message_id=message_id,
                    disposition="retry",
                    reason=f"unexpected {type(exc).__name__}: {exc}",
                )
            elapsed = max(0.0, self._clock() - started)
            with self._memory.lock:
                self._memory.durations.append(elapsed)
            result = result.model_copy(update={"seconds": elapsed})
            consecutive_transient = consecutive_transient + 1 if result.disposition == "retry" else 0
            results.append(result)
        batch = BatchResult(records=tuple(results))
        self._log_summary(batch, stop_reason)
        return batch

    # -- internals

    def _time_short(self, context: LambdaContext | None) -> str | None:
        if context is None:
            return None
        remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
        if remaining_ms is None:
            return None
        try:
            remaining = float(remaining_ms()) / 1000.0
        except Exception:  # a broken context must not stop the import
            logger.warning("the Lambda context's get_remaining_time_in_millis failed; ignoring it")
            return None
        with self._memory.lock:  # another thread's event may be appending
            slowest = max(self._memory.durations, default=0.0)
        needed = self.safety_margin + slowest
        if remaining < needed:
            return f"{remaining:.1f} s of Lambda time left, {needed:.1f} s needed"
        return None

    def _process_record(self, record: Mapping[str, Any], message_id: str) -> RecordResult:
        raw = cast(object, record)
        body = raw.get("body") if isinstance(raw, Mapping) else None
        try:
            if body is None:
                raise MessageParseError(f"SQS message {message_id} has no body", message_id=message_id)
            requests = parse_message(body, message_id=message_id)
        except MessageParseError as exc:
            logger.error(
                "record %s does not parse (%s): %s; reported as an item failure so the "
                "dead-letter queue collects it after maxReceiveCount",
                message_id,
                exc.reason,
                exc,
                extra={"operation": "sqs.parse", "message_id": message_id, "reason": exc.reason},
            )
            return RecordResult(message_id=message_id, disposition="malformed", reason=str(exc))

        ids: list[str] = []
        imported = already = failed = 0
        permanent_reason: str | None = None
        for request in requests:
            options = request.options_for(self.options)
            problem = self._check_preflight(options, message_id)
            if problem is not None:
                return RecordResult(
                    message_id=message_id,
                    disposition="retry",
                    certificate_ids=tuple(ids),
                    imported=imported,
                    already_present=already,
                    failed=failed,
                    reason=problem,
                )
            try:
                entry = request.to_entry()
            except CertificateError as exc:
                failed += 1
                permanent_reason = permanent_reason or str(exc)
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
            outcome = self.importer.import_certificate(entry, options=options)
            ids.append(entry.certificate.certificate_id)
            verdict = _classify(outcome)
            if verdict == "retry":
                logger.warning(
                    "record %s: certificate %s failed at %s (%s, not the certificate's fault); "
                    "it will be delivered again",
                    message_id,
                    outcome.certificate_id,
                    outcome.failed_step,
                    outcome.error_type,
                    extra=_outcome_extra(outcome, message_id),
                )
                return RecordResult(
                    message_id=message_id,
                    disposition="retry",
                    certificate_ids=tuple(ids),
                    imported=imported,
                    already_present=already,
                    failed=failed,
                    reason=outcome.error,
                )
            if verdict == "failed":
                failed += 1
                permanent_reason = permanent_reason or outcome.error
                logger.error(
                    "record %s: certificate %s (thing %s) failed permanently at %s: %s; not redelivered",
                    message_id,
                    outcome.certificate_id,
                    outcome.thing_name,
                    outcome.failed_step,
                    outcome.error,
                    extra=_outcome_extra(outcome, message_id),
                )
            elif verdict == "imported":
                imported += 1
            else:
                already += 1
        return RecordResult(
            message_id=message_id,
            disposition="failed" if failed else "succeeded",
            certificate_ids=tuple(ids),
            imported=imported,
            already_present=already,
            failed=failed,
            reason=permanent_reason,
        )

    def _check_preflight(self, options: ImportOptions, message_id: str) -> str | None:
        """None when the option set's resources exist (checked once per process)."""
        if not self.preflight or options.dry_run:
            return None
        if not (options.policies or options.thing_groups or options.thing_type):
            return None
        key = _options_key(options)
        cache = self._memory
        with cache.lock:
            if key in cache.passed:
                return None
            recent = cache.failed.get(key)
            if recent is not None and cache.clock() - recent[0] < cache.retry_after:
                return f"preflight failed: {recent[1]}"
        try:
            self._run_preflight(options)
        except PreflightError as exc:
            with cache.lock:
                cache.failed[key] = (cache.clock(), exc)
            logger.error(
                "record %s: %s; records naming them are item failures until the resources exist",
                message_id,
                exc,
                extra={"operation": "preflight", "message_id": message_id, "missing": list(exc.missing)},
            )
            return f"preflight failed: {exc}"
        except ThingpressError as exc:  # throttled, unwell, access denied: try again later
            logger.warning(
                "record %s: preflight could not run (%s); delivered again later",
                message_id,
                exc,
                extra={"operation": "preflight", "message_id": message_id},
            )
            return f"preflight could not run: {exc}"
        with cache.lock:
            cache.passed.add(key)
            cache.failed.pop(key, None)
        return None

    def _run_preflight(self, options: ImportOptions) -> None:
        from thingpress_core.importer import CertificateImporter

        CertificateImporter(self.importer.iot, options=options).preflight()

    def _log_summary(self, batch: BatchResult, stop_reason: str | None) -> None:
        counts = {d: batch.count(d) for d in ("succeeded", "failed", "retry", "malformed", "deferred")}
        extra: dict[str, Any] = {"operation": "sqs.batch", "records": len(batch.records), **counts}
        extra["imported"] = sum(r.imported for r in batch.records)
        extra["already_present"] = sum(r.already_present for r in batch.records)
        text = (
            f"SQS batch of {len(batch.records)}: {counts['succeeded']} succeeded "
            f"({extra['imported']} imported, {extra['already_present']} already present), "
            f"{counts['failed']} failed permanently, {counts['retry']} to retry, "
            f"{counts['malformed']} malformed, {counts['deferred']} deferred"
        )
        if stop_reason:
            text += f" ({stop_reason})"
        if self.registry is not None:
            unwell = {
                name: str(snap.state.value)
                for name, snap in self.registry.snapshot().items()
                if snap.state.value != "closed"
            }
            if unwell:
                extra["breakers"] = unwell
                text += "; breakers not closed: " + ", ".join(f"{n}={s}" for n, s in sorted(unwell.items()))
        logger.info(text, extra=extra)


def _record_id(record: object, position: int) -> str:
    if isinstance(record, Mapping):
        value = record.get("messageId")
        if isinstance(value, str) and value:
            return value
    return f"record-{position}"


#: Failures that say the deployment, not the certificate, is wrong (missing IAM permission, a
#: policy or group deleted after preflight): the record goes back to SQS so nothing is lost,
#: and the dead-letter queue collects it if nobody fixes the cause.
_REDELIVER_ERRORS = frozenset({"AccessDeniedError", "ResourceNotFoundError"})


def _classify(outcome: ImportOutcome) -> Literal["imported", "already_present", "retry", "failed"]:
    from thingpress_core.importer import OutcomeStatus

    if outcome.status is OutcomeStatus.FAILED:
        return "retry" if outcome.transient or outcome.error_type in _REDELIVER_ERRORS else "failed"
    if outcome.status is OutcomeStatus.IMPORTED:
        return "imported"
    return "already_present"  # already present, or skipped in a dry run


def _outcome_extra(outcome: ImportOutcome, message_id: str) -> dict[str, Any]:
    return {
        "operation": "import",
        "message_id": message_id,
        "certificate_id": outcome.certificate_id,
        "thing_name": outcome.thing_name,
        "failed_step": outcome.failed_step,
        "error_type": outcome.error_type,
    }


_lock = threading.Lock()
_default_consumer: SQSConsumer | None = None
_memories: weakref.WeakKeyDictionary[CertificateImporter, _Memory] = weakref.WeakKeyDictionary()


def _consumer() -> SQSConsumer:
    """The consumer `handle_sqs_event` uses without an importer: built once per process."""
    global _default_consumer
    with _lock:
        if _default_consumer is None:
            env = LambdaSettings()
            importer = build_importer(options=env.import_options())
            _default_consumer = SQSConsumer(
                importer, safety_margin=env.safety_margin, give_up_after=env.give_up_after
            )
        return _default_consumer


def _consumer_for(importer: CertificateImporter) -> SQSConsumer:
    """A consumer over ``importer`` that remembers what earlier events with it learned."""
    consumer = SQSConsumer(importer)
    with _lock:
        try:
            memory = _memories.get(importer)
        except TypeError:  # not weak-referenceable: nothing remembered, preflight runs per call
            return consumer
        if memory is None:
            _memories[importer] = consumer._memory  # pyright: ignore[reportPrivateUsage]
        else:
            consumer._memory = memory  # pyright: ignore[reportPrivateUsage]
    return consumer


def handle_sqs_event(
    event: Mapping[str, Any],
    context: LambdaContext | None = None,
    *,
    importer: CertificateImporter | None = None,
) -> dict[str, list[dict[str, str]]]:
    """The Lambda handler for the import queue: import each record, report partial failures.

    Use ``thingpress_core.integrations.aws_lambda.handle_sqs_event`` as the handler of a
    function whose SQS event source mapping has ``ReportBatchItemFailures``. Without
    ``importer`` it builds one per process from ``THINGPRESS_*`` settings (`build_importer`)
    and reuses it across invocations; preflight results are cached per importer. See
    `SQSConsumer` for what becomes an item failure. Never raises.
    """
    try:
        consumer = _consumer() if importer is None else _consumer_for(importer)
    except ThingpressError as exc:
        # Misconfigured: every record stays in the queue (and reaches the DLQ) rather than vanish.
        logger.error("cannot build the importer: %s; every record is an item failure", exc)
        raw = cast(object, event)
        records = raw.get("Records") if isinstance(raw, Mapping) else None
        ids = [_record_id(r, i) for i, r in enumerate(records)] if isinstance(records, list) else []
        return {"batchItemFailures": [{"itemIdentifier": m} for m in ids]}
    return consumer.handle(event, context)
