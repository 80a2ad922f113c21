"""Find the blocks of PEM text: the one scanner `load_certificates` and the manifest readers share.

It uses ``bytes.find`` only and never looks at a byte twice per pass, so hostile input (a
megabyte of BEGIN lines and no END, say) costs linear time; a regular expression with a lazy
``.*?`` between BEGIN and END costs quadratic time on the same input.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

__all__ = ["BEGIN", "CERTIFICATE_LABELS", "PemBlock", "PemSyntaxError", "scan_pem"]

BEGIN = b"-----BEGIN "
_END = b"-----END "
_DASHES = b"-----"
_MAX_LABEL = 64
CERTIFICATE_LABELS = frozenset({b"CERTIFICATE", b"X509 CERTIFICATE", b"TRUSTED CERTIFICATE"})
"""Block labels that hold an X.509 certificate (RFC 7468 and OpenSSL's older names)."""


class PemSyntaxError(ValueError):
    """BEGIN and END lines that do not form a block; ``offset`` is where the broken block begins."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


class PemBlock(NamedTuple):
    """One block: ``data[body_start:body_end]`` is its base64 body; ``end`` is just past END."""

    begin: int
    label: bytes
    body_start: int
    body_end: int
    end: int


def scan_pem(data: bytes, start: int = 0, *, final: bool = True) -> Iterator[PemBlock]:
    """Every complete PEM block of ``data`` from ``start`` on, in order.

    Raises `PemSyntaxError` for a malformed BEGIN line, a BEGIN without END, or an END whose
    label differs. With ``final=False`` (``data`` is a prefix of a longer stream) a block cut
    off by the end of ``data`` ends the scan quietly: read more and scan again from its
    ``begin``.
    """
    find = data.find
    size = len(data)
    begin = find(BEGIN, start)
    while begin != -1:
        label_start = begin + len(BEGIN)
        label_end = find(_DASHES, label_start, label_start + _MAX_LABEL + len(_DASHES))
        if label_end == -1:
            if not final and size < label_start + _MAX_LABEL + len(_DASHES):
                return
            raise PemSyntaxError("PEM block has a malformed BEGIN line", begin)
        label = data[label_start:label_end]
        if b"\n" in label or b"\r" in label:
            raise PemSyntaxError("PEM block has a malformed BEGIN line", begin)
        shown = label.decode("ascii", "replace")
        body_start = label_end + len(_DASHES)
        end = find(_END, body_start)
        if end == -1:
            if not final:
                return
            raise PemSyntaxError(f"PEM block BEGIN {shown} has no END line", begin)
        if find(BEGIN, body_start, end) != -1:
            raise PemSyntaxError(f"PEM block BEGIN {shown} has no END line", begin)
        end_marker = _END + label + _DASHES
        if not data.startswith(end_marker, end):
            if not final and end + len(end_marker) > size:
                return
            found = data[end : end + len(_END) + _MAX_LABEL].split(b"\n", 1)[0]
            raise PemSyntaxError(
                f"PEM block BEGIN {shown} ends with {found.decode('ascii', 'replace').strip('-').strip()}",
                begin,
            )
        after = end + len(end_marker)
        yield PemBlock(begin, label, body_start, end, after)
        begin = find(BEGIN, after)
