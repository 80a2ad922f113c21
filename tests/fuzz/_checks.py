"""What the fuzz tests assert, shared by tests/fuzz and tests/manifests/test_fuzz.py.

`exercise_certificate` runs one DER input through the public parsers and every property of
what comes out; `check_manifest` reads one manifest holding one mutated certificate among
good ones and checks that the bad entry fails alone. Both let only the expected
`ThingpressError` through: anything else propagates and fails the test with its case.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from cryptography import x509
from tests.fuzz._mutate import encodings, pem

from thingpress_core.certificates import (
    THING_NAME_PATTERN,
    DeviceCertificate,
    TrustStore,
    check_validity,
    decode_transport,
    encode_for_transport,
    load_certificate,
    load_certificates,
    thing_name_for,
    verify_certificate,
)
from thingpress_core.errors import (
    CertificateParseError,
    CertificateValidationError,
    ManifestError,
    ThingpressError,
)
from thingpress_core.manifests import read_manifest

__all__ = [
    "TALLY",
    "ManifestCase",
    "assert_no_body",
    "check_manifest",
    "der_file_manifest",
    "espressif_manifest",
    "exercise_certificate",
    "generated_manifest",
    "pem_manifest",
    "raised",
    "raw_failures",
    "read_properties",
]

TALLY: Counter[str] = Counter()
"""How many mutated certificates and manifests this process checked (conftest prints it)."""

_AT = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
_PROPERTIES: tuple[tuple[str, Callable[[DeviceCertificate], object]], ...] = (
    ("x509", lambda c: c.x509()),
    ("pem", lambda c: c.pem),
    ("subject", lambda c: c.subject),
    ("issuer", lambda c: c.issuer),
    ("serial_number", lambda c: c.serial_number),
    ("not_before", lambda c: c.not_before),
    ("not_after", lambda c: c.not_after),
    ("key_type", lambda c: c.key_type),
    ("is_ca", lambda c: c.is_ca),
)
_PEM_FORMS = frozenset({"pem", "pem-str", "base64-pem", "legacy"})
_NOUNS = {"pem": "certificate", "generated": "line", "espressif": "row"}

E = TypeVar("E", bound=ThingpressError)


def raised(kind: type[E], call: Callable[[], object]) -> E | None:
    """The ``kind`` error ``call()`` raised, or None when it returned; any other exception propagates."""
    try:
        call()
    except kind as exc:
        return exc
    return None


class _Body:
    """The aligned 32-character chunks of a certificate's base64 text and 64-digit chunks of its hex.

    A message quoting a run of the body twice as long as a chunk contains one chunk whole.
    """

    def __init__(self, der: bytes) -> None:
        text = base64.b64encode(der).decode("ascii")
        hexed = der.hex()
        self.chunks = [text[i : i + 32] for i in range(0, len(text) - 31, 32)]
        # the certificate id is 64 hex digits too, of SHA-256 rather than of the body
        self.chunks += [hexed[i : i + 64] for i in range(0, len(hexed) - 63, 64)]

    def absent_from(self, message: str) -> None:
        assert len(message) < 1000, f"message of {len(message)} characters"
        for chunk in self.chunks:
            assert chunk not in message, f"certificate body in {message!r}"


def assert_no_body(message: str, der: bytes) -> None:
    """``message`` quotes no 64-character run of the certificate's base64 and no 32 bytes of its hex."""
    _Body(der).absent_from(message)


def read_properties(cert: DeviceCertificate, *, must_answer: bool) -> None:
    """Every property of ``cert``: an answer, or (``must_answer=False``) an error naming the id."""
    for name, read in _PROPERTIES:
        error = raised(CertificateParseError, partial(read, cert))
        if error is not None:
            assert not must_answer, f"{name} of a loaded certificate raised: {error}"
            assert error.certificate_id == cert.certificate_id, name
            assert cert.certificate_id in str(error), name
    if must_answer:
        # a certificate that loaded travels through JSON, gets a valid thing name, has dates
        again = DeviceCertificate.model_validate_json(cert.model_dump_json())
        assert again == cert
        assert again.der == cert.der
        assert THING_NAME_PATTERN.match(thing_name_for(cert))
        refused = raised(CertificateValidationError, lambda: check_validity(cert, _AT))
        assert refused is None or refused.reason in ("expired", "not_yet_valid")


