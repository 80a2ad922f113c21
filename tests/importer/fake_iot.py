"""An in-memory, thread-safe stand-in for `IoTService` with the semantics the importer relies on.

Registration answers ``created=False`` for a certificate it has seen; CreateThing is
idempotent with the same configuration (answering like a creation, as AWS does, which cannot
tell a repeat from a first call) and raises `ResourceConflictError` for another configuration
(type or attributes), as AWS does; attaching and grouping are set operations, and missing
resources raise `ResourceNotFoundError`. ``faults`` lets a test fail
any call: it gets the operation key (``iot.CreateThing``) and the subject (certificate id or
thing name) and returns an exception to raise, or None. Every call is counted, failed or not,
like `IoTService.stats()`.
"""

from __future__ import annotations

import datetime
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from thingpress_core.certificates import DeviceCertificate
from thingpress_core.errors import (
    AwsServiceError,
    ResourceConflictError,
    ResourceNotFoundError,
    ServiceUnavailableError,
    ThrottledError,
)

Fault = Callable[[str, str], "BaseException | None"]

ARN_PREFIX = "arn:aws:iot:us-east-1:123456789012:cert/"

# The resources the tests' fake account (and moto account) have.
POLICY = "DevicePolicy"
GROUP = "Fleet"
TYPE = "Sensor"


@dataclass(frozen=True)
class Registration:
    certificate_id: str
    certificate_arn: str
    created: bool


@dataclass(frozen=True)
class ThingAnswer:
    name: str
    arn: str
    thing_type: str | None
    created: bool
    updated: bool = False


@dataclass(frozen=True)
class Stats:
    calls: dict[str, int]
    failures: dict[str, int]

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())


@dataclass
class FakeThing:
    name: str
    thing_type: str | None
    principals: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    attributes: dict[str, str] = field(default_factory=dict)
    billing_group: str | None = None
    version: int = 1


@dataclass(frozen=True)
class ThingView:
    name: str
    thing_type: str | None
    attributes: dict[str, str]
    billing_group: str | None = None
    version: int | None = None


@dataclass(frozen=True)
class CertificateView:
    certificate_id: str
    status: str


def throttled(operation: str) -> ThrottledError:
    return ThrottledError(
        "Rate exceeded",
        service="iot",
        operation=operation.split(".", 1)[1],
        code="ThrottlingException",
        http_status=400,
    )


def unavailable(operation: str) -> ServiceUnavailableError:
    return ServiceUnavailableError(
        "Internal failure",
        service="iot",
        operation=operation.split(".", 1)[1],
        code="InternalFailureException",
        http_status=500,
    )


