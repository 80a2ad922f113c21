"""Microchip Trust&GO / TrustFLEX manifests: a JSON array of signed JWS entries.

Each entry is a JWS in flattened JSON serialization::

    {"protected": b64url(JSON header), "payload": b64url(JSON), "signature": b64url(r || s),
     "header": {"uniqueId": "..."}}

The protected header names the signer (``kid`` = base64url of the verifier certificate's
SubjectKeyIdentifier, ``x5t#S256`` = base64url SHA-256 of its DER) and ``alg`` ES256. The
signature is the raw 64-byte r || s over ``protected + "." + payload`` (ASCII). Only what is
signed is trusted: the thing name and vendor id come from the payload's ``uniqueId``; the
unprotected ``header`` is only compared with it. A header that marks any parameter critical
(``crit``) is refused: no JWS extension is understood here (RFC 7515, section 4.1.11).

A verifier must be able to be a manifest signer (`_signer_problem`): a CA, a self-signed
signer certificate as Microchip issues them, or a certificate with a signing ExtendedKeyUsage;
a device or TLS client certificate passed by mistake is refused when the verifiers are loaded.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, cast

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from thingpress_core.certificates import DeviceCertificate, TrustStore, load_certificates
from thingpress_core.certificates._trust import TRUST_FILE_SUFFIXES
from thingpress_core.errors import CertificateError, ConfigurationError, ManifestError, ManifestSignatureError
from thingpress_core.manifests._common import Policy, ReaderNaming, entry_error, logger, offered_name
from thingpress_core.manifests._model import ManifestEntry

__all__ = ["Verifier", "VerifierInput", "load_verifiers", "read_microchip"]

#: What ``verifiers=`` accepts: a path (file or directory of .crt/.pem/.cer/.der), PEM or DER
#: bytes, a cryptography certificate, a DeviceCertificate, or an iterable of those.
VerifierInput = str | Path | bytes | x509.Certificate | DeviceCertificate

_B64URL = re.compile(r"[A-Za-z0-9_-]*={0,2}")
_MAX_VERIFIER_FILE = 1024 * 1024
_LISTED_ERRORS = 10
_CHAIN_CACHE_SIZE = 64
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
    or TLS client certificate: see `Verifier.from_x509`).
    """
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
    result: dict[str, Verifier] = {}
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
            result[verifier.kid] = verifier
    return result


@dataclass(frozen=True)
class _Checked:
    index: int
    unique_id: str
    certificate: DeviceCertificate | None
    chain: tuple[DeviceCertificate, ...]


class _EntryProblem(Exception):
    """One entry's failure while checking; turned into a ManifestError naming the entry."""

    def __init__(self, reason: str, *, signature: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.signature = signature


def _decode_b64url(value: object, field: str) -> bytes:
    if not isinstance(value, str) or not _B64URL.fullmatch(value):
        raise _EntryProblem(f"{field} is not base64url text", signature=False)
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError) as exc:
        raise _EntryProblem(f"{field} is not valid base64url", signature=False) from exc


def _json_object(data: bytes, field: str) -> dict[str, Any]:
    try:
        value = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise _EntryProblem(f"{field} is not JSON", signature=False) from exc
    if not isinstance(value, dict):
        raise _EntryProblem(f"{field} is not a JSON object", signature=False)
    return value


def _check_critical(header: Mapping[str, Any], unprotected: object) -> None:
    """RFC 7515, section 4.1.11: a JWS whose ``crit`` names an extension the recipient does not
    understand must be rejected. No extension is understood here, so any ``crit`` fails the
    entry; the reason says which rule it broke (it must also be a non-empty list of names of
    parameters present in the protected header, and never unprotected)."""
    if isinstance(unprotected, dict) and "crit" in unprotected:
        raise _EntryProblem("'crit' appears in the unprotected header; it must be protected", signature=True)
    if "crit" not in header:
        return
    crit = header["crit"]
    if not isinstance(crit, list) or not crit or not all(isinstance(name, str) for name in crit):
        raise _EntryProblem(
            "protected header 'crit' is not a non-empty list of header parameter names", signature=True
        )
    names = cast(list[str], crit)
    shown = ", ".join(repr(name[:32]) for name in names[:5])
    missing = [name for name in names if name not in header]
    if missing:
        raise _EntryProblem(
            f"protected header 'crit' names parameter(s) it does not carry: "
            f"{', '.join(repr(name[:32]) for name in missing[:5])}",
            signature=True,
        )
    raise _EntryProblem(
        f"protected header marks {shown} critical, an extension this reader does not understand "
        "(RFC 7515, section 4.1.11)",
        signature=True,
    )


