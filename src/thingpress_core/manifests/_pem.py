"""PEM bundles: every ``CERTIFICATE`` block is one entry, read in 1 MiB chunks."""

from __future__ import annotations

import binascii
from collections.abc import Iterator
from typing import IO

from thingpress_core.certificates._loading import DEFAULT_MAX_CERTIFICATE_BYTES
from thingpress_core.certificates._model import shown_text
from thingpress_core.certificates._pem import BEGIN, CERTIFICATE_LABELS, PemSyntaxError, scan_pem
from thingpress_core.errors import ManifestError
from thingpress_core.manifests._common import Policy, ReaderNaming, entry_error, offered_name, parse_der
from thingpress_core.manifests._model import ManifestEntry

__all__ = ["read_pem"]

_CHUNK = 1024 * 1024
#: An unfinished block longer than this is not a certificate still arriving: it is broken.
_MAX_BLOCK = 1024 * 1024


class _BrokenBlock(ValueError):
    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


def _blocks(stream: IO[bytes], *, chunk_size: int, max_block: int) -> Iterator[tuple[bytes, bytes, int]]:
    """``(label, base64 body, line of BEGIN)`` per PEM block, reading ``chunk_size`` bytes at a time.

    Only an unfinished block (or the few bytes where a BEGIN marker may be cut in two) is
    carried from one chunk to the next, so memory stays within a chunk plus ``max_block``.
    """
    buffer = b""
    line = 1  # line number at ``counted`` in ``buffer``
    counted = 0
    first = True
    while True:
        chunk = stream.read(chunk_size)
        if first and chunk.startswith(b"\xef\xbb\xbf"):
            chunk = chunk[3:]
        first = False
        final = not chunk
        buffer += chunk
        consumed = 0
        try:
            for block in scan_pem(buffer, final=final):
                line += buffer.count(b"\n", counted, block.begin)
                counted = block.begin
                yield block.label, buffer[block.body_start : block.body_end], line
                consumed = block.end
        except PemSyntaxError as exc:
            raise _BrokenBlock(str(exc), line + buffer.count(b"\n", counted, exc.offset)) from None
        if final:
            return
        rest = buffer.find(BEGIN, consumed)
        keep_from = rest if rest != -1 else max(consumed, len(buffer) - len(BEGIN) + 1)
        line += buffer.count(b"\n", counted, keep_from)
        buffer = buffer[keep_from:]
        counted = 0
        if len(buffer) > max_block:
            raise _BrokenBlock(f"PEM block has no END line within {max_block} bytes", line)


def read_pem(
    stream: IO[bytes],
    *,
    source: str,
    policy: Policy,
    naming: ReaderNaming,
    chunk_size: int = _CHUNK,
    max_block: int = _MAX_BLOCK,
) -> Iterator[ManifestEntry | ManifestError]:
    """Yield one entry per certificate of a PEM bundle (or of a single DER certificate).

    ``index`` counts every PEM block, so a key or CRL block between certificates is reported
    as skipped under its own number. A block without its END line raises whatever
    ``on_error`` says, because no block after it can be found. The stream is read
    ``chunk_size`` bytes at a time, and an unfinished block longer than ``max_block`` is
    broken; `read_manifest` offers neither (the defaults hold), tests pass small ones to cut
    blocks across reads.
    """
    peek = getattr(stream, "peek", None)
    head: bytes = peek(64)[:64] if peek is not None else b""
    if head[:1] == b"\x30" and BEGIN not in head:
        try:
            # one certificate: read no more than one may hold, whatever the manifest limit
            der = stream.read(DEFAULT_MAX_CERTIFICATE_BYTES + 1)
            if len(der) > DEFAULT_MAX_CERTIFICATE_BYTES:
                too_large = f"DER data larger than {DEFAULT_MAX_CERTIFICATE_BYTES} bytes is not a certificate"
                raise entry_error(source, 0, too_large, noun="certificate")
            cert = parse_der(der, source=source, index=0, noun="certificate")
        except ManifestError as exc:
            # the one entry of a DER file, reported like any other
            yield from policy.fail(exc, code="invalid")
            return
        yield ManifestEntry(thing_name=offered_name(naming, cert), certificate=cert, index=0, source=source)
        return
    index = 0
    blocks = _blocks(stream, chunk_size=chunk_size, max_block=max_block)
    while True:
        try:
            item = next(blocks, None)
        except _BrokenBlock as exc:
            # without its END line no later block can be found: this fails the manifest even
            # with on_error="skip", rather than end the reading early without a word
            raise entry_error(source, index, str(exc), noun="certificate", line=exc.line) from None
        if item is None:
            break
        label, body, line = item
        if label not in CERTIFICATE_LABELS:
            shown = shown_text(label.decode("ascii", "replace"))
            policy.skip(
                index,
                "not_a_certificate",
                f"{source}: block {index + 1} (line {line}) is a {shown}, not a certificate; not imported",
            )
            index += 1
            continue
        try:
            der = binascii.a2b_base64(body)
        except binascii.Error:
            message = "not a valid certificate: the PEM body is not base64"
            yield from policy.fail(
                entry_error(source, index, message, noun="certificate", line=line), code="invalid"
            )
            index += 1
            continue
        try:
            cert = parse_der(der, source=source, index=index, noun="certificate", line=line)
        except ManifestError as exc:
            yield from policy.fail(exc, code="invalid")
            index += 1
            continue
        yield ManifestEntry(
            thing_name=offered_name(naming, cert),
            certificate=cert,
            index=index,
            source=source,
        )
        index += 1
    if index == 0:
        raise ManifestError(
            f"{source}: not a PEM bundle: no -----BEGIN CERTIFICATE----- block found", source=source
        )
