"""Generate test CAs and device certificates (for tests, examples, the sandbox, benchmarks).

Nothing here is for production use: keys live in memory only, and by default every device
certificate of one call shares one key pair (signing, not key generation, is then the cost,
so thousands of certificates take a second or two).

```python
from thingpress_core.certificates.generate import (
    generate_ca,
    generate_device_certificates,
)

ca = generate_ca()
certs = list(generate_device_certificates(3, ca=ca))
assert [cert.common_name for cert in certs][-1] == "device-000002"
```
"""

from __future__ import annotations

import base64
import datetime as _dt
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal, TypeAlias

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from thingpress_core.certificates._model import DeviceCertificate
from thingpress_core.errors import ConfigurationError

__all__ = [
    "GeneratedCA",
    "KeyType",
    "PrivateKey",
    "generate_ca",
    "generate_device_certificates",
    "generate_key",
    "generated_manifest_lines",
    "issue_certificate",
]

KeyType: TypeAlias = Literal["ec", "rsa"]
PrivateKey: TypeAlias = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

_SHA256 = hashes.SHA256()


@dataclass(frozen=True)
class GeneratedCA:
    """A generated certificate authority: its certificate and (in memory) its private key."""

    cert: DeviceCertificate
    key: PrivateKey = field(repr=False)


def generate_key(key_type: KeyType = "ec") -> PrivateKey:
    """A fresh private key: EC P-256 (``"ec"``) or RSA 2048 (``"rsa"``)."""
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise ConfigurationError(
        f"key_type must be 'ec' or 'rsa', not {key_type!r}", variable="key_type", value=key_type
    )


@lru_cache(maxsize=2)
def _shared_key(key_type: KeyType) -> PrivateKey:
    # One device key per key type and process: RSA key generation costs ~50 ms.
    return generate_key(key_type)


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)


def _name(common_name: str | None, organization: str | None = None) -> x509.Name:
    attributes = []
    if organization is not None:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    if common_name is not None:
        # Tests need CNs outside the 1..64 characters RFC 5280 allows, which cryptography
        # refuses unless told not to validate.
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name, _validate=False))
    return x509.Name(attributes)


def issue_certificate(
    common_name: str | None,
    *,
    issuer: GeneratedCA | None = None,
    key: PrivateKey | None = None,
    key_type: KeyType = "ec",
    is_ca: bool = False,
    path_length: int | None = None,
    serial_number: int | None = None,
    not_before: _dt.datetime | None = None,
    not_after: _dt.datetime | None = None,
    organization: str | None = "thingpress-core tests",
    subject: x509.Name | None = None,
) -> tuple[DeviceCertificate, PrivateKey]:
    """One certificate and its private key; self-signed when ``issuer`` is None.

    ``common_name=None`` leaves the CN out of the subject. ``subject`` overrides the whole
    subject name. A CA gets critical BasicConstraints(ca=True) and keyCertSign; a device gets
    BasicConstraints(ca=False), digitalSignature and clientAuth, and no subjectAltName (like
    vendor device certificates).
    """
    key = key if key is not None else generate_key(key_type)
    start = not_before if not_before is not None else _now() - _dt.timedelta(days=1)
    end = not_after if not_after is not None else start + _dt.timedelta(days=3650)
    name = subject if subject is not None else _name(common_name, organization)
    signer_key = issuer.key if issuer is not None else key
    issuer_name = issuer.cert.x509().subject if issuer is not None else name
    public_key = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(public_key)
        .serial_number(serial_number if serial_number is not None else x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(
            x509.BasicConstraints(ca=is_ca, path_length=path_length if is_ca else None), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False
        )
    if is_ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    else:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return DeviceCertificate.from_x509(builder.sign(signer_key, _SHA256)), key


def generate_ca(
    common_name: str = "thingpress-core test CA",
    *,
    key_type: KeyType = "ec",
    issuer: GeneratedCA | None = None,
    not_before: _dt.datetime | None = None,
    not_after: _dt.datetime | None = None,
    path_length: int | None = None,
) -> GeneratedCA:
    """A new CA with a fresh key: a self-signed root, or an intermediate when ``issuer`` is given."""
    cert, key = issue_certificate(
        common_name,
        issuer=issuer,
        key_type=key_type,
        is_ca=True,
        path_length=path_length,
        not_before=not_before,
        not_after=not_after,
    )
    return GeneratedCA(cert=cert, key=key)


def generate_device_certificates(
    count: int,
    *,
    ca: GeneratedCA | None = None,
    cn_prefix: str = "device-",
    key_type: KeyType = "ec",
    reuse_key: bool = True,
    start: int = 0,
    not_before: _dt.datetime | None = None,
    not_after: _dt.datetime | None = None,
) -> Iterator[DeviceCertificate]:
    """Lazily issue ``count`` device certificates with CN ``f"{cn_prefix}{i:06d}"``.

    ``i`` runs from ``start`` to ``start + count - 1``. Signed by ``ca`` (a new EC CA when None).
    With ``reuse_key`` (the default) all certificates share one key pair per key type and
    process; otherwise each gets a fresh key. Serial numbers are a random per-call base plus
    ``i``, so they are unique within a call. Validity defaults to yesterday plus ten years.
    """
    if count < 0:
        raise ConfigurationError(f"count must be >= 0, not {count}", variable="count", value=count)
    issuer = ca if ca is not None else generate_ca()
    shared = _shared_key(key_type) if reuse_key else None
    first = _now() - _dt.timedelta(days=1) if not_before is None else not_before
    last = first + _dt.timedelta(days=3650) if not_after is None else not_after
    base = secrets.randbits(100) << 32
    for i in range(start, start + count):
        cert, _ = issue_certificate(
            f"{cn_prefix}{i:06d}",
            issuer=issuer,
            key=shared if shared is not None else generate_key(key_type),
            serial_number=base + i,
            not_before=first,
            not_after=last,
        )
        yield cert


def generated_manifest_lines(certs: Iterable[DeviceCertificate]) -> Iterator[str]:
    """One line per certificate: base64 of its PEM text (the ``generated`` manifest format)."""
    for cert in certs:
        yield base64.b64encode(cert.pem.encode("ascii")).decode("ascii")
