"""Issue 16 in `IoTService` on moto: registration with a CA, the CA's description, billing groups."""

from __future__ import annotations

import pytest

from thingpress_core.certificates.generate import generate_ca, generate_device_certificates
from thingpress_core.errors import ResourceNotFoundError
from thingpress_core.services import IoTService


def test_register_with_a_ca_uses_register_certificate(iot: IoTService) -> None:
    ca = generate_ca("service CA")
    device = next(iter(generate_device_certificates(1, ca=ca)))
    client = iot.factory.client("iot")
    ca_id = client.register_ca_certificate(caCertificate=ca.cert.pem, setAsActive=True)["certificateId"]
    described = iot.describe_ca_certificate(ca_id)
    assert (described.certificate_id, described.status) == (ca_id, "ACTIVE")
    first = iot.register_certificate(device, status="INACTIVE", ca_certificate=ca.cert)
    again = iot.register_certificate(device, ca_certificate=ca.cert)
    assert (first.created, again.created) == (True, False)
    assert first.certificate_id == device.certificate_id
    assert iot.stats().calls["iot.RegisterCertificate"] == 2
    assert "iot.RegisterCertificateWithoutCA" not in iot.stats().calls
    assert iot.describe_certificate(device.certificate_id).status == "INACTIVE"
    listed = client.list_certificates_by_ca(caCertificateId=ca_id)["certificates"]
    assert [c["certificateId"] for c in listed] == [device.certificate_id]


def test_an_unknown_ca_is_not_found(iot: IoTService) -> None:
    with pytest.raises(ResourceNotFoundError):
        iot.describe_ca_certificate("0" * 64)


def test_billing_group_at_creation_and_moved(iot: IoTService) -> None:
    client = iot.factory.client("iot")
    client.create_billing_group(billingGroupName="B1")
    client.create_billing_group(billingGroupName="B2")
    assert iot.describe_billing_group("B1").endswith("billinggroup/B1")
    with pytest.raises(ResourceNotFoundError):
        iot.describe_billing_group("Nope")
    iot.create_thing("dev-1", attributes={"site": "a"}, billing_group="B1")
    assert iot.describe_thing("dev-1").billing_group == "B1"
    iot.add_thing_to_billing_group("dev-1", "B2")
    assert iot.describe_thing("dev-1").billing_group == "B2"
