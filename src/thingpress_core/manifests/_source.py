"""Open a manifest source once: a bounded stream, the name messages use, and the first bytes.

`open_source` turns bytes, a path or a binary stream into an `OpenedSource`: one buffered
stream over the input that refuses to read past ``max_bytes``, the display name, and the
first `HEAD_BYTES` bytes, peeked into the stream's buffer so that detecting the format does
not read them a second time. The chosen reader then reads that same stream; an archive
reader asks `OpenedSource.seekable` for a file it can seek in, which is the same stream
whenever the input can seek (bytes, a regular file, a seekable stream).
"""

from __future__ import annotations

import io
import os
from typing import IO, BinaryIO, Union, cast

from thingpress_core.certificates._loading import check_positive_int, open_input
from thingpress_core.errors import ConfigurationError, ManifestError

__all__ = [
    "DEFAULT_MAX_MANIFEST_BYTES",
    "HEAD_BYTES",
    "ManifestSource",
    "OpenedSource",
    "check_max_bytes",
    "open_source",
    "source_name",
]

#: The largest manifest read unless ``max_bytes=`` says otherwise (256 MiB).
DEFAULT_MAX_MANIFEST_BYTES = 256 * 1024 * 1024

#: How many leading bytes format detection looks at.
HEAD_BYTES = 4096

ManifestSource = Union[bytes, bytearray, memoryview, str, "os.PathLike[str]", BinaryIO, IO[bytes]]

# room for the head and more in one raw read: the head is peeked, never read twice
_BUFFER_SIZE = max(io.DEFAULT_BUFFER_SIZE, 2 * HEAD_BYTES)


def source_name(source: object, name: str | None = None) -> str:
    """The name messages use for a source: the path, a stream's ``name``, or ``<bytes>``.

    A ``str`` is always a path; one that holds a line break is manifest text passed by
    mistake, refused with `ConfigurationError` rather than echoed whole as a file name.
    """
    if isinstance(source, str) and ("\n" in source or "\r" in source):
        raise ConfigurationError(
            f"a str source is a path, and {source[:24]!r}... is text: pass manifest content as bytes",
            variable="source",
            value=source[:24],
        )
    if name:
        return _printable(name)
    if isinstance(source, str | os.PathLike):
        return _printable(os.fspath(source))
    if isinstance(source, bytes | bytearray | memoryview):
        return "<bytes>"
    stream_name = getattr(source, "name", None)
    return stream_name if isinstance(stream_name, str) else "<stream>"


def _printable(name: str) -> str:
    """``name`` with line breaks, escapes and bidirectional overrides escaped: every message and
    log line names the source, and an S3 key may hold any character."""
    if name.isprintable():
        return name
    return "".join(char if char.isprintable() else ascii(char)[1:-1] for char in name)


def suffix_name(display: str, name: str | None) -> str | None:
    """The name whose suffix detection may use: the caller's, else a real path or stream name."""
    return name or (display if display not in ("<bytes>", "<stream>") else None)


def check_max_bytes(max_bytes: object) -> int:
    return check_positive_int("max_bytes", max_bytes)


def _too_large(name: str, size: int, limit: int) -> ManifestError:
    return ManifestError(
        f"{name}: manifest is {size} bytes, larger than max_bytes={limit}; refusing to read it "
        "(raise max_bytes to read it whole)",
        source=name,
    )


class _BoundedStream(io.RawIOBase):
    """A read-only view of a binary stream that refuses to read past ``limit`` bytes.

    Positions count from where the stream was when the view was made. It reads up to the
    limit, then one byte more: only input that really goes on past the limit is refused. It
    seeks when the stream does (archives need it), and fills each read whole unless the
    stream ends, so a pipe that answers in small pieces still shows its full head.
    """

    def __init__(self, raw: IO[bytes], limit: int, name: str) -> None:
        super().__init__()
        self._raw = raw
        self._limit = limit
        self._name = name
        seekable = getattr(raw, "seekable", None)
        self._seekable = bool(seekable()) if callable(seekable) else False
        self._start = raw.tell() if self._seekable else 0
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._seekable

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if not self._seekable:
            raise io.UnsupportedOperation("the manifest stream cannot seek")
        if whence == io.SEEK_SET:
            target = self._start + offset
        elif whence == io.SEEK_CUR:
            target = self._start + self._pos + offset
        elif whence == io.SEEK_END:
            target = self._start + self.size() + offset
        else:
            raise ValueError(f"invalid whence ({whence})")
        if target < self._start:  # the bytes before the manifest's start are not the manifest's
            raise ValueError(f"negative seek position {target - self._start}")
        self._pos = self._raw.seek(target) - self._start
        return self._pos

    def size(self) -> int:
        """The bytes from the start to the end of a seekable stream, without reading them."""
        here = self._raw.tell()
        end = self._raw.seek(0, io.SEEK_END)
        self._raw.seek(here)
        return end - self._start

    def _read(self, size: int) -> bytes:
        try:
            data = self._raw.read(size)
        except OSError as exc:  # a disk or network error part way: the input, not a bug of ours
            raise ManifestError(
                f"{self._name}: cannot read manifest: {exc.strerror or exc}", source=self._name
            ) from exc
        if not data:  # the end, or (None) a non-blocking stream with nothing ready: treated alike
            return b""
        if not isinstance(data, bytes | bytearray):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise ConfigurationError(
                f"{self._name}: a manifest stream must be opened in binary mode", variable="source"
            )
        return bytes(data)

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]  # typeshed's Buffer needs 3.12
        room = self._limit - self._pos
        if room <= 0:
            if len(buffer) and self._read(1):
                raise ManifestError(
                    f"{self._name}: manifest is larger than max_bytes={self._limit}; refusing to read it "
                    "(raise max_bytes to read it whole)",
                    source=self._name,
                )
            return 0
        want = min(len(buffer), room)
        filled = 0
        while filled < want:
            data = self._read(want - filled)
            if not data:
                break
            buffer[filled : filled + len(data)] = data
            filled += len(data)
        self._pos += filled
        return filled


