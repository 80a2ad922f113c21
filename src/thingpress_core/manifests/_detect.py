"""Tell a manifest's format from its first bytes, then from its file name.

`read_manifest` detects from the head its one opened source holds (`format_from_head`);
`detect_format` is the same test for a caller who only wants to know the format.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import PurePath

from thingpress_core.certificates._loading import open_input
from thingpress_core.errors import ConfigurationError, ManifestError
from thingpress_core.manifests._model import ManifestFormat
from thingpress_core.manifests._source import HEAD_BYTES, ManifestSource, source_name, suffix_name

__all__ = ["HEAD_BYTES", "detect_format", "format_from_head", "undetected"]

_SEVEN_ZIP_MAGIC = b"7z\xbc\xaf\x27\x1c"
_BASE64_LINE = re.compile(rb"^(?:b['\"])?[A-Za-z0-9+/]+={0,2}(?:['\"])?$")
_BY_SUFFIX = {
    ".7z": ManifestFormat.INFINEON,
    ".json": ManifestFormat.MICROCHIP,
    ".csv": ManifestFormat.ESPRESSIF,
    ".pem": ManifestFormat.PEM,
    ".crt": ManifestFormat.PEM,
    ".cer": ManifestFormat.PEM,
    ".der": ManifestFormat.PEM,
    ".txt": ManifestFormat.GENERATED,
    ".b64": ManifestFormat.GENERATED,
}


def format_from_head(head: bytes, name: str | None = None) -> ManifestFormat | None:
    """The format the leading bytes show, else the one the name's suffix shows, else None."""
    if head.startswith(_SEVEN_ZIP_MAGIC):
        return ManifestFormat.INFINEON
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    if text[:1] in (b"[", b"{"):
        return ManifestFormat.MICROCHIP
    first_line = text.split(b"\n", 1)[0].strip().lower().replace(b'"', b"").replace(b" ", b"")
    if {b"mac", b"cn", b"cert"} <= set(first_line.split(b",")):
        return ManifestFormat.ESPRESSIF
    if b"-----BEGIN " in text:
        return ManifestFormat.PEM
    if head[:1] == b"\x30" and head[1:2] in (b"\x81", b"\x82", b"\x83"):
        return ManifestFormat.PEM
    lines = text.split(b"\n")
    complete = lines[:-1] if len(lines) > 1 else lines
    first = next((line.strip() for line in complete if line.strip()), b"")
    if len(first) >= 64 and _BASE64_LINE.match(first):
        return ManifestFormat.GENERATED
    if name:
        suffix = PurePath(name).suffix.lower()
        if suffix in _BY_SUFFIX:
            return _BY_SUFFIX[suffix]
    return None


def _head(source: ManifestSource) -> bytes:
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source[:HEAD_BYTES])
    if isinstance(source, str | os.PathLike):
        name = os.fspath(source)
        try:
            with open_input(source) as handle:  # a FIFO without a writer must not hang detection
                return handle.read(HEAD_BYTES) or b""
        except OSError as exc:
            raise ManifestError(f"{name}: cannot open manifest: {exc.strerror or exc}", source=name) from exc
    peek = getattr(source, "peek", None)
    if isinstance(source, io.BufferedReader) and peek is not None:
        return bytes(peek(HEAD_BYTES)[:HEAD_BYTES])
    seekable = getattr(source, "seekable", None)
    if seekable is not None and seekable():
        start = source.tell()
        try:
            data = source.read(HEAD_BYTES)
        finally:
            source.seek(start)
        if not isinstance(data, bytes | bytearray):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise ConfigurationError("a manifest stream must be opened in binary mode", variable="source")
        return bytes(data)
    raise ConfigurationError(
        "cannot detect the format of a stream that cannot seek: pass format=", variable="format", value=None
    )


def detect_format(source: ManifestSource, *, name: str | None = None) -> ManifestFormat:
    """The format of a manifest, from its content (then its file name's suffix).

    Reads at most the first 4 KiB (a seekable stream is put back where it was). ``name``
    overrides the name used for the suffix and messages (e.g. an S3 key for bytes).
    Raises `ManifestError` when neither content nor name tells.
    """
    display = source_name(source, name)
    head = _head(source)
    found = format_from_head(head, suffix_name(display, name))
    if found is None:
        raise undetected(display, head)
    return found


def undetected(display: str, head: bytes) -> ManifestError:
    """The error for a manifest whose format neither its head nor its name tells."""
    what = "the manifest is empty" if not head.strip() else "its content matches no known format"
    return ManifestError(
        f"{display}: cannot tell the manifest format ({what}); pass format= one of "
        + ", ".join(f.value for f in ManifestFormat),
        source=display,
    )
