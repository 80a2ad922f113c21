"""`DeviceCertificate`: one parsed X.509 certificate and the facts the importer needs.

Construction is the hot path of a bulk import (hundreds of thousands of certificates per
manifest), so a certificate is built from what has to be computed anyway (the DER bytes, its
SHA-256 id and the common name) and everything else is derived on first access and cached.

Whatever the bytes, only `CertificateParseError` leaves this module for a certificate that
cannot be read: `_parse_der` is the one place that parses, and `DeviceCertificate._read` the
one place a lazy field is read. Both catch `_X509_ERRORS`, what cryptography raises for
malformed input, and nothing wider.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import warnings
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, TypeAlias, TypeVar, cast

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x448, x25519
from cryptography.x509.oid import NameOID
from pydantic import BaseModel, ConfigDict, PrivateAttr, ValidationError, computed_field, model_validator

from thingpress_core.certificates._der import issuer_name, read_basic_constraints_ca
from thingpress_core.certificates._pem import CERTIFICATE_LABELS, PemSyntaxError, scan_pem
from thingpress_core.errors import CertificateError, CertificateParseError

if TYPE_CHECKING:
    from pydantic.config import ExtraValues
    from typing_extensions import Self

__all__ = ["DeviceCertificate", "certificate_error", "parse_pem_bundle", "shown_text"]

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

# What cryptography raises for certificate bytes it cannot read, as found by feeding it
# structured DER mutations (tests/fuzz): ValueError (ASN.1 errors, malformed names and keys,
# the year 0), TypeError (a BIT STRING name value under another attribute type, a malformed
# TLS feature), InvalidVersion, DuplicateExtension and UnsupportedGeneralNameType (these three
# subclass Exception only), UnsupportedAlgorithm (unknown curves, key and signature
# algorithms); KeyError (cryptography 45 for a name value of an unknown string type: later
# versions say ValueError); OverflowError stands for dates beyond what ``datetime`` holds. UserWarning
# covers cryptography's warnings (a serial number that is not positive, a name attribute
# outside RFC 5280's length bounds), which are exceptions where the warnings filter says
# "error" (``python -W error``, the test suite). Nothing wider is caught: a bug of ours, or a
# MemoryError, still shows as itself.
_X509_ERRORS: tuple[type[Exception], ...] = (
    ValueError,
    TypeError,
    KeyError,
    OverflowError,
    x509.InvalidVersion,
    x509.DuplicateExtension,
    x509.UnsupportedGeneralNameType,
    UnsupportedAlgorithm,
    UserWarning,
)
_MAX_REASON = 200
_MAX_SHOWN = 64  # characters of a CN quoted in a message
# Issuer Names (DER) that parsed already: the certificates of one manifest mostly share one
# issuer, whose Name is then checked once rather than per certificate. Bounded; a success only.
_READABLE_ISSUERS: dict[bytes, None] = {}
_MAX_READABLE_ISSUERS = 256

_T = TypeVar("_T")
_Certificate = x509.Certificate  # inside DeviceCertificate, ``x509`` names the method

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


def shown_text(text: str, limit: int = _MAX_SHOWN) -> str:
    """Text a certificate chose (its CN, a reason quoting its subject) made fit for a one-line message.

    At most ``limit`` characters of the text, each that is not printable (line breaks,
    terminal escapes, bidirectional overrides) written as its escape (up to 10 characters), so
    a certificate can neither forge log lines nor flood a report with a 10 KB subject.
    """
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else ascii(char)[1:-1] for char in text)


def _reason(exc: BaseException) -> str:
    """cryptography's explanation on one line of bounded length.

    cryptography names the ASN.1 location of a problem, not the bytes; the bound keeps any
    fragment a message might quote short, so an error never carries a certificate body. Its
    verifier does quote the subject, which the certificate chose: `shown_text` escapes it.
    """
    return shown_text(" ".join(str(exc).split()) or type(exc).__name__, _MAX_REASON)


_Fields: TypeAlias = tuple[str | None, datetime, datetime]


def _read_fields(cert: x509.Certificate, der: bytes) -> _Fields:
    """The common name and the validity dates, after reading each field an import relies on;
    raises `_X509_ERRORS`.

    Subject (the CN, the thing name), issuer (chain building, reports) and the validity dates
    (checked by every import) are read at load time, so a broken one is reported with the
    certificate's place in the input, and a certificate that loads answers all of them (the
    version and the serial number cryptography checks while loading). Extensions and the
    public key stay lazy: `DeviceCertificate.is_ca` and `DeviceCertificate.key_type` have
    answers for certificates whose ones do not parse.
    """
    common_name = _common_name(cert)  # builds the whole subject Name
    not_before = cert.not_valid_before_utc
    not_after = cert.not_valid_after_utc
    issuer = issuer_name(der)
    if issuer is None or issuer not in _READABLE_ISSUERS:
        cert.issuer  # noqa: B018
        if issuer is not None:
            if len(_READABLE_ISSUERS) >= _MAX_READABLE_ISSUERS:
                _READABLE_ISSUERS.clear()
            _READABLE_ISSUERS[issuer] = None
    return common_name, not_before, not_after


def _parse_der(
    der: bytes,
    *,
    source: str | None = None,
    index: int | None = None,
    certificate_id: str | None = None,
    parsed: x509.Certificate | None = None,
) -> tuple[x509.Certificate, _Fields]:
    """The certificate (``parsed``, or parsed from ``der``) and its CN and validity dates; the
    one place that parses.

    Raises `CertificateParseError` naming ``source``, the 1-based certificate number and the
    certificate id for anything cryptography cannot read, never another exception.
    """
    try:
        cert = parsed if parsed is not None else x509.load_der_x509_certificate(der)
        return cert, _read_fields(cert, der)
    except _X509_ERRORS as exc:
        if certificate_id is None:
            certificate_id = hashlib.sha256(der).hexdigest()
        raise CertificateParseError(
            f"{_where(source, index)}not a valid X.509 certificate (id {certificate_id}): {_reason(exc)}",
            source=source,
            index=index,
            certificate_id=certificate_id,
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

    model_config: ClassVar[ConfigDict] = ConfigDict(
        frozen=True, ser_json_bytes="base64", val_json_bytes="base64"
    )

    der: bytes
    """The certificate in DER encoding."""
    certificate_id: str
    """Lowercase hex SHA-256 of `der`: the id AWS IoT gives the certificate."""
    common_name: str | None = None
    """The subject's first common name (CN), or None when the subject has none."""

    _x509: _Certificate | None = PrivateAttr(default=None)  # not x509.Certificate: see _Certificate

    _FIELDS_SET: ClassVar[frozenset[str]] = frozenset({"der", "certificate_id", "common_name"})

    if not TYPE_CHECKING:  # type checkers keep pydantic's typed constructor

        def __init__(self, /, **data: Any) -> None:
            """``DeviceCertificate(der=...)`` or ``(pem=...)``; bad input raises `CertificateParseError`,
            as `model_validate` does, never pydantic's ``ValidationError`` (which quotes the input)."""
            try:
                super().__init__(**data)
            except ValidationError as exc:
                raise certificate_error(exc) from None

    # -- construction -------------------------------------------------------------------

    @classmethod
    def _fast(
        cls, der: bytes, cert: x509.Certificate, certificate_id: str, fields: _Fields
    ) -> DeviceCertificate:
        """Build without validation from values computed by this package (the hot path); the
        validity dates read while loading fill their cached properties."""
        obj = cls.__new__(cls)
        setter = object.__setattr__
        common_name, not_before, not_after = fields
        values = {"der": der, "certificate_id": certificate_id, "common_name": common_name}
        setter(obj, "__dict__", values | {"not_before": not_before, "not_after": not_after})
        setter(obj, "__pydantic_fields_set__", set(cls._FIELDS_SET))
        setter(obj, "__pydantic_extra__", None)
        setter(obj, "__pydantic_private__", {"_x509": cert})
        return obj

    @classmethod
    def _from_der_checked(cls, der: bytes, *, source: str | None, index: int | None) -> DeviceCertificate:
        certificate_id = hashlib.sha256(der).hexdigest()
        cert, fields = _parse_der(der, source=source, index=index, certificate_id=certificate_id)
        return cls._fast(der, cert, certificate_id, fields)

    @classmethod
    def from_der(cls, der: bytes, *, source: str | None = None) -> DeviceCertificate:
        """Parse one DER-encoded certificate; raises `CertificateParseError` naming ``source``."""
        value = cast(object, der)
        if not isinstance(value, bytes | bytearray | memoryview):
            # bytes(n) of an int would allocate n zero bytes: refuse anything but bytes
            raise _wrong_type(value, "bytes", source)
        return cls._from_der_checked(bytes(value), source=source, index=None)

    @classmethod
    def from_pem(cls, pem: str | bytes, *, source: str | None = None) -> DeviceCertificate:
        """Parse text holding exactly one PEM certificate block (text around it is ignored)."""
        value = cast(object, pem)
        if isinstance(value, str):
            data = value.encode("utf-8", "replace")
        elif isinstance(value, bytes | bytearray | memoryview):
            data = bytes(value)
        else:
            raise _wrong_type(value, "str or bytes", source)
        certs = parse_pem_bundle(data, source=source)
        if len(certs) != 1:
            where = f"{source}: " if source else ""
            raise CertificateParseError(
                f"{where}expected exactly one PEM certificate, found {len(certs)}", source=source
            )
        return certs[0]

    @classmethod
    def from_x509(cls, cert: x509.Certificate) -> DeviceCertificate:
        """Wrap a ``cryptography`` certificate object (kept as the cached `x509`).

        Its fields are read as `load_certificates` reads them; `CertificateParseError` when
        one cannot be.
        """
        value = cast(object, cert)
        if not isinstance(value, x509.Certificate):
            raise _wrong_type(value, "a cryptography x509.Certificate", None)
        der = value.public_bytes(_DER)
        certificate_id = hashlib.sha256(der).hexdigest()
        parsed, fields = _parse_der(der, certificate_id=certificate_id, parsed=value)
        return cls._fast(der, parsed, certificate_id, fields)

    @classmethod
    def model_validate(
        cls,
        obj: Any,
        *,
        strict: bool | None = None,
        extra: ExtraValues | None = None,
        from_attributes: bool | None = None,
        context: Any | None = None,
        by_alias: bool | None = None,
        by_name: bool | None = None,
    ) -> Self:
        """Validate a mapping with ``der`` or ``pem`` (or a certificate); `CertificateParseError` if bad.

        Unlike other pydantic models, a failure raises `CertificateParseError` (a
        ``ValueError``), not pydantic's ``ValidationError``: nothing but `ThingpressError`
        leaves the certificates package. Inside another model, pydantic reports it as usual.
        """
        options = _given(
            strict=strict,
            extra=extra,
            from_attributes=from_attributes,
            context=context,
            by_alias=by_alias,
            by_name=by_name,
        )
        try:
            return super().model_validate(obj, **options)
        except ValidationError as exc:
            raise certificate_error(exc) from None

    @classmethod
    def model_validate_json(
        cls,
        json_data: str | bytes | bytearray,
        *,
        strict: bool | None = None,
        extra: ExtraValues | None = None,
        context: Any | None = None,
        by_alias: bool | None = None,
        by_name: bool | None = None,
    ) -> Self:
        """Validate JSON text (`model_dump_json` output); bad input raises `CertificateParseError`."""
        options = _given(strict=strict, extra=extra, context=context, by_alias=by_alias, by_name=by_name)
        try:
            return super().model_validate_json(json_data, **options)
        except ValidationError as exc:
            raise certificate_error(exc) from None

    @model_validator(mode="before")
    @classmethod
    def _validate_input(cls, data: Any) -> Any:
        """Accept a mapping with ``der`` or ``pem``; recompute id and CN from the certificate."""
        if isinstance(data, DeviceCertificate):
            return data
        # CertificateParseError, a ValueError, becomes a ValidationError inside pydantic, which
        # model_validate turns back into the original
        if not isinstance(data, Mapping):
            raise CertificateParseError("a DeviceCertificate needs a mapping with 'der' or 'pem'")
        der = data.get("der")
        if der is None and data.get("pem") is not None:
            pem = data["pem"]
            if not isinstance(pem, str | bytes):
                raise CertificateParseError("'pem' must be text or bytes")
            return _as_input(cls.from_pem(pem), data)
        if isinstance(der, str):
            try:
                # pydantic writes bytes as URL-safe base64; accept the standard alphabet too.
                der = base64.b64decode(der.translate(_URLSAFE_TO_STD), validate=True)
            except (binascii.Error, ValueError):
                raise CertificateParseError("'der' text must be base64") from None
        if not isinstance(der, bytes | bytearray | memoryview):
            raise CertificateParseError("'der' must be bytes (or base64 text)")
        return _as_input(cls.from_der(bytes(der)), data)

    # -- the cryptography object -----------------------------------------------------------

    def x509(self) -> x509.Certificate:
        """The parsed ``cryptography.x509.Certificate`` (parsed once, then cached).

        Raises `CertificateParseError` naming the certificate id only for a certificate that
        was built without parsing (``model_construct``) from bytes that do not parse.
        """
        cert = self._x509
        if cert is None:
            cert, _ = _parse_der(self.der, certificate_id=self.certificate_id)
            self._x509 = cert
        return cert

    def _read(self, what: str, read: Callable[[_Certificate], _T]) -> _T:
        """``read(self.x509())``: the one place a lazy field is read from the certificate.

        A certificate that loaded had its subject, issuer and dates read already; what can still
        fail here (a certificate built by ``model_construct``, a field read lazily) becomes
        `CertificateParseError` naming the certificate id and the field.
        """
        cert = self.x509()
        try:
            return read(cert)
        except _X509_ERRORS as exc:
            raise CertificateParseError(
                f"certificate {self.certificate_id}: unreadable {what}: {_reason(exc)}",
                certificate_id=self.certificate_id,
            ) from None

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
        return self._read("subject", lambda c: c.subject.rfc4514_string())

    @computed_field  # type: ignore[prop-decorator]  # mypy does not model pydantic's decorator over a property
    @cached_property
    def issuer(self) -> str:
        """The issuer distinguished name in RFC 4514 form."""
        return self._read("issuer", lambda c: c.issuer.rfc4514_string())

    @computed_field  # type: ignore[prop-decorator]  # mypy does not model pydantic's decorator over a property
    @cached_property
    def serial_number(self) -> str:
        """The serial number in lowercase hex, without leading zeros or prefix."""
        return format(self._read("serial number", lambda c: c.serial_number), "x")

    @computed_field  # type: ignore[prop-decorator]  # mypy does not model pydantic's decorator over a property
    @cached_property
    def not_before(self) -> datetime:
        """Start of the validity period (timezone-aware UTC)."""
        return self._read("validity start", lambda c: c.not_valid_before_utc)

    @computed_field  # type: ignore[prop-decorator]  # mypy does not model pydantic's decorator over a property
    @cached_property
    def not_after(self) -> datetime:
        """End of the validity period (timezone-aware UTC)."""
        return self._read("validity end", lambda c: c.not_valid_after_utc)

    @computed_field  # type: ignore[prop-decorator]  # mypy does not model pydantic's decorator over a property
    @cached_property
    def key_type(self) -> str:
        """The subject public key, e.g. ``EC P-256``, ``RSA 2048``, ``Ed25519``.

        ``unknown (<algorithm OID>)`` for a key cryptography cannot load.
        """
        return self._read("public key", _key_type)

    @computed_field  # type: ignore[prop-decorator]  # mypy does not model pydantic's decorator over a property
    @cached_property
    def is_ca(self) -> bool:
        """True when BasicConstraints marks the certificate as a CA.

        When cryptography refuses the extensions, BasicConstraints is read from the raw
        TBSCertificate; any one of several saying ``cA`` counts, and none readable means False.
        """
        cert = self.x509()
        try:
            ext = cert.extensions.get_extension_for_class(x509.BasicConstraints)
        except x509.ExtensionNotFound:
            return False
        except _X509_ERRORS:
            # An extension breaks a rule cryptography enforces (seen in vendor certificates),
            # or one is there twice: read BasicConstraints from the raw TBSCertificate instead.
            return bool(
                read_basic_constraints_ca(self._read("TBSCertificate", lambda c: c.tbs_certificate_bytes))
            )
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
        raise CertificateParseError(
            f"certificate_id {given!r:.80} does not match the certificate ({cert.certificate_id})",
            certificate_id=cert.certificate_id,
        )
    return {"der": cert.der, "certificate_id": cert.certificate_id, "common_name": cert.common_name}


