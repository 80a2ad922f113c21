"""enqueue_manifest: one request per certificate, streamed to SQS in chunks."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from thingpress_core.certificates import DeviceCertificate
from thingpress_core.certificates.generate import generate_device_certificates
from thingpress_core.clients import ClientFactory
from thingpress_core.errors import ConfigurationError, ResourceNotFoundError, ServiceUnavailableError
from thingpress_core.importer import ImportOptions
from thingpress_core.integrations.aws_lambda import (
    EnqueueError,
    EnqueueProgress,
    ImportRequest,
    ImportSource,
    enqueue_manifest,
    parse_message,
)
from thingpress_core.manifests import ManifestEntry
from thingpress_core.services import BatchSendReport, FailedMessage, SQSService

OPTIONS = ImportOptions(policies=("P",), thing_groups=("G",), thing_type="T")


@pytest.fixture(scope="module")
def certs() -> list[DeviceCertificate]:
    return list(generate_device_certificates(30, cn_prefix="producer-"))


class RecordingSQS:
    """Stands in for SQSService: records each send_messages call; can refuse some messages."""

    def __init__(self, *, refuse: Iterable[int] = (), error: Exception | None = None) -> None:
        self.calls: list[list[str]] = []
        self.refuse = set(refuse)  # positions (over all calls) to report failed
        self.error = error
        self.seen = 0

    def send_messages(self, queue_url: str, bodies: Iterable[str]) -> BatchSendReport:
        if self.error is not None:
            raise self.error
        batch = list(bodies)
        self.calls.append(batch)
        failed = []
        for i in range(len(batch)):
            if self.seen + i in self.refuse:
                failed.append(
                    FailedMessage(index=i, code="InternalError", message="nope", sender_fault=False)
                )
        self.seen += len(batch)
        return BatchSendReport(sent=len(batch) - len(failed), failed=tuple(failed))


def drain(factory: ClientFactory, url: str) -> list[str]:
    client = factory.sqs()
    bodies: list[str] = []
    while True:
        answer = client.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
        messages = answer.get("Messages", [])
        if not messages:
            return bodies
        for message in messages:
            bodies.append(message["Body"])
            client.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def test_enqueue_to_moto_sqs(factory: ClientFactory, certs: list[DeviceCertificate]) -> None:
    url = factory.sqs().create_queue(QueueName="imports")["QueueUrl"]
    entries = [ManifestEntry(thing_name=None, certificate=c, index=i) for i, c in enumerate(certs[:25])]
    source = ImportSource(vendor="generated", bucket="b", key="k")
    report = enqueue_manifest(entries, url, options=OPTIONS, sqs=SQSService(factory), source=source)
    assert (report.total, report.sent, report.messages, report.failed) == (25, 25, 25, ())
    requests = [ImportRequest.parse(body) for body in drain(factory, url)]
    assert len(requests) == 25
    by_index = {r.source.index: r for r in requests if r.source is not None}
    assert sorted(by_index) == list(range(25))
    assert by_index[3].thing_name == "producer-000003"
    assert by_index[3].to_entry().certificate == certs[3]
    assert by_index[3].source == ImportSource(vendor="generated", bucket="b", key="k", index=3)
    assert {(r.policies, r.thing_groups, r.thing_type) for r in requests} == {(("P",), ("G",), "T")}


def test_the_input_is_streamed_in_chunks(certs: list[DeviceCertificate]) -> None:
    sqs = RecordingSQS()
    pulled = [0]
    sent_when: list[int] = []
    original = sqs.send_messages

    def tracking(queue_url: str, bodies: Iterable[str]) -> BatchSendReport:
        sent_when.append(pulled[0])
        return original(queue_url, bodies)

    sqs.send_messages = tracking  # type: ignore[method-assign]

    def lazy() -> Iterator[DeviceCertificate]:
        for i in range(250):
            pulled[0] += 1
            yield certs[i % len(certs)]

    report = enqueue_manifest(lazy(), "q", options=ImportOptions(), sqs=sqs)  # type: ignore[arg-type]
    assert report.sent == 250
    assert [len(c) for c in sqs.calls] == [100, 100, 50]
    assert sent_when == [100, 200, 250]  # never more than one chunk held in memory


def test_per_message_packs_requests_within_the_size_limit(certs: list[DeviceCertificate]) -> None:
    sqs = RecordingSQS()
    report = enqueue_manifest(certs[:10], "q", options=OPTIONS, sqs=sqs, per_message=4)  # type: ignore[arg-type]
    assert (report.sent, report.messages) == (10, 3)
    sizes = [len(parse_message(body)) for body in sqs.calls[0]]
    assert sizes == [4, 4, 2]
    assert [r.source.index for r in parse_message(sqs.calls[0][2]) if r.source] == [8, 9]
    # a smaller size limit closes messages earlier
    one_size = len(ImportRequest.from_certificate(certs[0], options=OPTIONS).to_body())
    small = RecordingSQS()
    report = enqueue_manifest(
        certs[:10],
        "q",
        options=OPTIONS,
        sqs=small,  # type: ignore[arg-type]
        per_message=10,
        max_message_bytes=2 * one_size + 200,
    )
    assert report.sent == 10
    assert all(len(body.encode()) <= 2 * one_size + 200 for body in small.calls[0])
    assert sum(len(parse_message(b)) for b in small.calls[0]) == 10
    assert report.messages == 5


def test_a_request_over_the_limit_fails_alone(certs: list[DeviceCertificate]) -> None:
    sqs = RecordingSQS()
    report = enqueue_manifest(certs[:2], "q", options=OPTIONS, sqs=sqs, max_message_bytes=1024)  # type: ignore[arg-type]
    assert report.sent == 0
    assert [f.code for f in report.failed] == ["MessageTooLarge", "MessageTooLarge"]


def test_refused_messages_list_every_certificate_they_carried(certs: list[DeviceCertificate]) -> None:
    sqs = RecordingSQS(refuse={1})
    report = enqueue_manifest(certs[:6], "q", options=OPTIONS, sqs=sqs, per_message=2)  # type: ignore[arg-type]
    assert report.total == 6
    assert report.sent == 4
    assert [(f.index, f.certificate_id) for f in report.failed] == [
        (2, certs[2].certificate_id),
        (3, certs[3].certificate_id),
    ]
    assert report.failed[0].code == "InternalError"
    assert not report.ok


def test_a_whole_send_failure_raises_with_the_report(certs: list[DeviceCertificate]) -> None:
    missing = ResourceNotFoundError("no such queue", service="sqs", operation="SendMessageBatch")
    with pytest.raises(EnqueueError) as info:
        enqueue_manifest(certs[:3], "q", options=OPTIONS, sqs=RecordingSQS(error=missing))  # type: ignore[arg-type]
    assert info.value.report.total == 3
    assert info.value.report.sent == 0
    assert len(info.value.report.failed) == 3
    assert info.value.__cause__ is missing


def test_a_certificate_that_cannot_be_named_fails_alone(certs: list[DeviceCertificate]) -> None:
    def name(cert: DeviceCertificate) -> str:
        if cert == certs[1]:
            return 5  # type: ignore[return-value]
        return "ok-" + (cert.common_name or "")

    sqs = RecordingSQS()
    report = enqueue_manifest(certs[:3], "q", options=ImportOptions(naming=name), sqs=sqs)  # type: ignore[arg-type]
    assert report.sent == 2
    assert report.failed[0].index == 1
    assert report.failed[0].code == "ConfigurationError"


def test_progress_gets_running_totals(certs: list[DeviceCertificate]) -> None:
    seen: list[EnqueueProgress] = []
    items = [certs[i % len(certs)] for i in range(230)]
    report = enqueue_manifest(items, "q", options=OPTIONS, sqs=RecordingSQS(), progress=seen.append)  # type: ignore[arg-type]
    assert [p.sent for p in seen] == [100, 200, 230]
    assert seen[-1] == EnqueueProgress(total=230, sent=230, failed=0, messages=230)
    assert "230 enqueued" in report.summary()


def test_bad_arguments(certs: list[DeviceCertificate]) -> None:
    with pytest.raises(ConfigurationError):
        enqueue_manifest(certs[:1], "q", options=OPTIONS, sqs=RecordingSQS(), per_message=0)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        enqueue_manifest(certs[:1], "q", options=OPTIONS, sqs=RecordingSQS(), max_message_bytes=2**21)  # type: ignore[arg-type]


def test_empty_input_sends_nothing(certs: list[DeviceCertificate]) -> None:
    sqs = RecordingSQS()
    calls: list[Any] = []
    report = enqueue_manifest([], "q", options=OPTIONS, sqs=sqs, progress=calls.append)  # type: ignore[arg-type]
    assert (report.total, report.sent, sqs.calls) == (0, 0, [])
    assert calls == [EnqueueProgress(total=0, sent=0, failed=0, messages=0)]


def test_a_send_failure_while_packing_accounts_for_every_certificate_read(
    certs: list[DeviceCertificate],
) -> None:
    # 201 certificates two per message: the 101st message closes while the 201st certificate
    # is in hand, and that flush is the one that fails. The report must still add up.
    unwell = ServiceUnavailableError("down", service="sqs", operation="SendMessageBatch")
    items = [certs[i % len(certs)] for i in range(201)]
    with pytest.raises(EnqueueError) as info:
        enqueue_manifest(items, "q", options=OPTIONS, sqs=RecordingSQS(error=unwell), per_message=2)  # type: ignore[arg-type]
    report = info.value.report
    assert (report.total, report.sent, len(report.failed)) == (201, 0, 201)
    assert sorted(f.index for f in report.failed) == list(range(201))


def test_entries_read_before_a_reader_error_are_still_sent(certs: list[DeviceCertificate]) -> None:
    from thingpress_core.errors import ManifestError

    def broken_reader() -> Iterator[DeviceCertificate]:
        yield from certs[:7]
        raise ManifestError("entry 8: not a certificate", source="fleet.txt", index=7)

    sqs = RecordingSQS()
    with pytest.raises(ManifestError, match="entry 8"):
        enqueue_manifest(broken_reader(), "https://queue", options=OPTIONS, sqs=sqs)  # type: ignore[arg-type]
    sent = [ImportRequest.parse(body) for batch in sqs.calls for body in batch]
    assert [r.thing_name for r in sent] == [c.common_name for c in certs[:7]]


def _not_enqueued(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if getattr(r, "operation", None) == "enqueue" and r.levelno >= logging.WARNING
    ]


def test_an_unreadable_entry_is_logged_once_by_the_producer_without_its_body(
    tmp_path: Path, certs: list[DeviceCertificate], caplog: pytest.LogCaptureFixture
) -> None:
    # the reader yields the bad entry and leaves its logging to whoever takes it: here, us
    from thingpress_core.manifests import read_manifest

    good = certs[0].pem
    broken = good.replace(good.splitlines()[3], "A" * len(good.splitlines()[3]))
    path = tmp_path / "bundle.pem"
    path.write_text(good + broken)
    sqs = RecordingSQS()
    with caplog.at_level(logging.INFO):
        report = enqueue_manifest(read_manifest(path, on_error="yield"), "q", options=OPTIONS, sqs=sqs)  # type: ignore[arg-type]
    assert (report.total, report.sent, len(report.failed)) == (2, 1, 1)
    about_entry = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(about_entry) == 1, [r.getMessage() for r in about_entry]
    assert getattr(about_entry[0], "entry", None) == report.failed[0].index
    assert "BEGIN CERTIFICATE" not in caplog.text
    assert good.splitlines()[2] not in caplog.text


def test_failures_past_the_cap_are_one_line_and_a_whole_send_failure_none(
    certs: list[DeviceCertificate], caplog: pytest.LogCaptureFixture
) -> None:
    from thingpress_core.errors import ManifestError

    bad = [ManifestError("entry cannot be read", source="m.csv", index=i) for i in range(1_003)]
    with caplog.at_level(logging.INFO):
        report = enqueue_manifest(bad, "q", options=OPTIONS, sqs=RecordingSQS())  # type: ignore[arg-type]
    assert len(report.failed) == 1_003
    logged = _not_enqueued(caplog)
    assert len(logged) == 1_001
    assert "listed only in the report" in logged[-1].getMessage()
    caplog.clear()
    missing = ResourceNotFoundError("no such queue", service="sqs", operation="SendMessageBatch")
    with caplog.at_level(logging.INFO), pytest.raises(EnqueueError):
        enqueue_manifest(certs[:3], "q", options=OPTIONS, sqs=RecordingSQS(error=missing))  # type: ignore[arg-type]
    assert _not_enqueued(caplog) == []
