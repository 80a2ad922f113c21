"""`DeviceCertificate`: one parsed X.509 certificate and the facts the importer needs.

Construction is the hot path of a bulk import (hundreds of thousands of certificates per
manifest), so a certificate is built from what has to be computed anyway (the DER bytes, its
SHA-256 id and the common name) and everything else is derived on first access and cached.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import warnings
from collections.abc import Iterator, Mapping
from datetime import datetime
from functools import cached_property
from typing import Any, ClassVar, cast

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x448, x25519
from cryptography.x509.oid import NameOID
from pydantic import BaseModel, ConfigDict, PrivateAttr, computed_field, model_validator

from thingpress_core.certificates._der import read_basic_constraints_ca
from thingpress_core.errors import CertificateParseError

__all__ = ["DeviceCertificate"]

_DER = serialization.Encoding.DER
_CN = NameOID.COMMON_NAME
_URLSAFE_TO_STD = str.maketrans("-_", "+/")

# cryptography warns (UserWarning) whenever it reads a name attribute outside RFC 5280's
# length bounds, e.g. a CN over 64 characters. Such a certificate is valid input here (thing
# names are shortened deterministically), and under ``-W error`` the warning would escape
# `load_certificates` as an exception, so it is ignored, but only where it is attributed to
# this package's own modules.
warnings.filterwarnings(
    "ignore",
    message="Attribute's length must be",
    category=UserWarning,
    module=r"thingpress_core\.",
)

_CURVE_NAMES: Mapping[str, str] = {
    "secp256r1": "P-256",
    "secp384r1": "P-384",
    "secp521r1": "P-521",
    "secp224r1": "P-224",
    "secp192r1": "P-192",
}


def _common_name(cert: x509.Certificate) -> str | None:
    """The first CN attribute of the subject; None when absent or empty."""
    for attribute in cert.subject.get_attributes_for_oid(_CN):
        value = attribute.value
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        return text or None
    return None


def _parse_der(der: bytes, *, source: str | None, index: int | None) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError as exc:
        where = _where(source, index)
        raise CertificateParseError(
            f"{where}not a valid X.509 certificate: {exc}", source=source, index=index
        ) from None


def _where(source: str | None, index: int | None) -> str:
    parts = []
    if source is not None:
        parts.append(source)
    if index is not None:
        parts.append(f"certificate {index + 1}")
    return (", ".join(parts) + ": ") if parts else ""


def _pem_from_der(der: bytes) -> str:
    body = base64.b64encode(der).decode("ascii")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n"


class DeviceCertificate(BaseModel):
    """An X.509 device certificate, immutable, identified by its AWS IoT certificate id.

    Build one with `from_der`, `from_pem` or `from_x509`, or many with
    `load_certificates`. The model also validates from a mapping with ``der`` (bytes, or
    base64 text in JSON) or ``pem``, so it travels through JSON:
    ``DeviceCertificate.model_validate_json(cert.model_dump_json())`` gives an equal certificate.

    ``der``, ``certificate_id`` and ``common_name`` are stored; the other fields are derived
    from the certificate on first access and cached. Two certificates are equal when their
    ids are; the repr shows the id and CN only, never the certificate body.
    """

    model_config = ConfigDict(frozen=True, ser_json_bytes="base64", val_json_bytes="base64")

    der: bytes
    """The certificate in DER encoding."""
    certificate_id: str
    """Lowercase hex SHA-256 of `der`: the id AWS IoT gives the certificate."""
    common_name: str | None = None
    """The subject's first common name (CN), or None when the subject has none."""

    _x509: x509.Certificate | None = PrivateAttr(default=None)

    _FIELDS_SET: ClassVar[frozenset[str]] = frozenset({"der", "certificate_id", "common_name"})

    # -- construction -------------------------------------------------------------------

    @classmethod
    def _fast(
        cls, der: bytes, cert: x509.Certificate, certificate_id: str, common_name: str | None
    ) -> DeviceCertificate:
        """Build without validation from values computed by this package (the hot path)."""
        obj = cls.__new__(cls)
        setter = object.__setattr__
        setter(obj, "__dict__", {"der": der, "certificate_id": certificate_id, "common_name": common_name})
        setter(obj, "__pydantic_fields_set__", set(cls._FIELDS_SET))
        setter(obj, "__pydantic_extra__", None)
        setter(obj, "__pydantic_private__", {"_x509": cert})
        return obj

    @classmethod
    def _from_der_checked(cls, der: bytes, *, source: str | None, index: int | None) -> DeviceCertificate:
        cert = _parse_der(der, source=source, index=index)
        certificate_id = hashlib.sha256(der).hexdigest()
        try:
            common_name = _common_name(cert)
        except ValueError as exc:
            raise CertificateParseError(
                f"{_where(source, index)}unreadable subject in certificate {certificate_id}: {exc}",
                source=source,
                index=index,
                certificate_id=certificate_id,
            ) from None
        return cls._fast(der, cert, certificate_id, common_name)

    @classmethod
    def from_der(cls, der: bytes, *, source: str | None = None) -> DeviceCertificate:
        """Parse one DER-encoded certificate; raises `CertificateParseError` naming ``source``."""
        return cls._from_der_checked(bytes(der), source=source, index=None)

    @classmethod
    def from_pem(cls, pem: str | bytes, *, source: str | None = None) -> DeviceCertificate:
        """Parse text holding exactly one PEM certificate block (text around it is ignored)."""
        from thingpress_core.certificates._loading import parse_pem_bundle

        data = pem.encode("utf-8", "replace") if isinstance(pem, str) else bytes(pem)
        certs = parse_pem_bundle(data, source=source)
        if len(certs) != 1:
            where = f"{source}: " if source else ""
            raise CertificateParseError(
                f"{where}expected exactly one PEM certificate, found {len(certs)}", source=source
            )
        return certs[0]

    @classmethod
    def from_x509(cls, cert: x509.Certificate) -> DeviceCertificate:
        """Wrap a ``cryptography`` certificate object (kept as the cached `x509`)."""
        der = cert.public_bytes(_DER)
        return cls._fast(der, cert, hashlib.sha256(der).hexdigest(), _common_name(cert))

    @model_validator(mode="before")
    @classmethod
    def _validate_input(cls, data: Any) -> Any:
        """Accept a mapping with ``der`` or ``pem``; recompute id and CN from the certificate."""
        if isinstance(data, DeviceCertificate):
            return data
        if not isinstance(data, Mapping):
            raise ValueError("a DeviceCertificate needs a mapping with 'der' or 'pem'")
        der = data.get("der")
        if der is None and data.get("pem") is not None:
            pem = data["pem"]
            if not isinstance(pem, str | bytes):
                raise ValueError("'pem' must be text or bytes")
            return _as_input(cls.from_pem(pem), data)
        if isinstance(der, str):
            try:
                # pydantic writes bytes as URL-safe base64; accept the standard alphabet too.
                der = base64.b64decode(der.translate(_URLSAFE_TO_STD), validate=True)
            except (binascii.Error, ValueError):
                raise ValueError("'der' text must be base64") from None
        if not isinstance(der, bytes | bytearray | memoryview):
            raise ValueError("'der' must be bytes (or base64 text)")
        return _as_input(cls.from_der(bytes(der)), data)

    # -- the cryptography object -----------------------------------------------------------

    def x509(self) -> x509.Certificate:
        """The parsed ``cryptography.x509.Certificate`` (parsed once, then cached)."""
        cert = self._x509
        if cert is None:
            cert = x509.load_der_x509_certificate(self.der)
            self._x509 = cert
        return cert

    # -- derived fields (computed on first access, then cached) ----------------------------

    @computed_field  # type: ignore[prop-decorator]  # mypy does not model pydantic's decorator over a property
    @cached_property
    def pem(self) -> str:
        """The certificate as one PEM block (64-character lines, LF, trailing newline)."""
        return _pem_from_der(self.der)

    @computed_field  # type: ignore[prop-decorator]  # mypy does not model pydantic's decorator over a property
    @cached_property
    def subject(self) -> str:
        """The subject distinguished name in RFC 4514 form."""
        return self.x509().subject.rfc4514_string()

    @computed_field  # type: ignore[prop-decorator]  # mypy does not model pydantic's decorator over a property
    @cached_property
    def issuer(self) -> str:
        """The issuer distinguished name in RFC 4514 form."""
        return self.x509().issuer.rfc4514_string()

    @computed_field  # type: ignore[prop-decorator]  # mypy does not model pydantic's decorator over a property
    @cached_property
    def serial_number(self) -> str:
        """The serial number in lowercase hex, without leading zeros or prefix."""
        return format(self.x509().serial_number, "x")

    @computed_field  # type: ignore[prop-decorator]  # mypy does not model pydantic's decorator over a property
    @cached_property
    def not_before(self) -> datetime:
        """Start of the validity period (timezone-aware UTC)."""
        return self.x509().not_valid_before_utc

    @computed_field  # type: ignore[prop-decorator]  # mypy does not model pydantic's decorator over a property
    @cached_property
    def not_after(self) -> datetime:
        """End of the validity period (timezone-aware UTC)."""
        return self.x509().not_valid_after_utc

    @computed_field  # type: ignore[prop-decorator]  # mypy does not model pydantic's decorator over a property
    @cached_property
    def key_type(self) -> str:
        """The subject public key, e.g. ``EC P-256``, ``RSA 2048``, ``Ed25519``."""
        return _key_type(self.x509())

    @computed_field  # type: ignore[prop-decorator]  # mypy does not model pydantic's decorator over a property
    @cached_property
    def is_ca(self) -> bool:
        """True when BasicConstraints marks the certificate as a CA."""
        cert = self.x509()
        try:
            ext = cert.extensions.get_extension_for_class(x509.BasicConstraints)
        except x509.ExtensionNotFound:
            return False
        except ValueError:
            # Another extension breaks a rule cryptography enforces (seen in vendor
            # certificates): read BasicConstraints from the raw TBSCertificate instead.
            return bool(read_basic_constraints_ca(cert.tbs_certificate_bytes))
        return bool(ext.value.ca)

    # -- identity and display ----------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DeviceCertificate):
            return self.certificate_id == other.certificate_id
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.certificate_id)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        yield "certificate_id", self.certificate_id
        yield "common_name", self.common_name

    def __repr__(self) -> str:
        return f"DeviceCertificate(certificate_id={self.certificate_id!r}, common_name={self.common_name!r})"

    def __str__(self) -> str:
        return self.__repr__()


def _as_input(cert: DeviceCertificate, data: Mapping[str, Any]) -> dict[str, Any]:
    given = data.get("certificate_id")
    if given is not None and given != cert.certificate_id:
        raise ValueError(f"certificate_id {given!r} does not match the certificate ({cert.certificate_id})")
    return {"der": cert.der, "certificate_id": cert.certificate_id, "common_name": cert.common_name}


def _key_type(cert: x509.Certificate) -> str:
    try:
        key = cert.public_key()
    except (ValueError, TypeError, UnsupportedAlgorithm):  # an algorithm cryptography cannot load
        return f"unknown ({cert.public_key_algorithm_oid.dotted_string})"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC {_CURVE_NAMES.get(key.curve.name, key.curve.name)}"
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA {key.key_size}"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448"
    if isinstance(key, x25519.X25519PublicKey):
        return "X25519"
    if isinstance(key, x448.X448PublicKey):
        return "X448"
    other = cast(object, key)  # DSA, ML-DSA, ML-KEM, ... depending on the cryptography version
    if isinstance(other, dsa.DSAPublicKey):
        return f"DSA {other.key_size}"
    return type(other).__name__.removesuffix("PublicKey")