def _wrong_type(value: object, expected: str, source: str | None) -> CertificateParseError:
    where = f"{source}: " if source else ""
    return CertificateParseError(f"{where}expected {expected}, got {type(value).__name__}", source=source)


def _given(**options: Any) -> dict[str, Any]:
    # only the options the caller gave: older pydantic versions (>= 2.7) lack some of them
    return {name: value for name, value in options.items() if value is not None}


def certificate_error(error: ValidationError, what: str = "a DeviceCertificate") -> CertificateError:
    """The error a failed validation stands for: the certificate error raised inside it, or one
    listing pydantic's complaints (never the input, which may be a certificate body)."""
    problems = []
    for item in error.errors(include_url=False, include_input=False):
        cause = (item.get("ctx") or {}).get("error")
        if isinstance(cause, CertificateError):
            return cause
        location = ".".join(str(part) for part in item.get("loc", ()))
        problems.append(f"{location}: {item['msg']}" if location else item["msg"])
    return CertificateParseError(f"not {what}: " + "; ".join(problems))


def _key_type(cert: x509.Certificate) -> str:
    try:
        key = cert.public_key()
    except _X509_ERRORS:  # an algorithm cryptography cannot load, or a malformed key
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


def _pem_error(message: str, *, source: str | None, index: int) -> CertificateParseError:
    return CertificateParseError(f"{_where(source, index)}{message}", source=source, index=index)


