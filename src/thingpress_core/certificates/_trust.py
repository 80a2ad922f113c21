"""Trust: check a device certificate's validity period and chain to a trusted CA.

Chains are built and verified by ``cryptography.x509.verification`` (a client verifier with
the web-PKI CA policy). Device certificates from chip vendors carry no subjectAltName, which
the web-PKI end-entity policy demands, so that one requirement is relaxed; the relaxed policy
would then accept a CA certificate as a leaf, so BasicConstraints is checked here. The
validity period is checked here too, first, to report ``expired`` or ``not_yet_valid``
rather than a generic ``untrusted``.
"""

from __future__ import annotations

import datetime as _dt
import io
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import verification
from pydantic import BaseModel, ConfigDict, PrivateAttr, ValidationError, field_validator

from thingpress_core.certificates._loading import (
    DEFAULT_MAX_CERTIFICATE_BYTES,
    check_positive_int,
    load_certificates,
    open_input,
)
from thingpress_core.certificates._model import (
    _X509_ERRORS,
    DeviceCertificate,
    _reason,
    certificate_error,
    shown_text,
)
from thingpress_core.errors import CertificateParseError, CertificateValidationError

__all__ = ["TRUST_FILE_SUFFIXES", "TrustStore", "VerifiedChain", "check_validity", "verify_certificate"]

TRUST_FILE_SUFFIXES = frozenset({".pem", ".crt", ".cer", ".der"})
"""The files `TrustStore.from_path` reads from a directory."""

# a signature check between certificates cryptography may refuse to read
_SIGNATURE_ERRORS: tuple[type[Exception], ...] = (InvalidSignature, *_X509_ERRORS)
# The fallback for a leaf cryptography's verifier cannot read runs one verification per issuer
# candidate whose signature on the leaf holds; the candidates come with the manifest entry, so
# an entry carrying hundreds of them cost seconds (quadratic). Real chains offer one or two.
_MAX_LENIENT_ISSUERS = 4
_MAX_LENIENT_SIGNATURE_CHECKS = 64
# How far `_raise_for_issuer_validity` climbs: beyond cryptography's own maximum chain depth (8).
_MAX_ISSUER_LEVELS = 16


def _utc(at: _dt.datetime | None) -> _dt.datetime:
    if at is None:
        return _dt.datetime.now(_dt.timezone.utc)
    if at.tzinfo is None:  # a naive time is taken as UTC, as cryptography does
        return at.replace(tzinfo=_dt.timezone.utc)
    return at.astimezone(_dt.timezone.utc)


def _label(cert: DeviceCertificate) -> str:
    return f"certificate {cert.certificate_id}" + (
        f" ({shown_text(cert.common_name)})" if cert.common_name else ""
    )


class TrustStore(BaseModel):
    """The CA certificates a device certificate's chain must end in (trust anchors).

    Build one with `from_pem`, `from_path`, or ``TrustStore(certificates=[...])``.
    Every certificate given is an anchor, roots and intermediates alike.
    """

    model_config: ClassVar[ConfigDict] = ConfigDict(frozen=True)

    certificates: tuple[DeviceCertificate, ...]

    _store: verification.Store | None = PrivateAttr(default=None)

    if not TYPE_CHECKING:  # type checkers keep pydantic's typed constructor

        def __init__(self, /, **data: Any) -> None:
            """Bad input (no certificate, something that is not one) raises `CertificateParseError`,
            never pydantic's ``ValidationError``: only ThingpressError leaves this package."""
            try:
                super().__init__(**data)
            except ValidationError as exc:
                raise certificate_error(exc, "a trust store") from None

    @field_validator("certificates")
    @classmethod
    def _not_empty(cls, value: tuple[DeviceCertificate, ...]) -> tuple[DeviceCertificate, ...]:
        if not value:
            raise ValueError("a trust store needs at least one CA certificate")
        return tuple(dict.fromkeys(value))  # drop duplicates, keep order

    @classmethod
    def from_pem(
        cls, data: bytes | str, *, source: str | None = None, max_bytes: int = DEFAULT_MAX_CERTIFICATE_BYTES
    ) -> TrustStore:
        """Anchors from PEM bytes or text (any encoding `load_certificates` reads)."""
        return cls(certificates=tuple(load_certificates(data, source=source, max_bytes=max_bytes)))

    @classmethod
    def from_path(
        cls, path: str | os.PathLike[str], *, max_bytes: int = DEFAULT_MAX_CERTIFICATE_BYTES
    ) -> TrustStore:
        """Anchors from one file, or from every ``.pem``/``.crt``/``.cer``/``.der`` file of a directory.

        Each file is limited to ``max_bytes``; a file that is not a certificate raises
        `CertificateParseError` naming it.
        """
        check_positive_int("max_bytes", max_bytes)
        root = Path(path)
        try:
            # ValueError: a path with a NUL character, which no file system accepts
            is_dir = root.is_dir()
            files = (
                sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in TRUST_FILE_SUFFIXES)
                if is_dir
                else [root]
            )
        except (OSError, ValueError) as exc:
            raise CertificateParseError(f"{root}: cannot read: {_os_reason(exc)}", source=str(root)) from None
        if is_dir and not files:
            raise CertificateParseError(
                f"{root}: no certificate files ({', '.join(sorted(TRUST_FILE_SUFFIXES))})",
                source=str(root),
            )
        certs: list[DeviceCertificate] = []
        for file in files:
            certs.extend(
                load_certificates(_read_bounded(file, max_bytes), source=str(file), max_bytes=max_bytes)
            )
        return cls(certificates=tuple(certs))

    def store(self) -> verification.Store:
        """The ``cryptography`` store of the anchors (built once)."""
        store = self._store
        if store is None:
            store = verification.Store([c.x509() for c in self.certificates])
            self._store = store
        return store

    def __len__(self) -> int:
        return len(self.certificates)

    def __contains__(self, cert: object) -> bool:
        return cert in self.certificates

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        yield "certificates", [c.common_name or c.certificate_id for c in self.certificates]


