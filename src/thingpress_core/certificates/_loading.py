"""Turn bytes or text in any accepted encoding into `DeviceCertificate` objects.

Accepted, detected in this order:

1. The legacy Thingpress transport string ``b'<base64 of PEM>'`` (a Python bytes repr),
   recognised by a regular expression and decoded with strict base64, never evaluated.
2. PEM: one or many ``CERTIFICATE`` blocks, LF or CRLF, any text before, between and after.
3. DER: one certificate, or several concatenated (checked before PEM when the input starts
   with a SEQUENCE header no text can start with).
4. Base64 (strict alphabet, whitespace allowed) of any of the above.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import re
import stat

from thingpress_core.certificates._der import DerError, read_tlv
from thingpress_core.certificates._model import DeviceCertificate, _where, parse_pem_bundle
from thingpress_core.certificates._pem import BEGIN
from thingpress_core.errors import CertificateParseError, ConfigurationError

__all__ = [
    "DEFAULT_MAX_CERTIFICATE_BYTES",
    "check_positive_int",
    "load_certificate",
    "open_input",
    "load_certificates",
    "parse_pem_bundle",
]

DEFAULT_MAX_CERTIFICATE_BYTES = 1_048_576
"""The default size limit of one input to the certificate loaders (1 MiB): a few hundred
certificates. Manifests have their own, larger limit (`thingpress_core.manifests`)."""

_LIMIT_HINT = (
    "; pass a larger max_bytes= to load it whole, or read a large bundle with "
    "thingpress_core.manifests.read_manifest, which streams it (up to 256 MiB by default)"
)

# Python's repr of bytes: b'...' or b"..." around printable ASCII; the escapes a repr of
# base64 or PEM text can contain are \n, \r and \t.
_LEGACY = re.compile(rb"\Ab(['\"])((?:[\x20-\x5b\x5d-\x7e]|\\[nrt])*)\1\Z")
_B64_TEXT = re.compile(rb"\A[A-Za-z0-9+/=\s]+\Z")
_WHITESPACE = re.compile(rb"\s+")
_MAX_NESTING = 2
_SEQUENCE = 0x30
_LONG_FORM_LENGTHS = (b"\x81", b"\x82", b"\x83", b"\x84")


def _split_der(data: bytes, *, source: str | None) -> list[bytes]:
    """Split concatenated DER SEQUENCEs by their length headers (trailing whitespace is ignored)."""
    parts: list[bytes] = []
    offset = 0
    total = len(data)
    while offset < total:
        index = len(parts)
        if parts and not data[offset:].strip():
            break
        if data[offset] != _SEQUENCE:
            raise CertificateParseError(
                f"{_where(source, index)}DER data does not start with an ASN.1 SEQUENCE",
                source=source,
                index=index,
            )
        try:
            _, _, end = read_tlv(data, offset, total)
        except DerError as exc:
            raise CertificateParseError(f"{_where(source, index)}{exc}", source=source, index=index) from None
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
    der_like = stripped[0] == _SEQUENCE
    # a SEQUENCE with a long-form length (every certificate has one) is never text, so a DER
    # certificate whose subject happens to contain "-----BEGIN " is still read as DER
    if BEGIN in stripped and not (der_like and stripped[1:2] in _LONG_FORM_LENGTHS):
        return parse_pem_bundle(stripped, source=source)
    if der_like:
        # not ``stripped``: a DER certificate may well end in a byte that is ASCII whitespace
        return [
            DeviceCertificate._from_der_checked(der, source=source, index=i)
            for i, der in enumerate(_split_der(data.lstrip(), source=source))
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


def open_input(path: str | os.PathLike[str]) -> io.FileIO:
    """``path`` opened for reading, without waiting for a FIFO's writer (OSError as ``open`` raises).

    Opening a named pipe blocks until some process opens it for writing, which may be never:
    it is opened non-blocking, then read blocking as any file. A FIFO nobody writes to then
    reads as empty (an error that says so) instead of hanging the import.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        if stat.S_ISFIFO(os.fstat(fd).st_mode):
            os.set_blocking(fd, True)
        return io.FileIO(fd, "r", closefd=True)
    except BaseException:
        os.close(fd)
        raise


def check_positive_int(option: str, value: object) -> int:
    """``value`` when it is a positive ``int`` (not a bool), else `ConfigurationError` naming ``option``."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigurationError(
            f"{option} must be a positive integer, not {value!r}", variable=option, value=value
        )
    return value


def _as_bytes(data: object, *, source: str | None, max_bytes: int) -> bytes:
    check_positive_int("max_bytes", max_bytes)
    where = f"{source}: " if source else ""
    if isinstance(data, str):
        # Characters never outnumber UTF-8 bytes, so this refuses oversized text before encoding.
        if len(data) > max_bytes:
            raise CertificateParseError(
                f"{where}input of {len(data)} characters exceeds max_bytes={max_bytes}{_LIMIT_HINT}",
                source=source,
            )
        raw = data.encode("utf-8", "replace")
    elif isinstance(data, bytes | bytearray | memoryview):
        raw = bytes(data)
    else:
        raise CertificateParseError(f"{where}expected bytes or str, got {type(data).__name__}", source=source)
    if len(raw) > max_bytes:
        raise CertificateParseError(
            f"{where}input of {len(raw)} bytes exceeds max_bytes={max_bytes}{_LIMIT_HINT}", source=source
        )
    return raw


def load_certificates(
    data: bytes | str, *, source: str | None = None, max_bytes: int = DEFAULT_MAX_CERTIFICATE_BYTES
) -> list[DeviceCertificate]:
    """Every certificate in ``data``: PEM bundle, DER, base64 of PEM or DER, or legacy ``b'...'``.

    ``source`` (a file name, S3 key, message id) is named in every error. Input longer than
    ``max_bytes`` is refused before any parsing. Raises `CertificateParseError` (with
    ``source`` and, where known, the 0-based ``index`` of the failing block) for anything
    that is not a certificate; never another exception for bad input. A ``max_bytes`` that
    is not a positive integer raises `ConfigurationError`.
    """
    raw = _as_bytes(data, source=source, max_bytes=max_bytes)
    return _load(raw, source=source, depth=0)


def load_certificate(
    data: bytes | str, *, source: str | None = None, max_bytes: int = DEFAULT_MAX_CERTIFICATE_BYTES
) -> DeviceCertificate:
    """Exactly one certificate, in any encoding `load_certificates` accepts."""
    certs = load_certificates(data, source=source, max_bytes=max_bytes)
    if len(certs) != 1:
        where = f"{source}: " if source else ""
        raise CertificateParseError(
            f"{where}expected exactly one certificate, found {len(certs)}", source=source
        )
    return certs[0]
