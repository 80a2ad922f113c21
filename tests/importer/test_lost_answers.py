"""`imported` means this run made it, whatever answer was lost on the way.

Against moto through the real `IoTService` and botocore's retries, with `FaultInjector`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from fake_iot import GROUP, POLICY, TYPE

from thingpress_core.certificates.generate import GeneratedCA, generate_device_certificates
from thingpress_core.importer import CertificateImporter, ImportOptions
from thingpress_core.resilience import RateLimiter
from thingpress_core.services import IoTService
from thingpress_core.testing import FaultInjector

if TYPE_CHECKING:
    from thingpress_core.clients import ClientFactory

pytestmark = pytest.mark.usefixtures("serial_moto")

OPTIONS = ImportOptions(
    policies=(POLICY,), thing_groups=(GROUP,), thing_type=TYPE, retry_pause=0.0, concurrency=1
)
STEPS = (
    "iot.RegisterCertificateWithoutCA",
    "iot.CreateThing",
    "iot.AttachThingPrincipal",
    "iot.AttachPolicy",
    "iot.AddThingToThingGroup",
)


def _resources(factory: ClientFactory) -> None:
    client = factory.iot()
    statement = {"Effect": "Allow", "Action": "iot:*", "Resource": "*"}
    document = {"Version": "2012-10-17", "Statement": [statement]}
    client.create_policy(policyName=POLICY, policyDocument=json.dumps(document))
    client.create_thing_group(thingGroupName=GROUP)
    client.create_thing_type(thingTypeName=TYPE)


def _things_of_each(factory: ClientFactory) -> list[int]:
    client = factory.iot()
    return [
        len(client.list_principal_things(principal=c["certificateArn"])["things"])
        for c in client.list_certificates()["certificates"]
    ]


def test_a_lost_registration_answer_whose_check_fails_is_still_imported(
    factory: ClientFactory, ca: GeneratedCA
) -> None:
    # The registration is carried out and its answer lost; botocore's retry is told "already
    # registered" and the DescribeCertificate that would tell whose it is fails too (throttled
    # past botocore's retries). The next round is told "already registered" again: this run
    # still made it.
    _resources(factory)
    cert = next(iter(generate_device_certificates(1, ca=ca)))
    service = IoTService(factory, limiter=RateLimiter({}))
    importer = CertificateImporter(service, options=OPTIONS, sleep=lambda _: None)
    with FaultInjector(factory, fast_retries=True) as faults:
        faults.lost_response("iot.RegisterCertificateWithoutCA", times=1)
        attempts = factory.settings.total_max_attempts
        faults.throttle("iot.DescribeCertificate", times=attempts)  # every attempt of one call
        report = importer.import_all([cert])
        assert faults.count("iot.DescribeCertificate") == attempts  # the check was tried, and failed
    assert (report.imported, report.already_present, report.failed) == (1, 0, 0)
    assert report.retried == 1
    assert _things_of_each(factory) == [1]


@pytest.mark.parametrize("operation", STEPS)
def test_every_step_may_lose_its_answer_and_the_counts_still_add_up(
    factory: ClientFactory, ca: GeneratedCA, operation: str
) -> None:
    _resources(factory)
    certs = list(generate_device_certificates(4, ca=ca))
    service = IoTService(factory, limiter=RateLimiter({}))
    with FaultInjector(factory, seed=4, fast_retries=True) as faults:
        faults.lost_response(operation, times=12)  # past botocore's retries: a later round finishes
        report = CertificateImporter(service, options=OPTIONS, sleep=lambda _: None).import_all(certs)
        assert faults.count(kind="lost_response") == 12
    assert (report.total, report.imported, report.failed) == (4, 4, 0)
    assert _things_of_each(factory) == [1, 1, 1, 1]
