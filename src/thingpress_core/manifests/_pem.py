"""PEM bundles: every ``CERTIFICATE`` block is one entry, read in 1 MiB chunks."""

from __future__ import annotations

import binascii
import re
from collections.abc import Iterator
from typing import IO, Literal

from thingpress_core.errors import ManifestError
from thingpress_core.manifests._common import Policy, check_choice, entry_error, parse_der
from thingpress_core.manifests._model import ManifestEntry

__all__ = ["OPTIONS", "read_pem"]

OPTIONS = frozenset({"on_error", "thing_name"})

_CERT_LABELS = frozenset({"CERTIFICATE", "X509 CERTIFICATE", "TRUSTED CERTIFICATE"})


class PemBlockError(ValueError):
    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]{1,64})-----(.*?)-----END ([A-Z0-9 ]{1,64})-----", re.DOTALL)
_BEGIN_MARK = b"-----BEGIN "
_CHUNK = 1024 * 1024
#: An unfinished block longer than this is not a certificate still arriving: it is broken.
_MAX_BLOCK = 1024 * 1024


def _scan(stream: IO[bytes]) -> Iterator[tuple[str, bytes, int]]:
    """``(label, base64 body, first line)`` per PEM block, reading the stream in 1 MiB chunks."""
    buffer = b""
    line = 1  # line number at the start of ``buffer``
    first = True
    eof = False
    while not eof:
        chunk = stream.read(_CHUNK)
        if first and chunk.startswith(b"\xef\xbb\xbf"):
            chunk = chunk[3:]
        first = False
        eof = not chunk
        buffer += chunk
        counted = 0  # buffer offset up to which ``line`` counts newlines
        consumed = 0
        for match in _BLOCK.finditer(buffer):
            line += buffer.count(b"\n", counted, match.start())
            counted = match.start()
            label, body, end_label = match.group(1), match.group(2), match.group(3)
            if _BEGIN_MARK in body:
                raise PemBlockError(f"PEM block BEGIN {label.decode()} has no END line", line)
            if end_label != label:
                raise PemBlockError(
                    f"PEM block BEGIN {label.decode()} ends with END {end_label.decode()}", line
                )
            yield label.decode("ascii"), body, line
            consumed = match.end()
        rest_start = buffer.find(_BEGIN_MARK, consumed)
        if eof:
            if rest_start != -1:
                line += buffer.count(b"\n", counted, rest_start)
                label = buffer[rest_start + len(_BEGIN_MARK) :].split(b"-", 1)[0][:64]
                raise PemBlockError(
                    f"PEM block BEGIN {label.decode('ascii', 'replace')} has no END line", line
                )
            return
        # keep an unfinished block, or the tail where a BEGIN marker may be cut in two
        keep_from = rest_start if rest_start != -1 else max(consumed, len(buffer) - len(_BEGIN_MARK))
        line += buffer.count(b"\n", counted, keep_from)
        buffer = buffer[keep_from:]
        if len(buffer) > _MAX_BLOCK:
            raise PemBlockError("PEM block has no END line within 1 MiB", line)


def read_pem(
    stream: IO[bytes],
    *,
    source: str,
    policy: Policy,
    thing_name: Literal["cn"] | None = "cn",
) -> Iterator[ManifestEntry]:
    """Yield one entry per certificate of a PEM bundle (or of a single DER certificate)."""
    check_choice("thing_name", thing_name, ("cn", None))
    peek = getattr(stream, "peek", None)
    head: bytes = peek(64)[:64] if peek is not None else b""
    if head[:1] == b"\x30" and b"-----BEGIN" not in head:
        data = stream.read()
        cert = parse_der(data, source=source, index=0, noun="certificate")
        name = cert.common_name if thing_name == "cn" else None
        yield ManifestEntry(thing_name=name, certificate=cert, index=0, source=source)
        return
    index = 0
    found_block = False
    blocks = _scan(stream)
    while True:
        try:
            item = next(blocks, None)
        except PemBlockError as exc:
            error = entry_error(source, index, str(exc), noun="certificate", line=exc.line)
            policy.fail(error, code="invalid")
            return
        if item is None:
            break
        found_block = True
        label, body, line = item
        if label not in _CERT_LABELS:
            policy.skip(
                index,
                "not_a_certificate",
                f"{source}: block {index + 1} (line {line}) is a {label}, not a certificate; not imported",
            )
            index += 1
            continue
        try:
            der = binascii.a2b_base64(body)
            cert = parse_der(der, source=source, index=index, noun="certificate", line=line)
        except binascii.Error:
            message = "not a valid certificate: the PEM body is not base64"
            policy.fail(entry_error(source, index, message, noun="certificate", line=line), code="invalid")
            index += 1
            continue
        except ManifestError as exc:
            policy.fail(exc, code="invalid")
            index += 1
            continue
        yield ManifestEntry(
            thing_name=cert.common_name if thing_name == "cn" else None,
            certificate=cert,
            index=index,
            source=source,
        )
        index += 1
    if not found_block:
        raise ManifestError(
            f"{source}: not a PEM bundle: no -----BEGIN CERTIFICATE----- block found", source=source
        )
