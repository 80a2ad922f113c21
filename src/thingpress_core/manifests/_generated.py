"""Generated manifests: one base64-encoded certificate (PEM or DER inside) per line."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from typing import IO

from thingpress_core.certificates._loading import parse_pem_bundle
from thingpress_core.certificates._pem import BEGIN
from thingpress_core.errors import CertificateError, ManifestError
from thingpress_core.manifests._common import Policy, ReaderNaming, entry_error, offered_name, parse_der
from thingpress_core.manifests._model import ManifestEntry

__all__ = ["MAX_LINE_BYTES", "read_generated"]

#: The longest line read: base64 of a PEM bundle of 1 MiB (a certificate and its chain). A
#: longer one fails as its entry, and is skipped in bounded reads rather than held whole.
MAX_LINE_BYTES = 1_500_000


def _lines(stream: IO[bytes], limit: int) -> Iterator[bytes | None]:
    """Each line of ``stream``, or None for a line longer than ``limit`` bytes."""
    while True:
        line = stream.readline(limit + 1)
        if not line:
            return
        if len(line) <= limit or line.endswith(b"\n"):
            yield line
            continue
        while True:  # skip the rest of the long line, a bounded piece at a time
            rest = stream.readline(limit)
            if not rest or rest.endswith(b"\n"):
                break
        yield None


def _decode_line(raw: bytes) -> bytes:
    text = raw.strip()
    # the legacy Thingpress writer wrapped lines as Python bytes literals: b'...'
    if text[:2] in (b"b'", b'b"') and text[-1:] == text[1:2] and len(text) >= 3:
        text = text[2:-1]
    return base64.b64decode(text, validate=True)


def _entry(raw: bytes, *, source: str, index: int, naming: ReaderNaming) -> ManifestEntry:
    try:
        decoded = _decode_line(raw)
    except (binascii.Error, ValueError) as exc:
        raise entry_error(source, index, "not base64 text", noun="line") from exc
    if BEGIN in decoded:
        try:
            certs = parse_pem_bundle(decoded)
        except CertificateError as exc:
            raise entry_error(
                source, index, f"decodes to PEM that is not a certificate: {exc}", noun="line"
            ) from exc
    else:
        certs = [parse_der(decoded, source=source, index=index, noun="line")]
    cert = certs[0]
    return ManifestEntry(
        thing_name=offered_name(naming, cert),
        certificate=cert,
        chain=tuple(certs[1:]),
        index=index,
        source=source,
    )


def read_generated(
    stream: IO[bytes], *, source: str, policy: Policy, naming: ReaderNaming
) -> Iterator[ManifestEntry | ManifestError]:
    """Yield one entry per non-blank line. ``index`` is the 0-based line number.

    A line that decodes to several PEM certificates gives the first as the device certificate
    and the rest as its chain.
    """
    for index, line in enumerate(_lines(stream, MAX_LINE_BYTES)):
        if line is None:
            message = f"is longer than {MAX_LINE_BYTES} bytes, too long for a certificate and its chain"
            yield from policy.fail(entry_error(source, index, message, noun="line"), code="invalid")
            continue
        raw = line
        if index == 0 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        if not raw.strip():
            continue
        try:
            entry = _entry(raw, source=source, index=index, naming=naming)
        except ManifestError as exc:
            yield from policy.fail(exc, code="invalid")
            continue
        yield entry
