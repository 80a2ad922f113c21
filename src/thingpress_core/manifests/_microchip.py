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

The verifiers (``verifiers=``) are loaded and checked by `_verifiers.load_verifiers`; this
module checks the entries against them.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import IO, Any, cast

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from thingpress_core.certificates import DeviceCertificate
from thingpress_core.errors import CertificateError, ConfigurationError, ManifestError, ManifestSignatureError
from thingpress_core.manifests._common import (
    MAX_SKIPPED_ENTRIES,
    Policy,
    ReaderNaming,
    entry_error,
    logger,
    offered_name,
)
from thingpress_core.manifests._model import ManifestEntry
from thingpress_core.manifests._verifiers import Verifier, VerifierInput, verifier_list

__all__ = ["read_microchip"]

_B64URL = re.compile(r"[A-Za-z0-9_-]*={0,2}")
_LISTED_ERRORS = 10
_CHAIN_CACHE_SIZE = 64


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


def _valid_at(verifier: Verifier, moment: datetime) -> bool:
    return verifier.certificate.not_valid_before_utc <= moment <= verifier.certificate.not_valid_after_utc


def _verifies(verifier: Verifier, der_sig: bytes, signed: bytes) -> bool:
    try:
        verifier.public_key.verify(der_sig, signed, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


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
        verifiers: Sequence[Verifier],
        *,
        source: str,
        check_validity: bool,
    ) -> None:
        # a kid names a key, which a renewed signer certificate keeps: one kid, several verifiers
        self.verifiers: dict[str, list[Verifier]] = {}
        for verifier in verifiers:
            self.verifiers.setdefault(verifier.kid, []).append(verifier)
        self.by_thumbprint = {v.x5t_s256: v for v in verifiers}
        self.source = source
        self.check_validity = check_validity
        self.chain_cache: dict[bytes, DeviceCertificate] = {}

    def signer(self, header: Mapping[str, Any]) -> list[Verifier]:
        """The verifiers the header names: one, or (a kid alone, a renewed signer) several."""
        kid = header.get("kid")
        x5t = header.get("x5t#S256")
        if kid is None and x5t is None:
            raise _EntryProblem("protected header names no signer (no kid, no x5t#S256)", signature=True)
        if kid is not None:
            candidates = self.verifiers.get(kid, []) if isinstance(kid, str) else []
            if not candidates:
                raise _EntryProblem(f"unknown signer: no verifier has kid {str(kid)[:64]!r}", signature=True)
        else:
            found = self.by_thumbprint.get(x5t) if isinstance(x5t, str) else None
            if found is None:
                raise _EntryProblem(
                    f"unknown signer: no verifier has x5t#S256 {str(x5t)[:64]!r}", signature=True
                )
            candidates = [found]
        if x5t is not None:
            named = [v for v in candidates if v.x5t_s256 == x5t]
            if not named:
                verifier = candidates[0]
                raise _EntryProblem(
                    f"signer thumbprint x5t#S256 does not match verifier {verifier.name!r} "
                    f"(kid {verifier.kid})",
                    signature=True,
                )
            candidates = named
        return candidates

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
        candidates = self.signer(header)
        sig = _decode_b64url(signature, "signature")
        if len(sig) != 64:
            raise _EntryProblem(f"ES256 signature must be 64 bytes (r || s), not {len(sig)}", signature=True)
        der_sig = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
        signed = f"{protected}.{payload}".encode("ascii")
        verified = [v for v in candidates if _verifies(v, der_sig, signed)]
        if not verified:
            raise _EntryProblem(
                f"signature does not verify with signer {candidates[0].name!r} "
                "(payload or signature altered)",
                signature=True,
            )
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
            self._check_validity(verified, body.get("provisioningTimestamp"))
        certificate, chain = self._certificate(body, index)
        return _Checked(index=index, unique_id=unique_id, certificate=certificate, chain=chain)

    def _check_validity(self, verifiers: Sequence[Verifier], stamp: object) -> None:
        """One of ``verifiers`` (certificates of the key that signed) was valid at ``stamp``."""
        moment = _parse_timestamp(stamp)
        if moment is None:
            raise _EntryProblem(
                "signed payload has no valid provisioningTimestamp to check the signer's validity at "
                "(check_verifier_validity=False skips this check)",
                signature=True,
            )
        if not any(_valid_at(v, moment) for v in verifiers):
            verifier = verifiers[0]
            cert = verifier.certificate
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
    table = verifier_list(verifiers)
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
        problems: list[ManifestError] = []  # the first MAX_SKIPPED_ENTRIES, with `failed` counting all
        failed = 0
        for index, raw in enumerate(entries):
            try:
                checked.append(checker.check(raw, index))
            except _EntryProblem as problem:
                failed += 1
                if len(problems) < MAX_SKIPPED_ENTRIES:
                    problems.append(entry_error(source, index, problem.reason, signature=problem.signature))
        if problems:
            raise _refusal(source, len(entries), problems, failed)
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


def _refusal(source: str, total: int, problems: list[ManifestError], failed: int) -> ManifestError:
    signature = any(isinstance(p, ManifestSignatureError) for p in problems)
    prefix = f"{source}: "
    listed = "; ".join(str(p).removeprefix(prefix) for p in problems[:_LISTED_ERRORS])
    more = failed - _LISTED_ERRORS
    if more > 0:
        listed += f"; and {more} more"
    cls = ManifestSignatureError if signature else ManifestError
    message = (
        f"{source}: manifest refused, nothing imported: {failed} of {total} entries failed "
        f"verification ({listed}); on_error='skip' imports the entries that verify"
    )
    return cls(message, source=source, index=problems[0].index, errors=problems)
