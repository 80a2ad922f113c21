"""S3Service against moto, and S3ObjectRef.from_event."""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING, Any

import pytest

from thingpress_core.errors import InvalidRequestError, ResourceNotFoundError, ServiceUnavailableError
from thingpress_core.services import S3Object, S3ObjectRef, S3Service

if TYPE_CHECKING:
    from thingpress_core.clients import ClientFactory
    from thingpress_core.testing import FaultInjector


@pytest.fixture
def bucket(fast_factory: ClientFactory) -> str:
    fast_factory.s3().create_bucket(Bucket="manifests")
    return "manifests"


def test_put_then_get(s3: S3Service, bucket: str) -> None:
    ref = s3.put_object(bucket, "a/b.pem", "hello")
    assert (ref.bucket, ref.key, ref.size) == (bucket, "a/b.pem", 5)
    assert ref.etag
    obj = s3.get_object(bucket, "a/b.pem")
    assert obj == S3Object(bucket=bucket, key="a/b.pem", size=5, etag=ref.etag, body=b"hello")
    assert "hello" not in repr(obj)
    assert s3.stats().calls == {"s3.GetObject": 1, "s3.PutObject": 1}


def test_put_bytes_with_content_type(s3: S3Service, bucket: str, fast_factory: ClientFactory) -> None:
    s3.put_object(bucket, "k", b"\x00\x01", content_type="application/octet-stream")
    head = fast_factory.s3().head_object(Bucket=bucket, Key="k")
    assert head["ContentType"] == "application/octet-stream"


class SpyBody:
    """Stands in for botocore's StreamingBody: records every read and the close."""

    def __init__(self, body: Any) -> None:
        self._body = body
        self.reads: list[int | None] = []
        self.closed = False

    def read(self, amount: int | None = None) -> bytes:
        self.reads.append(amount)
        return bytes(self._body.read(amount))

    def close(self) -> None:
        self.closed = True
        self._body.close()


@pytest.fixture
def spy_bodies(fast_factory: ClientFactory) -> list[SpyBody]:
    bodies: list[SpyBody] = []

    def wrap(parsed: dict[str, Any], **_: Any) -> None:
        if "Body" in parsed:
            parsed["Body"] = SpyBody(parsed["Body"])
            bodies.append(parsed["Body"])

    fast_factory.s3().meta.events.register("after-call.s3.GetObject", wrap)
    return bodies


def test_get_refuses_too_large_before_reading(s3: S3Service, bucket: str, spy_bodies: list[SpyBody]) -> None:
    s3.put_object(bucket, "big", b"x" * 2048)
    with pytest.raises(InvalidRequestError) as info:
        s3.get_object(bucket, "big", max_bytes=1024)
    assert info.value.code == "ObjectTooLarge"
    assert "s3://manifests/big" in str(info.value)
    assert "2048" in str(info.value)
    # Refused on the announced ContentLength: not one byte was read, and the body was closed.
    assert (spy_bodies[0].reads, spy_bodies[0].closed) == ([], True)
    assert s3.get_object(bucket, "big", max_bytes=2048).size == 2048
    assert spy_bodies[1].closed


def test_get_object_reads_in_large_chunks(s3: S3Service, bucket: str, spy_bodies: list[SpyBody]) -> None:
    s3.put_object(bucket, "k", b"z" * 300_000)
    assert s3.get_object(bucket, "k", max_bytes=300_000).body == b"z" * 300_000
    # one read up to the limit plus one byte, one that finds the end: not 8 KiB at a time
    assert spy_bodies[0].reads == [300_001, 1]


def test_stream_guards_against_a_body_longer_than_announced(s3: S3Service, bucket: str) -> None:
    from thingpress_core.services import S3ObjectStream

    body = io.BytesIO(b"y" * 100)
    stream = S3ObjectStream(body, bucket=bucket, key="k", size=10, etag=None, max_bytes=10)
    with pytest.raises(InvalidRequestError, match="limit is 10"):
        stream.read()
    with pytest.raises(InvalidRequestError):  # and stays refused: the rest is never read
        stream.read(5)
    assert body.tell() == 11


def test_get_missing_key_and_bucket(s3: S3Service, bucket: str) -> None:
    with pytest.raises(ResourceNotFoundError) as info:
        s3.get_object(bucket, "missing")
    assert info.value.code == "NoSuchKey"
    with pytest.raises(ResourceNotFoundError):
        s3.get_object("no-such-bucket-here", "k")
    assert s3.stats().failures == {"s3.GetObject": 2}


def test_open_object_streams_lines(s3: S3Service, bucket: str) -> None:
    s3.put_object(bucket, "lines.txt", "one\ntwo\nthree\n")
    with s3.open_object(bucket, "lines.txt") as raw:
        assert raw.size == 14
        lines = list(io.TextIOWrapper(io.BufferedReader(raw), encoding="utf-8"))
    assert lines == ["one\n", "two\n", "three\n"]
    assert raw.closed


def test_open_object_refuses_too_large(s3: S3Service, bucket: str) -> None:
    s3.put_object(bucket, "big", b"x" * 100)
    with pytest.raises(InvalidRequestError):
        s3.open_object(bucket, "big", max_bytes=99)
    with pytest.raises(InvalidRequestError):
        s3.open_object(bucket, "big", max_bytes=-1)


def test_open_object_reads_in_chunks(s3: S3Service, bucket: str) -> None:
    s3.put_object(bucket, "k", b"abcdefghij")
    with s3.open_object(bucket, "k", max_bytes=10) as stream:
        assert stream.read(4) == b"abcd"
        assert stream.read(100) == b"efghij"
        assert stream.read(1) == b""