def _read_bounded(file: Path, max_bytes: int) -> bytes:
    try:
        with open_input(file) as handle:
            data = _read_up_to(handle, max_bytes + 1)
    except (OSError, ValueError) as exc:
        raise CertificateParseError(f"{file}: cannot read: {_os_reason(exc)}", source=str(file)) from None
    if len(data) > max_bytes:
        raise CertificateParseError(f"{file}: larger than the limit of {max_bytes} bytes", source=str(file))
    return data


def _read_up_to(handle: io.FileIO, size: int) -> bytes:
    """Up to ``size`` bytes: a pipe answers a read with what it has, so read until full or the end."""
    parts: list[bytes] = []
    left = size
    while left > 0:
        part = handle.read(left)
        if not part:
            break
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def _os_reason(exc: OSError | ValueError) -> str:
    return (exc.strerror if isinstance(exc, OSError) else None) or str(exc)


class VerifiedChain(BaseModel):
    """A verified certificate path: ``chain`` runs from ``leaf`` (first) to the trust anchor (last)."""

    model_config: ClassVar[ConfigDict] = ConfigDict(frozen=True)

    leaf: DeviceCertificate
    chain: tuple[DeviceCertificate, ...]

    @property
    def root(self) -> DeviceCertificate:
        """The trust anchor the chain ends in."""
        return self.chain[-1]

    @property
    def intermediates(self) -> tuple[DeviceCertificate, ...]:
        """The certificates between leaf and anchor."""
        return self.chain[1:-1]


def check_validity(cert: DeviceCertificate, at: _dt.datetime | None = None) -> None:
    """Raise `CertificateValidationError` (``expired`` / ``not_yet_valid``) unless valid at ``at``.

    ``at`` defaults to now; a naive ``at`` is taken as UTC.
    """
    when = _utc(at)
    if when < cert.not_before:
        raise CertificateValidationError(
            f"{_label(cert)} is not valid before {cert.not_before.isoformat()} "
            f"(checked at {when.isoformat()})",
            certificate_id=cert.certificate_id,
            reason="not_yet_valid",
        )
    if when > cert.not_after:
        raise CertificateValidationError(
            f"{_label(cert)} expired at {cert.not_after.isoformat()} (checked at {when.isoformat()})",
            certificate_id=cert.certificate_id,
            reason="expired",
        )


def _ee_policy() -> verification.ExtensionPolicy:
    return verification.ExtensionPolicy.webpki_defaults_ee().may_be_present(
        x509.SubjectAlternativeName, verification.Criticality.AGNOSTIC, None
    )


