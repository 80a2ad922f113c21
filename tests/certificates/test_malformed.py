"""Malformed certificates: each failure is a CertificateParseError that names the certificate.

Certificates are broken on purpose by editing their DER tree (tests/fuzz/_mutate.py); the
signature no longer matches, which loading does not check. The fuzz tests in tests/fuzz
cover the same ground at random; these name each case the review found.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable

import pytest
from tests.fuzz._mutate import (
    Node,
    decode,
    encode,
    extension,
    extension_list,
    oid,
    pem,
    set_extensions,
    tbs_field,
)

from thingpress_core.certificates import (
    DeviceCertificate,
    TrustStore,
    _model,
    check_validity,
    load_certificates,
    verify_certificate,
)
from thingpress_core.certificates._der import issuer_name, read_basic_constraints_ca
from thingpress_core.certificates.generate import GeneratedCA
from thingpress_core.errors import CertificateParseError, CertificateValidationError


def _edit(der: bytes, change: Callable[[Node], None]) -> bytes:
    root = decode(der)
    change(root)
    return encode(root)


def _version(value: bytes) -> Callable[[Node], None]:
    def change(root: Node) -> None:
        version = tbs_field(root, "version")
        assert version is not None
        version.children = [Node(0x02, value)]

    return change


def _time(which: int, tag: int, text: bytes) -> Callable[[Node], None]:
    def change(root: Node) -> None:
        validity = tbs_field(root, "validity")
        assert validity is not None
        assert validity.children is not None
        validity.children[which] = Node(tag, text)

    return change


def _issuer_string(tag: int, content: bytes) -> Callable[[Node], None]:
    """The issuer's first attribute value replaced by ``(tag, content)``."""

    def change(root: Node) -> None:
        name = tbs_field(root, "issuer")
        assert name is not None
        assert name.children
        atv = name.children[0].children[0]  # type: ignore[index]  # a Name is SETs of SEQUENCEs
        assert atv.children is not None
        atv.children[1] = Node(tag, content)

    return change


def _add_extensions(*added: Node) -> Callable[[Node], None]:
    def change(root: Node) -> None:
        set_extensions(root, [*(extension_list(root) or []), *added])

    return change


def _only_extensions(*extensions: Node) -> Callable[[Node], None]:
    def change(root: Node) -> None:
        set_extensions(root, [e.copy() for e in extensions])

    return change


_BASIC_CA = extension("2.5.29.19", Node(0x30, children=[Node(0x01, b"\xff")]), critical=True)
_BASIC_NOT_CA = extension("2.5.29.19", Node(0x30, children=[]), critical=True)
# a subjectAltName holding an x400Address, which cryptography does not support
_SAN_X400 = extension("2.5.29.17", Node(0x30, children=[Node(0xA3, children=[Node(0x30, children=[])])]))


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (_version(b"\x05"), "5 is not a valid X509 version"),
        (_version(b"\xff"), "TbsCertificate::version"),
        (_version(b"\x01" + b"\x00" * 20), "TbsCertificate::version"),
        (_time(0, 0x18, b"00000101000000Z"), "year 0 is out of range"),
        (_time(1, 0x18, b"00000101000000Z"), "year 0 is out of range"),
        (_issuer_string(0x03, b"\x00\x01"), "BitString"),
        (_issuer_string(0x1E, b"\xd8\x00\x00a"), "BmpString"),  # a lone surrogate
    ],
    ids=[
        "version-6",
        "version-minus-1",
        "version-huge",
        "not-before-year-0",
        "not-after-year-0",
        "issuer-bitstring",
        "issuer-bmp-surrogate",
    ],
)
def test_refused_at_load_with_source_number_and_id(
    ec_certs: list[DeviceCertificate], change: Callable[[Node], None], reason: str
) -> None:
    broken = _edit(ec_certs[0].der, change)
    bundle = ec_certs[1].pem.encode() + pem(broken) + ec_certs[2].pem.encode()
    with pytest.raises(CertificateParseError, match=reason) as info:
        load_certificates(bundle, source="devices.pem")
    error = info.value
    certificate_id = hashlib.sha256(broken).hexdigest()
    assert (error.source, error.index, error.certificate_id) == ("devices.pem", 1, certificate_id)
    assert str(error).startswith(
        f"devices.pem, certificate 2: not a valid X.509 certificate (id {certificate_id}): "
    )
    assert "\n" not in str(error)
    # the same verdict for the DER alone and from the other constructors
    with pytest.raises(CertificateParseError, match=reason):
        DeviceCertificate.from_der(broken)
    with pytest.raises(CertificateParseError, match=reason):
        DeviceCertificate.model_validate({"der": broken})


def test_a_broken_issuer_is_refused_though_a_good_one_was_seen(ec_certs: list[DeviceCertificate]) -> None:
    # the first load remembers the (good) issuer Name; the broken one has other bytes, so is read
    load_certificates(ec_certs[0].pem)
    broken = _edit(ec_certs[1].der, _issuer_string(0x03, b"\x00\x01"))
    assert issuer_name(broken) != issuer_name(ec_certs[0].der)
    with pytest.raises(CertificateParseError, match="BitString"):
        DeviceCertificate.from_der(broken)


