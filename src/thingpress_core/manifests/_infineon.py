"""Infineon OPTIGA Trust M manifests: a 7z archive of 7z archives of PEM files.

The outer archive holds, per reel, ``<reel>_<guid>_<TYPE>_Certs.7z`` for each certificate
slot (TYPE is E0E0, E0E1 or E0E2), an AES-encrypted ``<reel>_<guid>_keys.7z`` and a README.
Each inner archive holds ``<chipID>_<TYPE>.pem`` files, one CRLF PEM certificate each.

Only the selected inner archives are read (the keys archive is never opened), and a 7z file
costs what its *headers* say, not what it weighs: a few kilobytes can unpack to gigabytes, and
a solid block must be decompressed from its start to reach a later member. So before py7zr
sees an archive, `_survey` reads its headers itself (decoding a compressed header within the
budget) and refuses, with a `ManifestError` naming the limit:

- more members, solid blocks (7z "folders") or substreams than ``max_members``;
- a compression method whose decoder py7zr cannot hold to an output bound (Deflate, Zstandard,
  ...), chains of several compressors, and encryption;
- a decoder dictionary (LZMA/LZMA2) or model (PPMd) larger than ``max_dictionary_bytes``;
- a read that would decompress more than ``max_unpacked_bytes`` in all: the outer and every
  inner archive share one budget, and every member that precedes a wanted one in its solid
  block is counted (it must be decompressed too).

While extracting, every byte py7zr writes, for wanted and unwanted members alike, goes
through a writer that counts it against the same budget; unwanted members are asked for
explicitly (so py7zr never routes them to its uncounted null writer) and dropped.
"""

from __future__ import annotations

import contextlib
import io
import lzma
import os
import posixpath
import re
import zlib
from collections.abc import Callable, Iterator, Set
from dataclasses import dataclass
from typing import IO, Any

from thingpress_core.certificates._loading import check_positive_int
from thingpress_core.errors import ConfigurationError, ManifestError
from thingpress_core.manifests._common import Policy, ReaderNaming, entry_error, offered_name, parse_pem
from thingpress_core.manifests._model import ManifestEntry

__all__ = [
    "DEFAULT_MAX_DICTIONARY_BYTES",
    "DEFAULT_MAX_MEMBERS",
    "DEFAULT_MAX_UNPACKED_BYTES",
    "read_infineon",
]

#: The most members either archive level may hold unless ``max_members=`` says otherwise.
DEFAULT_MAX_MEMBERS = 200_000
#: The most bytes one read may decompress, outer and inner archives together (64 MiB). A reel
#: of 200 devices costs well under 1 MiB; this leaves room for reels of about 20,000 devices.
DEFAULT_MAX_UNPACKED_BYTES = 64 * 1024 * 1024
#: The largest decoder dictionary an archive may ask for (64 MiB: 7-Zip's ultra preset).
DEFAULT_MAX_DICTIONARY_BYTES = 64 * 1024 * 1024
#: One PEM file holds one certificate: anything larger is not one.
MAX_PEM_BYTES = 64 * 1024

_CERT_ARCHIVE = re.compile(r"^(?P<prefix>.+)_(?P<type>E0E[0-9A-F])_Certs\.7z$", re.IGNORECASE)
_PEM_MEMBER = re.compile(r"^(?P<chip>.+?)(?:_(?P<type>E0E[0-9A-F]))?\.pem$", re.IGNORECASE)
_CERT_TYPE = re.compile(r"^E0E[0-9A-F]$", re.IGNORECASE)

_EXTRA_HINT = "reading Infineon manifests needs py7zr: pip install 'thingpress-core[manifests]'"


def _py7zr() -> Any:
    try:
        import py7zr  # pyright: ignore[reportMissingImports]
    except ImportError as exc:
        raise ImportError(_EXTRA_HINT) from exc
    return py7zr


@dataclass(frozen=True)
class _Limits:
    max_bytes: int
    max_members: int
    max_unpacked_bytes: int
    max_dictionary_bytes: int


@dataclass(frozen=True)
class _Member:
    name: str
    size: int
    is_file: bool


