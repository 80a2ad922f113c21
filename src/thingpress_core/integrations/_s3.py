"""The S3 trigger: `handle_s3_event` reads each manifest an S3 event names and enqueues it.

It takes every argument resolved (queue, options, services); `LambdaRuntime` resolves them
from the settings, and `s3_response` turns the report into the handler's answer.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from thingpress_core.errors import ConfigurationError, EnqueueError, ThingpressError
from thingpress_core.integrations._batch import LambdaContext
from thingpress_core.integrations._messages import ImportSource
from thingpress_core.integrations._producer import enqueue_manifest
from thingpress_core.integrations._reports import EnqueueReport
from thingpress_core.integrations._settings import MAX_MANIFEST_BYTES

if TYPE_CHECKING:
    from thingpress_core.importer import ImportOptions
    from thingpress_core.ledger import Ledger, RunStatus, Target
    from thingpress_core.services import S3Service, SQSService

logger = logging.getLogger("thingpress_core.integrations.aws_lambda")


class S3ObjectReport(BaseModel):
    """One manifest object named by an S3 event: how it was read and what was enqueued."""

    model_config: ClassVar[ConfigDict] = ConfigDict(frozen=True, extra="forbid")

    bucket: str
    key: str
    size: int | None = None
    format: str | None = None
    skipped: int = Field(default=0, ge=0, description="manifest entries the reader skipped")
    skipped_reasons: tuple[str, ...] = Field(default=(), description="the first 20, as 'entry N: reason'")
    enqueue: EnqueueReport | None = None
    error: str | None = None
    error_type: str | None = None
    transient: bool = False
    run_id: str | None = Field(default=None, description="the ledger run the requests carry")

    @property
    def ok(self) -> bool:
        """True when the object was read to the end, nothing skipped, everything enqueued."""
        return self.error is None and self.skipped == 0 and (self.enqueue is None or self.enqueue.ok)


class S3EventReport(BaseModel):
    """Every object of one S3 event."""

    model_config: ClassVar[ConfigDict] = ConfigDict(frozen=True, extra="forbid")

    objects: tuple[S3ObjectReport, ...] = ()

    @property
    def sent(self) -> int:
        """Certificates enqueued, over every object."""
        return sum(o.enqueue.sent for o in self.objects if o.enqueue is not None)

    @property
    def failed(self) -> int:
        """Certificates read but not enqueued, over every object."""
        return sum(len(o.enqueue.failed) for o in self.objects if o.enqueue is not None)

    @property
    def ok(self) -> bool:
        """True when every object is `S3ObjectReport.ok`."""
        return all(o.ok for o in self.objects)


_NOTHING_TO_IMPORT = frozenset({"no_certificate", "not_a_certificate"})


def handle_s3_event(
    event: Mapping[str, Any],
    context: LambdaContext | None = None,
    *,
    queue_url: str,
    options: ImportOptions,
    s3: S3Service,
    sqs: SQSService,
    max_bytes: int = MAX_MANIFEST_BYTES,
    format: str | None = None,
    per_message: int = 1,
    verifiers: Sequence[str] = (),
    manifest_options: Mapping[str, Any] | None = None,
    ledger: Ledger | None = None,
    target: Target | None = None,
) -> S3EventReport:
    """Read each manifest an S3 event names and enqueue its certificates to ``queue_url``.

    Each object (`S3ObjectRef.from_event`, keys URL-decoded) is read with at most
    ``max_bytes`` (default 256 MiB), its format detected from content, then key, unless
    ``format`` is given; entries that cannot be read are listed in the enqueue report's
    failures, entries that hold nothing to import are counted as skipped, and the rest are
    sent with `enqueue_manifest` (``options``, ``per_message``), each request carrying the
    vendor, bucket, key and entry index. ``verifiers`` (signer certificate paths) check
    Microchip manifests; ``manifest_options`` go to `read_manifest` and win. One object's
    failure is reported in its `S3ObjectReport` and does not stop the others.

    With a ``ledger`` (and the ``target`` its records belong to), each object read is a run in
    it: begun with the options, the object's name and the SHA-256 of its bytes, ended
    ``enqueued`` with the counts sent and failed; every request carries the run id, so the
    consumers record each device under it (`S3ObjectReport.run_id`).

    Every argument is used as given: nothing is read from the environment. The Lambda
    handler (`s3_handler`) resolves them from ``THINGPRESS_LAMBDA_*`` through its
    `LambdaRuntime`.
    """
    from thingpress_core.manifests import ManifestFormat, read_manifest
    from thingpress_core.resilience import is_transient
    from thingpress_core.services import S3ObjectRef

    if not queue_url:
        raise ConfigurationError("queue_url must name the import queue", variable="queue_url")
    if ledger is not None and target is None:
        raise ConfigurationError(
            "with a ledger, pass target= (the account and region its records belong to)", variable="target"
        )
    fixed_format: ManifestFormat | None = None
    if format is not None:
        try:
            fixed_format = ManifestFormat(str(format).lower())
        except ValueError:
            choices = ", ".join(f.value for f in ManifestFormat)
            raise ConfigurationError(
                f"unknown manifest format {format!r}; one of {choices}", variable="format", value=format
            ) from None

    reports: list[S3ObjectReport] = []
    for ref in S3ObjectRef.from_event(event):
        where = f"s3://{ref.bucket}/{ref.key}"
        size: int | None = None
        fmt: str | None = None
        skipped = 0
        run_id: str | None = None
        try:
            obj = s3.get_object(ref.bucket, ref.key, max_bytes=max_bytes)
            size = obj.size
            reader_options: dict[str, Any] = {}
            if verifiers and fixed_format in (None, ManifestFormat.MICROCHIP):
                reader_options["verifiers"] = list(verifiers)  # ignored unless it is Microchip
            reader_options.update(manifest_options or {})
            # bad entries come in place as ManifestError items: enqueue_manifest lists each
            # in its report's failures, so the counts add up to the manifest's entries
            reader = read_manifest(
                obj.body,
                format=fixed_format,
                name=ref.key,
                max_bytes=max_bytes,
                on_error="yield",
                **reader_options,
            )
            fmt = str(reader.format)
            source = ImportSource(vendor=fmt, bucket=ref.bucket, key=ref.key)
            if ledger is not None and target is not None:
                run_id = _begin_run(ledger, target, options, where, obj.body)
            report = enqueue_manifest(
                reader,
                queue_url,
                options=options,
                sqs=sqs,
                source=source,
                per_message=per_message,
                run_id=run_id,
            )
            if ledger is not None and run_id is not None:
                _end_run(ledger, run_id, report)
            # entries that hold nothing to import (a verified entry without a certificate, a
            # key block in a PEM bundle); bad entries are in report.failed
            nothing = [item for item in reader.report.skipped if item.code in _NOTHING_TO_IMPORT]
            skipped = len(nothing)
            reasons = tuple(f"entry {item.number}: {item.reason}" for item in nothing[:20])
        except EnqueueError as exc:
            logger.error(
                "%s: %s", where, exc, extra={"operation": "s3.enqueue", "bucket": ref.bucket, "key": ref.key}
            )
            reports.append(
                S3ObjectReport(
                    bucket=ref.bucket,
                    key=ref.key,
                    size=size,
                    format=fmt,
                    enqueue=exc.report,
                    error=str(exc),
                    error_type=type(exc.__cause__ or exc).__name__,
                    transient=is_transient(exc.__cause__) if exc.__cause__ is not None else False,
                    run_id=run_id,
                )
            )
            if ledger is not None and run_id is not None:
                with contextlib.suppress(ThingpressError):  # the ledger may be what failed
                    _end_run(ledger, run_id, exc.report, status="failed")
            continue
        except ThingpressError as exc:
            logger.error(
                "%s cannot be enqueued: %s",
                where,
                exc,
                extra={"operation": "s3.read", "bucket": ref.bucket, "key": ref.key},
            )
            reports.append(
                S3ObjectReport(
                    bucket=ref.bucket,
                    key=ref.key,
                    size=size,
                    format=fmt,
                    error=str(exc),
                    error_type=type(exc).__name__,
                    transient=is_transient(exc),
                    run_id=run_id,
                )
            )
            if ledger is not None and run_id is not None:
                with contextlib.suppress(ThingpressError):  # the ledger may be what failed
                    ledger.end_run(run_id, status="failed", counts={}, ended_at=_utcnow())
            continue
        logger.info(
            "%s (%s): %s; %d entries skipped",
            where,
            fmt,
            report.summary(),
            skipped,
            extra={"operation": "s3.enqueue", "bucket": ref.bucket, "key": ref.key, "sent": report.sent},
        )
        reports.append(
            S3ObjectReport(
                bucket=ref.bucket,
                key=ref.key,
                size=size,
                format=fmt,
                skipped=skipped,
                skipped_reasons=reasons,
                enqueue=report,
                run_id=run_id,
            )
        )
    return S3EventReport(objects=tuple(reports))


def _begin_run(ledger: Ledger, target: Target, options: ImportOptions, where: str, body: bytes) -> str:
    import hashlib

    from thingpress_core.ledger import RunRecord

    run = RunRecord.start(
        target=target.key,
        options=options.summary(),
        input_name=where,
        input_digest="sha256:" + hashlib.sha256(body).hexdigest(),
    )
    ledger.begin_run(run)
    return run.run_id


def _end_run(ledger: Ledger, run_id: str, report: EnqueueReport, *, status: RunStatus = "enqueued") -> None:
    ledger.end_run(
        run_id,
        status=status,
        counts={"total": report.total, "enqueued": report.sent, "failed": len(report.failed)},
        ended_at=_utcnow(),
    )


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def s3_response(report: S3EventReport, queue_url: str) -> dict[str, Any]:
    """What the S3 Lambda handler returns: the report as JSON-ready data.

    Raises `EnqueueError` when an object failed for a transient reason, so Lambda's
    asynchronous retries run again (requests already sent repeat as idempotent no-ops);
    permanent failures are logged and reported.
    """
    transient = [o for o in report.objects if o.transient]
    if transient:
        names = ", ".join(f"s3://{o.bucket}/{o.key}" for o in transient)
        raise EnqueueError(
            f"enqueueing failed for a transient reason: {names}",
            report=transient[0].enqueue or EnqueueReport(queue_url=queue_url, total=0, sent=0, messages=0),
        )
    return report.model_dump(mode="json")