def exercise_certificate(
    der: bytes, *, anchors: TrustStore, issuer_pool: Sequence[DeviceCertificate], every_parser: bool = True
) -> bool:
    """Feed ``der`` to the parsers and read every property; True when it loads as a certificate.

    `load_certificates` sees ``der`` in each form (DER, PEM, base64, legacy ``b'...'``), and
    with ``every_parser`` the thin wrappers too (`load_certificate`, ``from_pem``,
    `decode_transport`, `TrustStore.from_pem`, ``model_validate``...). Asserts that the forms
    load or fail together, that a certificate that loads answers every property, verifies or
    is refused with a reason, and that a failure is a `CertificateParseError` naming the
    source, the certificate number and the certificate id, never quoting the body.
    """
    certificate_id = hashlib.sha256(der).hexdigest()
    body = _Body(der)
    single: DeviceCertificate | None = None
    error = raised(CertificateParseError, lambda: DeviceCertificate.from_der(der, source="fuzz.der"))
    if error is None:
        single = DeviceCertificate.from_der(der)
        assert single.certificate_id == certificate_id
        read_properties(single, must_answer=True)
    else:
        body.absent_from(str(error))
        assert str(error).startswith("fuzz.der: not a valid X.509 certificate (id ")
        assert error.certificate_id == certificate_id
        assert certificate_id in str(error)

    for form, data in encodings(der):
        certs: list[DeviceCertificate] = []
        error = raised(CertificateParseError, partial(_load_into, certs, data, f"fuzz.{form}"))
        if error is not None:
            body.absent_from(str(error))
            assert error.source == f"fuzz.{form}"
            assert str(error).startswith(f"fuzz.{form}")
            if form in _PEM_FORMS:
                # one PEM block: the verdict of from_der, reported as certificate 1
                assert single is None, f"{form} refused what from_der read: {error}"
                assert error.index == 0
                assert str(error).startswith(f"fuzz.{form}, certificate 1: ")
        elif single is not None:
            assert certs == [single], form
        else:
            assert form not in _PEM_FORMS, f"{form} read what from_der refused"
            for cert in certs:  # DER the loader splits otherwise (trailing bytes, say)
                read_properties(cert, must_answer=True)

    if every_parser:
        _every_parser(der, body, loads=single is not None)
    if single is not None:
        assert decode_transport(encode_for_transport(single)) == [single]
        _verify(single, anchors, issuer_pool)
    TALLY["certificates"] += 1
    return single is not None


def _load_into(certs: list[DeviceCertificate], data: bytes | str, source: str) -> None:
    certs.extend(load_certificates(data, source=source))


def _every_parser(der: bytes, body: _Body, *, loads: bool) -> None:
    text = pem(der)
    payload = json.dumps({"der": base64.b64encode(der).decode("ascii")})
    calls: tuple[Callable[[], object], ...] = (
        lambda: DeviceCertificate.from_pem(text),
        lambda: load_certificate(text, source="fuzz"),
        lambda: decode_transport(base64.b64encode(text)),
        lambda: TrustStore.from_pem(text, source="anchors.pem"),
        lambda: DeviceCertificate.model_validate({"der": der}),
        lambda: DeviceCertificate.model_validate({"pem": text.decode("ascii")}),
        lambda: DeviceCertificate.model_validate_json(payload),
    )
    for call in calls:
        error = raised(CertificateParseError, call)
        assert (error is None) == loads
        if error is not None:
            body.absent_from(str(error))
    # a certificate built without parsing: every property answers or names the certificate
    constructed = DeviceCertificate.model_construct(der=der, certificate_id=hashlib.sha256(der).hexdigest())
    read_properties(constructed, must_answer=False)
    # a cryptography object, as cryptography itself hands it out
    try:
        parsed = x509.load_der_x509_certificate(der)
    except Exception:  # whatever cryptography refuses never reaches from_x509
        return
    assert (raised(CertificateParseError, lambda: DeviceCertificate.from_x509(parsed)) is None) == loads


_RAW: tuple[Callable[[x509.Certificate], object], ...] = (
    lambda c: c.subject,
    lambda c: c.issuer,
    lambda c: c.not_valid_before_utc,
    lambda c: c.not_valid_after_utc,
    lambda c: c.extensions,
    lambda c: c.public_key(),
    lambda c: c.signature_hash_algorithm,
)


def raw_failures(der: bytes) -> set[str]:
    """The exception classes cryptography itself raises on ``der`` (to show the corpus reaches them)."""
    seen: set[str] = set()
    try:
        cert = x509.load_der_x509_certificate(der)
    except Exception as exc:  # classifying whatever cryptography raises is the point
        return {type(exc).__name__}
    for read in _RAW:
        try:
            read(cert)
        except Exception as exc:
            seen.add(type(exc).__name__)
    return seen


def _verify(cert: DeviceCertificate, anchors: TrustStore, pool: Sequence[DeviceCertificate]) -> None:
    """The certificate as a leaf, an intermediate and an anchor: a chain or a reasoned refusal."""
    calls: tuple[Callable[[], object], ...] = (
        lambda: verify_certificate(cert, anchors, at=_AT),
        lambda: verify_certificate(pool[0], anchors, intermediates=[cert], at=_AT),
        lambda: verify_certificate(pool[0], TrustStore(certificates=(cert,)), at=_AT),
    )
    for call in calls:
        refused = raised(CertificateValidationError, call)
        assert refused is None or refused.reason in ("untrusted", "expired", "not_yet_valid", "is_ca")