class _Refused(Exception):
    """Raised from inside py7zr's extraction when a member or the whole read outgrows its bound."""


class _Corrupt(Exception):
    """The archive's headers break the 7z format (reported as "not a readable 7z archive")."""


class _Budget:
    """The bytes one read may decompress, across the outer archive and every inner one.

    ``plan`` books what the headers say a step will cost, before the step runs; ``count`` sees
    every byte py7zr actually writes and stops extraction past the limit.
    """

    def __init__(self, limit: int, source: str) -> None:
        self.limit = limit
        self.source = source
        self.planned = 0
        self.written = 0

    def plan(self, size: int, *, where: str, what: str) -> None:
        if self.planned + size > self.limit:
            raise ManifestError(
                f"{where}: {what} would decompress {size} bytes, {self.planned + size} in all, more than "
                f"max_unpacked_bytes={self.limit}; refusing it (raise max_unpacked_bytes to read it)",
                source=self.source,
            )
        self.planned += size

    def count(self, size: int) -> None:
        self.written += size
        if self.written > self.limit:
            raise _Refused(
                f"decompressing went past max_unpacked_bytes={self.limit} "
                "(raise max_unpacked_bytes to read it)"
            )


# --- the header survey: what an archive will cost, read before py7zr builds anything from it ---

_MAGIC = b"7z\xbc\xaf\x27\x1c"
_SIGNATURE_SIZE = 32
_READ_CHUNK = 64 * 1024

# property ids of the 7z header (7-Zip's 7zFormat.txt)
_END, _HEADER, _MAIN_STREAMS, _FILES_INFO = 0x00, 0x01, 0x04, 0x05
_PACK_INFO, _UNPACK_INFO, _SUBSTREAMS_INFO = 0x06, 0x07, 0x08
_SIZE, _CRC, _FOLDER, _CODERS_UNPACK_SIZE, _NUM_UNPACK_STREAM = 0x09, 0x0A, 0x0B, 0x0C, 0x0D
_ENCODED_HEADER = 0x17

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
            raise _Corrupt("the header ends early")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def take(self, size: int) -> bytes:
        if size < 0 or size > self.remaining():
            raise _Corrupt("the header ends early")
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
            raise _Corrupt(f"{what} ({value}) is more than the header can hold")
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
        raise _Corrupt(f"a block declares {num_coders} coders")
    coders: list[_Coder] = []
    total_in = total_out = 0
    for _ in range(num_coders):
        flags = cur.byte()
        if flags & 0xC0:
            raise _Corrupt("a coder uses alternative methods, which 7z does not define")
        method = cur.take(flags & 0x0F) if flags & 0x0F else _COPY
        streams_in = streams_out = 1
        if flags & 0x10:
            streams_in, streams_out = cur.number(), cur.number()
        total_in += streams_in
        total_out += streams_out
        if total_in > 64 or total_out > 64:
            raise _Corrupt("a block declares more than 64 streams")
        properties = cur.take(cur.number()) if flags & 0x20 else b""
        coders.append(_Coder(method, properties, streams_in, streams_out))
    bind_pairs = total_out - 1
    for _ in range(bind_pairs):
        cur.number()
        cur.number()
    packed = total_in - bind_pairs
    if packed < 1:
        raise _Corrupt(f"a block declares {packed} packed streams")
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
            raise _Corrupt("the packed stream table is malformed")
        nid = cur.byte()
    if nid == _UNPACK_INFO:
        if cur.byte() != _FOLDER:
            raise _Corrupt("the block table is malformed")
        count = cur.number()
        if count > max_members:
            raise ManifestError(
                f"{where}: {what} holds {count} compressed blocks, more than max_members={max_members}; "
                "refusing it (raise max_members to read it)",
                source=where,
            )
        if count > cur.remaining():
            raise _Corrupt(f"the number of blocks ({count}) is more than the header can hold")
        if cur.byte() != 0:
            raise _Corrupt("the block table is stored outside the header, which is not supported")
        specs = [_read_folder(cur) for _ in range(count)]
        if cur.byte() != _CODERS_UNPACK_SIZE:
            raise _Corrupt("the block table has no unpack sizes")
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
            raise _Corrupt("the block table is malformed")
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
            raise _Corrupt("the substream table is malformed")
        nid = cur.byte()
    if nid != _END:
        raise _Corrupt("the stream tables are malformed")
    return _Streams(pack_pos, pack_sizes, tuple(folders))