def _parse_timestamp(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return moment.astimezone(timezone.utc)
    except (ValueError, OverflowError):  # OverflowError: e.g. year 1 with a positive offset
        return None


class _Checker:
    def __init__(
        self,
        verifiers: Mapping[str, Verifier],
        *,
        source: str,
        check_validity: bool,
    ) -> None:
        self.verifiers = verifiers
        self.by_thumbprint = {v.x5t_s256: v for v in verifiers.values()}
        self.source = source
        self.check_validity = check_validity
        self.chain_cache: dict[bytes, DeviceCertificate] = {}

    def signer(self, header: Mapping[str, Any]) -> Verifier:
        kid = header.get("kid")
        x5t = header.get("x5t#S256")
        if kid is None and x5t is None:
            raise _EntryProblem("protected header names no signer (no kid, no x5t#S256)", signature=True)
        if kid is not None:
            verifier = self.verifiers.get(kid) if isinstance(kid, str) else None
            if verifier is None:
                raise _EntryProblem(f"unknown signer: no verifier has kid {str(kid)[:64]!r}", signature=True)
        else:
            verifier = self.by_thumbprint.get(x5t) if isinstance(x5t, str) else None
            if verifier is None:
                raise _EntryProblem(
                    f"unknown signer: no verifier has x5t#S256 {str(x5t)[:64]!r}", signature=True
                )
        if x5t is not None and x5t != verifier.x5t_s256:
            raise _EntryProblem(
                f"signer thumbprint x5t#S256 does not match verifier {verifier.name!r} (kid {verifier.kid})",
                signature=True,
            )
        return verifier

    def check(self, raw: object, index: int) -> _Checked:
        if not isinstance(raw, dict):
            raise _EntryProblem("entry is not a JSON object", signature=False)
        protected, payload, signature = raw.get("protected"), raw.get("payload"), raw.get("signature")
        for field, value in (("protected", protected), ("payload", payload), ("signature", signature)):
            if not isinstance(value, str) or not value:
                raise _EntryProblem(f"entry has no {field!r} string", signature=False)
        assert isinstance(protected, str)
        assert isinstance(payload, str)
        header = _json_object(_decode_b64url(protected, "protected header"), "protected header")
        _check_critical(header, raw.get("header"))
        # decoded before the signature check, which needs both parts as base64url (ASCII) text
        payload_bytes = _decode_b64url(payload, "payload")
        if header.get("alg") != "ES256":
            raise _EntryProblem(
                f"unsupported signature algorithm {str(header.get('alg'))[:32]!r} (expected ES256)",
                signature=True,
            )
        verifier = self.signer(header)
        sig = _decode_b64url(signature, "signature")
        if len(sig) != 64:
            raise _EntryProblem(f"ES256 signature must be 64 bytes (r || s), not {len(sig)}", signature=True)
        der_sig = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
        try:
            verifier.public_key.verify(
                der_sig, f"{protected}.{payload}".encode("ascii"), ec.ECDSA(hashes.SHA256())
            )
        except InvalidSignature:
            raise _EntryProblem(
                f"signature does not verify with signer {verifier.name!r} (payload or signature altered)",
                signature=True,
            ) from None
        body = _json_object(payload_bytes, "payload")
        unique_id = body.get("uniqueId")
        if not isinstance(unique_id, str) or not unique_id.strip():
            raise _EntryProblem("signed payload has no uniqueId", signature=False)
        unprotected = raw.get("header")
        if unprotected is not None:
            if not isinstance(unprotected, dict):
                raise _EntryProblem("unprotected header is not a JSON object", signature=False)
            claimed = unprotected.get("uniqueId")
            if claimed is not None and claimed != unique_id:
                raise _EntryProblem(
                    f"unprotected header uniqueId {str(claimed)[:64]!r} disagrees with the signed "
                    f"payload's {unique_id!r}",
                    signature=True,
                )
        if self.check_validity:
            self._check_validity(verifier, body.get("provisioningTimestamp"))
        certificate, chain = self._certificate(body, index)
        return _Checked(index=index, unique_id=unique_id, certificate=certificate, chain=chain)

    def _check_validity(self, verifier: Verifier, stamp: object) -> None:
        moment = _parse_timestamp(stamp)
        if moment is None:
            raise _EntryProblem(
                "signed payload has no valid provisioningTimestamp to check the signer's validity at "
                "(check_verifier_validity=False skips this check)",
                signature=True,
            )
        cert = verifier.certificate
        if not cert.not_valid_before_utc <= moment <= cert.not_valid_after_utc:
            raise _EntryProblem(
                f"signer {verifier.name!r} was not valid at provisioning time {moment.isoformat()} "
                f"(valid {cert.not_valid_before_utc.isoformat()} to {cert.not_valid_after_utc.isoformat()})",
                signature=True,
            )

    def _certificate(
        self, body: Mapping[str, Any], index: int
    ) -> tuple[DeviceCertificate | None, tuple[DeviceCertificate, ...]]:
        key_set = body.get("publicKeySet")
        if key_set is None:
            return None, ()
        if not isinstance(key_set, dict) or not isinstance(key_set.get("keys"), list):
            raise _EntryProblem("publicKeySet has no keys list", signature=False)
        for key in key_set["keys"]:
            if not isinstance(key, dict):
                raise _EntryProblem("publicKeySet.keys holds a non-object", signature=False)
            x5c = key.get("x5c")
            if not x5c:
                continue
            if not isinstance(x5c, list) or not all(isinstance(item, str) for item in x5c):
                raise _EntryProblem("x5c is not a list of base64 strings", signature=False)
            ders: list[bytes] = []
            for position, item in enumerate(x5c):
                try:
                    ders.append(base64.b64decode(item, validate=True))
                except (binascii.Error, ValueError) as exc:
                    raise _EntryProblem(f"x5c[{position}] is not base64", signature=False) from exc
            certs: list[DeviceCertificate] = []
            for position, der in enumerate(ders):
                cached = self.chain_cache.get(der) if position else None
                if cached is not None:
                    certs.append(cached)
                    continue
                try:
                    cert = DeviceCertificate.from_der(der, source=self.source)
                except (CertificateError, ValueError) as exc:
                    detail = str(exc).strip().replace("\n", " ") or type(exc).__name__
                    message = f"x5c[{position}] is not a valid certificate: {detail}"
                    raise _EntryProblem(message, signature=False) from exc
                if position and len(self.chain_cache) < _CHAIN_CACHE_SIZE:
                    # signer CAs repeat on every entry of a manifest: parse each once
                    self.chain_cache[der] = cert
                certs.append(cert)
            self._check_jwk(key, certs[0])
            return certs[0], tuple(certs[1:])
        return None, ()

    @staticmethod
    def _check_jwk(key: Mapping[str, Any], cert: DeviceCertificate) -> None:
        if key.get("kty") != "EC" or key.get("crv") != "P-256":
            raise _EntryProblem("the certificate's JWK is not an EC P-256 key", signature=False)
        x = _decode_b64url(key.get("x"), "JWK x")
        y = _decode_b64url(key.get("y"), "JWK y")
        try:
            public = cert.x509().public_key()
        except (ValueError, UnsupportedAlgorithm):
            raise _EntryProblem("x5c[0] holds a public key that cannot be read", signature=False) from None
        if not isinstance(public, ec.EllipticCurvePublicKey) or not isinstance(public.curve, ec.SECP256R1):
            raise _EntryProblem("x5c[0] does not hold the P-256 key the JWK describes", signature=True)
        numbers = public.public_numbers()
        if numbers.x != int.from_bytes(x, "big") or numbers.y != int.from_bytes(y, "big"):
            raise _EntryProblem(
                f"x5c[0] (certificate {cert.certificate_id}) does not hold the public key in the signed JWK",
                signature=True,
            )


def _load_entries(stream: IO[bytes], source: str) -> list[object]:
    data = stream.read()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        document = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise ManifestError(
            f"{source}: not a Microchip manifest: the file is not JSON ({exc})", source=source
        ) from exc
    if isinstance(document, dict) and "payload" in document:
        return [document]
    if not isinstance(document, list):
        raise ManifestError(
            f"{source}: not a Microchip manifest: expected a JSON array of signed entries", source=source
        )
    return document


def read_microchip(
    stream: IO[bytes],
    *,
    source: str,
    policy: Policy,
    naming: ReaderNaming,
    verifiers: VerifierInput | Iterable[VerifierInput] | None = None,
    check_verifier_validity: bool = True,
) -> Iterator[ManifestEntry | ManifestError]:
    """Check every entry; yield the verified ones that carry a certificate.

    With ``on_error="raise"`` nothing is yielded until every entry has verified: one bad entry
    refuses the whole manifest with a `ManifestSignatureError` listing each bad entry. With
    ``"skip"`` and ``"yield"`` entries are verified one at a time and each comes out (or its
    error, for ``"yield"``) as soon as it is checked.
    """
    table = load_verifiers(verifiers)
    if not table:
        raise ConfigurationError(
            "a Microchip manifest is signed: pass verifiers= (the Microchip manifest signer "
            "certificates, e.g. MCHP_manifest_signer_*.crt) to check it",
            variable="verifiers",
            value=None,
        )
    checker = _Checker(table, source=source, check_validity=bool(check_verifier_validity))
    entries = _load_entries(stream, source)
    if policy.on_error == "raise":
        checked: list[_Checked] = []
        problems: list[ManifestError] = []
        for index, raw in enumerate(entries):
            try:
                checked.append(checker.check(raw, index))
            except _EntryProblem as problem:
                problems.append(entry_error(source, index, problem.reason, signature=problem.signature))
        if problems:
            raise _refusal(source, len(entries), problems)
        for item in checked:
            yield from _emit(item, source, policy, naming)
        return
    for index, raw in enumerate(entries):
        try:
            item = checker.check(raw, index)
        except _EntryProblem as problem:
            # no vendor_id: the only uniqueId such an entry offers is unverified
            yield from policy.fail(
                entry_error(source, index, problem.reason, signature=problem.signature),
                code="signature" if problem.signature else "invalid",
            )
            continue
        yield from _emit(item, source, policy, naming)


def _emit(item: _Checked, source: str, policy: Policy, naming: ReaderNaming) -> Iterator[ManifestEntry]:
    if item.certificate is None:
        policy.skip(
            item.index,
            "no_certificate",
            f"{source}: entry {item.index + 1}: signature verified for uniqueId {item.unique_id}, "
            "but the entry carries no certificate (no publicKeySet x5c; e.g. payload version 2)",
            vendor_id=item.unique_id,
        )
        return
    logger.debug(
        "verified manifest entry",
        extra={
            "manifest": source,
            "entry": item.index + 1,
            "certificate_id": item.certificate.certificate_id,
        },
    )
    yield ManifestEntry(
        thing_name=offered_name(naming, item.certificate, vendor_id=item.unique_id),
        certificate=item.certificate,
        chain=item.chain,
        vendor_id=item.unique_id,
        index=item.index,
        source=source,
    )


def _refusal(source: str, total: int, problems: list[ManifestError]) -> ManifestError:
    signature = any(isinstance(p, ManifestSignatureError) for p in problems)
    prefix = f"{source}: "
    listed = "; ".join(str(p).removeprefix(prefix) for p in problems[:_LISTED_ERRORS])
    more = len(problems) - _LISTED_ERRORS
    if more > 0:
        listed += f"; and {more} more"
    cls = ManifestSignatureError if signature else ManifestError
    message = (
        f"{source}: manifest refused, nothing imported: {len(problems)} of {total} entries failed "
        f"verification ({listed}); on_error='skip' imports the entries that verify"
    )
    return cls(message, source=source, index=problems[0].index, errors=problems)
