"""The 7z header survey: what an archive will cost, read before py7zr builds anything from it.

A 7z file costs what its *headers* say, not what it weighs: a few kilobytes can unpack to
gigabytes, a decoder may ask for a dictionary of gigabytes, and py7zr allocates what a header
declares when it parses it. So `survey` reads the headers itself (7-Zip's 7zFormat.txt),
bounding every count by the bytes that could hold it, and refuses, with a `ManifestError`
naming the limit:

- more members, solid blocks (7z "folders") or substreams than ``max_members``;
- a compression method whose decoder py7zr cannot hold to an output bound (Deflate, Zstandard,
  ...), chains of several compressors, and encryption;
- a decoder dictionary (LZMA/LZMA2) or model (PPMd) larger than ``max_dictionary_bytes``.

A compressed ("encoded") header is booked with the read's budget (a `Planner`) before it is
decoded, and decoded to its declared size and no further. Headers that break the format raise
`Corrupt`, which the caller reports as "not a readable 7z archive".
"""

from __future__ import annotations

import lzma
import os
import zlib
from dataclasses import dataclass
from typing import IO, Protocol

from thingpress_core.errors import ManifestError

__all__ = ["Corrupt", "Limits", "Planner", "survey"]


@dataclass(frozen=True)
class Limits:
    """What one archive's headers may declare: members (and blocks, and substreams) and the
    largest decoder dictionary or model."""

    max_members: int
    max_dictionary_bytes: int


class Planner(Protocol):
    """Books what the headers say a step will cost, before the step runs (a read's budget)."""

    def plan(self, size: int, *, where: str, what: str) -> None: ...


class Corrupt(Exception):
    """The archive's headers break the 7z format (reported as "not a readable 7z archive")."""


_MAGIC = b"7z\xbc\xaf\x27\x1c"
_SIGNATURE_SIZE = 32
_READ_CHUNK = 64 * 1024

# property ids of the 7z header (7-Zip's 7zFormat.txt)
_END, _HEADER, _MAIN_STREAMS, _FILES_INFO = 0x00, 0x01, 0x04, 0x05
_PACK_INFO, _UNPACK_INFO, _SUBSTREAMS_INFO = 0x06, 0x07, 0x08
_SIZE, _CRC, _FOLDER, _CODERS_UNPACK_SIZE, _NUM_UNPACK_STREAM = 0x09, 0x0A, 0x0B, 0x0C, 0x0D
_ENCODED_HEADER = 0x17

# py7zr spends about 0.1 ms per member listing an archive and 0.3 ms per member it decodes,
# whatever the member's size, so 20,000 empty members (40 KB of archive) cost seconds within
# every byte budget. A real member is never that small: a PEM certificate carries a signature
# (and a key) no compressor can shrink; certificates that share one key (test fleets) still
# take 85 bytes each in a solid archive. More than one member per `_MIN_MEMBER_BYTES` of
# archive (beyond `_FREE_MEMBERS`) is refused as hostile, which keeps py7zr's work linear in
# the archive's size (about 12 microseconds a byte at worst).
_MIN_MEMBER_BYTES = 32
_FREE_MEMBERS = 64

_COPY, _LZMA, _LZMA2, _PPMD, _BZIP2 = b"\x00", b"\x03\x01\x01", b"\x21", b"\x03\x04\x01", b"\x04\x02\x02"
_AES = b"\x06\xf1\x07\x01"
# decoders py7zr runs with an output bound, and whose memory the header states
_COMPRESSORS = {_COPY: "Copy", _LZMA: "LZMA", _LZMA2: "LZMA2", _PPMD: "PPMd", _BZIP2: "BZip2"}
# size-preserving filters
_FILTERS = {
    b"\x03": "Delta",
    b"\x03\x03\x01\x03": "BCJ",
    b"\x03\x03\x02\x05": "PPC",
    b"\x03\x03\x04\x01": "IA64",
    b"\x03\x03\x05\x01": "ARM",
    b"\x03\x03\x07\x01": "ARMT",
    b"\x03\x03\x08\x05": "SPARC",
}
# py7zr's decoders for these ignore the output bound: one read of packed input can expand to
# gigabytes before anything can count it
_UNBOUNDED = {
    b"\x04\x01\x08": "Deflate",
    b"\x04\x01\x09": "Deflate64",
    b"\x04\xf7\x11\x01": "Zstandard",
    b"\x04\xf7\x11\x02": "Brotli",
}
_ACCEPTED = "LZMA2, LZMA, PPMd, BZip2 or Copy, with BCJ or Delta filters"