def _dictionary(coder: _Coder) -> int:
    """The memory a coder's decoder allocates up front, as its properties declare it."""
    props = coder.properties
    if coder.method in (_LZMA, _PPMD):
        if len(props) < 5:
            raise _Corrupt(f"{_COMPRESSORS[coder.method]} properties are {len(props)} bytes, not 5")
        return int.from_bytes(props[1:5], "little")
    if coder.method == _LZMA2:
        if len(props) != 1 or props[0] > 40:
            raise _Corrupt("LZMA2 properties are malformed")
        if props[0] == 40:
            return 0xFFFFFFFF
        return (2 | (props[0] & 1)) << (props[0] // 2 + 11)
    return 0


def _check_folder(folder: _Folder, *, where: str, what: str, limits: _Limits) -> None:
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
        raise _Corrupt("the compressed header is not one block of one stream")
    folder = streams.folders[0]
    if len(folder.coders) != 1 or folder.coders[0].method not in (_LZMA, _LZMA2, _COPY):
        raise _Corrupt("the header is compressed with a method other than LZMA, LZMA2 or Copy")
    coder = folder.coders[0]
    size = folder.unpack_sizes[0]
    packed = streams.pack_sizes[0]
    start = _SIGNATURE_SIZE + streams.pack_pos
    if start + packed > file_size:
        raise _Corrupt("the compressed header lies past the end of the file")
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
                raise _Corrupt("LZMA properties are malformed")
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
        raise _Corrupt("the compressed header is shorter than it declares")
    if folder.crc is not None and zlib.crc32(out) != folder.crc:
        raise _Corrupt("the compressed header fails its CRC check")
    return bytes(out)


def _survey(fp: IO[bytes], *, where: str, what: str, limits: _Limits, budget: _Budget) -> None:
    """Check an archive's headers against the limits before py7zr parses or decodes anything."""
    file_size = fp.seek(0, os.SEEK_END)
    fp.seek(0)
    head = fp.read(_SIGNATURE_SIZE)
    if len(head) < _SIGNATURE_SIZE or head[:6] != _MAGIC:
        raise _Corrupt("no 7z signature")
    if zlib.crc32(head[12:32]) != int.from_bytes(head[8:12], "little"):
        raise _Corrupt("the start header fails its CRC check")
    offset = int.from_bytes(head[12:20], "little")
    length = int.from_bytes(head[20:28], "little")
    if length == 0:
        return  # an empty archive
    if _SIGNATURE_SIZE + offset + length > file_size:
        raise _Corrupt("the header lies past the end of the file")
    fp.seek(_SIGNATURE_SIZE + offset)
    raw = fp.read(length)
    if zlib.crc32(raw) != int.from_bytes(head[28:32], "little"):
        raise _Corrupt("the header fails its CRC check")
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
        raise _Corrupt("the header is malformed")
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
    elif nid != _END:
        raise _Corrupt("the header is malformed")


# --- extraction through py7zr, every written byte counted ---


def _writer_factory(keep: Set[str], limit: int, budget: _Budget, sink: Callable[[str, bytes], None]) -> Any:
    """A py7zr WriterFactory: every byte counts against ``budget``; only ``keep`` members are kept.

    A kept member is refused past ``limit`` bytes; any other member's bytes are dropped.
    """
    from py7zr.io import Py7zIO, WriterFactory  # pyright: ignore[reportMissingImports]

    class _Writer(Py7zIO):  # pyright: ignore[reportUntypedBaseClass]
        def __init__(self, filename: str) -> None:
            self.filename = filename
            self.keep = filename in keep
            self.buffer = io.BytesIO()
            self.written = 0

        def write(self, s: bytes | bytearray) -> int:
            budget.count(len(s))
            self.written += len(s)
            if not self.keep:
                return len(s)
            if self.written > limit:
                raise _Refused(f"member {self.filename!r} is larger than its limit of {limit} bytes")
            return self.buffer.write(s)

        def read(self, size: int | None = None) -> bytes:
            return self.buffer.read(size)

        def seek(self, offset: int, whence: int = 0) -> int:
            return self.buffer.seek(offset, whence)

        def flush(self) -> None:
            return None

        def size(self) -> int:
            return self.written

        def close(self) -> None:
            if self.buffer.closed:
                return
            if self.keep:
                sink(self.filename, self.buffer.getvalue())
            self.buffer.close()

    class _Factory(WriterFactory):  # pyright: ignore[reportUntypedBaseClass]
        def create(self, filename: str) -> Py7zIO:  # pyright: ignore[reportUnknownParameterType]
            return _Writer(filename)

    return _Factory()


def _archive_error(source: str, what: str, exc: BaseException) -> ManifestError:
    if type(exc).__name__ == "PasswordRequired" or "password" in str(exc).lower():
        return ManifestError(f"{source}: {what} is encrypted; refusing to open it", source=source)
    if isinstance(exc, MemoryError):
        return ManifestError(
            f"{source}: {what} needs more memory than is available; refusing it", source=source
        )
    detail = str(exc).strip().replace("\n", " ")[:200] or type(exc).__name__
    return ManifestError(f"{source}: {what} is not a readable 7z archive: {detail}", source=source)


def _output_name(name: str) -> str:
    """The name py7zr hands its writer for a member (relative, normalized)."""
    return posixpath.normpath(name.lstrip("/"))


class _Archive:
    """One 7z archive (outer or inner): headers surveyed against the limits, then opened by py7zr."""

    def __init__(self, fp: IO[bytes], *, source: str, what: str, limits: _Limits, budget: _Budget) -> None:
        py7zr = _py7zr()
        self.source = source
        self.what = what
        self.budget = budget
        try:
            _survey(fp, where=source, what=what, limits=limits, budget=budget)
            fp.seek(0)
            self.archive = py7zr.SevenZipFile(fp, mode="r")
        except ManifestError:
            raise
        except Exception as exc:
            raise _archive_error(source, what, exc) from exc
        try:
            if self.archive.needs_password():
                raise ManifestError(f"{source}: {what} is encrypted; refusing to open it", source=source)
            files = list(self.archive.files)
            infos = self.archive.list()
        except ManifestError:
            self.close()
            raise
        except Exception as exc:
            self.close()
            raise _archive_error(source, what, exc) from exc
        if len(infos) > limits.max_members:  # the survey saw the same count; py7zr's view must agree
            self.close()
            raise ManifestError(
                f"{source}: {what} holds {len(infos)} members, "
                f"more than max_members={limits.max_members}; refusing it (raise max_members to read it)",
                source=source,
            )
        self.members = [
            _Member(name=str(i.filename), size=int(i.uncompressed or 0), is_file=not i.is_directory)
            for i in infos
        ]
        # each solid block's members in decoding order, as (name, declared size)
        self.blocks: list[list[tuple[str, int]]] = []
        index: dict[int, int] = {}
        for f in files:
            folder = getattr(f, "folder", None)
            if folder is None:
                continue
            if id(folder) not in index:
                index[id(folder)] = len(self.blocks)
                self.blocks.append([])
            self.blocks[index[id(folder)]].append((str(f.filename), max(int(f.uncompressed or 0), 0)))

    def plan(self, names: Set[str]) -> tuple[set[str], int]:
        """The members py7zr must decode to reach ``names``, and the bytes that costs.

        A solid block is decoded from its start, so every member before the last wanted one in
        its block is decoded too. py7zr selects members by name, so a name wanted in one block
        pulls in its namesakes elsewhere; the worklist follows that until nothing changes.
        """
        where: dict[str, list[tuple[int, int]]] = {}
        for b, block in enumerate(self.blocks):
            for position, (name, _) in enumerate(block):
                where.setdefault(name, []).append((b, position))
        reach = [-1] * len(self.blocks)
        targets: set[str] = set()
        pending = list(names)
        while pending:
            name = pending.pop()
            if name in targets:
                continue
            targets.add(name)
            for b, position in where.get(name, ()):
                for earlier, _ in self.blocks[b][reach[b] + 1 : position + 1]:
                    pending.append(earlier)
                reach[b] = max(reach[b], position)
        cost = sum(size for b, block in enumerate(self.blocks) for _, size in block[: reach[b] + 1])
        return targets, cost

    def extract(self, names: list[str], *, limit: int) -> dict[str, bytes]:
        """The named members' bytes; each is refused past ``limit`` bytes.

        Refused before decoding anything when the members' solid blocks would cost more than
        the read's remaining ``max_unpacked_bytes``.
        """
        targets, cost = self.plan(set(names))
        self.budget.plan(cost, where=self.source, what=f"extracting {len(names)} member(s) of {self.what}")
        got: dict[str, bytes] = {}

        def sink(filename: str, data: bytes) -> None:
            got[filename] = data

        keep = set(names) | {_output_name(n) for n in names}
        try:
            self.archive.reset()
            self.archive.extract(targets=targets, factory=_writer_factory(keep, limit, self.budget, sink))
        except _Refused as exc:
            raise ManifestError(
                f"{self.source}: {self.what}: {exc}; refusing it", source=self.source
            ) from exc
        except ManifestError:
            raise
        except Exception as exc:
            raise _archive_error(self.source, self.what, exc) from exc
        result: dict[str, bytes] = {}
        for name in names:
            key = name if name in got else _output_name(name)
            if key in got:
                result[name] = got[key]
        return result

    def close(self) -> None:
        # closing a broken archive must not hide the real error
        with contextlib.suppress(Exception):
            self.archive.close()


def read_infineon(
    fp: IO[bytes],
    *,
    source: str,
    policy: Policy,
    max_bytes: int,
    naming: ReaderNaming,
    cert_type: str = "E0E0",
    max_members: int = DEFAULT_MAX_MEMBERS,
    max_unpacked_bytes: int = DEFAULT_MAX_UNPACKED_BYTES,
    max_dictionary_bytes: int = DEFAULT_MAX_DICTIONARY_BYTES,
) -> Iterator[ManifestEntry | ManifestError]:
    """Yield one entry per PEM file of the selected ``*_<cert_type>_Certs.7z`` inner archive(s).

    ``index`` counts the inner archive's files in name order (across reels when the outer
    archive holds several); ``vendor_id`` is the chip id from the file name.
    ``max_unpacked_bytes`` bounds the bytes decompressed by the whole read (both levels);
    ``max_dictionary_bytes`` the decoder dictionary any block may ask for.
    """
    if not _CERT_TYPE.match(str(cert_type)):
        raise ConfigurationError(
            "cert_type must name an OPTIGA Trust M certificate slot such as E0E0, E0E1 or E0E2, "
            f"not {cert_type!r}",
            variable="cert_type",
            value=cert_type,
        )
    wanted_type = str(cert_type).upper()
    limits = _Limits(
        max_bytes=max_bytes,
        max_members=check_positive_int("max_members", max_members),
        max_unpacked_bytes=check_positive_int("max_unpacked_bytes", max_unpacked_bytes),
        max_dictionary_bytes=check_positive_int("max_dictionary_bytes", max_dictionary_bytes),
    )
    budget = _Budget(limits.max_unpacked_bytes, source)
    outer = _Archive(fp, source=source, what="the Infineon archive", limits=limits, budget=budget)
    try:
        selected: list[_Member] = []
        types: set[str] = set()
        for member in outer.members:
            match = _CERT_ARCHIVE.match(posixpath.basename(member.name))
            if not match or not member.is_file:
                continue
            types.add(match.group("type").upper())
            if match.group("type").upper() == wanted_type:
                selected.append(member)
        if not selected:
            found = ", ".join(sorted(types)) or "none"
            raise ManifestError(
                f"{source}: no {wanted_type} certificate archive (*_{wanted_type}_Certs.7z) in the Infineon "
                f"archive; certificate types present: {found}",
                source=source,
            )
        selected.sort(key=lambda m: m.name)
        for member in selected:
            if member.size > max_bytes:
                raise ManifestError(
                    f"{source}: {member.name} unpacks to {member.size} bytes, "
                    f"more than max_bytes={max_bytes}; refusing it (raise max_bytes to read it)",
                    source=source,
                )
        # one pass over the outer archive's solid blocks for every reel
        names = list(dict.fromkeys(m.name for m in selected))
        contents = outer.extract(names, limit=max(max(m.size for m in selected), 0))
        index = 0
        count = [0]  # files in the last inner archive, so the next reel's indexes follow on
        for member in selected:
            data = contents.pop(member.name, None)
            if data is None:
                raise ManifestError(f"{source}: {member.name} could not be extracted", source=source)
            inner_name = f"{source}!{member.name}"
            yield from _read_inner(
                data,
                source=source,
                inner_name=inner_name,
                policy=policy,
                cert_type=wanted_type,
                start=index,
                limits=limits,
                budget=budget,
                naming=naming,
                count=count,
            )
            index += count[0]
    finally:
        outer.close()


def _read_inner(
    data: bytes,
    *,
    source: str,
    inner_name: str,
    policy: Policy,
    cert_type: str,
    start: int,
    limits: _Limits,
    budget: _Budget,
    naming: ReaderNaming,
    count: list[int],
) -> Iterator[ManifestEntry | ManifestError]:
    inner = _Archive(
        io.BytesIO(data), source=inner_name, what="certificate archive", limits=limits, budget=budget
    )
    try:
        files = sorted((m for m in inner.members if m.is_file), key=lambda m: m.name)
        count[0] = len(files)
        pems = [m for m in files if _PEM_MEMBER.match(posixpath.basename(m.name))]
        total = sum(m.size for m in pems if m.size <= MAX_PEM_BYTES)
        if total > limits.max_bytes:
            raise ManifestError(
                f"{inner_name}: the certificates unpack to {total} bytes, "
                f"more than max_bytes={limits.max_bytes}; refusing them",
                source=inner_name,
            )
        readable = [m.name for m in pems if m.size <= MAX_PEM_BYTES]
        contents = inner.extract(readable, limit=MAX_PEM_BYTES) if readable else {}
        for offset, member in enumerate(files):
            index = start + offset
            base = posixpath.basename(member.name)
            match = _PEM_MEMBER.match(base)
            if match is None:
                policy.skip(
                    index,
                    "not_a_certificate",
                    f"{inner_name}: member {index + 1} ({base}) is not a .pem file; not imported",
                )
                continue
            chip = match.group("chip")
            member_type = match.group("type")
            if member_type is not None and member_type.upper() != cert_type:
                yield from policy.fail(
                    entry_error(
                        inner_name,
                        index,
                        f"is named for slot {member_type.upper()}, but the archive holds {cert_type}",
                        noun="member",
                        label=base,
                    ),
                    code="invalid",
                    vendor_id=chip,
                )
                continue
            if member.size > MAX_PEM_BYTES:
                yield from policy.fail(
                    entry_error(
                        inner_name,
                        index,
                        f"{member.size} bytes, too large for one certificate",
                        noun="member",
                        label=base,
                    ),
                    code="invalid",
                    vendor_id=chip,
                )
                continue
            raw = contents.get(member.name)
            if raw is None:
                yield from policy.fail(
                    entry_error(inner_name, index, "could not be extracted", noun="member", label=base),
                    code="invalid",
                    vendor_id=chip,
                )
                continue
            try:
                cert = parse_pem(raw, source=inner_name, index=index, noun="member", label=base)
            except ManifestError as exc:
                yield from policy.fail(exc, code="invalid", vendor_id=chip)
                continue
            yield ManifestEntry(
                thing_name=offered_name(naming, cert),
                certificate=cert,
                vendor_id=chip,
                index=index,
                source=inner_name,
            )
    finally:
        inner.close()
