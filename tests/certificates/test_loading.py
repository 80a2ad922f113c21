"""load_certificates / load_certificate: every accepted encoding, and every refusal."""

from __future__ import annotations

import base64

import pytest

from thingpress_core.certificates import (
    DeviceCertificate,
    decode_transport,
    load_certificate,
    load_certificates,
)
from thingpress_core.certificates.generate import GeneratedCA, generate_device_certificates, issue_certificate
from thingpress_core.errors import CertificateError, CertificateParseError, ConfigurationError


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def test_single_pem(ec_certs: list[DeviceCertificate]) -> None:
    assert load_certificates(ec_certs[0].pem) == [ec_certs[0]]


def test_pem_bundle_with_text_before_between_and_after(ec_certs: list[DeviceCertificate]) -> None:
    text = (
        "Bag Attributes\n    friendlyName: device\nsubject=CN = device-000000\n"
        + ec_certs[0].pem
        + "\nsome comment between blocks\n\n"
        + ec_certs[1].pem
        + ec_certs[2].pem
        + "trailing notes\n"
    )
    assert load_certificates(text) == ec_certs[:3]


def test_pem_bundle_with_crlf(ec_certs: list[DeviceCertificate]) -> None:
    text = "".join(c.pem for c in ec_certs).replace("\n", "\r\n")
    assert load_certificates(text.encode()) == ec_certs


def test_pem_skips_key_blocks(ec_certs: list[DeviceCertificate]) -> None:
    key_block = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEG\n-----END PRIVATE KEY-----\n"
    assert load_certificates(key_block + ec_certs[0].pem) == [ec_certs[0]]


def test_pem_with_only_a_key_is_refused() -> None:
    with pytest.raises(CertificateParseError, match="no CERTIFICATE block"):
        load_certificates("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", source="k.pem")


def test_der_single_and_concatenated(
    ec_certs: list[DeviceCertificate], rsa_certs: list[DeviceCertificate]
) -> None:
    assert load_certificates(ec_certs[0].der) == [ec_certs[0]]
    both = ec_certs[0].der + rsa_certs[0].der
    assert load_certificates(both) == [ec_certs[0], rsa_certs[0]]


def test_der_ending_in_a_whitespace_byte(root_ca: GeneratedCA) -> None:
    # about one DER certificate in 40 ends in a byte such as 0x0a or 0x20; stripping the input
    # as if it were text cut that byte off and refused the certificate as truncated
    cert = next(c for c in generate_device_certificates(400, ca=root_ca) if c.der[-1:].isspace())
    assert load_certificates(cert.der) == [cert]
    assert load_certificates(_b64(cert.der)) == [cert]
    assert load_certificates(cert.der + cert.der) == [cert, cert]
    assert load_certificates(cert.der + b"\r\n") == [cert]
    assert decode_transport(_b64(cert.der)) == [cert]


def test_der_whose_subject_contains_a_pem_marker(root_ca: GeneratedCA) -> None:
    cert = issue_certificate("-----BEGIN CERTIFICATE-----", issuer=root_ca)[0]
    assert load_certificates(cert.der) == [cert]
    assert load_certificates(cert.pem) == [cert]


def test_base64_of_pem_and_der(ec_certs: list[DeviceCertificate]) -> None:
    bundle = (ec_certs[0].pem + ec_certs[1].pem).encode()
    assert load_certificates(_b64(bundle)) == ec_certs[:2]
    assert load_certificates(_b64(ec_certs[2].der)) == [ec_certs[2]]
    wrapped = "\n".join(_b64(bundle)[i : i + 76] for i in range(0, len(_b64(bundle)), 76))
    assert load_certificates(wrapped) == ec_certs[:2]


def test_legacy_transport_string(ec_certs: list[DeviceCertificate]) -> None:
    legacy = str(base64.b64encode(ec_certs[0].pem.encode()))  # what old Thingpress put on SQS
    assert legacy.startswith("b'")
    assert load_certificates(legacy) == [ec_certs[0]]
    assert load_certificates(legacy.encode()) == [ec_certs[0]]


def test_legacy_repr_of_pem_bytes(ec_certs: list[DeviceCertificate]) -> None:
    legacy = str(ec_certs[0].pem.encode())  # b'-----BEGIN ...\n...' with escaped newlines
    assert "\\n" in legacy
    assert load_certificates(legacy) == [ec_certs[0]]


def test_legacy_form_is_never_evaluated() -> None:
    with pytest.raises(CertificateParseError):
        load_certificates("b'' + __import__('os').system('echo pwned')")
    with pytest.raises(CertificateParseError):
        load_certificates("b'\\x41\\x42'")


def test_bad_block_names_source_and_index(ec_certs: list[DeviceCertificate]) -> None:
    broken = "-----BEGIN CERTIFICATE-----\nMIIBAAAA\n-----END CERTIFICATE-----\n"
    text = ec_certs[0].pem + ec_certs[1].pem + broken
    with pytest.raises(CertificateParseError) as info:
        load_certificates(text, source="s3://bucket/devices.pem")
    err = info.value
    assert err.source == "s3://bucket/devices.pem"
    assert err.index == 2
    assert "s3://bucket/devices.pem, certificate 3" in str(err)
    assert isinstance(err, CertificateError)
    assert isinstance(err, ValueError)


