"""Fixtures for manifest tests: real sample files, nested Infineon 7z archives, signed Microchip entries."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from thingpress_core.certificates import DeviceCertificate

TYPES = ("E0E0", "E0E1", "E0E2")


def seven_zip(
    members: Iterable[tuple[str, bytes]],
    *,
    password: str | None = None,
    filters: list[dict[str, int]] | None = None,
    encoded_header: bool = True,
) -> bytes:
    """A solid 7z archive of ``members`` in the order given (py7zr: one block, LZMA2 by default)."""
    import py7zr

    buffer = io.BytesIO()
    with py7zr.SevenZipFile(buffer, "w", password=password, filters=filters) as archive:
        if not encoded_header:
            archive.set_encoded_header_mode(False)
        for name, data in members:
            archive.writestr(data, name)
    return buffer.getvalue()


def seven_zip_blocks(blocks: Iterable[Sequence[tuple[str, bytes]]]) -> bytes:
    """A 7z archive with one solid block (7z "folder") per item of ``blocks``."""
    import py7zr

    buffer = io.BytesIO()
    for number, members in enumerate(blocks):
        with py7zr.SevenZipFile(buffer, "w" if number == 0 else "a") as archive:
            for name, data in members:
                archive.writestr(data, name)
        buffer.seek(0)
    return buffer.getvalue()


def uint64_7z(value: int) -> bytes:
    """7z's variable-length number: leading one bits of the first byte count the bytes after it."""
    for extra in range(8):
        if value < 1 << (7 * (extra + 1)):
            high = value >> (8 * extra)
            first = (0xFF00 >> extra) & 0xFF | high
            return bytes([first]) + (value & ((1 << (8 * extra)) - 1)).to_bytes(extra, "little")
    return b"\xff" + value.to_bytes(8, "little")


def header_of(archive: bytes) -> tuple[bytes, bytes]:
    """(the packed streams, the next header) of a 7z archive."""
    offset = int.from_bytes(archive[12:20], "little")
    size = int.from_bytes(archive[20:28], "little")
    return archive[32 : 32 + offset], archive[32 + offset : 32 + offset + size]


def with_header(body: bytes, header: bytes) -> bytes:
    """A 7z archive of packed streams ``body`` and ``header``, with a signature header whose CRCs match."""
    tail = len(body).to_bytes(8, "little") + len(header).to_bytes(8, "little")
    tail += zlib.crc32(header).to_bytes(4, "little")
    return b"7z\xbc\xaf\x27\x1c\x00\x04" + zlib.crc32(tail).to_bytes(4, "little") + tail + body + header


def patch_header(archive: bytes, old: bytes, new: bytes) -> bytes:
    """``archive`` (written with ``encoded_header=False``) with ``old`` replaced once in its header."""
    body, header = header_of(archive)
    assert header.count(old) == 1, "the pattern must be unique in the header"
    return with_header(body, header.replace(old, new))


def encode_header(
    archive: bytes, *, lzma1: bool = True, dict_size: int = 1 << 16, declared_size: int | None = None
) -> bytes:
    """``archive`` (written with ``encoded_header=False``) with its header compressed the way 7-Zip does
    (LZMA, or LZMA2), optionally declaring another dictionary or decoded size than the real ones."""
    import lzma

    body, header = header_of(archive)
    if lzma1:
        method = b"\x03\x01\x01"
        props = bytes([3 + 2 * 45]) + dict_size.to_bytes(4, "little")  # lc=3 lp=0 pb=2
        packed = lzma.compress(header, format=lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA1}])
    else:
        method = b"\x21"
        code = next(p for p in range(41) if p == 40 or (2 | (p & 1)) << (p // 2 + 11) >= dict_size)
        props = bytes([code])
        packed = lzma.compress(header, format=lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA2}])
    encoded = b"\x17\x06" + uint64_7z(len(body)) + b"\x01\x09" + uint64_7z(len(packed)) + b"\x00"
    encoded += b"\x07\x0b\x01\x00\x01" + bytes([len(method) | 0x20]) + method + uint64_7z(len(props)) + props
    encoded += b"\x0c" + uint64_7z(len(header) if declared_size is None else declared_size)
    encoded += b"\x0a\x01" + zlib.crc32(header).to_bytes(4, "little") + b"\x00\x00"
    return with_header(body + packed, encoded)


def crlf_pem(cert: DeviceCertificate) -> bytes:
    return cert.pem.replace("\r\n", "\n").replace("\n", "\r\n").encode("ascii")