class _Cursor:
    """Reads 7z header fields from bytes; running out of bytes is `_Corrupt`."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise Corrupt("the header ends early")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def take(self, size: int) -> bytes:
        if size < 0 or size > self.remaining():
            raise Corrupt("the header ends early")
        value = self.data[self.pos : self.pos + size]
        self.pos += size
        return value

    def number(self) -> int:
        """A 7z UINT64: the first byte's leading one bits count the little-endian bytes that follow."""
        first = self.byte()
        mask = 0x80
        extra = 0
        while extra < 8 and first & mask:
            extra += 1
            mask >>= 1
        low = int.from_bytes(self.take(extra), "little")
        high = first & (mask - 1) if extra < 8 else 0
        return low + (high << (8 * extra))

    def count(self, what: str, *, bits: int = 8) -> int:
        """A count of entries that each take at least ``bits`` of the header: more cannot be real."""
        value = self.number()
        if value * bits > self.remaining() * 8:
            raise Corrupt(f"{what} ({value}) is more than the header can hold")
        return value

    def skip_digests(self, count: int, *, all_crcs: bool) -> None:
        """CRC digests; py7zr reads all ``count`` CRCs after a definition vector except in PackInfo."""
        all_defined = self.byte()
        defined = count
        if not all_defined:
            bits = self.take((count + 7) // 8)
            if not all_crcs:
                defined = sum(bin(b).count("1") for b in bits)
        self.take(4 * defined)


@dataclass(frozen=True)
class _Coder:
    method: bytes
    properties: bytes
    streams_in: int
    streams_out: int


@dataclass(frozen=True)
class _Folder:
    coders: tuple[_Coder, ...]
    unpack_sizes: tuple[int, ...]
    crc: int | None


@dataclass(frozen=True)
class _Streams:
    pack_pos: int
    pack_sizes: tuple[int, ...]
    folders: tuple[_Folder, ...]


def _read_folder(cur: _Cursor) -> tuple[list[_Coder], int]:
    num_coders = cur.count("the number of coders")
    if not 1 <= num_coders <= 64:
        raise Corrupt(f"a block declares {num_coders} coders")
    coders: list[_Coder] = []
    total_in = total_out = 0
    for _ in range(num_coders):
        flags = cur.byte()
        if flags & 0xC0:
            raise Corrupt("a coder uses alternative methods, which 7z does not define")
        method = cur.take(flags & 0x0F) if flags & 0x0F else _COPY
        streams_in = streams_out = 1
        if flags & 0x10:
            streams_in, streams_out = cur.number(), cur.number()
        total_in += streams_in
        total_out += streams_out
        if total_in > 64 or total_out > 64:
            raise Corrupt("a block declares more than 64 streams")
        properties = cur.take(cur.number()) if flags & 0x20 else b""
        coders.append(_Coder(method, properties, streams_in, streams_out))
    bind_pairs = total_out - 1
    for _ in range(bind_pairs):
        cur.number()
        cur.number()
    packed = total_in - bind_pairs
    if packed < 1:
        raise Corrupt(f"a block declares {packed} packed streams")
    if packed > 1:
        for _ in range(packed):
            cur.number()
    return coders, total_out


def _read_streams(cur: _Cursor, *, where: str, what: str, max_members: int) -> _Streams:
    """PackInfo, UnpackInfo (the blocks and their coders) and SubStreamsInfo, counts bounded first."""
    pack_pos = 0
    pack_sizes: tuple[int, ...] = ()
    folders: list[_Folder] = []
    nid = cur.byte()
    if nid == _PACK_INFO:
        pack_pos = cur.number()
        streams = cur.count("the number of packed streams")
        nid = cur.byte()
        if nid == _SIZE:
            pack_sizes = tuple(cur.number() for _ in range(streams))
            nid = cur.byte()
            if nid == _CRC:
                cur.skip_digests(streams, all_crcs=False)
                nid = cur.byte()
        if nid != _END:
            raise Corrupt("the packed stream table is malformed")
        nid = cur.byte()
    if nid == _UNPACK_INFO:
        if cur.byte() != _FOLDER:
            raise Corrupt("the block table is malformed")
        count = cur.number()
        if count > max_members:
            raise ManifestError(
                f"{where}: {what} holds {count} compressed blocks, more than max_members={max_members}; "
                "refusing it (raise max_members to read it)",
                source=where,
            )
        if count > cur.remaining():
            raise Corrupt(f"the number of blocks ({count}) is more than the header can hold")
        if cur.byte() != 0:
            raise Corrupt("the block table is stored outside the header, which is not supported")
        specs = [_read_folder(cur) for _ in range(count)]
        if cur.byte() != _CODERS_UNPACK_SIZE:
            raise Corrupt("the block table has no unpack sizes")
        sizes = [tuple(cur.number() for _ in range(outs)) for _, outs in specs]
        crcs: list[int | None] = [None] * count
        nid = cur.byte()
        if nid == _CRC:
            all_defined = cur.byte()
            defined = [True] * count
            if not all_defined:
                bits = cur.take((count + 7) // 8)
                defined = [bool(bits[i // 8] & (0x80 >> (i % 8))) for i in range(count)]
            for i in range(count):
                value = int.from_bytes(cur.take(4), "little")
                crcs[i] = value if defined[i] else None
            nid = cur.byte()
        if nid != _END:
            raise Corrupt("the block table is malformed")
        folders = [
            _Folder(tuple(coders), size, crc)
            for (coders, _), size, crc in zip(specs, sizes, crcs, strict=True)
        ]
        nid = cur.byte()
    if nid == _SUBSTREAMS_INFO:
        substreams = [1] * len(folders)
        nid = cur.byte()
        if nid == _NUM_UNPACK_STREAM:
            for i in range(len(folders)):
                substreams[i] = cur.number()
            if sum(substreams) > max_members:  # each substream is a member's data
                raise ManifestError(
                    f"{where}: {what} holds {sum(substreams)} members, more than max_members={max_members}; "
                    "refusing it (raise max_members to read it)",
                    source=where,
                )
            nid = cur.byte()
        if nid == _SIZE:
            for n in substreams:
                for _ in range(n - 1):
                    cur.number()
            nid = cur.byte()
        if nid == _CRC:
            unknown = sum(
                n for n, folder in zip(substreams, folders, strict=True) if n != 1 or folder.crc is None
            )
            cur.skip_digests(unknown, all_crcs=True)
            nid = cur.byte()
        if nid != _END:
            raise Corrupt("the substream table is malformed")
        nid = cur.byte()
    if nid != _END:
        raise Corrupt("the stream tables are malformed")
    return _Streams(pack_pos, pack_sizes, tuple(folders))


def _dictionary(coder: _Coder) -> int:
    """The memory a coder's decoder allocates up front, as its properties declare it."""
    props = coder.properties
    if coder.method in (_LZMA, _PPMD):
        if len(props) < 5:
            raise Corrupt(f"{_COMPRESSORS[coder.method]} properties are {len(props)} bytes, not 5")
        return int.from_bytes(props[1:5], "little")
    if coder.method == _LZMA2:
        if len(props) != 1 or props[0] > 40:
            raise Corrupt("LZMA2 properties are malformed")
        if props[0] == 40:
            return 0xFFFFFFFF
        return (2 | (props[0] & 1)) << (props[0] // 2 + 11)
    return 0


def _check_folder(folder: _Folder, *, where: str, what: str, limits: Limits) -> None:
    """Refuse a block whose decoding py7zr cannot bound, or whose dictionary is too large."""
    compressors = 0
    for coder in folder.coders:
        if coder.method == _AES or coder.method.startswith(b"\x06"):
            raise ManifestError(f"{where}: {what} is encrypted; refusing to open it", source=where)
        if coder.streams_in != 1 or coder.streams_out != 1:
            raise ManifestError(
                f"{where}: {what} uses a multi-stream coder (such as BCJ2), which is not supported; "
                f"accepted: {_ACCEPTED}",
                source=where,
            )
        if coder.method in _UNBOUNDED:
            raise ManifestError(
                f"{where}: {what} uses {_UNBOUNDED[coder.method]} compression, which py7zr decodes "
                f"without an output bound; refusing it (repack it with {_ACCEPTED})",
                source=where,
            )
        if coder.method in _COMPRESSORS:
            compressors += 1
        elif coder.method not in _FILTERS:
            raise ManifestError(
                f"{where}: {what} uses an unsupported compression method 0x{coder.method.hex()}; "
                f"accepted: {_ACCEPTED}",
                source=where,
            )
        size = _dictionary(coder)
        if size > limits.max_dictionary_bytes:
            raise ManifestError(
                f"{where}: {what} asks for a {size}-byte {_COMPRESSORS[coder.method]} dictionary, more than "
                f"max_dictionary_bytes={limits.max_dictionary_bytes}; refusing it "
                "(raise max_dictionary_bytes to read it)",
                source=where,
            )
    if compressors > 1:
        raise ManifestError(
            f"{where}: {what} chains {compressors} compressors in one block, which is not supported; "
            f"accepted: {_ACCEPTED}",
            source=where,
        )


def _decode_header(fp: IO[bytes], streams: _Streams, *, file_size: int) -> bytes:
    """A compressed ("encoded") header, decoded to its declared size and no further."""
    if len(streams.folders) != 1 or len(streams.pack_sizes) != 1:
        raise Corrupt("the compressed header is not one block of one stream")
    folder = streams.folders[0]
    if len(folder.coders) != 1 or folder.coders[0].method not in (_LZMA, _LZMA2, _COPY):
        raise Corrupt("the header is compressed with a method other than LZMA, LZMA2 or Copy")
    coder = folder.coders[0]
    size = folder.unpack_sizes[0]
    packed = streams.pack_sizes[0]
    start = _SIGNATURE_SIZE + streams.pack_pos
    if start + packed > file_size:
        raise Corrupt("the compressed header lies past the end of the file")
    fp.seek(start)
    if coder.method == _COPY:
        out = bytearray(fp.read(min(packed, size)))
    else:
        filters: dict[str, int]
        # no match distance can reach past the output, so a dictionary the header's size is enough
        dictionary = max(4096, min(_dictionary(coder), size))
        if coder.method == _LZMA:
            lclppb = coder.properties[0]
            if lclppb >= 9 * 5 * 5:
                raise Corrupt("LZMA properties are malformed")
            filters = {
                "id": lzma.FILTER_LZMA1,
                "dict_size": dictionary,
                "lc": lclppb % 9,
                "lp": (lclppb // 9) % 5,
                "pb": lclppb // 45,
            }
        else:
            filters = {"id": lzma.FILTER_LZMA2, "dict_size": dictionary}
        decoder = lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=[filters])
        out = bytearray()
        left = packed
        while len(out) < size and not decoder.eof:
            chunk = b""
            if decoder.needs_input:
                chunk = fp.read(min(left, _READ_CHUNK))
                left -= len(chunk)
            piece = decoder.decompress(chunk, max_length=size - len(out))
            if not piece and not chunk:
                break
            out += piece
    if len(out) != size:
        raise Corrupt("the compressed header is shorter than it declares")
    if folder.crc is not None and zlib.crc32(out) != folder.crc:
        raise Corrupt("the compressed header fails its CRC check")
    return bytes(out)


def survey(fp: IO[bytes], *, where: str, what: str, limits: Limits, budget: Planner) -> None:
    """Check an archive's headers against the limits before py7zr parses or decodes anything."""
    file_size = fp.seek(0, os.SEEK_END)
    fp.seek(0)
    head = fp.read(_SIGNATURE_SIZE)
    if len(head) < _SIGNATURE_SIZE or head[:6] != _MAGIC:
        raise Corrupt("no 7z signature")
    if zlib.crc32(head[12:32]) != int.from_bytes(head[8:12], "little"):
        raise Corrupt("the start header fails its CRC check")
    offset = int.from_bytes(head[12:20], "little")
    length = int.from_bytes(head[20:28], "little")
    if length == 0:
        return  # an empty archive
    if _SIGNATURE_SIZE + offset + length > file_size:
        raise Corrupt("the header lies past the end of the file")
    fp.seek(_SIGNATURE_SIZE + offset)
    raw = fp.read(length)
    if zlib.crc32(raw) != int.from_bytes(head[28:32], "little"):
        raise Corrupt("the header fails its CRC check")
    cur = _Cursor(raw)
    kind = cur.byte()
    if kind == _ENCODED_HEADER:
        streams = _read_streams(cur, where=where, what=what, max_members=limits.max_members)
        for folder in streams.folders:
            _check_folder(folder, where=where, what=what, limits=limits)
        declared = sum(sum(f.unpack_sizes) for f in streams.folders)
        # decoded twice: here, and again by py7zr
        budget.plan(2 * declared, where=where, what=f"{what}'s compressed header (decoded twice)")
        cur = _Cursor(_decode_header(fp, streams, file_size=file_size))
        kind = cur.byte()
    if kind != _HEADER:
        raise Corrupt("the header is malformed")
    nid = cur.byte()
    if nid == _MAIN_STREAMS:
        streams = _read_streams(cur, where=where, what=what, max_members=limits.max_members)
        for folder in streams.folders:
            _check_folder(folder, where=where, what=what, limits=limits)
        nid = cur.byte()
    if nid == _FILES_INFO:
        members = cur.number()
        if members > limits.max_members:
            raise ManifestError(
                f"{where}: {what} holds {members} members, more than max_members={limits.max_members}; "
                "refusing it (raise max_members to read it)",
                source=where,
            )
        if members > max(_FREE_MEMBERS, file_size // _MIN_MEMBER_BYTES):
            raise ManifestError(
                f"{where}: {what} holds {members} members in {file_size} bytes, more than one per "
                f"{_MIN_MEMBER_BYTES} bytes: no certificate is that small; refusing it",
                source=where,
            )
    elif nid != _END:
        raise Corrupt("the header is malformed")
