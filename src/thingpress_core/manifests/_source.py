"""Turn the many shapes of a manifest source into bounded bytes or a bounded stream."""

from __future__ import annotations

import io
import os
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, BinaryIO, Union

from thingpress_core.certificates._loading import check_positive_int
from thingpress_core.errors import ConfigurationError, ManifestError

if TYPE_CHECKING:
    from collections.abc import Generator

__all__ = [
    "DEFAULT_MAX_BYTES",
    "ManifestSource",
    "check_max_bytes",
    "open_seekable",
    "open_source",
    "source_name",
]

#: The largest manifest read unless ``max_bytes=`` says otherwise (256 MiB).
DEFAULT_MAX_BYTES = 256 * 1024 * 1024

ManifestSource = Union[bytes, bytearray, memoryview, str, "os.PathLike[str]", BinaryIO, IO[bytes]]


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
        return name
    if isinstance(source, str | os.PathLike):
        return os.fspath(source)
    if isinstance(source, bytes | bytearray | memoryview):
        return "<bytes>"
    stream_name = getattr(source, "name", None)
    return stream_name if isinstance(stream_name, str) else "<stream>"


def check_max_bytes(max_bytes: object) -> int:
    return check_positive_int("max_bytes", max_bytes)


class _BoundedStream(io.RawIOBase):
    """A read-only view of a binary stream that refuses to read past ``limit`` bytes."""

    def __init__(self, raw: IO[bytes], limit: int, name: str) -> None:
        super().__init__()
        self._raw = raw
        self._limit = limit
        self._seen = 0
        self._name = name

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]  # typeshed's Buffer needs 3.12
        want = min(len(buffer), self._limit + 1 - self._seen)
        if want <= 0:
            want = 1
        data = self._raw.read(want)
        if not data:
            return 0
        if not isinstance(data, bytes | bytearray):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise ManifestError(f"{self._name}: the stream must be opened in binary mode", source=self._name)
        self._seen += len(data)
        if self._seen > self._limit:
            raise ManifestError(
                f"{self._name}: manifest is larger than max_bytes={self._limit}; refusing to read it "
                "(raise max_bytes to read it whole)",
                source=self._name,
            )
        n = len(data)
        buffer[:n] = data
        return n


def _too_large(name: str, size: int, limit: int) -> ManifestError:
    return ManifestError(
        f"{name}: manifest is {size} bytes, larger than max_bytes={limit}; refusing to read it "
        "(raise max_bytes to read it whole)",
        source=name,
    )


@contextmanager
def _open_checked(source: ManifestSource, *, name: str, max_bytes: int) -> Generator[IO[bytes]]:
    """Bytes as a stream, a path as an open file, or the caller's stream, all size-checked where
    the size is known up front (bytes and files) before a byte is parsed.

    Paths are closed on exit; streams the caller passed are left open.
    """
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        if len(data) > max_bytes:
            raise _too_large(name, len(data), max_bytes)
        yield io.BytesIO(data)
        return
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        try:
            size = path.stat().st_size
            handle = path.open("rb")
        except OSError as exc:
            raise ManifestError(f"{name}: cannot open manifest: {exc.strerror or exc}", source=name) from exc
        with handle:
            if size > max_bytes:
                raise _too_large(name, size, max_bytes)
            yield handle
        return
    if getattr(source, "read", None) is None:
        raise ConfigurationError(
            f"a manifest source must be bytes, a path or a binary stream, not {type(source).__name__}",
            variable="source",
            value=type(source).__name__,
        )
    yield source


@contextmanager
def open_source(source: ManifestSource, *, name: str, max_bytes: int) -> Generator[IO[bytes]]:
    """A binary stream over the source that raises `ManifestError` past ``max_bytes``.

    Paths are checked against the limit before they are opened and closed on exit; streams
    the caller passed are left open.
    """
    with _open_checked(source, name=name, max_bytes=max_bytes) as stream:
        # A stream's size is unknown, so every read is bounded as well.
        yield io.BufferedReader(_BoundedStream(stream, max_bytes, name))


@contextmanager
def open_seekable(source: ManifestSource, *, name: str, max_bytes: int) -> Generator[IO[bytes]]:
    """A seekable binary stream over the source (archives need one), refused past ``max_bytes``.

    A path is opened as a file (not read into memory); a seekable stream is used in place; a
    stream that cannot seek is read, within the bound, into memory.
    """
    with _open_checked(source, name=name, max_bytes=max_bytes) as opened:
        if isinstance(source, bytes | bytearray | memoryview | str | os.PathLike):
            yield opened  # already size-checked, and a BytesIO or a file can seek
            return
        yield from _seekable_stream(opened, name=name, max_bytes=max_bytes)


def _seekable_stream(stream: IO[bytes], *, name: str, max_bytes: int) -> Generator[IO[bytes]]:
    """The caller's stream in place when it can seek (size measured first), else read into memory."""
    seekable = getattr(stream, "seekable", None)
    if seekable is not None and seekable():
        start = stream.tell()
        size = stream.seek(0, io.SEEK_END) - start
        stream.seek(start)
        if size > max_bytes:
            raise _too_large(name, size, max_bytes)
        yield stream
        return
    with io.BufferedReader(_BoundedStream(stream, max_bytes, name)) as bounded:
        yield io.BytesIO(bounded.read())
