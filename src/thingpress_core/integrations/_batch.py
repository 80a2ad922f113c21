"""The SQS batch loop: `BatchLoop` runs a per-record function over an event, within Lambda's time.

The loop owns what only a batch has: the time budget (a record starts only while Lambda has
time left for it), giving up after consecutive transient failures, never letting one record
crash the others, and the partial batch response. What one record means is the per-record
function's business (`process_record`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, cast

from thingpress_core.errors import ConfigurationError
from thingpress_core.integrations._records import BatchResult, RecordResult, RedeliverReason, record_id
from thingpress_core.integrations._settings import DEFAULT_SAFETY_MARGIN

if TYPE_CHECKING:
    from thingpress_core.resilience import CircuitBreakerRegistry

logger = logging.getLogger("thingpress_core.integrations.aws_lambda")


class LambdaContext(Protocol):
    """The part of the Lambda context object the consumer uses."""

    def get_remaining_time_in_millis(self) -> int: ...


#: A per-record function: (the record as it arrived, its message id) -> its result.
RecordHandler = Callable[[object, str], RecordResult]


class RecordDurations:
    """How long the last ``size`` records took in this process; the slowest sets the bar.

    Kept between events (a warm Lambda remembers), thread-safe.
    """

    def __init__(self, size: int = 50) -> None:
        self._lock = threading.Lock()
        self._seconds: deque[float] = deque(maxlen=size)

    def __repr__(self) -> str:
        return f"RecordDurations(recorded={len(self._seconds)}, slowest={self.slowest():.3f})"

    def add(self, seconds: float) -> None:
        with self._lock:
            self._seconds.append(seconds)

    def slowest(self) -> float:
        """The longest recorded duration, 0.0 before the first record."""
        with self._lock:
            return max(self._seconds, default=0.0)

    def clear(self) -> None:
        with self._lock:
            self._seconds.clear()


@dataclass(frozen=True, kw_only=True)
class BatchLoop:
    """Runs a per-record function over the records of one SQS event.

    Args:
        safety_margin: seconds of Lambda time kept in hand. A record is started only while
            ``remaining > safety_margin + slowest``, where ``slowest`` is the longest of
            the recent records in ``durations``; the rest are returned untried
            (``out_of_time``), so the function answers before its timeout.
        give_up_after: after this many consecutive ``transient`` item failures, the records
            not yet started are returned untried (``gave_up``): the service is throttling or
            unwell, and hammering it helps nobody. None: never.
        durations: what earlier records took (shared between events of one process).
        clock: monotonic seconds, for tests.

    Invalid values raise `ConfigurationError`.
    """

    safety_margin: float = DEFAULT_SAFETY_MARGIN
    give_up_after: int | None = 3
    durations: RecordDurations = field(default_factory=RecordDurations, compare=False)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.safety_margin < 0:
            raise ConfigurationError(
                f"safety_margin must be >= 0, got {self.safety_margin}", variable="safety_margin"
            )
        if self.give_up_after is not None and self.give_up_after < 1:
            raise ConfigurationError(
                f"give_up_after must be >= 1, got {self.give_up_after}", variable="give_up_after"
            )

    def run(
        self, event: Mapping[str, object], handler: RecordHandler, context: LambdaContext | None = None
    ) -> BatchResult:
        """Call ``handler`` on each record while time allows; never raises.

        An event without a ``Records`` list is logged and gives an empty result. An
        exception from ``handler`` makes its record an ``unexpected`` item failure.
        """
        raw = cast(object, event)  # Lambda hands over whatever JSON arrived
        records = cast(Mapping[str, object], raw).get("Records") if isinstance(raw, Mapping) else None
        if not isinstance(records, list):
            logger.error(
                "event is not an SQS event (no Records list); nothing processed",
                extra={"operation": "sqs.event"},
            )
            return BatchResult()
        results: list[RecordResult] = []
        consecutive_transient = 0
        stop: tuple[RedeliverReason, str] | None = None
        for position, record in enumerate(cast(list[object], records)):
            message_id = record_id(record, position)
            if stop is None:
                stop = self._time_short(context)
            if (
                stop is None
                and self.give_up_after is not None
                and consecutive_transient >= self.give_up_after
            ):
                stop = ("gave_up", f"{consecutive_transient} transient failures in a row")
            if stop is not None:
                results.append(RecordResult(message_id=message_id, redeliver=stop[0], reason=stop[1]))
                continue
            started = self.clock()
            try:
                result = handler(record, message_id)
            except Exception as exc:  # never let one record crash the batch
                logger.exception(
                    "record %s: unexpected %s; it will be delivered again",
                    message_id,
                    type(exc).__name__,
                    extra={"operation": "sqs.record", "message_id": message_id},
                )
                result = RecordResult(
                    message_id=message_id,
                    redeliver="unexpected",
                    reason=f"unexpected {type(exc).__name__}: {exc}",
                )
            elapsed = max(0.0, self.clock() - started)
            self.durations.add(elapsed)
            results.append(result.model_copy(update={"seconds": elapsed}))
            consecutive_transient = consecutive_transient + 1 if result.redeliver == "transient" else 0
        return BatchResult(records=tuple(results), stopped=stop[1] if stop is not None else None)

    def _time_short(self, context: LambdaContext | None) -> tuple[RedeliverReason, str] | None:
        remaining_ms = getattr(context, "get_remaining_time_in_millis", None) if context is not None else None
        if remaining_ms is None:
            return None
        try:
            remaining = float(remaining_ms()) / 1000.0
        except Exception:  # a broken context must not stop the import
            logger.warning("the Lambda context's get_remaining_time_in_millis failed; ignoring it")
            return None
        needed = self.safety_margin + self.durations.slowest()
        if remaining < needed:
            return "out_of_time", f"{remaining:.1f} s of Lambda time left, {needed:.1f} s needed"
        return None


def log_summary(batch: BatchResult, registry: CircuitBreakerRegistry | None = None) -> None:
    """Log `BatchResult.summary` at INFO with its counters as ``extra``, and unwell breakers."""
    redelivered = batch.redelivered()
    extra: dict[str, Any] = {
        "operation": "sqs.batch",
        "records": len(batch.records),
        "item_failures": len(batch.item_failures),
        "redeliver": {reason: n for reason, n in redelivered.items() if n},
        **{
            status: batch.certificates(status)
            for status in ("imported", "already_present", "failed", "skipped")
        },
    }
    text = batch.summary()
    if registry is not None:
        unwell = {
            name: str(snap.state.value)
            for name, snap in registry.snapshot().items()
            if snap.state.value != "closed"
        }
        if unwell:
            extra["breakers"] = unwell
            text += "; breakers not closed: " + ", ".join(f"{n}={s}" for n, s in sorted(unwell.items()))
    logger.info(text, extra=extra)
