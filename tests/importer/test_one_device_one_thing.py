"""Issue 11: one device, one thing. Each test here failed before the fix.

Against moto (with `aws_fidelity`, so a conflicting CreateThing answers 409 as AWS does)
through the real `IoTService`, and with the in-memory fake where a fault must be exact.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any

import pytest
from fake_iot import GROUP, POLICY, TYPE, FakeIoT, unavailable

from thingpress_core.certificates import DeviceCertificate
from thingpress_core.certificates.generate import GeneratedCA, generate_device_certificates, issue_certificate
from thingpress_core.errors import ServiceUnavailableError
from thingpress_core.importer import OWNER_ATTRIBUTE, CertificateImporter, ImportOptions, OutcomeStatus
from thingpress_core.manifests import ManifestEntry
from thingpress_core.resilience import CircuitBreakerRegistry, RateLimiter, ResilienceSettings
from thingpress_core.services import IoTService
from thingpress_core.testing import FaultInjector

if TYPE_CHECKING:
    from thingpress_core.clients import ClientFactory

pytestmark = pytest.mark.usefixtures("serial_moto")

ACCOUNT = "123456789012"
REGION = "us-east-1"
OPTIONS = ImportOptions(policies=(POLICY,), thing_groups=(GROUP,), thing_type=TYPE, retry_pause=0.0)


def _resources(factory: ClientFactory) -> None:
    client = factory.iot()
    document = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}],
    }
    client.create_policy(policyName=POLICY, policyDocument=json.dumps(document))
    client.create_thing_group(thingGroupName=GROUP)
    client.create_thing_type(thingTypeName=TYPE)


def _service(factory: ClientFactory, **kwargs: Any) -> IoTService:
    return IoTService(factory, limiter=RateLimiter({}), **kwargs)


def _principals(factory: ClientFactory, thing: str) -> list[str]:
    return [p.rpartition("/")[2] for p in factory.iot().list_thing_principals(thingName=thing)["principals"]]


def _things(factory: ClientFactory) -> list[str]:
    return sorted(t["thingName"] for t in factory.iot().list_things()["things"])


def _twins(ca: GeneratedCA, name: str = "same-name") -> tuple[DeviceCertificate, DeviceCertificate]:
    first, _ = issue_certificate(name, issuer=ca)
    second, _ = issue_certificate(name, issuer=ca)
    assert first.certificate_id != second.certificate_id
    return first, second


# -- 1. two certificates, one name -------------------------------------------------------------


def test_two_certificates_with_one_cn_in_one_run_are_not_merged(
    factory: ClientFactory, ca: GeneratedCA
) -> None:
    _resources(factory)
    first, second = _twins(ca)
    report = CertificateImporter(_service(factory), options=OPTIONS).import_all([first, second])
    assert (report.imported, report.failed) == (1, 1)
    failure = report.failures[0]
    assert failure.certificate_id == second.certificate_id
    assert failure.reason == "name_collision"
    assert failure.other_certificate_id == first.certificate_id
    assert "same-name" in (failure.error or "")
    assert first.certificate_id in (failure.error or "")
    assert _principals(factory, "same-name") == [first.certificate_id]  # one thing, one device


def test_a_name_collision_with_an_earlier_run_is_refused(factory: ClientFactory, ca: GeneratedCA) -> None:
    _resources(factory)
    first, second = _twins(ca, "plant-7")
    CertificateImporter(_service(factory), options=OPTIONS).import_certificate(first)
    later = CertificateImporter(_service(factory), options=OPTIONS)
    outcome = later.import_certificate(second)
    assert outcome.status is OutcomeStatus.FAILED
    assert (outcome.failed_step, outcome.reason) == ("thing", "name_collision")
    assert outcome.other_certificate_id == first.certificate_id
    assert _principals(factory, "plant-7") == [first.certificate_id]
    # the refused certificate is registered (AWS has it) but on no thing, with no policy
    assert (
        factory.iot().list_principal_things(
            principal=f"arn:aws:iot:{REGION}:{ACCOUNT}:cert/{second.certificate_id}"
        )["things"]
        == []
    )


def test_the_common_path_costs_no_read_call(factory: ClientFactory, ca: GeneratedCA) -> None:
    _resources(factory)
    certs = list(generate_device_certificates(5, ca=ca, cn_prefix="fresh-"))
    service = _service(factory)
    report = CertificateImporter(service, options=OPTIONS.model_copy(update={"preflight": False})).import_all(
        certs
    )
    assert report.imported == 5
    assert report.calls == {
        "iot.RegisterCertificateWithoutCA": 5,
        "iot.CreateThing": 5,
        "iot.AttachThingPrincipal": 5,
        "iot.AttachPolicy": 5,
        "iot.AddThingToThingGroup": 5,
    }
    attributes = factory.iot().describe_thing(thingName="fresh-000000")["attributes"]
    assert attributes == {OWNER_ATTRIBUTE: certs[0].certificate_id}


def test_a_thing_made_elsewhere_is_adopted_when_free_and_refused_when_another_device_is_on_it(
    factory: ClientFactory, ca: GeneratedCA
) -> None:
    _resources(factory)
    client = factory.iot()
    stranger, owner_of_taken, adopter = (issue_certificate(n, issuer=ca)[0] for n in ("x", "taken", "free"))
    client.create_thing(thingName="free", thingTypeName=TYPE)
    client.create_thing(thingName="taken")
    arn = client.register_certificate_without_ca(certificatePem=stranger.pem, status="ACTIVE")[
        "certificateArn"
    ]
    client.attach_thing_principal(thingName="taken", principal=arn)

    report = CertificateImporter(_service(factory), options=OPTIONS).import_all([adopter, owner_of_taken])
    assert (report.imported, report.failed) == (1, 1)
    assert report.failures[0].certificate_id == owner_of_taken.certificate_id
    assert report.failures[0].reason == "name_collision"
    assert report.failures[0].other_certificate_id == stranger.certificate_id
    assert _principals(factory, "free") == [adopter.certificate_id]
    assert client.describe_thing(thingName="free")["attributes"] == {OWNER_ATTRIBUTE: adopter.certificate_id}
    assert _principals(factory, "taken") == [stranger.certificate_id]


def test_a_repeated_run_is_still_idempotent(factory: ClientFactory, ca: GeneratedCA) -> None:
    _resources(factory)
    certs = list(generate_device_certificates(4, ca=ca, cn_prefix="again-"))
    CertificateImporter(_service(factory), options=OPTIONS).import_all(certs)
    second = CertificateImporter(_service(factory), options=OPTIONS).import_all(certs)
    assert (second.already_present, second.failed) == (4, 0)
    # a repeat's CreateThing matches the thing's configuration: no conflict, no read of the thing
    assert "iot.DescribeThing" not in second.calls
    assert second.calls["iot.ListPrincipalThings"] == 4
    assert _things(factory) == [f"again-{i:06d}" for i in range(4)]


# -- 2. one certificate, one thing -------------------------------------------------------------


def test_a_certificate_on_a_device_is_not_put_on_a_second_thing(
    factory: ClientFactory, ca: GeneratedCA
) -> None:
    _resources(factory)
    cert, _ = issue_certificate("cn-of-device", issuer=ca)
    by_mac = ManifestEntry(thing_name="AABBCCDDEEFF", certificate=cert, vendor_id="AABBCCDDEEFF", index=0)
    assert CertificateImporter(_service(factory), options=OPTIONS).import_certificate(by_mac).ok
    outcome = CertificateImporter(_service(factory), options=OPTIONS).import_certificate(cert)
    assert outcome.status is OutcomeStatus.FAILED
    assert (outcome.failed_step, outcome.reason) == ("register", "certificate_on_other_thing")
    assert outcome.other_things == ("AABBCCDDEEFF",)
    assert "AABBCCDDEEFF" in (outcome.error or "")
    assert _things(factory) == ["AABBCCDDEEFF"]


def test_allow_multiple_things_restores_sharing(factory: ClientFactory, ca: GeneratedCA) -> None:
    _resources(factory)
    cert, _ = issue_certificate("shared", issuer=ca)
    entry = ManifestEntry(thing_name="gateway-1", certificate=cert, index=0)
    CertificateImporter(_service(factory), options=OPTIONS).import_certificate(entry)
    sharing = CertificateImporter(
        _service(factory), options=OPTIONS.model_copy(update={"allow_multiple_things": True})
    )
    outcome = sharing.import_certificate(cert)
    assert outcome.status is OutcomeStatus.ALREADY_PRESENT
    assert _things(factory) == ["gateway-1", "shared"]
    assert "iot.ListPrincipalThings" not in sharing.iot.stats().calls


# -- 4. a lost answer ------------------------------------------------------------------------


def test_a_registration_whose_answer_was_lost_counts_as_imported(
    pool: tuple[DeviceCertificate, ...],
) -> None:
    # The first RegisterCertificateWithoutCA reaches AWS but its answer is lost (5xx after the
    # write); the next round is told "already registered". This run created it: imported.
    fake = FakeIoT(policies=[POLICY], thing_groups=[GROUP], thing_types=[TYPE])
    lost: set[str] = set()

    def faults(op: str, subject: str) -> BaseException | None:
        if op == "iot.RegisterCertificateWithoutCA" and subject not in lost:
            lost.add(subject)
            cert = next(c for c in pool if c.certificate_id == subject)
            fake.faults = None
            fake.register_certificate(cert)  # AWS acted on it...
            fake.faults = faults
            error = unavailable(op)
            error.uncertain_attempts = 1  # ...and the answer never arrived
            return error
        return None

    fake.faults = faults
    report = CertificateImporter(fake, options=OPTIONS, sleep=lambda _: None).import_all(pool[:3])
    assert (report.imported, report.already_present, report.failed) == (3, 0, 0)
    assert report.retried == 3


def test_a_throttled_attempt_is_not_a_lost_answer(
    factory: ClientFactory, pool: tuple[DeviceCertificate, ...]
) -> None:
    # Registered by an earlier run; now a throttled attempt, then 409: already present, and
    # no DescribeCertificate (a throttled request was never carried out).
    _resources(factory)
    service = _service(factory)
    service.register_certificate(pool[30])
    with FaultInjector(factory, fast_retries=True) as faults:
        faults.throttle("iot.RegisterCertificateWithoutCA", times=1)
        registration = service.register_certificate(pool[30])
    assert registration.created is False
    assert "iot.DescribeCertificate" not in service.stats().calls


def test_a_5xx_then_409_checks_the_creation_time(
    factory: ClientFactory, pool: tuple[DeviceCertificate, ...]
) -> None:
    _resources(factory)
    service = _service(factory)
    service.register_certificate(pool[31])
    with FaultInjector(factory, fast_retries=True) as faults:
        faults.server_error("iot.RegisterCertificateWithoutCA", times=1)
        earlier = service.register_certificate(
            pool[31], created_after=dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=1)
        )
    # the 5xx might have been carried out, so the creation time is read: it is older
    assert earlier.created is False
    assert service.stats().calls["iot.DescribeCertificate"] == 1
    fresh = service.register_certificate(
        pool[32], created_after=dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)
    )
    assert fresh.created is True


# -- 9. validity --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("not_before", "not_after", "reason"),
    [
        (
            dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc),
            dt.datetime(2021, 1, 1, tzinfo=dt.timezone.utc),
            "expired",
        ),
        (
            dt.datetime(2090, 1, 1, tzinfo=dt.timezone.utc),
            dt.datetime(2091, 1, 1, tzinfo=dt.timezone.utc),
            "not_yet_valid",
        ),
    ],
)
def test_certificates_outside_their_validity_are_refused_unless_allowed(
    ca: GeneratedCA, not_before: dt.datetime, not_after: dt.datetime, reason: str
) -> None:
    cert, _ = issue_certificate("old-or-early", issuer=ca, not_before=not_before, not_after=not_after)
    fake = FakeIoT(policies=[POLICY], thing_groups=[GROUP], thing_types=[TYPE])
    refused = CertificateImporter(fake, options=OPTIONS).import_certificate(cert)
    assert refused.status is OutcomeStatus.FAILED
    assert (refused.failed_step, refused.reason, refused.calls) == ("verify", reason, 0)
    shown = (not_after if reason == "expired" else not_before).date().isoformat()
    assert shown in (refused.error or "")
    assert fake.certificates == {}
    allowed = CertificateImporter(fake, options=OPTIONS.model_copy(update={"allow_expired": True}))
    assert allowed.import_certificate(cert).status is OutcomeStatus.IMPORTED


# -- 10. under faults ---------------------------------------------------------------------------


@pytest.mark.slow
def test_forty_percent_5xx_does_not_exhaust_the_retry_budget(factory: ClientFactory, ca: GeneratedCA) -> None:
    _resources(factory)
    certs = list(generate_device_certificates(150, ca=ca, cn_prefix="storm-"))
    service = _service(factory)  # default breakers and retries
    with FaultInjector(factory, seed=3, fast_retries=True) as faults:
        faults.server_error("iot.*", rate=0.40)
        report = CertificateImporter(service, options=OPTIONS, sleep=lambda _: None).import_all(certs)
        injected = faults.count(kind="server_error")
    assert injected > 300  # botocore retried through hundreds of 5xx...
    assert (report.imported, report.failed) == (150, 0), report.failures[:2]  # ...none ran dry


def test_rounds_wait_out_an_outage_instead_of_giving_up(factory: ClientFactory, ca: GeneratedCA) -> None:
    # 70 s outage, breakers with a 20 s recovery: every certificate is imported once the
    # service is back, because rounds wait for the breaker and refusals are not tries.
    _resources(factory)
    certs = list(generate_device_certificates(40, ca=ca, cn_prefix="outage-"))
    now = [0.0]
    settings = ResilienceSettings(breaker_defaults={"recovery_timeout": 20.0})
    service = _service(factory, registry=CircuitBreakerRegistry(settings, clock=lambda: now[0]))
    with FaultInjector(factory, fast_retries=True) as faults:
        faults.server_error("iot.*")

        def sleep(seconds: float) -> None:
            now[0] += seconds
            if now[0] >= 70.0:
                faults.clear()  # the service is back

        options = OPTIONS.model_copy(update={"preflight": False})
        importer = CertificateImporter(service, options=options, sleep=sleep, clock=lambda: now[0])
        report = importer.import_all(certs)
    assert (report.imported, report.failed) == (40, 0), report.failures[:2]
    assert now[0] >= 70.0
    assert report.calls_refused.get("iot.RegisterCertificateWithoutCA", 0) > 0


def test_a_deadline_ends_an_outage_that_does_not_end(factory: ClientFactory, ca: GeneratedCA) -> None:
    _resources(factory)
    certs = list(generate_device_certificates(5, ca=ca, cn_prefix="dead-"))
    now = [0.0]
    service = _service(factory, registry=CircuitBreakerRegistry(ResilienceSettings(), clock=lambda: now[0]))

    def sleep(seconds: float) -> None:
        now[0] += seconds

    options = OPTIONS.model_copy(update={"retry_deadline": 120.0, "preflight": False})
    with FaultInjector(factory, fast_retries=True) as faults:
        faults.server_error("iot.*")
        report = CertificateImporter(service, options=options, sleep=sleep, clock=lambda: now[0]).import_all(
            certs
        )
    assert report.failed == 5
    assert all(f.transient for f in report.failures)
    assert 120.0 <= now[0] <= 120.0 + 60.0


# -- 12 (importer side). Ctrl-C ------------------------------------------------------------------


def test_an_interrupt_returns_a_partial_report(pool: tuple[DeviceCertificate, ...]) -> None:
    from thingpress_core.importer import ImportInterrupted

    fake = FakeIoT(policies=[POLICY], thing_groups=[GROUP], thing_types=[TYPE])
    seen = []

    def progress(outcome: object) -> None:
        seen.append(outcome)
        if len(seen) == 5:
            raise KeyboardInterrupt

    importer = CertificateImporter(fake, options=OPTIONS.model_copy(update={"concurrency": 2}))
    with pytest.raises(ImportInterrupted) as info:
        importer.import_all(pool[:40], progress=progress)
    report = info.value.report
    assert isinstance(info.value, KeyboardInterrupt)
    assert report.interrupted is True
    assert report.total >= 5
    assert report.total == report.imported + report.already_present + report.failed + report.skipped
    done = {o.certificate_id for o in seen}
    assert not done & set(report.unfinished)
    assert report.total + len(report.unfinished) <= 40
    assert "interrupted" in report.summary()


def test_service_unavailable_error_carries_uncertain_attempts() -> None:
    error = ServiceUnavailableError("x", service="iot", operation="RegisterCertificateWithoutCA")
    assert error.uncertain_attempts == 0


def test_a_lost_answer_on_the_wire_counts_as_imported(factory: ClientFactory, ca: GeneratedCA) -> None:
    # The real path: moto registers the certificate, the answer is dropped, botocore retries
    # and is told 409. The call path knows an attempt may have been carried out, so one
    # DescribeCertificate tells this run's creation from an earlier one.
    _resources(factory)
    certs = list(generate_device_certificates(6, ca=ca, cn_prefix="lost-"))
    service = _service(factory)
    with FaultInjector(factory, seed=11, fast_retries=True) as faults:
        faults.lost_response("iot.RegisterCertificateWithoutCA", rate=0.5)
        report = CertificateImporter(
            service, options=OPTIONS.model_copy(update={"concurrency": 1})
        ).import_all(certs)
        lost = faults.count(kind="lost_response")
    assert lost >= 2
    assert (report.imported, report.already_present, report.failed) == (6, 0, 0)
    # a DescribeCertificate only where an answer was lost, at most one per certificate
    assert 1 <= report.calls["iot.DescribeCertificate"] <= min(lost, 6)
    again = CertificateImporter(_service(factory), options=OPTIONS).import_all(certs)
    assert (again.imported, again.already_present) == (0, 6)
