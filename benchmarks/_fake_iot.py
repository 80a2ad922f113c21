"""A stateless in-memory IoT for the importer benchmarks: answers every call, counts it, keeps nothing.

Keeping no per-certificate state matters for the memory benchmark: whatever grows with the
number of certificates must be the importer's, not the fake's.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

ARN_PREFIX = "arn:aws:iot:us-east-1:123456789012:cert/"


@dataclass(frozen=True)
class Registration:
    certificate_id: str
    certificate_arn: str
    created: bool


@dataclass(frozen=True)
class ThingAnswer:
    created: bool
    updated: bool = False


@dataclass(frozen=True)
class Stats:
    calls: dict[str, int]
    failures: dict[str, int]


class CountingIoT:
    """Every certificate is new, every resource exists; ``latency`` seconds per call if set."""

    def __init__(self, *, latency: float = 0.0) -> None:
        self._latency = latency
        self._calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    def _count(self, operation: str) -> None:
        with self._lock:
            self._calls[operation] += 1
        if self._latency:
            time.sleep(self._latency)

    def stats(self) -> Stats:
        with self._lock:
            return Stats(calls=dict(self._calls), failures={})

    def register_certificate(
        self,
        cert: Any,
        *,
        status: str = "ACTIVE",
        created_after: object = None,
        ca_certificate: object = None,
    ) -> Registration:
        self._count(
            "iot.RegisterCertificateWithoutCA" if ca_certificate is None else "iot.RegisterCertificate"
        )
        return Registration(cert.certificate_id, ARN_PREFIX + cert.certificate_id, True)

    def create_thing(
        self,
        name: str,
        *,
        thing_type: str | None = None,
        attributes: object = None,
        billing_group: str | None = None,
    ) -> object:
        self._count("iot.CreateThing")
        return {"thingName": name}

    def ensure_thing(
        self, name: str, *, thing_type: str | None = None, attributes: object = None
    ) -> ThingAnswer:
        self._count("iot.CreateThing")
        return ThingAnswer(created=True)

    def attach_thing_principal(
        self, thing_name: str, certificate_arn: str, *, exclusive: bool = False
    ) -> None:
        self._count("iot.AttachThingPrincipal")

    def attach_policy(self, policy_name: str, certificate_arn: str) -> None:
        self._count("iot.AttachPolicy")

    def add_thing_to_group(self, thing_name: str, group_name: str) -> None:
        self._count("iot.AddThingToThingGroup")

    def get_policy(self, name: str) -> object:
        self._count("iot.GetPolicy")
        return {"name": name}

    def describe_thing_group(self, name: str) -> object:
        self._count("iot.DescribeThingGroup")
        return {"name": name}

    def describe_thing_type(self, name: str) -> object:
        self._count("iot.DescribeThingType")
        return {"name": name}


class _Body:
    """The minimal urllib3-like body botocore reads from an `AWSResponse`."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Any:
        data, self._data = self._data, b""
        if data:
            yield data

    def read(self, amt: int | None = None) -> bytes:
        data, self._data = self._data, b""
        return data

    def close(self) -> None:
        self._data = b""


class StubIoTBackend:
    """Answers a boto3 IoT client's requests in memory, after botocore built them.

    It sits on the client's ``before-send`` event like moto does, but does only what the
    import needs (registration with 409 on repeats, things, attach, add, the preflight reads),
    so the benchmark measures the importer, botocore and the injected quota rather than
    moto's request routing (about 1 ms of CPU per call). Requests another handler already
    answered (a `FaultInjector` throttle) are left alone.
    """

    def __init__(self, account: str = "123456789012", region: str = "us-east-1") -> None:
        self._prefix = f"arn:aws:iot:{region}:{account}:"
        self._registered: set[str] = set()
        self._lock = threading.Lock()

    def attach(self, client: Any) -> None:
        client.meta.events.register("before-send.iot", self._answer)

    def _answer(self, request: Any, event_name: str = "", **_: Any) -> Any:
        import base64
        import hashlib
        import json
        from urllib.parse import unquote, urlsplit

        from botocore.awsrequest import AWSResponse

        url = str(request.url)
        if ".invalid/" in url:  # answered by the fault injector already
            return None
        operation = event_name.rsplit(".", 1)[-1]
        tail = unquote(urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1])
        status, body = 200, {}
        if operation == "RegisterCertificateWithoutCA":
            pem = json.loads(request.body)["certificatePem"]
            der = base64.b64decode("".join(line for line in pem.splitlines() if "-----" not in line))
            cert_id = hashlib.sha256(der).hexdigest()
            arn = f"{self._prefix}cert/{cert_id}"
            with self._lock:
                new = cert_id not in self._registered
                self._registered.add(cert_id)
            if new:
                body = {"certificateId": cert_id, "certificateArn": arn}
            else:
                status = 409
                body = {"message": "already exists", "resourceId": cert_id, "resourceArn": arn}
        elif operation == "CreateThing":
            body = {"thingName": tail, "thingArn": f"{self._prefix}thing/{tail}", "thingId": tail}
        elif operation == "GetPolicy":
            body = {"policyName": tail, "policyArn": f"{self._prefix}policy/{tail}", "policyDocument": "{}"}
        elif operation == "DescribeThingGroup":
            body = {"thingGroupName": tail, "thingGroupArn": f"{self._prefix}thinggroup/{tail}"}
        elif operation == "DescribeThingType":
            body = {"thingTypeName": tail, "thingTypeMetadata": {"deprecated": False}}
        headers = {"Content-Type": "application/json"}
        if status == 409:
            headers["x-amzn-ErrorType"] = "ResourceAlreadyExistsException:"
        return AWSResponse(url, status, headers, _Body(json.dumps(body).encode()))


@contextlib.contextmanager
def serialized_moto() -> Iterator[None]:
    """Let in-process moto answer one request at a time.

    moto's backends are not thread-safe (e.g. AddThingToThingGroup iterates over the things
    while another thread's CreateThing adds one: "OrderedDict mutated during iteration"). Real
    AWS has no such problem, so the benchmark serializes moto itself, not the importer.
    """
    from moto.core.botocore_stubber import BotocoreStubber

    original = BotocoreStubber.process_request
    lock = threading.Lock()

    def process_request(self: Any, request: Any) -> Any:
        with lock:
            return original(self, request)

    BotocoreStubber.process_request = process_request  # type: ignore[method-assign]
    try:
        yield
    finally:
        BotocoreStubber.process_request = original  # type: ignore[method-assign]