def parse_pem_bundle(data: bytes, *, source: str | None = None) -> list[DeviceCertificate]:
    """Every CERTIFICATE block of a PEM bundle; other block types (keys, CRLs) are skipped.

    This is the hot path of a bulk import: each certificate costs one base64 decode, one DER
    parse, one SHA-256 and the reading of the fields an import needs (`_parse_der`). Raises
    `CertificateParseError` naming ``source`` and the 0-based index of the failing
    certificate (messages show it 1-based), and its id once its DER is known.
    """
    certs: list[DeviceCertificate] = []
    append = certs.append
    a2b = binascii.a2b_base64
    parse = _parse_der
    sha256 = hashlib.sha256
    build = DeviceCertificate._fast
    labels = CERTIFICATE_LABELS
    try:
        for block in scan_pem(data):
            if block.label not in labels:
                continue
            index = len(certs)
            try:
                der = a2b(data[block.body_start : block.body_end])
            except binascii.Error as exc:
                raise _pem_error(
                    f"PEM block is not valid base64: {exc}", source=source, index=index
                ) from None
            certificate_id = sha256(der).hexdigest()
            cert, common_name = parse(der, source=source, index=index, certificate_id=certificate_id)
            append(build(der, cert, certificate_id, common_name))
    except PemSyntaxError as exc:
        raise _pem_error(str(exc), source=source, index=len(certs)) from None
    if not certs:
        where = f"{source}: " if source else ""
        raise CertificateParseError(f"{where}no CERTIFICATE block in the PEM input", source=source)
    return certs