def verify_certificate(
    cert: DeviceCertificate,
    trust_store: TrustStore,
    *,
    intermediates: Iterable[DeviceCertificate] = (),
    at: _dt.datetime | None = None,
) -> VerifiedChain:
    """Verify that ``cert`` chains to an anchor of ``trust_store`` and is usable as a device certificate.

    ``intermediates`` may hold any candidate CA certificates (order does not matter). ``at``
    (default now; naive means UTC) is the time of validation for the whole chain. Raises
    `CertificateValidationError` with ``reason``: ``is_ca`` (a CA certificate as the
    device certificate), ``expired`` / ``not_yet_valid`` (the device certificate or a CA on
    its path), or ``untrusted`` (no valid path to an anchor: unknown issuer, bad signature,
    a policy violation; the message says which).
    """
    when = _utc(at)
    if cert.is_ca:
        raise CertificateValidationError(
            f"{_label(cert)} is a CA certificate (BasicConstraints ca=true), not a device certificate",
            certificate_id=cert.certificate_id,
            reason="is_ca",
        )
    check_validity(cert, when)
    pool = tuple(intermediates)
    verifier = _verifier(trust_store, when, ee_policy=_ee_policy())
    try:
        path = verifier.verify(cert.x509(), [c.x509() for c in pool]).chain
    except verification.VerificationError as exc:
        lenient = _verify_unparseable_leaf(cert, pool, trust_store, when) if _leaf_unparseable(cert) else None
        if lenient is None:
            _raise_for_issuer_validity(cert, pool, trust_store, when)
            raise CertificateValidationError(
                f"{_label(cert)} does not chain to a trusted CA: {_reason(exc)}",
                certificate_id=cert.certificate_id,
                reason="untrusted",
            ) from None
        path = lenient
    known = {c.der: c for c in (cert, *pool, *trust_store.certificates)}
    chain: list[DeviceCertificate] = []
    for item in path:
        der = item.public_bytes(serialization.Encoding.DER)
        chain.append(known.get(der) or DeviceCertificate.from_x509(item))
    return VerifiedChain(leaf=cert, chain=tuple(chain))


def _verifier(
    trust_store: TrustStore, when: _dt.datetime, *, ee_policy: verification.ExtensionPolicy
) -> verification.ClientVerifier:
    return (
        verification.PolicyBuilder()
        .store(trust_store.store())
        .time(when)
        .extension_policies(ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(), ee_policy=ee_policy)
        .build_client_verifier()
    )


def _leaf_unparseable(cert: DeviceCertificate) -> bool:
    try:
        cert.x509().extensions  # noqa: B018 - parsing is the point
    except _X509_ERRORS:
        return True
    return False


def _verify_unparseable_leaf(
    cert: DeviceCertificate, pool: tuple[DeviceCertificate, ...], trust_store: TrustStore, when: _dt.datetime
) -> list[x509.Certificate] | None:
    """The path for a leaf whose extensions cryptography refuses to parse, or None.

    Microchip TrustFLEX/TrustNGO device certificates carry ``eui48_...`` in a PrintableString
    of their subjectAltName, which cryptography rejects, so its verifier fails on them. The
    leaf's validity and BasicConstraints have been checked already; here its signature is
    checked against each issuer candidate, and the issuer is verified as a CA (web-PKI CA
    policy) up to an anchor by cryptography.
    """
    leaf = cert.x509()
    anchors = trust_store.certificates
    checks = issuers = 0
    for candidate in dict.fromkeys((*pool, *anchors)):
        if checks >= _MAX_LENIENT_SIGNATURE_CHECKS or issuers >= _MAX_LENIENT_ISSUERS:
            return None
        issuer = candidate.x509()
        checks += 1
        try:
            leaf.verify_directly_issued_by(issuer)
        except _SIGNATURE_ERRORS:
            continue
        issuers += 1
        if candidate in anchors:
            if _out_of_window(candidate, when):
                continue
            return [leaf, issuer]
        others = [c.x509() for c in pool if c != candidate]
        try:
            upper = _verifier(trust_store, when, ee_policy=_ca_as_ee_policy()).verify(issuer, others).chain
        except verification.VerificationError:
            continue
        return [leaf, *upper]
    return None


def _ca_as_ee_policy() -> verification.ExtensionPolicy:
    # The issuer stands in the end-entity position here, but must still satisfy the CA rules.
    return verification.ExtensionPolicy.webpki_defaults_ca()


def _raise_for_issuer_validity(
    cert: DeviceCertificate, pool: tuple[DeviceCertificate, ...], trust_store: TrustStore, when: _dt.datetime
) -> None:
    """After a failed verification: name an expired or not-yet-valid CA on the issuer path, if any."""
    candidates = (*pool, *trust_store.certificates)
    current = cert
    seen: set[str] = {cert.certificate_id}
    for _ in range(_MAX_ISSUER_LEVELS):
        issuers = [c for c in candidates if c.subject == current.issuer and c.certificate_id not in seen]
        if not issuers:
            return
        for issuer in issuers:
            try:
                check_validity(issuer, when)
            except CertificateValidationError as exc:
                if all(_out_of_window(other, when) for other in issuers):
                    raise CertificateValidationError(
                        f"{_label(cert)} chains through a CA that is not valid: {exc}",
                        certificate_id=cert.certificate_id,
                        reason=exc.reason,
                    ) from None
        current = issuers[0]
        seen.add(current.certificate_id)
        if current.subject == current.issuer:
            return


def _out_of_window(cert: DeviceCertificate, when: _dt.datetime) -> bool:
    return when < cert.not_before or when > cert.not_after
