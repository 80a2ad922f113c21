"""Property tests of send_messages against a scripted fake SQS client (no moto)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from thingpress_core.clients import ClientFactory
from thingpress_core.resilience import RateLimiter
from thingpress_core.services import SQSService
from thingpress_core.settings import ThingpressSettings

MIB = 1_048_576


class ScriptedSQS:
    """Fails the entries a script names, per request; records what was accepted."""

    def __init__(self, script: list[list[tuple[int, bool]]], drop_failed_key: bool) -> None:
        self.script = script
        self.drop_failed_key = drop_failed_key
        self.requests: list[list[dict[str, str]]] = []
        self.delivered: list[int] = []

    def send_message_batch(self, *, QueueUrl: str, Entries: list[dict[str, str]]) -> dict[str, Any]:
        self.requests.append(Entries)
        plan = dict(self.script[len(self.requests) - 1]) if len(self.requests) <= len(self.script) else {}
        successful, failed = [], []
        for position, entry in enumerate(Entries):
            if position in plan:
                failed.append({"Id": entry["Id"], "SenderFault": plan[position], "Code": "X", "Message": "m"})
            else:
                successful.append({"Id": entry["Id"], "MessageId": "id", "MD5OfMessageBody": "md5"})
                self.delivered.append(int(entry["Id"]))
        answer: dict[str, Any] = {"Successful": successful, "ResponseMetadata": {"RetryAttempts": 0}}
        if failed or not self.drop_failed_key:
            answer["Failed"] = failed
        return answer


sizes = st.lists(
    st.one_of(st.integers(0, 2000), st.sampled_from([300_000, 600_000, MIB, MIB + 1])), max_size=40
)
scripts = st.lists(
    st.lists(st.tuples(st.integers(0, 9), st.booleans()), max_size=4, unique_by=lambda t: t[0]), max_size=12
)


@settings(max_examples=150, deadline=None)
@given(sizes=sizes, script=scripts, drop=st.booleans(), attempts=st.integers(1, 4))
def test_every_message_is_accounted_for_exactly_once(
    sizes: list[int], script: list[list[tuple[int, bool]]], drop: bool, attempts: int
) -> None:
    fake = ScriptedSQS(script, drop)
    factory = ClientFactory(ThingpressSettings(region="us-east-1"), clients={"sqs": fake})
    slept: list[float] = []
    sqs = SQSService(factory, limiter=RateLimiter({}), sleep=slept.append, seed=0)
    bodies = ["é" * (n // 2) + "x" * (n % 2) for n in sizes]  # n UTF-8 bytes, half of them 2-byte
    report = sqs.send_messages("https://queue", bodies, max_attempts=attempts)

    failed = [f.index for f in report.failed]
    assert len(fake.delivered) == len(set(fake.delivered))  # never resent after success
    assert sorted(fake.delivered + failed) == list(range(len(bodies)))  # each exactly once
    assert report.sent == len(fake.delivered)
    assert failed == sorted(failed)
    assert report.batches == len(fake.requests)
    for request in fake.requests:
        assert 1 <= len(request) <= 10
        assert sum(len(e["MessageBody"].encode()) for e in request) <= MIB
    for f in report.failed:
        if sizes[f.index] > MIB:
            assert (f.code, f.sender_fault) == ("MessageTooLong", True)
    sent_ids = {int(e["Id"]) for request in fake.requests for e in request}
    assert all(sizes[i] <= MIB for i in sent_ids)  # oversized bodies are never sent
    assert all(0 <= s <= 5.0 for s in slept)
