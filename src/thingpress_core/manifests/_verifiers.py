"""Manifest signer certificates: what ``verifiers=`` accepts, loaded and checked once.

A verifier must be able to be a manifest signer (`_signer_problem`): a CA, a self-signed
signer certificate as Microchip issues them, or a certificate with a signing ExtendedKeyUsage;
a device or TLS client certificate passed by mistake is refused when the verifiers are loaded,
not when the first entry fails to verify. Each `Verifier` is keyed the way a JWS protected
header names its signer: ``kid`` (base64url of the SubjectKeyIdentifier) and ``x5t#S256``
(base64url SHA-256 of the DER).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from thingpress_core.certificates import DeviceCertificate, TrustStore, load_certificates
from thingpress_core.certificates._trust import TRUST_FILE_SUFFIXES
from thingpress_core.errors import CertificateError, ConfigurationError

__all__ = ["Verifier", "VerifierInput", "load_verifiers", "verifier_list"]

#: What ``verifiers=`` accepts: a path (file or directory of .crt/.pem/.cer/.der), PEM or DER
#: bytes, a cryptography certificate, a DeviceCertificate, or an iterable of those.
VerifierInput = str | Path | bytes | x509.Certificate | DeviceCertificate

_MAX_VERIFIER_FILE = 1024 * 1024
# ExtendedKeyUsage purposes that say "this key signs content" (documentSigning is RFC 9336)
_SIGNING_PURPOSES = frozenset({ExtendedKeyUsageOID.CODE_SIGNING, x509.ObjectIdentifier("1.3.6.1.5.5.7.3.36")})


@dataclass(frozen=True)
class Verifier:
    """A manifest signer certificate, keyed the way a JWS header names it."""

    certificate: x509.Certificate
    kid: str
    x5t_s256: str
    public_key: ec.EllipticCurvePublicKey
    name: str

    @classmethod
    def from_x509(cls, cert: x509.Certificate, *, source: str | None = None) -> Verifier:
        """The verifier for ``cert``; `ConfigurationError` (naming ``source``, the file it came
        from, when given) if it cannot check ES256 signatures or cannot be a manifest signer."""
        subject = cert.subject.rfc4514_string()
        where = f"{source}: " if source else ""

        def refuse(problem: str) -> ConfigurationError:
            return ConfigurationError(
                f"{where}verifier {subject!r} {problem}", variable="verifiers", value=source or subject
            )

        try:
            key = cert.public_key()
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise refuse(f"has a public key that cannot be read: {exc}") from None
        if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
            raise refuse("does not hold a P-256 key, so it cannot check ES256 signatures")
        try:
            problem = _signer_problem(cert)
        except ValueError as exc:
            if _self_signed(cert):
                raise refuse(f"has extensions that cannot be parsed: {exc}") from None
            # e.g. a Microchip device certificate, whose subjectAltName cryptography refuses
            problem = (
                f"it is issued by {cert.issuer.rfc4514_string()!r} and its extensions cannot be parsed "
                f"({exc}), so it cannot be shown to be a CA"
            )
        if problem is not None:
            raise refuse(
                f"is not a manifest signer: {problem}; pass the Microchip manifest signer certificates "
                "(MCHP_manifest_signer_*.crt)"
            )
        try:
            ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
        except x509.ExtensionNotFound:
            ski = x509.SubjectKeyIdentifier.from_public_key(key).digest
        der = cert.public_bytes(Encoding.DER)
        return cls(
            certificate=cert,
            kid=_b64url(ski),
            x5t_s256=_b64url(hashlib.sha256(der).digest()),
            public_key=key,
            name=subject,
        )


def _signer_problem(cert: x509.Certificate) -> str | None:
    """Why ``cert`` cannot be a manifest signer, or None when it can.

    Microchip's manifest signers (MCHP_manifest_signer_1 to 5) are self-signed P-256
    certificates with BasicConstraints cA=false and no KeyUsage or ExtendedKeyUsage; the
    Crypto Authentication signer CAs carry cA=true and KeyUsage digitalSignature. Accepted: a
    CA, a self-signed certificate, or one whose ExtendedKeyUsage names code or document
    signing; and whatever KeyUsage or ExtendedKeyUsage it has must allow signing. A device or
    TLS client certificate (issued by a CA, cA=false, clientAuth) is refused. Raises
    ValueError when the extensions cannot be parsed.
    """
    extensions = cert.extensions
    try:
        usage = extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is not None and not usage.digital_signature:
        return "its KeyUsage does not allow digitalSignature, and a manifest signature is one"
    try:
        purposes = set(extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        purposes = None
    if purposes is not None and not purposes & (
        _SIGNING_PURPOSES | {ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE}
    ):
        names = ", ".join(sorted(getattr(oid, "_name", oid.dotted_string) for oid in purposes))
        return f"its ExtendedKeyUsage ({names}) allows no signing purpose, as a TLS or device certificate's"
    try:
        if extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            return None
    except x509.ExtensionNotFound:
        pass
    if purposes is not None and purposes & _SIGNING_PURPOSES:
        return None
    if _self_signed(cert):
        return None
    return (
        f"it is an end-entity certificate issued by {cert.issuer.rfc4514_string()!r} (not a CA, not "
        "self-signed, no code or document signing ExtendedKeyUsage), as a device certificate is"
    )


def _self_signed(cert: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _certs_from_bytes(data: bytes, what: str) -> list[x509.Certificate]:
    try:
        return [cert.x509() for cert in load_certificates(data, max_bytes=_MAX_VERIFIER_FILE)]
    except CertificateError as exc:
        raise ConfigurationError(
            f"verifier {what} is not a PEM or DER certificate: {exc}", variable="verifiers", value=what
        ) from exc


def _certs_from_path(path: Path) -> list[tuple[x509.Certificate, str]]:
    """Each certificate of a file, or of every certificate file of a directory, with its file."""
    files = [path]
    try:
        if path.is_dir():
            # an empty directory stays as is, for TrustStore to say so
            files = sorted(
                p for p in path.iterdir() if p.is_file() and p.suffix.lower() in TRUST_FILE_SUFFIXES
            )
            files = files or [path]
    except (OSError, ValueError):
        pass  # TrustStore says what is wrong with the path
    found: list[tuple[x509.Certificate, str]] = []
    for file in files:
        try:
            store = TrustStore.from_path(file, max_bytes=_MAX_VERIFIER_FILE)
        except CertificateError as exc:
            raise ConfigurationError(
                f"cannot read verifier file(s) from {str(path)!r}: {exc}",
                variable="verifiers",
                value=str(path),
            ) from exc
        found.extend((cert.x509(), str(file)) for cert in store.certificates)
    return found


def load_verifiers(verifiers: VerifierInput | Iterable[VerifierInput] | None) -> dict[str, Verifier]:
    """Verifier certificates keyed by ``kid``. Accepts one input or an iterable of them.

    Raises `ConfigurationError` (naming the file for a path) for an input that is not a
    readable P-256 certificate, or is a certificate that cannot be a manifest signer (a device
    or TLS client certificate: see `Verifier.from_x509`). Two certificates of one key (a
    renewed signer) share a ``kid``: the last given stands for it here; the Microchip reader
    keeps both (`verifier_list`) and tells them apart by ``x5t#S256``.
    """
    return {verifier.kid: verifier for verifier in verifier_list(verifiers)}


def verifier_list(verifiers: VerifierInput | Iterable[VerifierInput] | None) -> list[Verifier]:
    """Every verifier certificate given, in order, without duplicates (see `load_verifiers`)."""
    given = cast(object, verifiers)  # checked at run time: callers are not always typed
    items: Iterable[object]
    if given is None:
        items = ()
    elif isinstance(given, str | Path | bytes | bytearray | x509.Certificate | DeviceCertificate):
        items = (given,)
    elif isinstance(given, Iterable):
        items = cast(Iterable[object], given)
    else:
        items = (given,)
    result: dict[str, Verifier] = {}  # by thumbprint: one entry per certificate
    for item in items:
        certs: list[tuple[x509.Certificate, str | None]]
        if isinstance(item, x509.Certificate):
            certs = [(item, None)]
        elif isinstance(item, DeviceCertificate):
            certs = [(item.x509(), None)]
        elif isinstance(item, bytes | bytearray):
            certs = [(cert, None) for cert in _certs_from_bytes(bytes(item), "bytes")]
        elif isinstance(item, str | Path):
            certs = list(_certs_from_path(Path(item)))
        else:
            raise ConfigurationError(
                f"a verifier must be a path, PEM/DER bytes or a certificate, not {type(item).__name__}",
                variable="verifiers",
                value=type(item).__name__,
            )
        for cert, file in certs:
            verifier = Verifier.from_x509(cert, source=file)
            result[verifier.x5t_s256] = verifier
    return list(result.values())
