"""encode_for_transport / decode_transport, including the legacy b'...' form."""

from __future__ import annotations

import base64

import pytest

from thingpress_core.certificates import DeviceCertificate, decode_transport, encode_for_transport
from thingpress_core.errors import CertificateError, CertificateParseError


def test_single_certificate_round_trip(ec_certs: list[DeviceCertificate]) -> None:
    text = encode_for_transport(ec_certs[0])
    assert base64.b64decode(text, validate=True).decode("ascii") == ec_certs[0].pem
    assert "\n" not in text
    assert decode_transport(text) == [ec_certs[0]]


def test_chain_round_trip(ec_certs: list[DeviceCertificate], rsa_certs: list[DeviceCertificate]) -> None:
    certs = [ec_certs[0], rsa_certs[0], ec_certs[1]]
    assert decode_transport(encode_for_transport(certs)) == certs
    assert decode_transport(encode_for_transport(iter(certs))) == certs


def test_legacy_form(ec_certs: list[DeviceCertificate]) -> None:
    legacy = str(base64.b64encode(ec_certs[0].pem.encode("ascii")))
    assert decode_transport(legacy) == [ec_certs[0]]
    assert decode_transport(f'b"{base64.b64encode(ec_certs[0].pem.encode()).decode()}"') == [ec_certs[0]]


def test_plain_pem_is_accepted_too(ec_certs: list[DeviceCertificate]) -> None:
    assert decode_transport(ec_certs[0].pem) == [ec_certs[0]]


def test_encode_needs_a_certificate() -> None:
    with pytest.raises(CertificateError, match="at least one"):
        encode_for_transport([])


@pytest.mark.parametrize("text", ["", "b''", "not base64", "b'QUJD'", "QUJD"])
def test_decode_errors_name_the_source(text: str) -> None:
    with pytest.raises(CertificateParseError) as info:
        decode_transport(text, source="message 7")
    assert info.value.source == "message 7"
    with pytest.raises(CertificateParseError, match="transport text"):
        decode_transport(text)


def test_decode_rejects_non_text() -> None:
    with pytest.raises(CertificateParseError, match="expected str or bytes, got NoneType"):
        decode_transport(None)  # type: ignore[arg-type]


def test_decode_size_limit(ec_certs: list[DeviceCertificate]) -> None:
    with pytest.raises(CertificateParseError, match="exceeds"):
        decode_transport(encode_for_transport(ec_certs), max_bytes=1000)