def test_the_issuer_memory_stays_bounded(ec_certs: list[DeviceCertificate]) -> None:
    _model._READABLE_ISSUERS.clear()
    for i in range(_model._MAX_READABLE_ISSUERS + 10):
        der = _edit(ec_certs[0].der, _issuer_string(0x0C, f"issuer {i}".encode()))
        DeviceCertificate.from_der(der)
        assert len(_model._READABLE_ISSUERS) <= _model._MAX_READABLE_ISSUERS
    assert len(_model._READABLE_ISSUERS) == 10  # cleared once when full


def test_issuer_name_is_the_issuer_tlv(ec_certs: list[DeviceCertificate], root_ca: GeneratedCA) -> None:
    name = issuer_name(ec_certs[0].der)
    assert name is not None
    assert name == root_ca.cert.x509().subject.public_bytes()
    for bad in (b"", b"\x30", b"\x02\x01\x00", b"\x30\x03\x30\x01", ec_certs[0].der[:40]):
        assert issuer_name(bad) is None


def test_a_negative_serial_is_a_warning_or_an_error_as_the_filter_says(
    ec_certs: list[DeviceCertificate],
) -> None:
    def negative(root: Node) -> None:
        serial = tbs_field(root, "serial")
        assert serial is not None
        serial.content = b"\xff\x01"

    broken = _edit(ec_certs[0].der, negative)
    # as the suite runs (warnings are errors): cryptography's warning is a parse failure
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(CertificateParseError, match="serial number"):
            DeviceCertificate.from_der(broken)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cert = DeviceCertificate.from_der(broken)
        assert cert.serial_number == "-ff"


def test_duplicate_basic_constraints_count_as_ca_if_any_says_so(ec_certs: list[DeviceCertificate]) -> None:
    for order in ((_BASIC_NOT_CA, _BASIC_CA), (_BASIC_CA, _BASIC_NOT_CA)):
        cert = DeviceCertificate.from_der(_edit(ec_certs[0].der, _only_extensions(*order)))
        assert cert.is_ca is True  # cryptography raises DuplicateExtension; the raw reader answers
        assert read_basic_constraints_ca(cert.x509().tbs_certificate_bytes) is True
    twice_not = _edit(ec_certs[0].der, _only_extensions(_BASIC_NOT_CA, _BASIC_NOT_CA))
    assert DeviceCertificate.from_der(twice_not).is_ca is False


def test_an_unsupported_general_name_leaves_is_ca_readable(root_ca: GeneratedCA) -> None:
    der = _edit(root_ca.cert.der, _add_extensions(_SAN_X400))
    cert = DeviceCertificate.from_der(der)
    assert cert.is_ca is True
    assert cert.key_type == "EC P-256"


def test_a_ca_with_an_unreadable_extension_is_still_refused_as_a_device(root_ca: GeneratedCA) -> None:
    cert = DeviceCertificate.from_der(_edit(root_ca.cert.der, _add_extensions(_SAN_X400)))
    with pytest.raises(CertificateValidationError) as info:
        verify_certificate(cert, TrustStore(certificates=(root_ca.cert,)))
    assert info.value.reason == "is_ca"


def test_an_unknown_curve_is_an_unknown_key_type(ec_certs: list[DeviceCertificate]) -> None:
    def curve(root: Node) -> None:
        spki = tbs_field(root, "spki")
        assert spki is not None
        assert spki.children is not None
        algorithm = spki.children[0].children
        assert algorithm is not None
        algorithm[1] = Node(0x06, oid("1.3.132.0.1"))  # sect163k1, which cryptography does not load

    cert = DeviceCertificate.from_der(_edit(ec_certs[0].der, curve))
    assert cert.key_type == "unknown (1.2.840.10045.2.1)"


def test_an_unparsed_certificate_names_itself_from_every_property() -> None:
    der = b"\x30\x03\x02\x01\x05"
    certificate_id = hashlib.sha256(der).hexdigest()
    cert = DeviceCertificate.model_construct(der=der, certificate_id=certificate_id)
    assert cert.pem.startswith("-----BEGIN CERTIFICATE-----\n")
    for read in (
        lambda: cert.x509(),
        lambda: cert.subject,
        lambda: cert.issuer,
        lambda: cert.serial_number,
        lambda: cert.not_before,
        lambda: cert.not_after,
        lambda: cert.key_type,
        lambda: cert.is_ca,
        lambda: check_validity(cert),
    ):
        with pytest.raises(
            CertificateParseError, match=f"^not a valid X.509 certificate \\(id {certificate_id}\\)"
        ):
            read()


@pytest.mark.parametrize("field", ["issuer", "subject", "not_before", "not_after", "key_type", "is_ca"])
def test_a_lazy_field_that_fails_names_the_certificate(field: str) -> None:
    # A certificate that loaded answers every property. One built around the loaders (here
    # model_construct over bytes that are no certificate) fails on first use, naming its id.
    certificate_id = hashlib.sha256(b"not a certificate").hexdigest()
    cert = DeviceCertificate.model_construct(
        der=b"\x30\x03\x02\x01\x05", certificate_id=certificate_id, common_name=None
    )
    with pytest.raises(CertificateParseError, match=f"id {certificate_id}"):
        getattr(cert, field)


def test_from_x509_reads_the_fields_load_reads(ec_certs: list[DeviceCertificate]) -> None:
    from cryptography import x509

    broken = _edit(ec_certs[0].der, _issuer_string(0x03, b"\x00\x01"))
    parsed = x509.load_der_x509_certificate(broken)  # cryptography parses the issuer lazily
    with pytest.raises(CertificateParseError, match=f"id {hashlib.sha256(broken).hexdigest()}"):
        DeviceCertificate.from_x509(parsed)