class OpenedSource:
    """A manifest source opened once: its bounded ``stream``, display ``name`` and ``head``.

    ``stream`` is a buffered binary stream positioned at the start of the manifest; ``head``
    is up to `HEAD_BYTES` of its first bytes, held in the stream's buffer (reading the stream
    returns them again without another read of the input). Use it as a context manager: a
    file opened from a path is closed on exit; a stream the caller passed is left open.
    """

    def __init__(
        self, raw: _BoundedStream, *, name: str, max_bytes: int, size: int | None, owned: IO[bytes] | None
    ) -> None:
        self.name = name
        self.max_bytes = max_bytes
        self.stream = io.BufferedReader(raw, _BUFFER_SIZE)
        self._raw = raw
        self._size = size
        self._owned = owned
        self.head = bytes(self.stream.peek(HEAD_BYTES)[:HEAD_BYTES])

    def seekable(self) -> IO[bytes]:
        """A stream over the manifest that can seek, for readers of archives.

        The same stream when the input can seek (its size checked against ``max_bytes``
        first, without reading it); a stream that cannot seek is read, within the bound, into
        memory.
        """
        if self.stream.seekable():
            size = self._raw.size() if self._size is None else self._size
            if size > self.max_bytes:
                raise _too_large(self.name, size, self.max_bytes)
            # unbuffered: an archive reader jumps between header and data, and each jump would
            # refill (re-read) a whole buffer; the head it re-reads is a few bytes
            self._raw.seek(0)
            return cast(IO[bytes], self._raw)  # a RawIOBase reads and seeks as IO[bytes] says
        return io.BytesIO(self.stream.read())

    def close(self) -> None:
        """Release the input: a file opened from a path is closed; the caller's stream is not."""
        self.stream.close()  # closes only our view: _BoundedStream never closes what it wraps
        if self._owned is not None:
            self._owned.close()
            self._owned = None

    def __enter__(self) -> OpenedSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_source(source: ManifestSource, *, name: str, max_bytes: int) -> OpenedSource:
    """Open ``source`` once (see `OpenedSource`); `ManifestError` when it cannot be read.

    Bytes and files are checked against ``max_bytes`` before a byte is read (their size is
    known); a stream is bounded as it is read. A str is a path (see `source_name`).
    """
    owned: IO[bytes] | None = None
    size: int | None = None
    raw_input: IO[bytes]
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        size = len(data)
        if size > max_bytes:
            raise _too_large(name, size, max_bytes)
        raw_input = io.BytesIO(data)
    elif isinstance(source, str | os.PathLike):
        try:
            owned = raw_input = open_input(source)
            size = os.fstat(raw_input.fileno()).st_size
        except OSError as exc:
            if owned is not None:
                owned.close()
            raise ManifestError(f"{name}: cannot open manifest: {exc.strerror or exc}", source=name) from exc
        if not raw_input.seekable():  # a FIFO: its size says nothing, it is bounded as it is read
            size = None
        elif size > max_bytes:
            owned.close()
            raise _too_large(name, size, max_bytes)
    elif getattr(source, "read", None) is None:
        raise ConfigurationError(
            f"a manifest source must be bytes, a path or a binary stream, not {type(source).__name__}",
            variable="source",
            value=type(source).__name__,
        )
    else:
        raw_input = source
    try:
        raw = _BoundedStream(raw_input, max_bytes, name)
        return OpenedSource(raw, name=name, max_bytes=max_bytes, size=size, owned=owned)
    except BaseException:
        if owned is not None:
            owned.close()
        raise
