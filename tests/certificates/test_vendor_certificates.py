"""Real vendor device certificates (copied from the public Thingpress test artifacts)."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

from thingpress_core.certificates import (
    DeviceCertificate,
    decode_transport,
    encode_for_transport,
    load_certificates,
)

UTC = dt.timezone.utc


def test_espressif_rsa_device_certificates(espressif_certs: list[DeviceCertificate]) -> None:
    assert len(espressif_certs) == 7
    cert = espressif_certs[0]
    assert cert.certificate_id == "349dc88b242e91b0bdc9d0a3dcc50a7f23955b854d201ec7acc74a52686ae196"
    assert cert.common_name == "6d1d54ba-ed81-4c32-8e08-f9f8c885a6ed"
    assert (
        cert.subject
        == "CN=6d1d54ba-ed81-4c32-8e08-f9f8c885a6ed,OU=ExpressLink,O=Espressif Systems,ST=MH,C=IN"
    )
    assert cert.issuer == "CN=esp-test-cn,O=Espressif,L=Pune,ST=MH,C=IN"
    assert cert.serial_number == "47aef58996e6e6ad230a9a0b8001b01faa19285c"
    assert cert.not_before == dt.datetime(2025, 4, 3, 14, 31, 9, tzinfo=UTC)
    assert cert.not_after == dt.datetime(2035, 4, 1, 14, 31, 9, tzinfo=UTC)
    assert {c.key_type for c in espressif_certs} == {"RSA 2048"}
    assert not any(c.is_ca for c in espressif_certs)


def test_microchip_ec_device_certificates(microchip_certs: list[DeviceCertificate]) -> None:
    assert len(microchip_certs) == 10
    cert = microchip_certs[0]
    assert cert.certificate_id == "47574cb6e6fea6370f10e636041663eccc567e5f45002e142f39c75e94a28335"
    assert cert.common_name == "sn0123F2408EA1FCF201"
    assert cert.issuer == "CN=Crypto Authentication Signer 2A00,O=Microchip Technology Inc"
    assert cert.serial_number == "5d40ed299b13200318e48214585d8fcc"
    assert cert.not_after == dt.datetime(2053, 6, 1, 20, 0, tzinfo=UTC)
    assert {c.key_type for c in microchip_certs} == {"EC P-256"}
    # Their subjectAltName holds "eui48_..." in a PrintableString, which cryptography refuses
    # to parse; is_ca is then read from the raw certificate.
    assert not any(c.is_ca for c in microchip_certs)


def test_microchip_signers_are_cas(microchip_signers: list[DeviceCertificate]) -> None:
    assert all(c.is_ca for c in microchip_signers)
    assert all(c.key_type == "EC P-256" for c in microchip_signers)


def test_ids_match_sha256_of_der(
    espressif_certs: list[DeviceCertificate], microchip_certs: list[DeviceCertificate]
) -> None:
    for cert in [*espressif_certs, *microchip_certs]:
        assert cert.certificate_id == hashlib.sha256(cert.der).hexdigest()


def test_vendor_certificates_travel(
    espressif_certs: list[DeviceCertificate], microchip_certs: list[DeviceCertificate]
) -> None:
    both = [*espressif_certs[:2], *microchip_certs[:2]]
    assert decode_transport(encode_for_transport(both)) == both


def test_vendor_files_in_every_encoding(data_dir: Path, microchip_certs: list[DeviceCertificate]) -> None:
    text = (data_dir / "microchip-devices.pem").read_text()
    assert load_certificates(text.replace("\n", "\r\n")) == microchip_certs
    assert load_certificates(b"".join(c.der for c in microchip_certs)) == microchip_certs
