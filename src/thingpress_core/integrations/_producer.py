"""The producer: `enqueue_manifest` turns manifest entries into SQS messages, in chunks."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from thingpress_core.errors import ConfigurationError, EnqueueError, ManifestError, ThingpressError
from thingpress_core.integrations._messages import MAX_MESSAGE_BYTES, ImportRequest, ImportSource, batch_body
from thingpress_core.integrations._reports import EnqueueFailure, EnqueueProgress, EnqueueReport

if TYPE_CHECKING:
    from thingpress_core.certificates import DeviceCertificate
    from thingpress_core.importer import ImportOptions
    from thingpress_core.manifests import ManifestEntry
    from thingpress_core.services import SQSService

logger = logging.getLogger("thingpress_core.integrations.aws_lambda")

_SEND_CHUNK = 100  # messages handed to SQSService.send_messages at a time (10 batch calls)
_MAX_LOGGED = 1000  # failures logged one by one per enqueue, as a manifest reader logs its skips


class _Pending:
    """Messages built but not yet sent, and which input positions each one carries."""

    def __init__(self) -> None:
        self.bodies: list[str] = []
        self.members: list[list[tuple[int, str, str | None]]] = []  # (index, cert id, thing)


class _Producer:
    def __init__(
        self,
        queue_url: str,
        sqs: SQSService,
        *,
        per_message: int,
        max_message_bytes: int,
        chunk_messages: int,
        progress: Callable[[EnqueueProgress], None] | None,
    ) -> None:
        self.queue_url = queue_url
        self.sqs = sqs
        self.per_message = per_message
        self.max_message_bytes = max_message_bytes
        self.chunk_messages = chunk_messages
        self.progress = progress
        self.total = 0
        self.sent = 0
        self.messages = 0
        self.failed: list[EnqueueFailure] = []
        self.logged = 0
        self.pending = _Pending()
        # requests waiting to be packed into one message (per_message > 1)
        self.group: list[tuple[str, tuple[int, str, str | None]]] = []
        self.group_bytes = 0
        self.started = time.monotonic()

    def report(self) -> EnqueueReport:
        return EnqueueReport(
            queue_url=self.queue_url,
            total=self.total,
            sent=self.sent,
            messages=self.messages,
            failed=tuple(sorted(self.failed, key=lambda f: f.index)),
            duration_seconds=max(0.0, time.monotonic() - self.started),
        )

    def fail(
        self,
        index: int,
        reason: str,
        *,
        cert_id: str | None,
        thing: str | None,
        code: str | None,
        log: bool = True,
    ) -> None:
        """List one certificate (or unreadable entry) as not enqueued, and log it once: the
        reader leaves the errors it yields to us. The first `_MAX_LOGGED` are logged one by
        one, then one line says the rest are in the report; a send that fails as a whole
        (``log=False``) is one `EnqueueError` instead of a line per certificate."""
        self.failed.append(
            EnqueueFailure(index=index, certificate_id=cert_id, thing_name=thing, reason=reason, code=code)
        )
        if not log:
            return
        self.logged += 1
        extra = {"operation": "enqueue", "entry": index, "certificate_id": cert_id, "error_code": code}
        if self.logged <= _MAX_LOGGED:
            logger.warning("entry %d not enqueued: %s", index, reason, extra=extra)
        elif self.logged == _MAX_LOGGED + 1:
            logger.warning(
                "more than %d entries not enqueued; the rest are listed only in the report",
                _MAX_LOGGED,
                extra={"operation": "enqueue"},
            )

    def add(self, body: str, member: tuple[int, str, str | None]) -> None:
        size = len(body.encode("utf-8"))
        if size > self.max_message_bytes:
            self.fail(
                member[0],
                f"the request is {size} bytes, over the {self.max_message_bytes}-byte SQS message limit",
                cert_id=member[1],
                thing=member[2],
                code="MessageTooLarge",
            )
            return
        if self.per_message == 1:
            self._queue(body, [member])
        else:
            overhead = len(batch_body([])) + len(self.group)  # commas between requests
            if self.group and (
                len(self.group) >= self.per_message
                or self.group_bytes + size + overhead + 1 > self.max_message_bytes
            ):
                self._close_group()
            self.group.append((body, member))
            self.group_bytes += size
        # Only now, with this request placed, may a failed send raise: the report it carries
        # must account for every certificate read so far.
        if len(self.pending.bodies) >= self.chunk_messages:
            self.flush()

    def _close_group(self) -> None:
        if not self.group:
            return
        bodies = [b for b, _ in self.group]
        members = [m for _, m in self.group]
        self.group, self.group_bytes = [], 0
        self._queue(batch_body(bodies) if len(bodies) > 1 else bodies[0], members)

    def _queue(self, body: str, members: list[tuple[int, str, str | None]]) -> None:
        self.pending.bodies.append(body)
        self.pending.members.append(members)

    def flush(self, *, final: bool = False) -> None:
        if final:
            self._close_group()
        pending, self.pending = self.pending, _Pending()
        if pending.bodies:
            try:
                result = self.sqs.send_messages(self.queue_url, pending.bodies)
            except ThingpressError as exc:
                unsent = [*pending.members, [m for _, m in self.group]]
                self.group, self.group_bytes = [], 0
                for members in unsent:
                    for index, cert_id, thing in members:
                        self.fail(
                            index,
                            f"not sent: {exc}",
                            cert_id=cert_id,
                            thing=thing,
                            code=type(exc).__name__,
                            log=False,
                        )
                report = self.report()
                raise EnqueueError(
                    f"sending to {self.queue_url} failed after {report.sent} of {report.total} "
                    f"certificates: {exc}",
                    report=report,
                ) from exc
            failed_positions = set()
            for failure in result.failed:
                failed_positions.add(failure.index)
                for index, cert_id, thing in pending.members[failure.index]:
                    self.fail(
                        index,
                        f"SQS refused the message: {failure.message}",
                        cert_id=cert_id,
                        thing=thing,
                        code=failure.code,
                    )
            for position, members in enumerate(pending.members):
                if position not in failed_positions:
                    self.sent += len(members)
                    self.messages += 1
        if self.progress is not None:
            self.progress(
                EnqueueProgress(
                    total=self.total, sent=self.sent, failed=len(self.failed), messages=self.messages
                )
            )


def enqueue_manifest(
    entries: Iterable[ManifestEntry | DeviceCertificate | ManifestError],
    queue_url: str,
    *,
    options: ImportOptions,
    sqs: SQSService | None = None,
    per_message: int = 1,
    source: ImportSource | None = None,
    progress: Callable[[EnqueueProgress], None] | None = None,
    max_message_bytes: int = MAX_MESSAGE_BYTES,
    run_id: str | None = None,
) -> EnqueueReport:
    """Send one `ImportRequest` per certificate to ``queue_url`` and report what was sent.

    ``entries`` is read lazily and sent in chunks of 100 messages, so a manifest of any size
    streams through in constant memory. ``options`` supplies the policies, groups, thing
    type, status and naming strategy every request carries (names are resolved here).
    ``per_message`` > 1 packs up to that many requests into one message (an `ImportBatch`)
    while it stays within ``max_message_bytes``. ``source`` (vendor, bucket, key) is copied
    into every request with the entry's index. ``progress`` receives running totals after
    every chunk, e.g. to drive a progress bar. ``run_id`` (a ledger run, see
    [`ledger`][thingpress_core.ledger]) goes into every request, so consumers with a ledger record
    each device under it. Without ``sqs`` an ``SQSService()`` is made for
    this call (settings from ``THINGPRESS_*``); pass one to reuse its client.

    A certificate that cannot be named, an entry the reader could not read (a `ManifestError`
    in place of an entry: ``read_manifest(..., on_error="yield")``), or a message SQS refuses,
    is listed in ``report.failed`` with its index and the reason; the rest carry on. If a send fails as a
    whole (queue missing, access denied, SQS unwell after retries) `EnqueueError` is raised
    with the report so far.
    """
    if per_message < 1:
        raise ConfigurationError(f"per_message must be at least 1, got {per_message}", variable="per_message")
    if not 1024 <= max_message_bytes <= MAX_MESSAGE_BYTES:
        raise ConfigurationError(
            f"max_message_bytes must be between 1024 and {MAX_MESSAGE_BYTES}, got {max_message_bytes}",
            variable="max_message_bytes",
        )
    if sqs is None:
        from thingpress_core.services import SQSService

        sqs = SQSService()  # settings from THINGPRESS_*, as every facade made without arguments
    producer = _Producer(
        queue_url,
        sqs,
        per_message=per_message,
        max_message_bytes=max_message_bytes,
        chunk_messages=_SEND_CHUNK,
        progress=progress,
    )
    from thingpress_core.certificates import DeviceCertificate

    try:
        for position, item in enumerate(entries):
            producer.total += 1
            if isinstance(item, ManifestError):
                where = item.index if item.index is not None else position
                producer.fail(where, str(item), cert_id=None, thing=None, code=type(item).__name__)
                continue
            cert = item if isinstance(item, DeviceCertificate) else item.certificate
            index = position if isinstance(item, DeviceCertificate) else item.index
            try:
                request = ImportRequest.from_certificate(
                    item, options=options, source=source, index=index, run_id=run_id
                )
            except (ThingpressError, ValueError) as exc:
                thing = None if isinstance(item, DeviceCertificate) else item.thing_name
                producer.fail(
                    index, str(exc), cert_id=cert.certificate_id, thing=thing, code=type(exc).__name__
                )
                continue
            producer.add(request.to_body(), (index, cert.certificate_id, request.thing_name))
    except BaseException:
        # The input broke part-way (e.g. a manifest entry that cannot be read): what was read
        # before it is still sent, so nothing read is lost, then the reader's error goes on.
        producer.flush(final=True)
        raise
    producer.flush(final=True)
    report = producer.report()
    logger.info(
        "enqueue to %s: %s",
        queue_url,
        report.summary(),
        extra={
            "operation": "enqueue",
            "queue_url": queue_url,
            "sent": report.sent,
            "failed": len(report.failed),
        },
    )
    return report
