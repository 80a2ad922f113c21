"""A thing name claimed earlier in the same run is never given to a second certificate, even by a
stand-in that replaces a thing instead of refusing CreateThing (moto without `aws_fidelity`).

Within one run the importer knows which certificate took a name; it must not depend on AWS's
409 for that. These tests failed before `ClaimedNames` and the scheduler's local refusal: moto
replaced the thing and both (or all three) certificates ended on it, exit 0.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from fake_iot import GROUP, POLICY, TYPE

from thingpress_core.certificates.generate import GeneratedCA, generate_device_certificates, issue_certificate
from thingpress_core.importer import CertificateImporter, ImportOptions
from thingpress_core.importer._claims import ClaimedNames
from thingpress_core.resilience import RateLimiter
from thingpress_core.services import IoTService

if TYPE_CHECKING:
    from thingpress_core.clients import ClientFactory

pytestmark = pytest.mark.usefixtures("serial_moto")

OPTIONS = ImportOptions(policies=(POLICY,), thing_groups=(GROUP,), thing_type=TYPE, retry_pause=0.0)


@pytest.fixture
def plain_factory() -> Iterator[ClientFactory]:
    """moto as it is: CreateThing over an existing thing replaces it (no 409)."""
    from moto import mock_aws

    from thingpress_core.clients import ClientFactory
    from thingpress_core.settings import ThingpressSettings

    with mock_aws(config={"iot": {"use_valid_cert": True}}):
        factory = ClientFactory(ThingpressSettings(region="us-east-1", account_id="123456789012"))
        client = factory.iot()
        statement = {"Effect": "Allow", "Action": "iot:*", "Resource": "*"}
        document = {"Version": "2012-10-17", "Statement": [statement]}
        client.create_policy(policyName=POLICY, policyDocument=json.dumps(document))
        client.create_thing_group(thingGroupName=GROUP)
        client.create_thing_type(thingTypeName=TYPE)
        yield factory


def _principals(factory: ClientFactory, thing: str) -> list[str]:
    return [p.rpartition("/")[2] for p in factory.iot().list_thing_principals(thingName=thing)["principals"]]


def _registered(factory: ClientFactory) -> set[str]:
    return {c["certificateId"] for c in factory.iot().list_certificates()["certificates"]}


@pytest.mark.parametrize("concurrency", [1, 8])
def test_three_certificates_with_one_name_in_one_run_keep_one_thing(
    plain_factory: ClientFactory, ca: GeneratedCA, concurrency: int
) -> None:
    certs = [issue_certificate("same-name", issuer=ca)[0] for _ in range(3)]
    importer = CertificateImporter(
        IoTService(plain_factory, limiter=RateLimiter({})),
        options=OPTIONS.model_copy(update={"concurrency": concurrency}),
    )
    report = importer.import_all(certs)
    assert (report.total, report.imported, report.failed) == (3, 1, 2)
    assert _principals(plain_factory, "same-name") == [certs[0].certificate_id]
    for failure, other in zip(report.failures, certs[1:], strict=True):
        assert (failure.certificate_id, failure.reason) == (other.certificate_id, "name_collision")
        assert failure.other_certificate_id == certs[0].certificate_id
        # known in this run (it waited for the first: no call) or read (one DescribeThing)
        assert failure.calls <= 1
    assert _registered(plain_factory) == {certs[0].certificate_id}


def test_a_name_claimed_far_earlier_in_the_run_is_read_before_registering(
    plain_factory: ClientFactory, ca: GeneratedCA
) -> None:
    first, _ = issue_certificate("far", issuer=ca)
    second, _ = issue_certificate("far", issuer=ca)
    filler = list(generate_device_certificates(12, ca=ca))
    service = IoTService(plain_factory, limiter=RateLimiter({}))
    options = OPTIONS.model_copy(update={"concurrency": 2})  # window 4: the first is long done
    report = CertificateImporter(service, options=options).import_all([first, *filler, second])
    assert (report.imported, report.failed) == (13, 1)
    failure = report.failures[0]
    assert (failure.certificate_id, failure.reason, failure.failed_step) == (
        second.certificate_id,
        "name_collision",
        "thing",
    )
    assert failure.other_certificate_id == first.certificate_id
    assert _principals(plain_factory, "far") == [first.certificate_id]
    assert second.certificate_id not in _registered(plain_factory)
    # the one extra read is the suspect's DescribeThing: the others cost the floor
    assert service.stats().calls.get("iot.DescribeThing") == 1


def test_a_certificate_repeated_far_apart_is_already_present_not_a_collision(
    plain_factory: ClientFactory, ca: GeneratedCA
) -> None:
    first, _ = issue_certificate("repeat", issuer=ca)
    filler = list(generate_device_certificates(12, ca=ca))
    service = IoTService(plain_factory, limiter=RateLimiter({}))
    importer = CertificateImporter(service, options=OPTIONS.model_copy(update={"concurrency": 2}))
    report = importer.import_all([first, *filler, first])
    assert (report.imported, report.already_present, report.failed) == (13, 1, 0)
    assert _principals(plain_factory, "repeat") == [first.certificate_id]


def test_a_dry_run_reports_a_collision_within_the_input(ca: GeneratedCA) -> None:
    certs = [issue_certificate("twin", issuer=ca)[0] for _ in range(2)]
    options = OPTIONS.model_copy(update={"dry_run": True, "preflight": False})
    report = CertificateImporter(options=options).import_all(certs)
    assert (report.skipped, report.failed) == (1, 1)
    assert report.failures[0].reason == "name_collision"


def test_claimed_names_never_forget_a_name() -> None:
    claims = ClaimedNames()
    names = [f"device-{i}" for i in range(5000)]
    assert not any(name in claims for name in names)
    for name in names:
        claims.add(name)
    assert all(name in claims for name in names)
    strangers = sum(f"other-{i}" in claims for i in range(5000))
    assert strangers <= 5  # 5,000 of 16.7 M bits set: a false "maybe" is rare


def test_two_importers_adopting_one_foreign_thing_at_once_cannot_both_win(ca: GeneratedCA) -> None:
    # A thing made outside thingpress-core, no device on it. Between this importer's read and
    # its UpdateThing, another importer (another process, another Lambda) adopts it: the update
    # is made only if the thing is still as read, so this one reads again and backs off.
    from fake_iot import ARN_PREFIX, FakeIoT

    from thingpress_core.importer import OWNER_ATTRIBUTE

    fake = FakeIoT(policies=[POLICY], thing_groups=[GROUP], thing_types=[TYPE])
    fake.faults = None
    ours, _ = issue_certificate("shared", issuer=ca)
    theirs, _ = issue_certificate("shared", issuer=ca)
    fake.create_thing("shared", thing_type=TYPE)
    raced: list[str] = []

    def other_importer_first(operation: str, subject: str) -> BaseException | None:
        if operation == "iot.UpdateThing" and not raced:
            raced.append(subject)
            fake.update_thing("shared", attributes={OWNER_ATTRIBUTE: theirs.certificate_id})
            fake.register_certificate(theirs)
            fake.attach_thing_principal("shared", f"{ARN_PREFIX}{theirs.certificate_id}")
        return None  # the call itself goes through

    fake.faults = other_importer_first
    outcome = CertificateImporter(fake, options=OPTIONS).import_certificate(ours)
    assert raced == ["shared"]
    assert (outcome.status.value, outcome.reason) == ("failed", "name_collision")
    assert outcome.other_certificate_id == theirs.certificate_id
    assert fake.things["shared"].attributes[OWNER_ATTRIBUTE] == theirs.certificate_id
    assert all(ours.certificate_id not in p for p in fake.things["shared"].principals)