def infineon_archive(
    certs_by_type: dict[str, Sequence[DeviceCertificate]],
    *,
    reel: str = "R0001_3f2a9c1e-5b7d-4e21-9a0c-1d2e3f405162",
    extra_inner: Sequence[tuple[str, bytes]] = (),
) -> bytes:
    """An OPTIGA Trust M style archive: one inner archive per type, an encrypted keys archive."""
    members: list[tuple[str, bytes]] = [("README.txt", b"Infineon OPTIGA Trust M certificates\r\n")]
    for cert_type, certs in certs_by_type.items():
        inner = [(f"{i:016X}_{cert_type}.pem", crlf_pem(c)) for i, c in enumerate(certs)]
        inner.extend(extra_inner)
        members.append((f"{reel}_{cert_type}_Certs.7z", seven_zip(inner)))
    keys = seven_zip(
        [("0000000000000000_E0F0.key", b"-----BEGIN EC PRIVATE KEY-----\nnot a key\n")], password="s3cret"
    )
    members.append((f"{reel}_keys.7z", keys))
    return seven_zip(members)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class Signer:
    """A manifest signer with its own certificate, to build signed Microchip entries."""

    certificate: x509.Certificate

    def __init__(
        self,
        name: str = "Test Manifest Signer",
        *,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        issuer: Signer | None = None,
        extensions: Sequence[x509.ExtensionType] = (),
    ) -> None:
        """Self-signed with only a SubjectKeyIdentifier (as Microchip's signers, less their
        critical cA=false) unless ``issuer`` signs it; ``extensions`` are added (critical)."""
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = dt.datetime.now(dt.timezone.utc)
        public = self.key.public_key()
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer.certificate.subject if issuer else subject)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or now - dt.timedelta(days=3650))
            .not_valid_after(not_after or now + dt.timedelta(days=3650))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        )
        for extension in extensions:
            builder = builder.add_extension(extension, critical=True)
        self.certificate = builder.sign(issuer.key if issuer else self.key, hashes.SHA256())
        der = self.certificate.public_bytes(serialization.Encoding.DER)
        self.kid = b64url(x509.SubjectKeyIdentifier.from_public_key(public).digest)
        self.x5t = b64url(hashlib.sha256(der).digest())

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def entry(
        self,
        unique_id: str,
        *,
        device: DeviceCertificate | None = None,
        chain: Sequence[DeviceCertificate] = (),
        jwk_key: ec.EllipticCurvePublicKey | None = None,
        header_id: str | None = None,
        timestamp: str = "2025-06-01T20:14:53.773Z",
        kid: str | None = None,
        header: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {"version": 1, "provisioningTimestamp": timestamp, "uniqueId": unique_id}
        if device is not None:
            key = jwk_key or device.x509().public_key()
            assert isinstance(key, ec.EllipticCurvePublicKey)
            numbers = key.public_numbers()
            payload["publicKeySet"] = {
                "keys": [
                    {
                        "kid": "0",
                        "kty": "EC",
                        "crv": "P-256",
                        "x": b64url(numbers.x.to_bytes(32, "big")),
                        "y": b64url(numbers.y.to_bytes(32, "big")),
                        "x5c": [base64.b64encode(c.der).decode("ascii") for c in (device, *chain)],
                    }
                ]
            }
        entry = self.sign(json.dumps(payload).encode(), kid=kid, header=header)
        entry["header"] = {"uniqueId": header_id if header_id is not None else unique_id}
        return entry

    def sign(
        self, payload: bytes, *, kid: str | None = None, header: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """A flattened JWS entry whose signature over ``payload`` (any bytes) verifies.

        ``header`` adds to (or replaces) the protected header's parameters."""
        fields: dict[str, Any] = {"alg": "ES256", "kid": kid or self.kid, "typ": "JWT", "x5t#S256": self.x5t}
        fields.update(header or {})
        protected = b64url(json.dumps(fields).encode())
        body = b64url(payload)
        der_sig = self.key.sign(f"{protected}.{body}".encode("ascii"), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der_sig)
        return {
            "payload": body,
            "protected": protected,
            "signature": b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big")),
        }


DATA = Path(__file__).resolve().parent.parent / "data" / "manifests"


@pytest.fixture
def data_dir() -> Path:
    return DATA


@pytest.fixture
def verifiers() -> list[Path]:
    return sorted((DATA / "microchip" / "verifiers").glob("*.crt"))


@pytest.fixture(scope="session")
def device_certs() -> dict[str, list[DeviceCertificate]]:
    """Five EC device certificates per OPTIGA slot type."""
    from thingpress_core.certificates.generate import generate_device_certificates

    return {t: list(generate_device_certificates(5, cn_prefix=f"dev-{t}-")) for t in TYPES}


@pytest.fixture(scope="session")
def make_signer() -> type[Signer]:
    return Signer


@pytest.fixture(scope="session")
def signer() -> Signer:
    return Signer()


@pytest.fixture(scope="session")
def build() -> Any:
    """The archive builders, as one namespace."""

    class _Builders:
        seven_zip = staticmethod(seven_zip)
        seven_zip_blocks = staticmethod(seven_zip_blocks)
        header_of = staticmethod(header_of)
        with_header = staticmethod(with_header)
        patch_header = staticmethod(patch_header)
        encode_header = staticmethod(encode_header)
        infineon_archive = staticmethod(infineon_archive)
        crlf_pem = staticmethod(crlf_pem)

    return _Builders
