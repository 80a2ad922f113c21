"""DeviceCertificate: fields, identity, repr, JSON round trip, constructors."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pydantic import BaseModel, ValidationError

from thingpress_core.certificates import DeviceCertificate
from thingpress_core.certificates.generate import GeneratedCA, issue_certificate
from thingpress_core.errors import CertificateParseError


def test_ec_certificate_fields(ec_certs: list[DeviceCertificate], root_ca: GeneratedCA) -> None:
    cert = ec_certs[0]
    assert cert.certificate_id == hashlib.sha256(cert.der).hexdigest()
    assert len(cert.certificate_id) == 64
    assert cert.common_name == "device-000000"
    assert cert.subject == "CN=device-000000,O=thingpress-core tests"
    assert cert.issuer == root_ca.cert.subject
    assert cert.key_type == "EC P-256"
    assert cert.is_ca is False
    assert root_ca.cert.is_ca is True
    assert cert.serial_number == format(cert.x509().serial_number, "x")
    assert cert.not_before.tzinfo is not None
    assert cert.not_before.utcoffset() == dt.timedelta(0)
    assert cert.not_before < cert.not_after
    assert cert.pem.startswith("-----BEGIN CERTIFICATE-----\n")
    assert cert.pem.endswith("-----END CERTIFICATE-----\n")
    assert all(len(line) <= 64 for line in cert.pem.splitlines())


def test_rsa_certificate_fields(rsa_certs: list[DeviceCertificate]) -> None:
    assert [c.key_type for c in rsa_certs] == ["RSA 2048", "RSA 2048"]
    assert rsa_certs[1].common_name == "device-000001"


def test_certificate_without_common_name(root_ca: GeneratedCA) -> None:
    cert, _ = issue_certificate(None, issuer=root_ca)
    assert cert.common_name is None
    assert cert.subject == "O=thingpress-core tests"


def test_x509_is_cached_and_matches_der(ec_certs: list[DeviceCertificate]) -> None:
    cert = DeviceCertificate.from_der(ec_certs[0].der)
    first = cert.x509()
    assert cert.x509() is first
    assert first.public_bytes(serialization.Encoding.DER) == cert.der


def test_equality_and_hash_by_certificate_id(ec_certs: list[DeviceCertificate]) -> None:
    again = DeviceCertificate.from_pem(ec_certs[0].pem)
    assert again == ec_certs[0]
    assert again is not ec_certs[0]
    assert hash(again) == hash(ec_certs[0])
    assert len({*ec_certs, again}) == len(ec_certs)
    assert ec_certs[0] != ec_certs[1]
    assert ec_certs[0] != "not a certificate"


def test_repr_shows_id_and_cn_only(ec_certs: list[DeviceCertificate]) -> None:
    cert = ec_certs[0]
    text = repr(cert)
    assert text == (f"DeviceCertificate(certificate_id={cert.certificate_id!r}, common_name='device-000000')")
    assert str(cert) == text
    body = cert.pem.splitlines()[1]
    assert body not in text

    class Holder(BaseModel):
        cert: DeviceCertificate

    assert body not in repr(Holder(cert=cert))


def test_frozen(ec_certs: list[DeviceCertificate]) -> None:
    with pytest.raises(ValidationError):
        ec_certs[0].__setattr__("common_name", "other")


def test_json_round_trip(ec_certs: list[DeviceCertificate]) -> None:
    cert = ec_certs[2]
    data = cert.model_dump(mode="json")
    assert data["certificate_id"] == cert.certificate_id
    assert data["key_type"] == "EC P-256"
    again = DeviceCertificate.model_validate_json(cert.model_dump_json())
    assert again == cert
    assert again.der == cert.der
    assert again.common_name == cert.common_name


def test_validate_from_mapping(ec_certs: list[DeviceCertificate]) -> None:
    cert = ec_certs[0]
    assert DeviceCertificate.model_validate({"pem": cert.pem}) == cert
    assert DeviceCertificate.model_validate({"der": cert.der}) == cert
    assert DeviceCertificate(der=cert.der, certificate_id=cert.certificate_id) == cert
    assert DeviceCertificate.model_validate(cert) is cert


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"der": b"\x30\x03\x01\x01\x00"}, "not a valid X.509 certificate"),
        ({"der": "not base64!"}, "'der' text must be base64"),
        ({"der": 42}, "'der' must be bytes"),
        ({"pem": 42}, "'pem' must be text or bytes"),
        ({}, "'der' must be bytes"),
        ("just text", "needs a mapping"),
    ],
)
def test_validate_rejects_bad_input(data: object, message: str) -> None:
    # a CertificateParseError, not pydantic's ValidationError: only ThingpressError leaves the package
    with pytest.raises(CertificateParseError, match=message):
        DeviceCertificate.model_validate(data)


@pytest.mark.parametrize("text", ["", "{", "[]", '{"der": 5}', '{"pem": "-----BEGIN CERTIFICATE-----"}'])
def test_validate_json_rejects_bad_input(text: str) -> None:
    with pytest.raises(CertificateParseError):
        DeviceCertificate.model_validate_json(text)


def test_validate_error_keeps_what_the_parser_knew(ec_certs: list[DeviceCertificate]) -> None:
    broken = bytearray(ec_certs[0].der)
    broken[broken.find(bytes.fromhex("a003020102")) + 4] = 5  # X.509 version 6
    with pytest.raises(CertificateParseError, match="5 is not a valid X509 version") as info:
        DeviceCertificate.model_validate({"der": bytes(broken)})
    assert info.value.certificate_id == hashlib.sha256(broken).hexdigest()
    assert info.value.__cause__ is None  # pydantic's error (with the input in it) is not chained


def test_validate_inside_another_model_is_pydantic_as_usual() -> None:
    class Holder(BaseModel):
        cert: DeviceCertificate

    with pytest.raises(ValidationError, match=r"not a valid X\.509 certificate"):
        Holder.model_validate({"cert": {"der": b"\x30\x00"}})


def test_validate_rejects_wrong_certificate_id(ec_certs: list[DeviceCertificate]) -> None:
    with pytest.raises(CertificateParseError, match="does not match") as info:
        DeviceCertificate.model_validate({"der": ec_certs[0].der, "certificate_id": "0" * 64})
    assert info.value.certificate_id == ec_certs[0].certificate_id


def test_from_x509(ec_certs: list[DeviceCertificate]) -> None:
    obj = x509.load_der_x509_certificate(ec_certs[1].der)
    cert = DeviceCertificate.from_x509(obj)
    assert cert == ec_certs[1]
    assert cert.x509() is obj


def test_from_der_names_source() -> None:
    with pytest.raises(CertificateParseError, match=r"^device\.der: not a valid X\.509") as info:
        DeviceCertificate.from_der(b"\x30\x00", source="device.der")
    assert info.value.source == "device.der"
    assert info.value.reason == "parse"


def test_from_pem_requires_exactly_one(ec_certs: list[DeviceCertificate]) -> None:
    with pytest.raises(CertificateParseError, match="exactly one PEM certificate, found 2"):
        DeviceCertificate.from_pem(ec_certs[0].pem + ec_certs[1].pem, source="two.pem")
    assert DeviceCertificate.from_pem(ec_certs[0].pem.encode()) == ec_certs[0]


def test_model_copy_keeps_cached_x509(ec_certs: list[DeviceCertificate]) -> None:
    cert = ec_certs[0]
    assert cert.model_copy().x509() is cert.x509()
