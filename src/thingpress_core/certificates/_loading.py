"""Turn bytes or text in any accepted encoding into `DeviceCertificate` objects.

Accepted, detected in this order:

1. PEM: one or many ``CERTIFICATE`` blocks, LF or CRLF, any text before, between and after.
2. The legacy Thingpress transport string ``b'<base64 of PEM>'`` (a Python bytes repr),
   recognised by a regular expression and decoded with strict base64, never evaluated.
3. DER: one certificate, or several concatenated.
4. Base64 (strict alphabet, whitespace allowed) of any of the above.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re

from cryptography import x509

from thingpress_core.certificates._model import DeviceCertificate, _common_name, _where
from thingpress_core.errors import CertificateParseError

__all__ = ["DEFAULT_MAX_BYTES", "load_certificate", "load_certificates", "parse_pem_bundle"]

DEFAULT_MAX_BYTES = 1_048_576
"""The default size limit of one input (1 MiB)."""

_BEGIN = b"-----BEGIN "
_END = b"-----END "
_DASHES = b"-----"
_MAX_LABEL = 64
_CERT_LABELS = frozenset({b"CERTIFICATE", b"X509 CERTIFICATE", b"TRUSTED CERTIFICATE"})
# Python's repr of bytes: b'...' or b"..." around printable ASCII; the escapes a repr of
# base64 or PEM text can contain are \n, \r and \t.
_LEGACY = re.compile(rb"\Ab(['\"])((?:[\x20-\x5b\x5d-\x7e]|\\[nrt])*)\1\Z")
_B64_TEXT = re.compile(rb"\A[A-Za-z0-9+/=\s]+\Z")
_WHITESPACE = re.compile(rb"\s+")
_MAX_NESTING = 2


def _pem_error(
    message: str, *, source: str | None, index: int, certificate_id: str | None = None
) -> CertificateParseError:
    return CertificateParseError(
        f"{_where(source, index)}{message}", source=source, index=index, certificate_id=certificate_id
    )


def parse_pem_bundle(data: bytes, *, source: str | None = None, start: int = 0) -> list[DeviceCertificate]:
    """Every CERTIFICATE block of a PEM bundle; other block types (keys, CRLs) are skipped.

    This is the hot path of a bulk import: blocks are found with ``bytes.find`` and each
    certificate costs one base64 decode, one DER parse, one SHA-256 and one CN lookup.
    """
    certs: list[DeviceCertificate] = []
    append = certs.append
    find = data.find
    a2b = binascii.a2b_base64
    load_der = x509.load_der_x509_certificate
    sha256 = hashlib.sha256
    build = DeviceCertificate._fast
    labels = _CERT_LABELS
    index = start
    begin = find(_BEGIN)
    while begin != -1:
        label_start = begin + len(_BEGIN)
        label_end = find(_DASHES, label_start)
        label = data[label_start:label_end] if label_end != -1 else b""
        if label_end == -1 or len(label) > _MAX_LABEL or b"\n" in label:
            raise _pem_error("PEM block has a malformed BEGIN line", source=source, index=index)
        body_start = label_end + len(_DASHES)
        end = find(_END, body_start)
        following = find(_BEGIN, body_start)
        if end == -1 or (following != -1 and following < end):
            raise _pem_error("PEM block has no END line", source=source, index=index)
        end_marker = _END + label + _DASHES
        if not data.startswith(end_marker, end):
            found = data[end : end + len(_END) + _MAX_LABEL].split(b"\n", 1)[0]
            raise _pem_error(
                f"PEM block BEGIN {label.decode('ascii', 'replace')} ends with "
                f"{found.decode('ascii', 'replace').strip('-').strip()}",
                source=source,
                index=index,
            )
        if label in labels:
            try:
                der = a2b(data[body_start:end])
            except binascii.Error as exc:
                raise _pem_error(
                    f"PEM block is not valid base64: {exc}", source=source, index=index
                ) from None
            certificate_id = sha256(der).hexdigest()
            try:
                cert = load_der(der)
                common_name = _common_name(cert)
            except ValueError as exc:
                raise _pem_error(
                    f"is not a valid X.509 certificate: {exc}",
                    source=source,
                    index=index,
                    certificate_id=certificate_id,
                ) from None
            append(build(der, cert, certificate_id, common_name))
            index += 1
        begin = find(_BEGIN, end + len(end_marker))
    if not certs:
        where = f"{source}: " if source else ""
        raise CertificateParseError(f"{where}no CERTIFICATE block in the PEM input", source=source)
    return certs


def _split_der(data: bytes, *, source: str | None) -> list[bytes]:
    """Split concatenated DER SEQUENCEs by their length headers."""
    parts: list[bytes] = []
    offset = 0
    total = len(data)
    while offset < total:
        index = len(parts)
        if data[offset] != 0x30 or offset + 2 > total:
            raise CertificateParseError(
                f"{_where(source, index)}DER data does not start with an ASN.1 SEQUENCE",
                source=source,
                index=index,
            )
        first = data[offset + 1]
        header = 2
        if first < 0x80:
            length = first
        else:
            count = first & 0x7F
            if count == 0 or count > 4 or offset + 2 + count > total:
                raise CertificateParseError(
                    f"{_where(source, index)}DER length is malformed", source=source, index=index
                )
            length = int.from_bytes(data[offset + 2 : offset + 2 + count], "big")
            header += count
        end = offset + header + length
        if end > total:
            raise CertificateParseError(
                f"{_where(source, index)}DER data is truncated ({total - offset} of {header + length} bytes)",
                source=source,
                index=index,
            )
        parts.append(data[offset:end])
        offset = end
    return parts


def _load(data: bytes, *, source: str | None, depth: int) -> list[DeviceCertificate]:
    stripped = data.strip()
    if not stripped:
        where = f"{source}: " if source else ""
        raise CertificateParseError(f"{where}input is empty", source=source)
    if depth < _MAX_NESTING and stripped[:2] in (b"b'", b'b"'):
        legacy = _LEGACY.match(stripped)
        if legacy is not None:
            inner = legacy.group(2).replace(b"\\n", b"\n").replace(b"\\r", b"\r").replace(b"\\t", b"\t")
            return _load(inner, source=source, depth=depth + 1)
    if _BEGIN in stripped:
        return parse_pem_bundle(stripped, source=source)
    if stripped[0] == 0x30:
        return [
            DeviceCertificate._from_der_checked(der, source=source, index=i)
            for i, der in enumerate(_split_der(stripped, source=source))
        ]
    if depth < _MAX_NESTING and _B64_TEXT.match(stripped):
        try:
            decoded = base64.b64decode(_WHITESPACE.sub(b"", stripped), validate=True)
        except binascii.Error:
            decoded = b""
        if decoded:
            return _load(decoded, source=source, depth=depth + 1)
    where = f"{source}: " if source else ""
    raise CertificateParseError(
        f"{where}not a certificate in PEM, DER, base64 or the legacy b'...' form", source=source
    )


def _as_bytes(data: object, *, source: str | None, max_bytes: int) -> bytes:
    where = f"{source}: " if source else ""
    if isinstance(data, str):
        # Characters never outnumber UTF-8 bytes, so this refuses oversized text before encoding.
        if len(data) > max_bytes:
            raise CertificateParseError(
                f"{where}input of {len(data)} characters exceeds the limit of {max_bytes} bytes",
                source=source,
            )
        raw = data.encode("utf-8", "replace")
    elif isinstance(data, bytes | bytearray | memoryview):
        raw = bytes(data)
    else:
        raise CertificateParseError(f"{where}expected bytes or str, got {type(data).__name__}", source=source)
    if len(raw) > max_bytes:
        raise CertificateParseError(
            f"{where}input of {len(raw)} bytes exceeds the limit of {max_bytes} bytes", source=source
        )
    return raw


def load_certificates(
    data: bytes | str, *, source: str | None = None, max_bytes: int = DEFAULT_MAX_BYTES
) -> list[DeviceCertificate]:
    """Every certificate in ``data``: PEM bundle, DER, base64 of PEM or DER, or legacy ``b'...'``.

    ``source`` (a file name, S3 key, message id) is named in every error. Input longer than
    ``max_bytes`` is refused before any parsing. Raises `CertificateParseError` (with
    ``source`` and, where known, the 0-based ``index`` of the failing block) for anything
    that is not a certificate; never another exception for bad input.
    """
    raw = _as_bytes(data, source=source, max_bytes=max_bytes)
    return _load(raw, source=source, depth=0)


def load_certificate(
    data: bytes | str, *, source: str | None = None, max_bytes: int = DEFAULT_MAX_BYTES
) -> DeviceCertificate:
    """Exactly one certificate, in any encoding `load_certificates` accepts."""
    certs = load_certificates(data, source=source, max_bytes=max_bytes)
    if len(certs) != 1:
        where = f"{source}: " if source else ""
        raise CertificateParseError(
            f"{where}expected exactly one certificate, found {len(certs)}", source=source
        )
    return certs[0]