def test_list_objects_paginates(s3: S3Service, bucket: str) -> None:
    for i in range(7):
        s3.put_object(bucket, f"in/{i}.pem", "x")
    s3.put_object(bucket, "other/z", "x")
    s3.reset_stats()
    refs = list(s3.list_objects(bucket, "in/", page_size=3))
    assert [r.key for r in refs] == [f"in/{i}.pem" for i in range(7)]
    assert all(r.size == 1 for r in refs)
    assert s3.stats().calls == {"s3.ListObjectsV2": 3}
    assert len(list(s3.list_objects(bucket))) == 8


def test_list_objects_is_lazy_and_validates(s3: S3Service, bucket: str) -> None:
    iterator = s3.list_objects(bucket)
    assert s3.stats().total_calls == 0
    assert list(iterator) == []
    with pytest.raises(InvalidRequestError, match="page_size"):
        s3.list_objects(bucket, page_size=0)  # raised at the call, before any iteration
    with pytest.raises(InvalidRequestError):
        s3.list_objects(bucket, page_size=1001)


def test_slow_down_is_retried_by_botocore(s3: S3Service, bucket: str, faults: FaultInjector) -> None:
    s3.put_object(bucket, "k", "v")
    faults.throttle("s3.GetObject", times=2)
    assert s3.get_object(bucket, "k").body == b"v"
    assert faults.count("s3.GetObject") == 2


def test_s3_5xx_maps(s3: S3Service, bucket: str, faults: FaultInjector) -> None:
    faults.server_error("s3.PutObject", status=503, code="ServiceUnavailable")
    with pytest.raises(ServiceUnavailableError):
        s3.put_object(bucket, "k", "v")


# ------------------------------------------------------------------------- events


def s3_record(bucket: str, key: str, name: str = "ObjectCreated:Put", **obj: Any) -> dict[str, Any]:
    return {
        "eventSource": "aws:s3",
        "eventName": name,
        "s3": {"bucket": {"name": bucket}, "object": {"key": key, **obj}},
    }


def test_from_s3_notification_decodes_keys() -> None:
    event = {
        "Records": [
            s3_record("b", "my+manifest+%282%29.json", size=12, versionId="v1", eTag="e"),
            s3_record("b", "dir%2Fsub%2Ffile%2B1.txt"),
        ]
    }
    refs = S3ObjectRef.from_event(event)
    assert refs == [
        S3ObjectRef(bucket="b", key="my manifest (2).json", size=12, version_id="v1", etag="e"),
        S3ObjectRef(bucket="b", key="dir/sub/file+1.txt"),
    ]


def test_from_event_skips_removals_and_test_events() -> None:
    assert S3ObjectRef.from_event({"Records": [s3_record("b", "k", name="ObjectRemoved:Delete")]}) == []
    assert S3ObjectRef.from_event({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b"}) == []


def test_from_eventbridge_object_created() -> None:
    event = {
        "version": "0",
        "source": "aws.s3",
        "detail-type": "Object Created",
        "detail": {
            "bucket": {"name": "b"},
            "object": {"key": "in/a+b%2Fc.pem", "size": 3, "etag": "e", "version-id": "v"},
        },
    }
    assert S3ObjectRef.from_event(event) == [
        S3ObjectRef(bucket="b", key="in/a b/c.pem", size=3, etag="e", version_id="v")
    ]
    assert S3ObjectRef.from_event({**event, "detail-type": "Object Deleted"}) == []


def test_from_sqs_wrapped_notification() -> None:
    inner = {"Records": [s3_record("b", "x+y")]}
    event = {"Records": [{"eventSource": "aws:sqs", "body": json.dumps(inner)}]}
    assert S3ObjectRef.from_event(event) == [S3ObjectRef(bucket="b", key="x y")]


def test_from_sns_and_sns_through_sqs() -> None:
    notification = json.dumps({"Records": [s3_record("b", "in/a+b%2Bc.pem")]})
    via_sns = {"Records": [{"EventSource": "aws:sns", "Sns": {"Message": notification}}]}
    envelope = json.dumps({"Type": "Notification", "TopicArn": "arn:t", "Message": notification})
    via_sns_then_sqs = {"Records": [{"eventSource": "aws:sqs", "body": envelope}]}
    expected = [S3ObjectRef(bucket="b", key="in/a b+c.pem")]
    assert S3ObjectRef.from_event(via_sns) == expected
    assert S3ObjectRef.from_event(via_sns_then_sqs) == expected


@pytest.mark.parametrize(
    "event",
    [
        {"Records": "nope"},
        {"Records": [{"body": json.dumps({"Type": "Notification", "Message": "{not json"})}]},
        {"Records": [{"s3": {"bucket": {}, "object": {"key": "k"}}}]},
        {"Records": [{"s3": {"bucket": {"name": "b"}, "object": {}}}]},
        {"Records": ["x"]},
        {"Records": [{"body": "{not json"}]},
        {"source": "aws.s3", "detail-type": "Object Created", "detail": {"bucket": {"name": "b"}}},
    ],
)
def test_from_event_rejects_malformed(event: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequestError, match="not a readable S3 event"):
        S3ObjectRef.from_event(event)


def test_from_event_rejects_non_mapping() -> None:
    with pytest.raises(InvalidRequestError):
        S3ObjectRef.from_event([])  # type: ignore[arg-type]