class FakeIoT:
    """A fake AWS IoT account with the given policies, groups and thing types."""

    def __init__(
        self,
        *,
        policies: Iterable[str] = (),
        thing_groups: Iterable[str] = (),
        thing_types: Iterable[str] = (),
        deprecated_types: Iterable[str] = (),
        billing_groups: Iterable[str] = (),
        ca_certificates: Mapping[str, str] | None = None,
        faults: Fault | None = None,
    ) -> None:
        self.billing_groups = set(billing_groups)
        self.ca_certificates = dict(ca_certificates or {})  # CA certificate id -> status
        self.issuers: dict[str, str] = {}  # certificate id -> CA certificate id
        self.policies = set(policies)
        self.thing_groups = set(thing_groups)
        self.thing_types = set(thing_types)
        self.deprecated_types = set(deprecated_types)
        self.faults = faults
        self.certificates: dict[str, str] = {}  # id -> status
        self.created_at: dict[str, datetime.datetime] = {}
        self.things: dict[str, FakeThing] = {}
        self.policy_targets: dict[str, list[str]] = {}  # certificate arn -> policies
        self.created_certificates = 0
        self.created_things = 0
        self._calls: Counter[str] = Counter()
        self._failures: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.threads: set[str] = set()

    # -- bookkeeping -----------------------------------------------------------------------

    def _enter(self, operation: str, subject: str) -> None:
        with self._lock:
            self._calls[operation] += 1
            self.threads.add(threading.current_thread().name)
        if self.faults is not None:
            error = self.faults(operation, subject)
            if error is not None:
                with self._lock:
                    self._failures[operation] += 1
                raise error

    def _missing(self, operation: str, what: str) -> ResourceNotFoundError:
        with self._lock:
            self._failures[operation] += 1
        return ResourceNotFoundError(
            f"{what} does not exist",
            service="iot",
            operation=operation.split(".", 1)[1],
            code="ResourceNotFoundException",
        )

    def stats(self) -> Stats:
        with self._lock:
            return Stats(calls=dict(self._calls), failures=dict(self._failures))

    # -- the IoTService methods the importer uses --------------------------------------------

    def register_certificate(
        self,
        cert: DeviceCertificate,
        *,
        status: str = "ACTIVE",
        created_after: datetime.datetime | None = None,
        ca_certificate: DeviceCertificate | None = None,
    ) -> Registration:
        operation = "iot.RegisterCertificate" if ca_certificate else "iot.RegisterCertificateWithoutCA"
        self._enter(operation, cert.certificate_id)
        with self._lock:
            created = cert.certificate_id not in self.certificates
            if created:
                if ca_certificate is not None:
                    self.issuers[cert.certificate_id] = ca_certificate.certificate_id
                self.certificates[cert.certificate_id] = status
                self.created_at[cert.certificate_id] = datetime.datetime.now(datetime.timezone.utc)
                self.created_certificates += 1
            elif created_after is not None:
                created = self.created_at[cert.certificate_id] >= created_after
        return Registration(cert.certificate_id, ARN_PREFIX + cert.certificate_id, created)

    def create_thing(
        self,
        name: str,
        *,
        thing_type: str | None = None,
        attributes: Mapping[str, str] | None = None,
        billing_group: str | None = None,
    ) -> ThingAnswer:
        self._enter("iot.CreateThing", name)
        if thing_type is not None and thing_type not in self.thing_types:
            raise self._missing("iot.CreateThing", f"thing type {thing_type}")
        if billing_group is not None and billing_group not in self.billing_groups:
            raise self._missing("iot.CreateThing", f"billing group {billing_group}")
        with self._lock:
            thing = self.things.get(name)
            if thing is None:
                self.things[name] = FakeThing(
                    name, thing_type, attributes=dict(attributes or {}), billing_group=billing_group
                )
                self.created_things += 1
            elif (
                thing.thing_type != thing_type
                or thing.attributes != dict(attributes or {})
                or thing.billing_group != billing_group
            ):
                self._failures["iot.CreateThing"] += 0  # expected: not counted as a failure
                raise ResourceConflictError(
                    f"thing {name} exists with another configuration",
                    service="iot",
                    operation="CreateThing",
                    code="ResourceAlreadyExistsException",
                    http_status=409,
                )
        return ThingAnswer(name, f"arn:thing/{name}", thing_type, created=True)

    def describe_thing(self, name: str) -> ThingView:
        self._enter("iot.DescribeThing", name)
        with self._lock:
            thing = self.things.get(name)
            if thing is None:
                raise self._missing("iot.DescribeThing", f"thing {name}")
            return ThingView(
                name, thing.thing_type, dict(thing.attributes), thing.billing_group, thing.version
            )

    def update_thing(
        self,
        name: str,
        *,
        thing_type: str | None = None,
        attributes: Mapping[str, str] | None = None,
        expected_version: int | None = None,
    ) -> None:
        self._enter("iot.UpdateThing", name)
        with self._lock:
            thing = self.things.get(name)
            if thing is None:
                raise self._missing("iot.UpdateThing", f"thing {name}")
            if expected_version is not None and expected_version != thing.version:
                raise ResourceConflictError(
                    f"thing {name} is at version {thing.version}, not {expected_version}",
                    service="iot",
                    operation="UpdateThing",
                    code="VersionConflictException",
                    http_status=409,
                )
            if thing_type is not None:
                thing.thing_type = thing_type
            thing.attributes.update(attributes or {})
            thing.version += 1

    def list_thing_principals(self, thing_name: str) -> tuple[str, ...]:
        self._enter("iot.ListThingPrincipals", thing_name)
        with self._lock:
            thing = self.things.get(thing_name)
            if thing is None:
                raise self._missing("iot.ListThingPrincipals", f"thing {thing_name}")
            return tuple(thing.principals)

    def list_principal_things(self, certificate_arn: str) -> tuple[str, ...]:
        self._enter("iot.ListPrincipalThings", certificate_arn)
        with self._lock:
            return tuple(t.name for t in self.things.values() if certificate_arn in t.principals)

    def ensure_thing(
        self, name: str, *, thing_type: str | None = None, attributes: object = None
    ) -> ThingAnswer:
        self._enter("iot.CreateThing", name)
        if thing_type is not None and thing_type not in self.thing_types:
            raise self._missing("iot.CreateThing", f"thing type {thing_type}")
        with self._lock:
            thing = self.things.get(name)
            if thing is None:
                self.things[name] = FakeThing(name, thing_type)
                self.created_things += 1
                return ThingAnswer(name, f"arn:thing/{name}", thing_type, created=True)
            if thing.thing_type != thing_type:
                # Like IoTService: CreateThing's conflict is followed by one UpdateThing.
                self._calls["iot.UpdateThing"] += 1
                thing.thing_type = thing_type
                return ThingAnswer(name, f"arn:thing/{name}", thing_type, created=False, updated=True)
        # Like IoTService against AWS: an identical CreateThing answers exactly like a new one.
        return ThingAnswer(name, f"arn:thing/{name}", thing_type, created=True)

    def attach_thing_principal(
        self, thing_name: str, certificate_arn: str, *, exclusive: bool = False
    ) -> None:
        self._enter("iot.AttachThingPrincipal", thing_name)
        with self._lock:
            thing = self.things.get(thing_name)
            if thing is None:
                raise self._missing("iot.AttachThingPrincipal", f"thing {thing_name}")
            if certificate_arn not in thing.principals:
                thing.principals.append(certificate_arn)

    def attach_policy(self, policy_name: str, certificate_arn: str) -> None:
        self._enter("iot.AttachPolicy", certificate_arn)
        if policy_name not in self.policies:
            raise self._missing("iot.AttachPolicy", f"policy {policy_name}")
        with self._lock:
            attached = self.policy_targets.setdefault(certificate_arn, [])
            if policy_name not in attached:
                attached.append(policy_name)

    def add_thing_to_group(self, thing_name: str, group_name: str) -> None:
        self._enter("iot.AddThingToThingGroup", thing_name)
        if group_name not in self.thing_groups:
            raise self._missing("iot.AddThingToThingGroup", f"thing group {group_name}")
        with self._lock:
            thing = self.things.get(thing_name)
            if thing is None:
                raise self._missing("iot.AddThingToThingGroup", f"thing {thing_name}")
            if group_name not in thing.groups:
                thing.groups.append(group_name)

    def add_thing_to_billing_group(self, thing_name: str, billing_group: str) -> None:
        self._enter("iot.AddThingToBillingGroup", thing_name)
        if billing_group not in self.billing_groups:
            raise self._missing("iot.AddThingToBillingGroup", f"billing group {billing_group}")
        with self._lock:
            thing = self.things.get(thing_name)
            if thing is None:
                raise self._missing("iot.AddThingToBillingGroup", f"thing {thing_name}")
            thing.billing_group = billing_group

    def describe_certificate(self, certificate_id: str) -> CertificateView:
        self._enter("iot.DescribeCertificate", certificate_id)
        with self._lock:
            status = self.certificates.get(certificate_id)
        if status is None:
            raise self._missing("iot.DescribeCertificate", f"certificate {certificate_id}")
        return CertificateView(certificate_id, status)

    def update_certificate_status(self, certificate_id: str, status: str) -> None:
        self._enter("iot.UpdateCertificate", certificate_id)
        with self._lock:
            if certificate_id not in self.certificates:
                raise self._missing("iot.UpdateCertificate", f"certificate {certificate_id}")
            self.certificates[certificate_id] = status

    def describe_billing_group(self, name: str) -> str:
        self._enter("iot.DescribeBillingGroup", name)
        if name not in self.billing_groups:
            raise self._missing("iot.DescribeBillingGroup", f"billing group {name}")
        return f"arn:billinggroup/{name}"

    def describe_ca_certificate(self, certificate_id: str) -> CertificateView:
        self._enter("iot.DescribeCACertificate", certificate_id)
        status = self.ca_certificates.get(certificate_id)
        if status is None:
            raise self._missing("iot.DescribeCACertificate", f"CA certificate {certificate_id}")
        return CertificateView(certificate_id, status)

    def get_policy(self, name: str) -> dict[str, str]:
        self._enter("iot.GetPolicy", name)
        if name not in self.policies:
            raise self._missing("iot.GetPolicy", f"policy {name}")
        return {"name": name}

    def describe_thing_group(self, name: str) -> dict[str, str]:
        self._enter("iot.DescribeThingGroup", name)
        if name not in self.thing_groups:
            raise self._missing("iot.DescribeThingGroup", f"thing group {name}")
        return {"name": name}

    def describe_thing_type(self, name: str) -> object:
        self._enter("iot.DescribeThingType", name)
        if name not in self.thing_types:
            raise self._missing("iot.DescribeThingType", f"thing type {name}")
        return _TypeInfo(name, name in self.deprecated_types)


@dataclass(frozen=True)
class _TypeInfo:
    name: str
    deprecated: bool


def generic_error(operation: str) -> AwsServiceError:
    return AwsServiceError("boom", service="iot", operation=operation.split(".", 1)[1], code="Weird")
