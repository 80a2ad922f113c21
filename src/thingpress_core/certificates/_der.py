"""A minimal DER reader for the few facts read without cryptography's help.

Some vendor device certificates break a rule cryptography enforces while parsing extensions
(Microchip TrustFLEX/TrustNGO certificates put ``eui48_...`` in a PrintableString, where ``_``
is not allowed). Their signature and chain can still be checked, but ``BasicConstraints``
must then be read directly from the TBSCertificate. The issuer Name's bytes serve as a cache
key when certificates are loaded in bulk. Every read stays within the given bounds.
"""

from __future__ import annotations

__all__ = ["DerError", "issuer_name", "read_basic_constraints_ca", "read_tlv"]

_SEQUENCE = 0x30
_BOOLEAN = 0x01
_OCTET_STRING = 0x04
_OID = 0x06
_EXTENSIONS_TAG = 0xA3  # [3] EXPLICIT
_VERSION_TAG = 0xA0  # [0] EXPLICIT
# 2.5.29.19 (id-ce-basicConstraints) as DER content bytes
_BASIC_CONSTRAINTS = bytes([0x55, 0x1D, 0x13])


class DerError(ValueError):
    """DER whose length header is broken or runs past the data."""


def read_tlv(data: bytes, offset: int, end: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the element at ``offset``; nothing past ``end`` is read."""
    if offset + 2 > end:
        raise DerError("DER data is truncated")
    tag = data[offset]
    first = data[offset + 1]
    start = offset + 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or start + count > end:
            raise DerError("DER length is malformed")
        length = int.from_bytes(data[start : start + count], "big")
        start += count
    if start + length > end:
        raise DerError(f"DER data is truncated ({end - offset} of {start + length - offset} bytes)")
    return tag, start, start + length


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    items = []
    offset = start
    while offset < end:
        tag, cstart, cend = read_tlv(data, offset, end)
        items.append((tag, cstart, cend))
        offset = cend
    return items


def read_basic_constraints_ca(tbs: bytes) -> bool | None:
    """The ``cA`` flag of BasicConstraints in a DER TBSCertificate; None when absent or unreadable.

    A certificate that carries BasicConstraints more than once (RFC 5280 forbids it; only a
    broken or hostile certificate does) counts as a CA when any of them says so, so that a
    duplicate cannot smuggle a CA certificate in as a device certificate.
    """
    found: bool | None = None
    try:
        tag, start, end = read_tlv(tbs, 0, len(tbs))
        if tag != _SEQUENCE:
            return None
        for child_tag, cstart, cend in _children(tbs, start, end):
            if child_tag != _EXTENSIONS_TAG:
                continue
            seq_tag, sstart, send = read_tlv(tbs, cstart, cend)
            if seq_tag != _SEQUENCE:
                return None
            for ext_tag, estart, eend in _children(tbs, sstart, send):
                if ext_tag != _SEQUENCE:
                    continue
                parts = _children(tbs, estart, eend)
                if not parts or parts[0][0] != _OID or tbs[parts[0][1] : parts[0][2]] != _BASIC_CONSTRAINTS:
                    continue
                value = next((p for p in parts[1:] if p[0] == _OCTET_STRING), None)
                if value is None:
                    return None
                bc_tag, bstart, bend = read_tlv(tbs, value[1], value[2])
                if bc_tag != _SEQUENCE:
                    return None
                fields = _children(tbs, bstart, bend)
                if fields and fields[0][0] == _BOOLEAN and fields[0][2] - fields[0][1] == 1:
                    found = found or tbs[fields[0][1]] != 0
                else:
                    found = bool(found)  # cA DEFAULT FALSE
        return found
    except DerError:
        return None


def _element_end(data: bytes, pos: int) -> int:
    """Where the element at ``pos`` ends (IndexError when its header is cut short)."""
    first = data[pos + 1]
    if first < 0x80:
        return pos + 2 + first
    count = first & 0x7F
    return pos + 2 + count + int.from_bytes(data[pos + 2 : pos + 2 + count], "big")


def issuer_name(der: bytes) -> bytes | None:
    """The DER of a certificate's issuer Name (the whole TLV); None when the framing is unreadable.

    Used as a cache key only, on the hot path of bulk loading (hence a walk this plain): many
    device certificates of one manifest share one issuer, whose Name then needs checking once.
    """
    try:
        if der[0] != _SEQUENCE:
            return None
        first = der[1]
        tbs = 2 + (first & 0x7F if first & 0x80 else 0)
        if der[tbs] != _SEQUENCE:
            return None
        first = der[tbs + 1]
        pos = tbs + 2 + (first & 0x7F if first & 0x80 else 0)
        # the optional [0] version, the serial number and the signature algorithm come first
        for _ in range(3 if der[pos] == _VERSION_TAG else 2):
            pos = _element_end(der, pos)
        end = _element_end(der, pos)
        if der[pos] != _SEQUENCE or end > len(der):
            return None
    except IndexError:
        return None
    return der[pos:end]