# -- manifests -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ManifestCase:
    """A manifest with the mutated certificate at ``bad`` among good ones, and what reading it must give."""

    format: str
    data: bytes
    ders: tuple[bytes, ...]  # per entry, in order
    bad: int
    loads: bool  # whether the mutated certificate is a certificate still


def _loads(call: Callable[[], object]) -> bool:
    return raised(CertificateParseError, call) is None


def pem_manifest(good: Sequence[bytes], bad_der: bytes, bad: int) -> ManifestCase:
    ders = [*good[:bad], bad_der, *good[bad:]]
    data = b"# devices\n" + b"".join(pem(d) for d in ders)
    return ManifestCase(
        "pem", data, tuple(ders), bad, _loads(lambda: DeviceCertificate.from_pem(pem(bad_der)))
    )


def der_file_manifest(der: bytes) -> ManifestCase:
    """A manifest that is one DER certificate (the PEM reader takes those too)."""
    return ManifestCase("pem", der, (der,), 0, _loads(lambda: DeviceCertificate.from_der(der)))


def generated_manifest(good: Sequence[bytes], bad_der: bytes, bad: int, *, style: int) -> ManifestCase:
    """One base64 line per certificate; the mutated one as base64 of PEM (style 0), of DER (1), or
    legacy ``b'...'`` (2)."""
    ders = [*good[:bad], bad_der, *good[bad:]]
    lines = []
    for i, der in enumerate(ders):
        if i == bad and style == 1:
            lines.append(base64.b64encode(der))
        elif i == bad and style == 2:
            lines.append(b"b'" + base64.b64encode(pem(der)) + b"'")
        else:
            lines.append(base64.b64encode(pem(der)))
    if style == 1:
        loads = _loads(lambda: DeviceCertificate.from_der(bad_der))
    else:
        loads = _loads(lambda: DeviceCertificate.from_pem(pem(bad_der)))
    return ManifestCase("generated", b"\n".join(lines) + b"\n", tuple(ders), bad, loads)


def espressif_manifest(good: Sequence[bytes], bad_der: bytes, bad: int) -> ManifestCase:
    ders = [*good[:bad], bad_der, *good[bad:]]
    rows = [b"MAC,cn,cert\r\n"]
    for i, der in enumerate(ders):
        rows.append(b'%012X,cn-%d,"%s"\r\n' % (0x4BA2BB000000 + i, i, pem(der)))
    loads = _loads(lambda: DeviceCertificate.from_pem(pem(bad_der)))
    return ManifestCase("espressif", b"".join(rows), tuple(ders), bad, loads)


def check_manifest(case: ManifestCase) -> None:
    """Read ``case`` both ways: the good entries always come out, the bad one fails alone.

    ``on_error="skip"`` yields every entry but the bad one and lists that one (its index,
    code ``invalid``) in the report; ``on_error="raise"`` yields the entries before it, then
    raises a `ManifestError` naming the source and the entry. A mutant that is still a
    certificate comes out like any other.
    """
    source = f"fuzz.{case.format}"
    where = f"{source}: {_NOUNS[case.format]} {case.bad + 1}"
    ids = [hashlib.sha256(d).hexdigest() for d in case.ders]
    expected = [i for i in range(len(ids)) if case.loads or i != case.bad]

    reader = read_manifest(case.data, format=case.format, on_error="skip", name=source)
    entries = list(reader)
    assert [e.index for e in entries] == expected, reader.report.skipped
    assert [e.certificate.certificate_id for e in entries] == [ids[i] for i in expected]
    assert reader.report.complete
    if case.loads:
        assert reader.report.skipped == []
    else:
        [skipped] = reader.report.skipped
        assert (skipped.index, skipped.code) == (case.bad, "invalid")
        assert skipped.reason.startswith(where), skipped.reason
        assert_no_body(skipped.reason, case.ders[case.bad])
    for entry in entries:
        read_properties(entry.certificate, must_answer=True)

    seen: list[int] = []
    strict = read_manifest(case.data, format=case.format, on_error="raise", name=source)
    error = raised(ManifestError, lambda: seen.extend(entry.index for entry in strict))
    if case.loads:
        assert error is None, f"a certificate that loads was refused: {error}"
        assert seen == list(range(len(ids)))
    else:
        assert error is not None, "a broken certificate was read without a word"
        assert error.index == case.bad
        assert error.source == source
        assert str(error).startswith(where), str(error)
        assert_no_body(str(error), case.ders[case.bad])
        assert seen == list(range(case.bad))
    TALLY["manifests"] += 1
