"""Fakes for the SQS/Lambda integration tests: an in-memory IoT, SQS events, Lambda contexts.

Tests build a `LambdaRuntime` (or an `SQSConsumer`) and pass it in; none patches a module
variable. The process's default runtime is forgotten around every test, so one built from a
test's environment never reaches another test.
"""

from __future__ import annotations

import collections
import datetime
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import SimpleNamespace
from typing import Any

import pytest

from thingpress_core.certificates import DeviceCertificate
from thingpress_core.errors import ResourceConflictError, ResourceNotFoundError, ThrottledError
from thingpress_core.importer import CertificateImporter, ImportOptions
from thingpress_core.integrations.aws_lambda import LambdaRuntime, LambdaSettings, default_runtime


def throttled(operation: str = "RegisterCertificateWithoutCA") -> ThrottledError:
    return ThrottledError("Rate exceeded", service="iot", operation=operation, code="ThrottlingException")


class FakeIoT:
    """Enough of `IoTService` for `CertificateImporter`: dictionaries instead of AWS."""

    def __init__(self) -> None:
        self.certificates: dict[str, str] = {}
        self.things: dict[str, str | None] = {}  # name -> thing type
        self.attributes: dict[str, dict[str, str]] = {}
        self.principals: set[tuple[str, str]] = set()
        self.policies: set[tuple[str, str]] = set()
        self.groups: set[tuple[str, str]] = set()
        self.existing: set[str] = set()  # "policy:P", "thing_group:G", "thing_type:T"
        self.failures: dict[str, list[Exception]] = {}  # certificate id -> errors to raise, in turn
        self.calls: collections.Counter[str] = collections.Counter()
        self.on_register: Callable[[DeviceCertificate], None] | None = None

    def stats(self) -> Any:
        return SimpleNamespace(calls=dict(self.calls), failures={})

    def register_certificate(
        self, cert: DeviceCertificate, /, *, status: str, created_after: datetime.datetime | None = None
    ) -> Any:
        self.calls["iot.RegisterCertificateWithoutCA"] += 1
        if self.on_register is not None:
            self.on_register(cert)
        pending = self.failures.get(cert.certificate_id)
        if pending:
            raise pending.pop(0)
        created = cert.certificate_id not in self.certificates
        self.certificates[cert.certificate_id] = status
        arn = f"arn:aws:iot:us-east-1:123456789012:cert/{cert.certificate_id}"
        return SimpleNamespace(certificate_id=cert.certificate_id, certificate_arn=arn, created=created)

    def create_thing(
        self, name: str, /, *, thing_type: str | None, attributes: Mapping[str, str] | None = None
    ) -> Any:
        """Idempotent with the same configuration; a conflict (409) otherwise, as AWS answers."""
        self.calls["iot.CreateThing"] += 1
        wanted = dict(attributes or {})
        if name in self.things and (self.things[name], self.attributes[name]) != (thing_type, wanted):
            raise ResourceConflictError(
                f"thing {name} exists with another configuration", service="iot", operation="CreateThing"
            )
        self.things[name] = thing_type
        self.attributes[name] = wanted
        return SimpleNamespace(name=name, thing_type=thing_type)

    def describe_thing(self, name: str, /) -> Any:
        self.calls["iot.DescribeThing"] += 1
        if name not in self.things:
            raise ResourceNotFoundError(f"thing {name} not found", service="iot", operation="DescribeThing")
        return SimpleNamespace(thing_type=self.things[name], attributes=dict(self.attributes[name]))

    def update_thing(
        self, name: str, /, *, thing_type: str | None, attributes: Mapping[str, str] | None = None
    ) -> None:
        self.calls["iot.UpdateThing"] += 1
        if thing_type is not None:
            self.things[name] = thing_type
        self.attributes[name].update(attributes or {})

    def list_thing_principals(self, thing_name: str, /) -> tuple[str, ...]:
        return tuple(arn for thing, arn in self.principals if thing == thing_name)

    def list_principal_things(self, certificate_arn: str, /) -> tuple[str, ...]:
        return tuple(thing for thing, arn in self.principals if arn == certificate_arn)

    def attach_thing_principal(self, thing_name: str, certificate_arn: str, /) -> None:
        self.principals.add((thing_name, certificate_arn))

    def attach_policy(self, policy_name: str, certificate_arn: str, /) -> None:
        self.policies.add((policy_name, certificate_arn))

    def add_thing_to_group(self, thing_name: str, group_name: str, /) -> None:
        self.groups.add((thing_name, group_name))

    def _describe(self, kind: str, name: str) -> object:
        self.calls[f"describe.{kind}"] += 1
        if f"{kind}:{name}" not in self.existing:
            raise ResourceNotFoundError(f"{kind} {name} not found", service="iot", operation=kind)
        return SimpleNamespace(name=name, deprecated=False)

    def get_policy(self, name: str, /) -> object:
        return self._describe("policy", name)

    def describe_thing_group(self, name: str, /) -> object:
        return self._describe("thing_group", name)

    def describe_thing_type(self, name: str, /) -> object:
        return self._describe("thing_type", name)


class FakeContext:
    """A Lambda context whose remaining time is scripted."""

    def __init__(self, remaining_ms: int | Callable[[], int]) -> None:
        self._remaining = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self._remaining() if callable(self._remaining) else self._remaining


def sqs_event(bodies: Sequence[str | None], *, prefix: str = "m") -> dict[str, Any]:
    records = []
    for i, body in enumerate(bodies):
        record: dict[str, Any] = {
            "messageId": f"{prefix}{i}",
            "receiptHandle": f"rh-{i}",
            "eventSource": "aws:sqs",
            "attributes": {"ApproximateReceiveCount": "1"},
        }
        if body is not None:
            record["body"] = body
        records.append(record)
    return {"Records": records}


def runtime_over(iot: Any, *, options: ImportOptions | None = None, **settings: Any) -> LambdaRuntime:
    """A runtime whose importer calls ``iot`` (a `FakeIoT`), with ``LambdaSettings(**settings)``."""
    importer = CertificateImporter(iot, options=options or ImportOptions())
    return LambdaRuntime(settings=LambdaSettings(**settings), importer=importer)


@pytest.fixture(autouse=True)
def _fresh_default_runtime() -> Iterator[None]:
    default_runtime.cache_clear()
    yield
    default_runtime.cache_clear()


@pytest.fixture
def fake_iot() -> FakeIoT:
    return FakeIoT()


@pytest.fixture
def fakes() -> SimpleNamespace:
    """The helpers above, for test modules (conftest is not importable by name)."""
    return SimpleNamespace(
        FakeIoT=FakeIoT,
        FakeContext=FakeContext,
        sqs_event=sqs_event,
        throttled=throttled,
        runtime_over=runtime_over,
    )
