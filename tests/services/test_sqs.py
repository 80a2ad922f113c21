"""SQSService: packing, partial failures, resends, and the other queue calls."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from hypothesis import given
from hypothesis import strategies as st

from thingpress_core.errors import AwsServiceError, BatchSendError, InvalidRequestError, ResourceNotFoundError
from thingpress_core.services import BatchSendReport, FailedMessage, QueueDepth, SQSService
from thingpress_core.services._sqs import MAX_BATCH_BYTES, pack_batches

if TYPE_CHECKING:
    from thingpress_core.clients import ClientFactory
    from thingpress_core.testing import FaultInjector

MIB = 1_048_576


@pytest.fixture
def queue(fast_factory: ClientFactory) -> str:
    return fast_factory.sqs().create_queue(QueueName="imports")["QueueUrl"]


def drain(sqs: SQSService, queue: str) -> list[str]:
    bodies: list[str] = []
    while True:
        got = sqs.receive(queue, max_messages=10)
        if not got:
            return bodies
        bodies.extend(m.body for m in got)
        assert sqs.delete_batch(queue, [m.receipt_handle for m in got]) == len(got)


# ------------------------------------------------------------------------- packing


def test_pack_by_count() -> None:
    batches = list(pack_batches(str(i) for i in range(25)))
    assert [len(b) for b in batches] == [10, 10, 5]
    assert [e[0] for b in batches for e in b] == list(range(25))


def test_pack_by_bytes_counts_utf8() -> None:
    big = "é" * (MIB // 4)  # 2 bytes each in UTF-8: a quarter MiB of characters is half a MiB
    batches = list(pack_batches([big, big, big]))
    assert [len(b) for b in batches] == [2, 1]
    assert all(sum(e[2] for e in b) <= MAX_BATCH_BYTES for b in batches)


def test_pack_reports_oversized() -> None:
    seen: list[tuple[int, int]] = []
    batches = list(pack_batches(["a", "x" * (MIB + 1), "b"], oversized=lambda i, n: seen.append((i, n))))
    assert seen == [(1, MIB + 1)]
    assert [[e[0] for e in b] for b in batches] == [[0, 2]]


def test_pack_exactly_one_mib_fits() -> None:
    batches = list(pack_batches(["x" * MIB, "y"]))
    assert [[e[0] for e in b] for b in batches] == [[0], [1]]


def test_pack_rejects_non_str() -> None:
    with pytest.raises(InvalidRequestError, match="#1"):
        list(pack_batches(["a", b"b"]))  # type: ignore[list-item]


@given(st.lists(st.integers(min_value=0, max_value=300_000), max_size=60))
def test_pack_invariants(sizes: list[int]) -> None:
    bodies = ["x" * n for n in sizes]
    batches = list(pack_batches(bodies, max_bytes=MIB // 2))
    flat = [e[0] for b in batches for e in b]
    assert flat == list(range(len(bodies)))  # order kept, nothing lost (all fit here)
    for batch in batches:
        assert 1 <= len(batch) <= 10
        assert sum(e[2] for e in batch) <= MIB // 2


# ------------------------------------------------------------------------- sending


def test_25_messages_are_3_batches(sqs: SQSService, queue: str) -> None:
    report = sqs.send_messages(queue, (f"m{i}" for i in range(25)))
    assert report == BatchSendReport(sent=25, failed=(), batches=3, resent=0)
    assert report.ok
    report.raise_for_failures()  # nothing to raise
    assert sqs.stats().calls == {"sqs.SendMessageBatch": 3}
    assert sorted(drain(sqs, queue), key=lambda b: int(b[1:])) == [f"m{i}" for i in range(25)]


def test_a_2_mib_body_fails_alone_and_the_rest_is_sent(sqs: SQSService, queue: str) -> None:
    bodies = ["a", "b", "x" * (2 * MIB), "c"]
    report = sqs.send_messages(queue, bodies)
    assert report.sent == 3
    assert len(report.failed) == 1
    failure = report.failed[0]
    assert (failure.index, failure.code, failure.sender_fault) == (2, "MessageTooLong", True)
    assert sqs.stats().calls == {"sqs.SendMessageBatch": 1}
    assert sorted(drain(sqs, queue)) == ["a", "b", "c"]


def test_large_bodies_split_by_size(sqs: SQSService, queue: str) -> None:
    bodies = ["x" * (400 * 1024)] * 5
    report = sqs.send_messages(queue, bodies)
    assert (report.sent, report.batches) == (5, 3)


def test_partial_failure_resends_only_the_failed(
    sqs: SQSService, queue: str, faults: FaultInjector, sleeps: list[float]
) -> None:
    faults.partial_batch_failure(entries=[1, 4], times=1)
    report = sqs.send_messages(queue, [f"m{i}" for i in range(8)])
    assert report == BatchSendReport(sent=8, failed=(), batches=2, resent=2)
    assert faults.count("sqs.SendMessageBatch", kind="partial_batch_failure") == 1
    assert len(sleeps) == 1
    assert 0.0 <= sleeps[0] <= 0.1
    assert sorted(drain(sqs, queue)) == sorted(f"m{i}" for i in range(8))  # each exactly once


def test_partial_failures_that_persist_are_reported_with_input_index(
    sqs: SQSService, queue: str, faults: FaultInjector, sleeps: list[float]
) -> None:
    # From the second batch on (inputs 10..14), positions 0 and 1 fail on every send; the
    # resend holds just those two entries, so they keep failing.
    faults.partial_batch_failure(entries=[0, 1], after=1, code="InternalError")
    report = sqs.send_messages(queue, [f"m{i}" for i in range(15)], max_attempts=3)
    assert report.sent == 13
    assert [(f.index, f.code, f.sender_fault) for f in report.failed] == [
        (10, "InternalError", False),
        (11, "InternalError", False),
    ]
    assert report.batches == 4  # 2 batches + 2 resends of the failing pair
    assert report.resent == 4
    assert len(sleeps) == 2
    assert sorted(drain(sqs, queue)) == sorted(f"m{i}" for i in range(15) if i not in (10, 11))
    with pytest.raises(BatchSendError) as info:
        report.raise_for_failures()
    assert isinstance(info.value, AwsServiceError)
    assert "#10" in str(info.value)
    assert "#11" in str(info.value)
    assert info.value.failures == report.failed


def test_sender_fault_is_never_resent(
    sqs: SQSService, queue: str, faults: FaultInjector, sleeps: list[float]
) -> None:
    faults.partial_batch_failure(entries=[3], sender_fault=True, code="InvalidMessageContents", times=1)
    report = sqs.send_messages(queue, [f"m{i}" for i in range(5)])
    assert report.failed == (
        FailedMessage(
            index=3,
            code="InvalidMessageContents",
            message="InvalidMessageContents (injected)",
            sender_fault=True,
        ),
    )
    assert (report.sent, report.batches, report.resent) == (4, 1, 0)
    assert sleeps == []


def test_every_entry_failing_then_succeeding(sqs: SQSService, queue: str, faults: FaultInjector) -> None:
    faults.partial_batch_failure(entries=range(10), times=1)
    report = sqs.send_messages(queue, [f"m{i}" for i in range(3)])
    assert (report.sent, report.resent, report.batches) == (3, 3, 2)


def test_whole_batch_throttled_is_resent(
    sqs: SQSService, queue: str, faults: FaultInjector, sleeps: list[float]
) -> None:
    faults.throttle("sqs.SendMessageBatch", times=3)  # all 3 botocore attempts of the first send
    report = sqs.send_messages(queue, ["a", "b"])
    assert (report.sent, report.failed, report.batches) == (2, (), 2)
    assert len(sleeps) == 1


def test_whole_batch_failing_past_the_bound_reports_every_entry(
    sqs: SQSService, queue: str, faults: FaultInjector
) -> None:
    faults.server_error("sqs.SendMessageBatch")
    report = sqs.send_messages(queue, ["a", "b"], max_attempts=2)
    assert report.sent == 0
    assert [(f.index, f.sender_fault) for f in report.failed] == [(0, False), (1, False)]
    assert {f.code for f in report.failed} == {"InternalError"}


def test_missing_queue_raises(sqs: SQSService, fast_factory: ClientFactory) -> None:
    url = fast_factory.sqs().create_queue(QueueName="gone")["QueueUrl"]
    fast_factory.sqs().delete_queue(QueueUrl=url)
    with pytest.raises(ResourceNotFoundError):
        sqs.send_messages(url, ["a"])


def test_missing_failed_key_means_none(sqs: SQSService, queue: str, fast_factory: ClientFactory) -> None:
    def drop_failed(parsed: dict[str, object], **_: object) -> None:
        parsed.pop("Failed", None)

    fast_factory.sqs().meta.events.register("after-call.sqs.SendMessageBatch", drop_failed)
    report = sqs.send_messages(queue, ["a", "b"])
    assert (report.sent, report.failed) == (2, ())


def test_empty_input_makes_no_call(sqs: SQSService, queue: str) -> None:
    assert sqs.send_messages(queue, []) == BatchSendReport(sent=0)
    assert sqs.stats().total_calls == 0


def test_bad_max_attempts(sqs: SQSService, queue: str) -> None:
    with pytest.raises(InvalidRequestError):
        sqs.send_messages(queue, ["a"], max_attempts=0)


# --------------------------------------------------------------------- other calls


def test_queue_depth_receive_delete(sqs: SQSService, queue: str) -> None:
    sqs.send_messages(queue, ["a", "b", "c"])
    assert sqs.queue_depth(queue) == QueueDepth(visible=3, in_flight=0, delayed=0)
    got = sqs.receive(queue, max_messages=2, visibility_timeout=30)
    assert len(got) == 2
    assert got[0].message_id
    assert sorted(m.body for m in got) in (["a", "b"], ["a", "c"], ["b", "c"])
    assert "body" not in repr(got[0])  # bodies carry certificates: never in a log line
    assert "SentTimestamp" in got[0].attributes
    depth = sqs.queue_depth(queue)
    assert (depth.visible, depth.in_flight, depth.total) == (1, 2, 3)
    assert sqs.delete_batch(queue, [m.receipt_handle for m in got]) == 2
    assert sqs.queue_depth(queue).in_flight == 0


def test_delete_batch_chunks_by_ten(sqs: SQSService, queue: str) -> None:
    sqs.send_messages(queue, [str(i) for i in range(12)])
    handles = [m.receipt_handle for _ in range(2) for m in sqs.receive(queue, max_messages=10)]
    handles += [m.receipt_handle for m in sqs.receive(queue, max_messages=10)]
    assert sqs.delete_batch(queue, handles) == len(handles)
    assert sqs.stats().calls["sqs.DeleteMessageBatch"] == (len(handles) + 9) // 10


def test_delete_batch_counts_refused_entries(sqs: SQSService, queue: str, faults: FaultInjector) -> None:
    sqs.send_messages(queue, ["a", "b"])
    handles = [m.receipt_handle for m in sqs.receive(queue)]
    faults.partial_batch_failure(
        "sqs.DeleteMessageBatch", entries=[0], code="ReceiptHandleIsInvalid", times=1
    )
    assert sqs.delete_batch(queue, handles) == 1


@pytest.mark.parametrize(
    ("kwargs", "word"), [({"max_messages": 11}, "max_messages"), ({"wait_seconds": 21}, "wait")]
)
def test_receive_validates(sqs: SQSService, queue: str, kwargs: dict[str, int], word: str) -> None:
    with pytest.raises(InvalidRequestError, match=word):
        sqs.receive(queue, **kwargs)


def test_queue_depth_of_missing_queue(sqs: SQSService) -> None:
    with pytest.raises(ResourceNotFoundError):
        sqs.queue_depth("https://sqs.us-east-1.amazonaws.com/123456789012/nope")