def test_unterminated_block(ec_certs: list[DeviceCertificate]) -> None:
    text = ec_certs[0].pem + "-----BEGIN CERTIFICATE-----\nMIIB\n"
    with pytest.raises(CertificateParseError, match="no END line") as info:
        load_certificates(text, source="cut.pem")
    assert info.value.index == 1


def test_mismatched_end_label(ec_certs: list[DeviceCertificate]) -> None:
    text = ec_certs[0].pem.replace("END CERTIFICATE", "END X509 CRL")
    with pytest.raises(CertificateParseError, match="ends with END X509 CRL"):
        load_certificates(text)


def test_truncated_der(ec_certs: list[DeviceCertificate]) -> None:
    with pytest.raises(CertificateParseError, match="truncated") as info:
        load_certificates(ec_certs[0].der + ec_certs[1].der[:50], source="two.der")
    assert info.value.index == 1


@pytest.mark.parametrize(
    "data",
    [b"", "   \n", "hello world", b"\x00\x01\x02", "////", "b'not base64 at all!'", b"\x30\x80", "QUJD"],
)
def test_garbage_is_a_parse_error(data: bytes | str) -> None:
    with pytest.raises(CertificateParseError, match=r"^input[:,] ") as info:
        load_certificates(data, source="input")
    assert info.value.source == "input"


@pytest.mark.parametrize("max_bytes", [0, -1, 1.5, None, True])
def test_bad_size_limit_is_a_configuration_error(
    ec_certs: list[DeviceCertificate], max_bytes: object
) -> None:
    with pytest.raises(ConfigurationError, match="max_bytes must be a positive integer"):
        load_certificates(ec_certs[0].pem, max_bytes=max_bytes)  # type: ignore[arg-type]


def test_hostile_pem_costs_linear_time() -> None:
    from tests._support.scaling import growth_ratio

    # a lazy BEGIN.*?END regular expression is quadratic on this; a linear scan is not
    def run(lines: int) -> None:
        with pytest.raises(CertificateParseError, match="no END line"):
            load_certificates(b"-----BEGIN CERTIFICATE-----\n" * lines, source="x")

    assert growth_ratio(run, 9_000) < 8


def test_pem_blocks_with_a_broken_begin_line(ec_certs: list[DeviceCertificate]) -> None:
    with pytest.raises(CertificateParseError, match="malformed BEGIN line") as info:
        load_certificates(ec_certs[0].pem + "-----BEGIN CERTIFICATE\nMIIB\n-----END CERTIFICATE-----\n")
    assert info.value.index == 1


def test_wrong_type_is_a_parse_error() -> None:
    with pytest.raises(CertificateParseError, match="expected bytes or str, got int"):
        load_certificates(42, source="x")  # type: ignore[arg-type]


def test_size_limit_refused_before_parsing(ec_certs: list[DeviceCertificate]) -> None:
    # Input that is not a certificate at all, but too large: the size is what is reported, so
    # nothing was parsed first; the message says how to raise the limit.
    junk = "x" * 200
    with pytest.raises(CertificateParseError, match="exceeds max_bytes=100") as info:
        load_certificates(junk, source="big.pem", max_bytes=100)
    assert info.value.source == "big.pem"
    assert "big.pem" in str(info.value)
    assert "pass a larger max_bytes=" in str(info.value)
    assert "read_manifest" in str(info.value)
    with pytest.raises(CertificateParseError, match="exceeds max_bytes=100"):
        load_certificates(junk.encode(), source="big.pem", max_bytes=100)
    big = ec_certs[0].pem * 2
    with pytest.raises(CertificateParseError, match="exceeds"):
        load_certificates(big, max_bytes=100)


def test_size_limit_default_is_one_mib(ec_certs: list[DeviceCertificate]) -> None:
    pem = ec_certs[0].pem
    count = 1_048_576 // len(pem) + 1
    with pytest.raises(CertificateParseError, match="1048576"):
        load_certificates(pem * count)
    assert len(load_certificates(pem * count, max_bytes=2_000_000)) == count


def test_size_limit_counts_utf8_bytes_of_text(ec_certs: list[DeviceCertificate]) -> None:
    text = ec_certs[0].pem + "é" * 600
    limit = len(text) + 100  # fits in characters, not in UTF-8 bytes
    with pytest.raises(CertificateParseError, match="bytes exceeds"):
        load_certificates(text, max_bytes=limit)


def test_load_certificate_exactly_one(ec_certs: list[DeviceCertificate]) -> None:
    assert load_certificate(ec_certs[0].der) == ec_certs[0]
    with pytest.raises(CertificateParseError, match="exactly one certificate, found 2"):
        load_certificate(ec_certs[0].pem + ec_certs[1].pem, source="pair.pem")
