"""CloudWatch metrics for the Lambda functions: one embedded-metric-format record per invocation.

CloudWatch Logs turns a log line that follows the embedded metric format (EMF) into metrics,
with no API call and no permission beyond writing logs. Each invocation of the consumer and
of the producer prints one such JSON line on stdout::

    {"_aws": {"Timestamp": 1767225600000, "CloudWatchMetrics": [{"Namespace": "Thingpress",
      "Dimensions": [["Pipeline", "Function"]], "Metrics": [{"Name": "Imported", "Unit": "Count"}, ...]}]},
     "Pipeline": "fleet-import", "Function": "consumer", "Imported": 8, ..., "RecordLatency": [412.0, 388.5]}

The names, units and dimensions are fixed here (`CONSUMER_METRICS`, `PRODUCER_METRICS`,
``Calls.<service.Operation>``) and documented in ``docs/deployment.md``; the template's
alarms and dashboard use them. The record is written by hand rather than with Powertools'
``Metrics``: it is a few dozen lines of JSON, it keeps the ``lambda`` extra empty and the
cold start free of another package.

Where the numbers come from: the batch or S3 report (certificates, records, latency), the
call counters of the one call path (`CallStats` of each facade: calls and botocore retries
per ``service.Operation``, as differences over the invocation) and `ThrottleTally`, a
botocore hook that counts every throttled attempt, retried ones included.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol, cast

if TYPE_CHECKING:
    from thingpress_core.integrations._records import BatchResult
    from thingpress_core.integrations._s3 import S3EventReport

__all__ = [
    "CALLS_PREFIX",
    "CONSUMER_METRICS",
    "DIMENSIONS",
    "PRODUCER_METRICS",
    "FunctionRole",
    "InvocationMeter",
    "ThrottleTally",
    "consumer_record",
    "emf_record",
    "print_record",
    "producer_record",
]

logger = logging.getLogger("thingpress_core.integrations.aws_lambda")

#: Which function a record describes: the value of the ``Function`` dimension.
FunctionRole = Literal["consumer", "producer"]

#: The dimension set of every metric: the pipeline (stack) and the function.
DIMENSIONS: Final = ("Pipeline", "Function")

#: The prefix of the per-operation call counts: ``Calls.iot.RegisterCertificateWithoutCA``.
CALLS_PREFIX: Final = "Calls."

#: The consumer's metrics and their units (``Calls.<operation>`` come on top, one per
#: operation called). ``RecordLatency`` has one value per record started.
CONSUMER_METRICS: Final[Mapping[str, str]] = {
    "Records": "Count",
    "Imported": "Count",
    "AlreadyPresent": "Count",
    "Failed": "Count",
    "Skipped": "Count",
    "Redelivered": "Count",
    "Throttled": "Count",
    "Retried": "Count",
    "Calls": "Count",
    "RecordLatency": "Milliseconds",
}

#: The producer's metrics and their units (``Calls.<operation>`` come on top).
PRODUCER_METRICS: Final[Mapping[str, str]] = {
    "Objects": "Count",
    "ObjectsFailed": "Count",
    "Enqueued": "Count",
    "EnqueueFailed": "Count",
    "Skipped": "Count",
    "Messages": "Count",
    "Throttled": "Count",
    "Retried": "Count",
    "Calls": "Count",
}

# EMF's limits: 100 metrics per directive, 100 values per metric.
_MAX_METRICS: Final = 100
_MAX_VALUES: Final = 100


class _Counts(Protocol):
    @property
    def calls(self) -> Mapping[str, int]: ...


class _HasStats(Protocol):
    def stats(self) -> _Counts: ...


class ThrottleTally:
    """Throttled AWS attempts per ``service.Operation``, counted on the clients it watches.

    botocore retries a throttled call by itself, so the call path sees a throttle only when
    every attempt was throttled. `watch` hooks a client's per-attempt ``needs-retry`` event
    (the hook returns None, so botocore's own retry decision stands) and counts each attempt
    AWS answered with a throttling error code. Thread-safe; watching a client twice counts
    once.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"ThrottleTally(total={sum(self.snapshot().values())})"

    def watch(self, client: Any, service: str) -> None:
        """Count the throttled attempts ``client`` (a boto3 client for ``service``) makes."""
        events = getattr(getattr(client, "meta", None), "events", None)
        if events is None:  # a stand-in client without botocore's event system
            return
        # the services package loads its facades: imported here, not with the handlers
        from thingpress_core.services._errors import is_throttling_code

        def on_attempt(response: object = None, operation: object = None, **_: object) -> None:
            if not isinstance(response, tuple) or len(response) < 2 or operation is None:
                return
            parsed = response[1]
            error = parsed.get("Error") if isinstance(parsed, Mapping) else None
            code = error.get("Code") if isinstance(error, Mapping) else None
            if isinstance(code, str) and is_throttling_code(code):
                self.add(f"{service}.{getattr(operation, 'name', '')}")

        events.register(f"needs-retry.{service}", on_attempt, unique_id=f"thingpress-core-metrics-{id(self)}")

    def add(self, name: str, count: int = 1) -> None:
        with self._lock:
            self._counts[name] = self._counts.get(name, 0) + count

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


class InvocationMeter:
    """What one invocation cost in AWS calls: counters read before it, differences after.

    ``sources`` are the facades whose call counters to read (anything with ``stats()``
    answering ``calls`` and, when known, ``retries`` per ``service.Operation``); a Lambda
    process runs one invocation at a time, so the differences are this invocation's.
    """

    def __init__(self, sources: Iterable[object], throttles: ThrottleTally | None = None) -> None:
        self._sources = [cast(_HasStats, s) for s in sources if callable(getattr(s, "stats", None))]
        self._throttles = throttles
        self._calls, self._retries = self._read()
        self._throttled = throttles.snapshot() if throttles is not None else {}

    def _read(self) -> tuple[dict[str, int], dict[str, int]]:
        calls: dict[str, int] = {}
        retries: dict[str, int] = {}
        for source in self._sources:
            stats = source.stats()
            _add(calls, getattr(stats, "calls", None))
            _add(retries, getattr(stats, "retries", None))
        return calls, retries

    def usage(self) -> tuple[dict[str, int], int, dict[str, int]]:
        """(calls per operation, botocore retries, throttled attempts per operation) so far."""
        calls, retries = self._read()
        throttled = self._throttles.snapshot() if self._throttles is not None else {}
        return (
            _delta(self._calls, calls),
            sum(_delta(self._retries, retries).values()),
            _delta(self._throttled, throttled),
        )


def _add(into: dict[str, int], values: object) -> None:
    if isinstance(values, Mapping):
        for key, value in values.items():
            if isinstance(value, int):
                into[str(key)] = into.get(str(key), 0) + value


def _delta(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    changed = {key: value - before.get(key, 0) for key, value in after.items()}
    return {key: value for key, value in sorted(changed.items()) if value > 0}


def emf_record(
    *,
    namespace: str,
    dimensions: Mapping[str, str],
    metrics: Mapping[str, tuple[str, float | list[float]]],
    properties: Mapping[str, Any] | None = None,
    timestamp: float | None = None,
) -> dict[str, Any]:
    """One embedded-metric-format record: ``metrics`` maps a name to (unit, value or values).

    The dimensions are one dimension set; ``properties`` are kept in the record for Logs
    Insights but are not metrics. Metrics past EMF's 100 per record, and values past 100 per
    metric, are left out (logged). ``timestamp`` is seconds since the epoch (default: now).
    """
    names = list(metrics)
    if len(names) > _MAX_METRICS:
        logger.warning(
            "%d metrics in one record; the last %d are left out",
            len(names),
            len(names) - _MAX_METRICS,
            extra={"operation": "metrics"},
        )
        names = names[:_MAX_METRICS]
    record: dict[str, Any] = {
        "_aws": {
            "Timestamp": int((time.time() if timestamp is None else timestamp) * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": namespace,
                    "Dimensions": [list(dimensions)],
                    "Metrics": [{"Name": name, "Unit": metrics[name][0]} for name in names],
                }
            ],
        },
        **{key: str(value) for key, value in dimensions.items()},
    }
    for key, value in (properties or {}).items():
        if key not in record and key not in metrics:
            record[key] = value
    for name in names:
        value = metrics[name][1]
        record[name] = value[:_MAX_VALUES] if isinstance(value, list) else value
    return record


def _usage_metrics(meter: InvocationMeter | None) -> tuple[dict[str, tuple[str, float]], dict[str, int]]:
    if meter is None:
        return {}, {}
    calls, retries, throttled = meter.usage()
    metrics: dict[str, tuple[str, float]] = {
        "Throttled": ("Count", sum(throttled.values())),
        "Retried": ("Count", retries),
        "Calls": ("Count", sum(calls.values())),
    }
    metrics.update({f"{CALLS_PREFIX}{name}": ("Count", n) for name, n in calls.items()})
    return metrics, throttled


def consumer_record(
    batch: BatchResult,
    *,
    namespace: str,
    pipeline: str,
    meter: InvocationMeter | None = None,
    request_id: str | None = None,
    timestamp: float | None = None,
) -> dict[str, Any]:
    """The consumer's record for one SQS event (`CONSUMER_METRICS`, ``Calls.<operation>``)."""
    redelivered = {reason: n for reason, n in batch.redelivered().items() if n}
    metrics: dict[str, tuple[str, float | list[float]]] = {
        "Records": ("Count", len(batch.records)),
        "Imported": ("Count", batch.certificates("imported")),
        "AlreadyPresent": ("Count", batch.certificates("already_present")),
        "Failed": ("Count", batch.certificates("failed")),
        "Skipped": ("Count", batch.certificates("skipped")),
        "Redelivered": ("Count", len(batch.item_failures)),
        "Throttled": ("Count", 0),
        "Retried": ("Count", 0),
        "Calls": ("Count", 0),
    }
    usage, throttled = _usage_metrics(meter)
    metrics.update(usage)
    latencies = [round(r.seconds * 1000.0, 3) for r in batch.records if r.started]
    if latencies:
        metrics["RecordLatency"] = ("Milliseconds", latencies)
    properties: dict[str, Any] = {"redeliver": redelivered, "throttled_by_operation": throttled}
    if batch.stopped:
        properties["stopped"] = batch.stopped
    if request_id:
        properties["request_id"] = request_id
    return emf_record(
        namespace=namespace,
        dimensions={"Pipeline": pipeline, "Function": "consumer"},
        metrics=metrics,
        properties=properties,
        timestamp=timestamp,
    )


def producer_record(
    report: S3EventReport | None,
    *,
    namespace: str,
    pipeline: str,
    meter: InvocationMeter | None = None,
    error: BaseException | None = None,
    request_id: str | None = None,
    timestamp: float | None = None,
) -> dict[str, Any]:
    """The producer's record for one S3 event (`PRODUCER_METRICS`, ``Calls.<operation>``).

    ``report`` is None when the event could not be handled at all (``error`` says why).
    """
    objects = report.objects if report is not None else ()
    metrics: dict[str, tuple[str, float | list[float]]] = {
        "Objects": ("Count", len(objects)),
        "ObjectsFailed": ("Count", sum(1 for o in objects if o.error is not None)),
        "Enqueued": ("Count", report.sent if report is not None else 0),
        "EnqueueFailed": ("Count", report.failed if report is not None else 0),
        "Skipped": ("Count", sum(o.skipped for o in objects)),
        "Messages": ("Count", sum(o.enqueue.messages for o in objects if o.enqueue is not None)),
        "Throttled": ("Count", 0),
        "Retried": ("Count", 0),
        "Calls": ("Count", 0),
    }
    usage, throttled = _usage_metrics(meter)
    metrics.update(usage)
    properties: dict[str, Any] = {"throttled_by_operation": throttled}
    if error is not None:
        properties["error_type"] = type(error).__name__
    if request_id:
        properties["request_id"] = request_id
    return emf_record(
        namespace=namespace,
        dimensions={"Pipeline": pipeline, "Function": "producer"},
        metrics=metrics,
        properties=properties,
        timestamp=timestamp,
    )


def print_record(record: Mapping[str, Any], write: Callable[[str], object] | None = None) -> None:
    """Write ``record`` as one JSON line on stdout (or with ``write``), where Lambda sends it
    to CloudWatch Logs unchanged, whatever the function's log format."""
    line = json.dumps(record, separators=(",", ":"), sort_keys=False, default=str) + "\n"
    if write is not None:
        write(line)
        return
    sys.stdout.write(line)
    sys.stdout.flush()
