"""Exclusive association (issue 18): AttachThingPrincipal with EXCLUSIVE_THING, on moto, and
AWS's undocumented refusal of a certificate on another thing forged with the FaultInjector."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from fake_iot import GROUP, POLICY, TYPE

from thingpress_core.certificates import DeviceCertificate, thing_name_for
from thingpress_core.importer import CertificateImporter, ImportOptions, OutcomeStatus
from thingpress_core.resilience import RateLimiter
from thingpress_core.services import IoTService
from thingpress_core.testing import FaultInjector

if TYPE_CHECKING:
    from thingpress_core.clients import ClientFactory

pytestmark = pytest.mark.usefixtures("serial_moto")

BASE = ImportOptions(policies=(POLICY,), thing_groups=(GROUP,), thing_type=TYPE, retry_pause=0.0)


def _resources(factory: ClientFactory) -> None:
    client = factory.iot()
    document = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}],
    }
    client.create_policy(policyName=POLICY, policyDocument=json.dumps(document))
    client.create_thing_group(thingGroupName=GROUP)
    client.create_thing_type(thingTypeName=TYPE)


def _sent_principal_types(factory: ClientFactory) -> list[str | None]:
    """The thingPrincipalType of every AttachThingPrincipal the client sends, as it goes."""
    seen: list[str | None] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        seen.append(params.get("thingPrincipalType"))

    factory.iot().meta.events.register("provide-client-params.iot.AttachThingPrincipal", record)
    return seen


def _import(factory: ClientFactory, options: ImportOptions, certs: list[DeviceCertificate]) -> Any:
    return CertificateImporter(IoTService(factory, limiter=RateLimiter({})), options=options).import_all(
        certs
    )


def test_exclusive_import_attaches_every_certificate_as_exclusive_thing(
    factory: ClientFactory, pool: tuple[DeviceCertificate, ...]
) -> None:
    _resources(factory)
    seen = _sent_principal_types(factory)
    report = _import(factory, BASE.model_copy(update={"exclusive": True}), list(pool[:5]))
    assert report.imported == 5
    assert seen == ["EXCLUSIVE_THING"] * 5
    assert report.calls["iot.AttachThingPrincipal"] == 5
    principals = factory.iot().list_thing_principals(thingName=thing_name_for(pool[0]))["principals"]
    assert [p.rsplit("/", 1)[1] for p in principals] == [pool[0].certificate_id]


def test_without_exclusive_the_parameter_is_not_sent(
    factory: ClientFactory, pool: tuple[DeviceCertificate, ...]
) -> None:
    _resources(factory)
    seen = _sent_principal_types(factory)
    assert _import(factory, BASE, list(pool[:3])).imported == 3
    assert seen == [None, None, None]


@pytest.mark.parametrize(
    ("code", "status"), [("InvalidRequestException", 400), ("ResourceAlreadyExistsException", 409)]
)
def test_aws_refusing_an_exclusive_attachment_is_certificate_on_other_thing(
    factory: ClientFactory, pool: tuple[DeviceCertificate, ...], code: str, status: int
) -> None:
    _resources(factory)
    with FaultInjector(factory, fast_retries=True) as faults:
        faults.error("iot.AttachThingPrincipal", code=code, status=status, times=1)
        report = _import(
            factory, BASE.model_copy(update={"exclusive": True, "concurrency": 1}), list(pool[:3])
        )
    assert (report.imported, report.failed) == (2, 1)
    failure = report.failures[0]
    assert (failure.failed_step, failure.reason, failure.transient) == (
        "attach_principal",
        "certificate_on_other_thing",
        False,
    )
    assert pool[0].certificate_id in (failure.error or "")
    assert code in (failure.error or "")
    # nothing after the refused attachment was made: no policy, no group for that device
    attached = factory.iot().list_attached_policies(
        target=f"arn:aws:iot:us-east-1:123456789012:cert/{pool[0].certificate_id}"
    )
    assert attached["policies"] == []


def test_the_refusal_names_the_thing_the_certificate_is_on(
    factory: ClientFactory, pool: tuple[DeviceCertificate, ...]
) -> None:
    _resources(factory)
    cert = pool[10]
    client = factory.iot()
    arn = client.register_certificate_without_ca(certificatePem=cert.pem, status="ACTIVE")["certificateArn"]
    client.create_thing(thingName="bench-spare")
    client.attach_thing_principal(thingName="bench-spare", principal=arn)
    # allow_multiple_things skips the importer's own check, so AWS's answer is what refuses
    options = BASE.model_copy(update={"exclusive": True, "allow_multiple_things": True})
    with FaultInjector(factory, fast_retries=True) as faults:
        faults.error("iot.AttachThingPrincipal", code="InvalidRequestException", times=1)
        report = _import(factory, options, [cert])
    failure = report.failures[0]
    assert failure.reason == "certificate_on_other_thing"
    assert failure.other_things == ("bench-spare",)
    assert "bench-spare" in (failure.error or "")


def test_the_same_error_without_exclusive_stays_an_invalid_request(
    factory: ClientFactory, pool: tuple[DeviceCertificate, ...]
) -> None:
    _resources(factory)
    with FaultInjector(factory, fast_retries=True) as faults:
        faults.error("iot.AttachThingPrincipal", code="InvalidRequestException", times=1)
        report = _import(factory, BASE.model_copy(update={"concurrency": 1}), list(pool[:1]))
    assert report.failures[0].reason == "invalid_request"
    assert report.failures[0].status is OutcomeStatus.FAILED


def test_exclusive_is_kept_in_the_run_summary() -> None:
    assert BASE.summary()["exclusive"] is False
    assert BASE.model_copy(update={"exclusive": True}).summary()["exclusive"] is True
