"""TrustStore, verify_certificate and check_validity."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID
from pydantic import ValidationError

from thingpress_core.certificates import (
    DeviceCertificate,
    TrustStore,
    VerifiedChain,
    check_validity,
    verify_certificate,
)
from thingpress_core.certificates.generate import (
    GeneratedCA,
    generate_ca,
    generate_device_certificates,
    generate_key,
    issue_certificate,
)
from thingpress_core.errors import CertificateParseError, CertificateValidationError

DAY = dt.timedelta(days=1)


@pytest.fixture(scope="module")
def leaf(intermediate_ca: GeneratedCA) -> DeviceCertificate:
    return next(generate_device_certificates(1, ca=intermediate_ca))


@pytest.fixture(scope="module")
def store(root_ca: GeneratedCA) -> TrustStore:
    return TrustStore.from_pem(root_ca.cert.pem)


def test_root_intermediate_leaf(
    leaf: DeviceCertificate, store: TrustStore, root_ca: GeneratedCA, intermediate_ca: GeneratedCA
) -> None:
    verified = verify_certificate(leaf, store, intermediates=[intermediate_ca.cert])
    assert isinstance(verified, VerifiedChain)
    assert verified.leaf is leaf
    assert verified.chain == (leaf, intermediate_ca.cert, root_ca.cert)
    assert verified.root == root_ca.cert
    assert verified.intermediates == (intermediate_ca.cert,)
    with pytest.raises(ValidationError):
        verified.__setattr__("leaf", leaf)


def test_leaf_directly_under_root(
    ec_certs: list[DeviceCertificate], store: TrustStore, root_ca: GeneratedCA
) -> None:
    verified = verify_certificate(ec_certs[0], store)
    assert verified.chain == (ec_certs[0], root_ca.cert)


def test_rsa_leaf(rsa_certs: list[DeviceCertificate], store: TrustStore) -> None:
    assert verify_certificate(rsa_certs[0], store).leaf == rsa_certs[0]


def test_intermediates_order_and_extras_do_not_matter(
    leaf: DeviceCertificate, store: TrustStore, intermediate_ca: GeneratedCA
) -> None:
    unrelated = generate_ca("unrelated").cert
    verified = verify_certificate(leaf, store, intermediates=iter([unrelated, intermediate_ca.cert]))
    assert len(verified.chain) == 3


def test_missing_intermediate_is_untrusted(leaf: DeviceCertificate, store: TrustStore) -> None:
    with pytest.raises(CertificateValidationError, match="does not chain to a trusted CA") as info:
        verify_certificate(leaf, store)
    assert info.value.reason == "untrusted"
    assert info.value.certificate_id == leaf.certificate_id


def test_wrong_root_is_untrusted(leaf: DeviceCertificate, intermediate_ca: GeneratedCA) -> None:
    other = TrustStore(certificates=(generate_ca("thingpress test root").cert,))  # same name, other key
    with pytest.raises(CertificateValidationError) as info:
        verify_certificate(leaf, other, intermediates=[intermediate_ca.cert])
    assert info.value.reason == "untrusted"


def test_expired_leaf(store: TrustStore, root_ca: GeneratedCA, now: dt.datetime) -> None:
    cert = next(generate_device_certificates(1, ca=root_ca, not_before=now - 10 * DAY, not_after=now - DAY))
    with pytest.raises(CertificateValidationError, match="expired at") as info:
        verify_certificate(cert, store)
    assert info.value.reason == "expired"


def test_not_yet_valid_leaf(store: TrustStore, root_ca: GeneratedCA, now: dt.datetime) -> None:
    cert = next(generate_device_certificates(1, ca=root_ca, not_before=now + DAY, not_after=now + 10 * DAY))
    with pytest.raises(CertificateValidationError, match="not valid before") as info:
        verify_certificate(cert, store)
    assert info.value.reason == "not_yet_valid"
    assert verify_certificate(cert, store, at=now + 2 * DAY).leaf == cert


def test_at_is_used_for_the_whole_chain(
    leaf: DeviceCertificate, store: TrustStore, intermediate_ca: GeneratedCA
) -> None:
    with pytest.raises(CertificateValidationError) as info:
        verify_certificate(leaf, store, intermediates=[intermediate_ca.cert], at=leaf.not_after + DAY)
    assert info.value.reason == "expired"
    naive = (leaf.not_before + DAY).replace(tzinfo=None)
    assert len(verify_certificate(leaf, store, intermediates=[intermediate_ca.cert], at=naive).chain) == 3


def test_expired_intermediate(root_ca: GeneratedCA, store: TrustStore, now: dt.datetime) -> None:
    old = generate_ca("old intermediate", issuer=root_ca, not_before=now - 30 * DAY, not_after=now - DAY)
    cert = next(generate_device_certificates(1, ca=old))
    with pytest.raises(CertificateValidationError, match="chains through a CA that is not valid") as info:
        verify_certificate(cert, store, intermediates=[old.cert])
    assert info.value.reason == "expired"
    assert old.cert.certificate_id in str(info.value)


def test_not_yet_valid_root(now: dt.datetime) -> None:
    future = generate_ca("future root", not_before=now + DAY, not_after=now + 100 * DAY)
    cert = next(generate_device_certificates(1, ca=future, not_before=now - DAY))
    with pytest.raises(CertificateValidationError) as info:
        verify_certificate(cert, TrustStore(certificates=(future.cert,)))
    assert info.value.reason == "not_yet_valid"


def test_ca_certificate_as_leaf_is_refused(intermediate_ca: GeneratedCA, store: TrustStore) -> None:
    with pytest.raises(CertificateValidationError, match="is a CA certificate") as info:
        verify_certificate(intermediate_ca.cert, store)
    assert info.value.reason == "is_ca"


def test_self_signed_leaf_in_its_own_store(root_ca: GeneratedCA) -> None:
    cert, _ = issue_certificate("lonely")
    with pytest.raises(CertificateValidationError) as info:
        verify_certificate(cert, TrustStore(certificates=(root_ca.cert,)))
    assert info.value.reason == "untrusted"


def test_check_validity(ec_certs: list[DeviceCertificate]) -> None:
    cert = ec_certs[0]
    check_validity(cert)
    check_validity(cert, cert.not_before)
    check_validity(cert, cert.not_after)
    with pytest.raises(CertificateValidationError) as info:
        check_validity(cert, cert.not_before - dt.timedelta(seconds=1))
    assert info.value.reason == "not_yet_valid"
    with pytest.raises(CertificateValidationError) as info:
        check_validity(cert, cert.not_after + dt.timedelta(seconds=1))
    assert info.value.reason == "expired"
    later = (cert.not_after + DAY).astimezone(dt.timezone(dt.timedelta(hours=5)))
    with pytest.raises(CertificateValidationError, match="expired"):
        check_validity(cert, later)


def test_trust_store_from_path_file_and_directory(tmp_path: Path, root_ca: GeneratedCA) -> None:
    other = generate_ca("second root")
    (tmp_path / "a.pem").write_text(root_ca.cert.pem)
    (tmp_path / "b.der").write_bytes(other.cert.der)
    (tmp_path / "README.txt").write_text("not a certificate")
    (tmp_path / "sub").mkdir()
    from_dir = TrustStore.from_path(tmp_path)
    assert from_dir.certificates == (root_ca.cert, other.cert)
    assert len(from_dir) == 2
    assert other.cert in from_dir
    assert TrustStore.from_path(tmp_path / "a.pem").certificates == (root_ca.cert,)
    assert TrustStore.from_path(str(tmp_path / "a.pem")).certificates == (root_ca.cert,)
    assert "second root" in repr(from_dir)
    assert other.cert.pem.splitlines()[1] not in repr(from_dir)


def test_trust_store_from_path_errors(tmp_path: Path) -> None:
    with pytest.raises(CertificateParseError, match="no certificate files"):
        TrustStore.from_path(tmp_path)
    (tmp_path / "bad.crt").write_text("garbage")
    with pytest.raises(CertificateParseError, match=r"bad\.crt") as info:
        TrustStore.from_path(tmp_path)
    assert info.value.source == str(tmp_path / "bad.crt")
    with pytest.raises(CertificateParseError, match="cannot read"):
        TrustStore.from_path(tmp_path / "missing.pem")
    (tmp_path / "big.pem").write_bytes(b"x" * 200)
    with pytest.raises(CertificateParseError, match="larger than the limit"):
        TrustStore.from_path(tmp_path / "big.pem", max_bytes=100)


def test_trust_store_needs_a_certificate() -> None:
    # a CertificateParseError, not pydantic's ValidationError: only ThingpressError leaves the package
    with pytest.raises(CertificateParseError, match="at least one"):
        TrustStore(certificates=())


def test_trust_store_deduplicates(root_ca: GeneratedCA) -> None:
    store = TrustStore.from_pem(root_ca.cert.pem * 2)
    assert store.certificates == (root_ca.cert,)
    assert store.store() is store.store()


def _leaf_with_unparseable_extension(issuer: GeneratedCA) -> DeviceCertificate:
    """A device certificate like Microchip's: '_' inside a PrintableString of its SAN."""
    key = generate_key()
    now = dt.datetime.now(dt.timezone.utc)
    dirname = x509.Name(
        [x509.NameAttribute(NameOID.SERIAL_NUMBER, "eui48_000000000000", _type=_ASN1Type.PrintableString)]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sn0123ABCD")]))
        .issuer_name(issuer.cert.x509().subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - DAY)
        .not_valid_after(now + DAY)
        .add_extension(x509.SubjectAlternativeName([x509.DirectoryName(dirname)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(issuer.key, hashes.SHA256())
    )
    return DeviceCertificate.from_x509(cert)


def test_leaf_with_extensions_cryptography_rejects(
    root_ca: GeneratedCA, intermediate_ca: GeneratedCA, store: TrustStore
) -> None:
    cert = _leaf_with_unparseable_extension(intermediate_ca)
    with pytest.raises(ValueError):
        cert.x509().extensions  # noqa: B018
    assert cert.is_ca is False
    verified = verify_certificate(cert, store, intermediates=[intermediate_ca.cert])
    assert verified.chain == (cert, intermediate_ca.cert, root_ca.cert)
    assert (
        verify_certificate(cert, TrustStore(certificates=(intermediate_ca.cert,))).root
        == intermediate_ca.cert
    )
    with pytest.raises(CertificateValidationError) as info:
        verify_certificate(cert, store)  # intermediate missing
    assert info.value.reason == "untrusted"
    with pytest.raises(CertificateValidationError):
        verify_certificate(
            cert, TrustStore(certificates=(generate_ca().cert,)), intermediates=[intermediate_ca.cert]
        )


def test_microchip_devices_verify_against_their_signer(
    microchip_certs: list[DeviceCertificate], microchip_signers: list[DeviceCertificate]
) -> None:
    store = TrustStore(certificates=tuple(microchip_signers))
    for cert in microchip_certs:
        verified = verify_certificate(cert, store)
        assert verified.chain[0] == cert
        assert verified.root in microchip_signers
        assert verified.root.subject == cert.issuer
        assert verified.root.is_ca


def test_microchip_device_against_a_foreign_root(
    microchip_certs: list[DeviceCertificate], root_ca: GeneratedCA
) -> None:
    with pytest.raises(CertificateValidationError) as info:
        verify_certificate(microchip_certs[0], TrustStore(certificates=(root_ca.cert,)))
    assert info.value.reason == "untrusted"


def test_espressif_devices_verify_only_with_their_ca(
    espressif_certs: list[DeviceCertificate], store: TrustStore
) -> None:
    # The Espressif sample CA ("esp-test-cn") is not shipped; any other store must refuse.
    for cert in espressif_certs:
        with pytest.raises(CertificateValidationError) as info:
            verify_certificate(cert, store)
        assert info.value.reason == "untrusted"
