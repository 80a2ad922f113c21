"""The raw BasicConstraints reader and key-type labels, on certificates built for the purpose."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519
from cryptography.x509.oid import NameOID

from thingpress_core.certificates import DeviceCertificate
from thingpress_core.certificates._der import read_basic_constraints_ca
from thingpress_core.certificates.generate import GeneratedCA


def _bare(
    key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey,
    *,
    basic: x509.BasicConstraints | None = None,
) -> DeviceCertificate:
    now = dt.datetime.now(dt.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bare")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
    )
    if basic is not None:
        builder = builder.add_extension(basic, critical=True)
    algorithm = (
        None if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey) else hashes.SHA256()
    )
    return DeviceCertificate.from_x509(builder.sign(key, algorithm))


def test_reader_agrees_with_cryptography(root_ca: GeneratedCA, ec_certs: list[DeviceCertificate]) -> None:
    assert read_basic_constraints_ca(root_ca.cert.x509().tbs_certificate_bytes) is True
    assert read_basic_constraints_ca(ec_certs[0].x509().tbs_certificate_bytes) is False


def test_reader_without_extensions() -> None:
    cert = _bare(ec.generate_private_key(ec.SECP256R1()))
    assert read_basic_constraints_ca(cert.x509().tbs_certificate_bytes) is None
    assert cert.is_ca is False


def test_reader_with_default_ca_flag() -> None:
    cert = _bare(
        ec.generate_private_key(ec.SECP256R1()), basic=x509.BasicConstraints(ca=False, path_length=None)
    )
    assert read_basic_constraints_ca(cert.x509().tbs_certificate_bytes) is False


@pytest.mark.parametrize(
    "data",
    [b"", b"\x30", b"\x02\x01\x00", b"\x30\x05\x01", b"\x30\x84\xff\xff\xff\xff", b"\x30\x03\xa3\x01\x00"],
)
def test_reader_on_garbage(data: bytes) -> None:
    assert read_basic_constraints_ca(data) is None


@pytest.mark.parametrize(
    ("key", "label"),
    [
        (ec.generate_private_key(ec.SECP384R1()), "EC P-384"),
        (ec.generate_private_key(ec.SECP521R1()), "EC P-521"),
        (ec.generate_private_key(ec.SECP256K1()), "EC secp256k1"),
        (ed25519.Ed25519PrivateKey.generate(), "Ed25519"),
        (ed448.Ed448PrivateKey.generate(), "Ed448"),
    ],
)
def test_key_type_labels(
    key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey, label: str
) -> None:
    assert _bare(key).key_type == label
