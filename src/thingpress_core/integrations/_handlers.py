"""The Lambda entry points: thin functions over the process's `LambdaRuntime`.

Only these (and `LambdaRuntime.from_environment`) read the environment. The runtime is
built on the first invocation and kept by `default_runtime` (a `functools.cache`), so no
module variable is ever reassigned; ``default_runtime.cache_clear()`` forgets it.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from thingpress_core.errors import ThingpressError
from thingpress_core.integrations._batch import LambdaContext, RecordDurations
from thingpress_core.integrations._records import PreflightCache, record_id
from thingpress_core.integrations._runtime import LambdaRuntime
from thingpress_core.integrations._settings import LambdaSettings

if TYPE_CHECKING:
    from thingpress_core.importer import CertificateImporter

logger = logging.getLogger("thingpress_core.integrations.aws_lambda")


@functools.cache
def default_runtime() -> LambdaRuntime:
    """This process's runtime: `LambdaRuntime.from_environment()`, built on the first call.

    A failed build (an invalid variable) is not remembered, so the next call tries again.
    ``default_runtime.cache_clear()`` forgets the runtime (tests that change the environment).
    """
    return LambdaRuntime.from_environment()


def sqs_handler(
    event: Mapping[str, Any], context: LambdaContext | None = None, *, runtime: LambdaRuntime | None = None
) -> dict[str, list[dict[str, str]]]:
    """The Lambda handler for the import queue: import each record, report partial failures.

    Configure ``thingpress_core.integrations.aws_lambda.sqs_handler`` on a function whose
    SQS event source mapping has ``ReportBatchItemFailures``. ``runtime`` defaults to
    `default_runtime()`. If the runtime cannot be built (an invalid setting), every record
    is an item failure: it stays in the queue and reaches the dead-letter queue rather than
    vanish. Never raises.
    """
    if runtime is None:
        try:
            runtime = default_runtime()
        except ThingpressError as exc:
            return _every_record_fails(event, exc)
    return runtime.handle_sqs_event(event, context)


def s3_handler(
    event: Mapping[str, Any], context: LambdaContext | None = None, *, runtime: LambdaRuntime | None = None
) -> dict[str, Any]:
    """The Lambda handler for manifest uploads: `LambdaRuntime.handle_s3_event`.

    ``runtime`` defaults to `default_runtime()`. Returns the `S3EventReport` as JSON-ready
    data. Raises `EnqueueError` when an object failed for a transient reason (so Lambda's
    asynchronous retries run again; requests already sent repeat as idempotent no-ops), and
    `ConfigurationError` when a setting is missing or invalid.
    """
    return (runtime if runtime is not None else default_runtime()).handle_s3_event(event, context)


def handle_sqs_event(
    event: Mapping[str, Any],
    context: LambdaContext | None = None,
    *,
    importer: CertificateImporter | None = None,
) -> dict[str, list[dict[str, str]]]:
    """`sqs_handler` under its former name, which existing deployments configure.

    With ``importer``, records are imported with it, under the ``THINGPRESS_LAMBDA_*``
    settings read on the first call with that importer; those settings, its preflight
    verdicts and record durations are kept between calls with the same importer, without
    keeping the importer alive. Never raises.
    """
    if importer is None:
        return sqs_handler(event, context)
    try:
        runtime = _importer_caches.runtime_for(importer)
    except ThingpressError as exc:
        return _every_record_fails(event, exc)
    return runtime.handle_sqs_event(event, context)


def _every_record_fails(event: Mapping[str, Any], exc: ThingpressError) -> dict[str, list[dict[str, str]]]:
    logger.error("cannot build the Lambda runtime: %s; every record is an item failure", exc)
    raw = cast(object, event)  # Lambda hands over whatever JSON arrived
    records = raw.get("Records") if isinstance(raw, Mapping) else None
    ids = [record_id(r, i) for i, r in enumerate(records)] if isinstance(records, list) else []
    return {"batchItemFailures": [{"itemIdentifier": m} for m in ids]}


class _ImporterCaches:
    """What `handle_sqs_event(importer=...)` keeps per importer: settings and caches.

    Held in a `weakref.WeakKeyDictionary`, and holding no reference to the importer, so an
    importer made per invocation is collected with what was kept for it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: weakref.WeakKeyDictionary[CertificateImporter, _Kept]
        self._kept = weakref.WeakKeyDictionary()

    def runtime_for(self, importer: CertificateImporter) -> LambdaRuntime:
        with self._lock:
            try:
                kept = self._kept.get(importer)
            except TypeError:  # not weak-referenceable: nothing kept between calls
                kept = None
        if kept is None:
            kept = (LambdaSettings(), PreflightCache(), RecordDurations())  # reads the environment
            with self._lock, contextlib.suppress(TypeError):
                kept = self._kept.setdefault(importer, kept)
        settings, preflight, durations = kept
        return LambdaRuntime(settings=settings, importer=importer, preflight=preflight, durations=durations)


_Kept = tuple[LambdaSettings, PreflightCache, RecordDurations]
_importer_caches = _ImporterCaches()
