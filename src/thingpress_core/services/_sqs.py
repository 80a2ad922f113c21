"""`SQSService`: batch sends that report every failure, queue depth, receive and delete."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from thingpress_core.errors import (
    AwsServiceError,
    CircuitOpenError,
    InvalidRequestError,
    RateLimitTimeoutError,
)
from thingpress_core.resilience import is_transient
from thingpress_core.services._call import ServiceFacade
from thingpress_core.services._models import BatchSendReport, FailedMessage, QueueDepth, ReceivedMessage

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

    from thingpress_core.clients import ClientFactory
    from thingpress_core.resilience import CircuitBreakerRegistry, RateLimiter
    from thingpress_core.settings import ThingpressSettings

__all__ = ["MAX_BATCH_BYTES", "MAX_BATCH_ENTRIES", "SQSService", "pack_batches"]

MAX_BATCH_ENTRIES = 10
"""SendMessageBatch takes at most 10 entries."""
MAX_BATCH_BYTES = 1_048_576
"""SendMessageBatch takes at most 1 MiB in all, and one message at most 1 MiB."""

_Entry = tuple[int, str, int]  # input index, body, UTF-8 size


def pack_batches(
    bodies: Iterable[str],
    *,
    max_entries: int = MAX_BATCH_ENTRIES,
    max_bytes: int = MAX_BATCH_BYTES,
    oversized: Callable[[int, int], None] | None = None,
) -> Iterator[list[_Entry]]:
    """Group ``bodies`` into batches of at most ``max_entries`` and ``max_bytes`` (UTF-8).

    Lazy and order-preserving; yields lists of ``(index, body, size)``. A body larger than
    ``max_bytes`` on its own goes to ``oversized(index, size)`` instead of any batch.
    """
    batch: list[_Entry] = []
    used = 0
    for index, body in enumerate(bodies):
        checked: object = body
        if not isinstance(checked, str):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise InvalidRequestError(
                f"message #{index} is a {type(body).__name__}, not a str",
                service="sqs",
                operation="SendMessageBatch",
            )
        size = len(body.encode("utf-8"))
        if size > max_bytes:
            if oversized is not None:
                oversized(index, size)
            continue
        if batch and (len(batch) >= max_entries or used + size > max_bytes):
            yield batch
            batch, used = [], 0
        batch.append((index, body, size))
        used += size
    if batch:
        yield batch


class SQSService(ServiceFacade):
    """Typed SQS facade on the one call path (keys ``sqs.SendMessageBatch``, ...).

    Args: as `IoTService`, plus ``sleep`` (the backoff between resends of failed entries;
    tests pass a fake) and ``seed`` for the backoff jitter (None: unpredictable).
    """

    _service = "sqs"
    _logger_name = "thingpress_core.services.sqs"

    def __init__(
        self,
        factory: ClientFactory | None = None,
        *,
        settings: ThingpressSettings | None = None,
        registry: CircuitBreakerRegistry | None = None,
        limiter: RateLimiter | None = None,
        sleep: Callable[[float], object] = time.sleep,
        seed: int | None = None,
    ) -> None:
        super().__init__(factory, settings=settings, registry=registry, limiter=limiter)
        self._sleep = sleep
        self._random = random.Random(seed)

    def _sqs(self) -> SQSClient:
        client: SQSClient = self._service_client()
        return client

    # -------------------------------------------------------------------------- sending

    def send_messages(
        self,
        queue_url: str,
        bodies: Iterable[str],
        *,
        max_attempts: int = 4,
        backoff_base: float = 0.1,
        backoff_cap: float = 5.0,
    ) -> BatchSendReport:
        """Send ``bodies`` with as few ``SendMessageBatch`` calls as the limits allow.

        Batches hold at most 10 messages and 1 MiB of UTF-8 bodies. A body over 1 MiB is
        reported failed (``MessageTooLong``, sender fault) without being sent. Entries that
        fail with ``SenderFault`` false (throttled, internal errors), and whole batches that
        fail transiently, are resent (only those entries; never one that succeeded) up to
        ``max_attempts`` sends in all, sleeping ``uniform(0, min(backoff_cap, backoff_base ×
        2**n))`` seconds before the n-th resend. Every failure is in ``report.failed`` with
        its input index; call ``report.raise_for_failures()`` to turn them into an error.

        A non-transient error of a whole call (queue missing, access denied) is raised.
        """
        if max_attempts < 1:
            raise InvalidRequestError(
                f"max_attempts must be >= 1, got {max_attempts}", service="sqs", operation="SendMessageBatch"
            )
        failed: list[FailedMessage] = []

        def too_long(index: int, size: int) -> None:
            failed.append(
                FailedMessage(
                    index=index,
                    code="MessageTooLong",
                    message=f"message is {size} bytes; the limit is {MAX_BATCH_BYTES}",
                    sender_fault=True,
                )
            )

        sent = batches = resent = 0
        for batch in pack_batches(bodies, oversized=too_long):
            outcome = self._send_batch(queue_url, batch, max_attempts, backoff_base, backoff_cap)
            sent += outcome[0]
            failed.extend(outcome[1])
            batches += outcome[2]
            resent += outcome[3]
        failed.sort(key=lambda f: f.index)
        report = BatchSendReport(sent=sent, failed=tuple(failed), batches=batches, resent=resent)
        if failed:
            self._log.warning(
                "%d of %d messages were not sent to %s",
                len(failed),
                sent + len(failed),
                queue_url,
                extra={"operation": "sqs.SendMessageBatch", "certificate_id": None, "thing_name": None},
            )
        return report

    def _send_batch(
        self,
        queue_url: str,
        batch: list[_Entry],
        max_attempts: int,
        backoff_base: float,
        backoff_cap: float,
    ) -> tuple[int, list[FailedMessage], int, int]:
        path = self._call_path()
        send = self._sqs().send_message_batch
        pending = batch
        last: dict[int, tuple[str, str]] = {}
        failed: list[FailedMessage] = []
        sent = calls = resent = 0
        for attempt in range(max_attempts):
            if attempt:
                self._sleep(self._random.uniform(0.0, min(backoff_cap, backoff_base * 2 ** (attempt - 1))))
                resent += len(pending)
            entries = [{"Id": str(index), "MessageBody": body} for index, body, _ in pending]
            calls += 1
            try:
                response = path.call("SendMessageBatch", send, {"QueueUrl": queue_url, "Entries": entries})
            except (AwsServiceError, CircuitOpenError, RateLimitTimeoutError) as exc:
                if not is_transient(exc):
                    raise
                code = exc.code if isinstance(exc, AwsServiceError) and exc.code else type(exc).__name__
                for index, _, _ in pending:
                    last[index] = (code, str(exc))
                continue
            by_id = {str(entry[0]): entry for entry in pending}
            retry: list[_Entry] = []
            for item in response.get("Failed") or ():
                entry = by_id.pop(str(item.get("Id")), None)
                if entry is None:
                    continue  # an id we did not send in this request: nothing to map it to
                code = str(item.get("Code") or "Error")
                message = str(item.get("Message") or code)
                if item.get("SenderFault"):
                    failed.append(
                        FailedMessage(index=entry[0], code=code, message=message, sender_fault=True)
                    )
                else:
                    last[entry[0]] = (code, message)
                    retry.append(entry)
            sent += len(by_id)  # every entry not listed in Failed was accepted
            pending = retry
            if not pending:
                break
        for index, _, _ in pending:
            code, message = last.get(index, ("Error", "not sent"))
            failed.append(FailedMessage(index=index, code=code, message=message, sender_fault=False))
        return sent, failed, calls, resent

    # ------------------------------------------------------------------------- the rest

    def queue_depth(self, queue_url: str) -> QueueDepth:
        """Approximate visible, in-flight and delayed message counts (GetQueueAttributes)."""
        response = self._call_path().call(
            "GetQueueAttributes",
            self._sqs().get_queue_attributes,
            {
                "QueueUrl": queue_url,
                "AttributeNames": [
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed",
                ],
            },
        )
        attributes = {str(k): str(v) for k, v in (response.get("Attributes") or {}).items()}
        return QueueDepth(
            visible=int(attributes.get("ApproximateNumberOfMessages", "0")),
            in_flight=int(attributes.get("ApproximateNumberOfMessagesNotVisible", "0")),
            delayed=int(attributes.get("ApproximateNumberOfMessagesDelayed", "0")),
        )

    def receive(
        self,
        queue_url: str,
        *,
        max_messages: int = 10,
        wait_seconds: int = 0,
        visibility_timeout: int | None = None,
    ) -> list[ReceivedMessage]:
        """Up to ``max_messages`` (1-10) messages, long-polling up to ``wait_seconds`` (0-20)."""
        if not 1 <= max_messages <= 10:
            raise InvalidRequestError(
                f"max_messages must be between 1 and 10, got {max_messages}",
                service="sqs",
                operation="ReceiveMessage",
            )
        if not 0 <= wait_seconds <= 20:
            raise InvalidRequestError(
                f"wait_seconds must be between 0 and 20, got {wait_seconds}",
                service="sqs",
                operation="ReceiveMessage",
            )
        params: dict[str, Any] = {
            "QueueUrl": queue_url,
            "MaxNumberOfMessages": max_messages,
            "WaitTimeSeconds": wait_seconds,
            "MessageSystemAttributeNames": ["All"],
            "MessageAttributeNames": ["All"],
        }
        if visibility_timeout is not None:
            params["VisibilityTimeout"] = visibility_timeout
        response = self._call_path().call("ReceiveMessage", self._sqs().receive_message, params)
        return [
            ReceivedMessage(
                message_id=str(m.get("MessageId") or ""),
                receipt_handle=str(m.get("ReceiptHandle") or ""),
                body=str(m.get("Body") or ""),
                attributes={str(k): str(v) for k, v in (m.get("Attributes") or {}).items()},
                message_attributes=dict(m.get("MessageAttributes") or {}),
            )
            for m in response.get("Messages") or ()
        ]

    def delete_batch(self, queue_url: str, receipt_handles: Iterable[str]) -> int:
        """Delete messages by receipt handle, 10 per call; returns how many were deleted.

        Entries SQS refuses (an expired receipt handle) are logged at WARNING, not raised.
        """
        path = self._call_path()
        delete = self._sqs().delete_message_batch
        deleted = 0
        handles = iter(receipt_handles)
        while True:
            chunk = [h for _, h in zip(range(MAX_BATCH_ENTRIES), handles, strict=False)]
            if not chunk:
                return deleted
            entries = [{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(chunk)]
            response = path.call("DeleteMessageBatch", delete, {"QueueUrl": queue_url, "Entries": entries})
            failures = response.get("Failed") or []
            deleted += len(chunk) - len(failures)
            for item in failures:
                self._log.warning(
                    "could not delete a message from %s: %s %s",
                    queue_url,
                    item.get("Code"),
                    item.get("Message"),
                    extra={"operation": "sqs.DeleteMessageBatch", "certificate_id": None, "thing_name": None},
                )
