"""The importer against moto through the real services, with faults injected into botocore."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from fake_iot import GROUP, POLICY, TYPE

from thingpress_core.certificates import DeviceCertificate, TrustStore, thing_name_for
from thingpress_core.certificates.generate import GeneratedCA, generate_ca, generate_device_certificates
from thingpress_core.errors import CertificateParseError, PreflightError
from thingpress_core.importer import CertificateImporter, ImportOptions, OutcomeStatus
from thingpress_core.manifests import ManifestEntry
from thingpress_core.resilience import CircuitBreakerRegistry, RateLimiter, ResilienceSettings
from thingpress_core.services import IoTService
from thingpress_core.testing import FaultInjector

if TYPE_CHECKING:
    from thingpress_core.clients import ClientFactory

pytestmark = pytest.mark.usefixtures("serial_moto")

ACCOUNT = "123456789012"
REGION = "us-east-1"
OPTIONS = ImportOptions(
    policies=(POLICY,), thing_groups=(GROUP,), thing_type=TYPE, concurrency=8, retry_pause=0.0
)


@pytest.fixture(scope="module")
def certs500(ca: GeneratedCA) -> tuple[DeviceCertificate, ...]:
    return tuple(generate_device_certificates(500, ca=ca, cn_prefix="moto-"))


def _create_resources(factory: ClientFactory) -> None:
    client = factory.iot()
    document = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}],
    }
    client.create_policy(policyName=POLICY, policyDocument=json.dumps(document))
    client.create_thing_group(thingGroupName=GROUP)
    client.create_thing_type(thingTypeName=TYPE)


def _service(factory: ClientFactory) -> IoTService:
    # No rate limit: moto has no quota, and the tests must stay fast.
    return IoTService(factory, limiter=RateLimiter({}))


def _backend() -> Any:
    from moto.iot.models import iot_backends

    return iot_backends[ACCOUNT][REGION]


def _arn(cert: DeviceCertificate) -> str:
    return f"arn:aws:iot:{REGION}:{ACCOUNT}:cert/{cert.certificate_id}"


def _assert_wired(certs: tuple[DeviceCertificate, ...]) -> None:
    """Each thing has exactly its certificate, the policy, the group and the type; nothing extra."""
    backend = _backend()
    assert len(backend.certificates) == len(certs)
    assert len(backend.things) == len(certs)
    principals: dict[str, list[str]] = {}
    for principal_arn, thing_name in backend.principal_things:
        principals.setdefault(thing_name, []).append(principal_arn)
    policies: dict[str, list[str]] = {}
    for principal_arn, policy_name in backend.principal_policies:
        policies.setdefault(principal_arn, []).append(policy_name)
    group_members = set(backend.thing_groups[next(iter(backend.thing_groups))].things)
    for cert in certs:
        name = cert.common_name
        assert name is not None
        thing = next(t for t in backend.things.values() if t.thing_name == name)
        assert thing.thing_type is not None
        assert thing.thing_type.thing_type_name == TYPE
        assert principals[name] == [_arn(cert)]
        assert policies[_arn(cert)] == [POLICY]
        assert thing.arn in group_members
        assert backend.certificates[cert.certificate_id].status == "ACTIVE"
    assert len(group_members) == len(certs)


@pytest.mark.slow
def test_500_certificates_under_throttling_5xx_and_dropped_connections(
    factory: ClientFactory, certs500: tuple[DeviceCertificate, ...]
) -> None:
    _create_resources(factory)
    with FaultInjector(factory, seed=6, fast_retries=True) as faults:
        faults.throttle("iot.*", rate=0.20)
        faults.server_error("iot.*", rate=0.02)
        faults.connection_error("iot.*", kind="closed", rate=0.005)
        first = CertificateImporter(_service(factory), options=OPTIONS, sleep=lambda _: None)
        report = first.import_all(iter(certs500))
        throttles = faults.count(kind="throttle")
        errors_5xx = faults.count(kind="server_error")
        dropped = faults.count(kind="connection_error")

    assert (report.total, report.imported, report.failed) == (500, 500, 0), report.failures[:3]
    assert throttles > 500  # the faults really happened
    assert errors_5xx > 20
    assert dropped > 0
    assert sum(report.call_retries.values()) > 500  # and botocore retried through them
    _assert_wired(certs500)

    # A second run, still under faults: every certificate is already present, nothing is created.
    with FaultInjector(factory, seed=7, fast_retries=True) as faults:
        faults.throttle("iot.*", rate=0.20)
        faults.server_error("iot.*", rate=0.02)
        again = CertificateImporter(_service(factory), options=OPTIONS, sleep=lambda _: None)
        second = again.import_all(iter(certs500))
    assert (second.total, second.already_present, second.imported, second.failed) == (500, 500, 0, 0)
    assert second.calls["iot.RegisterCertificateWithoutCA"] >= 500
    _assert_wired(certs500)


def test_floor_calls_through_the_real_service(
    factory: ClientFactory, pool: tuple[DeviceCertificate, ...]
) -> None:
    _create_resources(factory)
    report = CertificateImporter(_service(factory), options=OPTIONS).import_all(pool[:20])
    assert report.imported == 20
    assert report.calls == {
        "iot.GetPolicy": 1,
        "iot.DescribeThingGroup": 1,
        "iot.DescribeThingType": 1,
        "iot.RegisterCertificateWithoutCA": 20,
        "iot.CreateThing": 20,
        "iot.AttachThingPrincipal": 20,
        "iot.AttachPolicy": 20,
        "iot.AddThingToThingGroup": 20,
    }
    _assert_wired(pool[:20])


def test_100_certificates_of_which_3_are_corrupt(
    factory: ClientFactory, pool: tuple[DeviceCertificate, ...]
) -> None:
    _create_resources(factory)
    items: list[object] = list(pool[:100])
    items[10] = CertificateParseError(
        "devices.pem entry 11: not a PEM certificate", source="devices.pem", index=10
    )
    items[50] = b"-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n"
    items[90] = ManifestEntry(thing_name="device 90 (spare)", certificate=pool[90], index=90)
    importer = CertificateImporter(_service(factory), options=OPTIONS)
    report = importer.import_all(items)  # type: ignore[arg-type]
    # the entry whose offered name is not valid is mapped and imported (issue 11)
    assert (report.total, report.imported, report.failed) == (100, 98, 2)
    reasons = {f.index: (f.failed_step, f.error) for f in report.failures}
    assert set(reasons) == {10, 50}
    assert reasons[10][0] == "parse"
    assert "entry 11" in (reasons[10][1] or "")
    assert reasons[50][0] == "input"
    assert len(_backend().things) == 98
    mapped = thing_name_for(pool[90], offered="device 90 (spare)")
    assert mapped in {t.thing_name for t in _backend().things.values()}


def test_a_permanent_aws_rejection_fails_only_that_certificate(
    factory: ClientFactory, pool: tuple[DeviceCertificate, ...]
) -> None:
    _create_resources(factory)
    with FaultInjector(factory, fast_retries=True) as faults:
        faults.error("iot.RegisterCertificateWithoutCA", code="CertificateValidationException", times=1)
        report = CertificateImporter(
            _service(factory), options=OPTIONS.model_copy(update={"concurrency": 1})
        ).import_all(pool[:10])
    assert (report.imported, report.failed) == (9, 1)
    failure = report.failures[0]
    assert (failure.failed_step, failure.error_type, failure.transient) == (
        "register",
        "InvalidRequestError",
        False,
    )
    assert failure.index == 0
    assert "CertificateValidationException" in (failure.error or "")
    assert len(_backend().certificates) == 9


def test_an_untrusted_certificate_is_never_registered(
    factory: ClientFactory, ca: GeneratedCA, pool: tuple[DeviceCertificate, ...]
) -> None:
    _create_resources(factory)
    stranger = next(generate_device_certificates(1, ca=generate_ca("unknown vendor"), cn_prefix="rogue-"))
    options = OPTIONS.model_copy(update={"trust_store": TrustStore.from_pem(ca.cert.pem)})
    report = CertificateImporter(_service(factory), options=options).import_all([pool[0], stranger])
    assert (report.imported, report.failed) == (1, 1)
    assert report.failures[0].failed_step == "verify"
    assert report.failures[0].certificate_id == stranger.certificate_id
    assert stranger.certificate_id not in _backend().certificates
    assert "rogue-000000" not in {t.thing_name for t in _backend().things.values()}
    assert factory.iot().list_certificates()["certificates"][0]["certificateId"] == pool[0].certificate_id


def test_preflight_against_moto_names_every_missing_resource(factory: ClientFactory) -> None:
    options = ImportOptions(policies=("P1", "P2"), thing_groups=("G1",), thing_type="T1")
    with pytest.raises(PreflightError) as info:
        CertificateImporter(_service(factory), options=options).import_all([])
    assert info.value.missing == ("policy:P1", "policy:P2", "thing_group:G1", "thing_type:T1")


def test_a_thrashing_operation_ends_failed_and_transient_after_the_rounds(
    factory: ClientFactory, pool: tuple[DeviceCertificate, ...]
) -> None:
    _create_resources(factory)
    now = [0.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:  # the importer's pauses pass the breakers' time
        sleeps.append(seconds)
        now[0] += seconds

    registry = CircuitBreakerRegistry(ResilienceSettings(), clock=lambda: now[0])
    service = IoTService(factory, limiter=RateLimiter({}), registry=registry)
    options = OPTIONS.model_copy(update={"transient_rounds": 2, "retry_pause": 0.25})
    with FaultInjector(factory, fast_retries=True) as faults:
        faults.throttle("iot.AttachPolicy")  # every attempt, forever
        report = CertificateImporter(service, options=options, sleep=sleep, clock=lambda: now[0]).import_all(
            pool[:3]
        )
    assert report.failed == 3
    assert all(f.transient and f.failed_step == "attach_policy" for f in report.failures)
    # every failure is a real try: refusals by the open breaker did not count
    assert all(f.attempts == 3 for f in report.failures)
    assert report.calls["iot.AttachPolicy"] == 9
    assert report.calls_refused.get("iot.AttachPolicy", 0) > 0  # the breaker did open
    assert report.rounds > 2  # rounds went on while the breaker refused
    assert sleeps[0] >= 0.25
    # after the breaker opened, each round waited for its recovery (30 s by default)
    assert max(sleeps) >= 30.0
    assert report.calls["iot.RegisterCertificateWithoutCA"] == 3  # resumed at AttachPolicy
    assert all(o.status is OutcomeStatus.FAILED for o in report.failures)
