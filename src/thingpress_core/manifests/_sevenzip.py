"""Reading a 7z archive within bounds: a decompression budget and extraction through py7zr.

Before py7zr sees an archive, `_sevenzip_headers.survey` checks what its headers declare
(members, blocks, methods, dictionaries) against the `Limits`. One `Budget` bounds the bytes a
whole read may decompress, across an archive and the archives inside it: every member that
precedes a wanted one in its solid block is counted, because a solid block is decompressed
from its start (`Archive.plan`), and a step is refused before it runs when its declared cost
would go past ``max_unpacked_bytes``.

While extracting, every byte py7zr writes, for wanted and unwanted members alike, goes
through a writer that counts it against the same budget; unwanted members are asked for
explicitly (so py7zr never routes them to its uncounted null writer) and dropped.
"""

from __future__ import annotations

import contextlib
import io
import posixpath
from collections.abc import Callable, Set
from dataclasses import dataclass
from typing import IO, Any

from thingpress_core.certificates._model import shown_text
from thingpress_core.errors import ManifestError, MissingExtraError
from thingpress_core.manifests._sevenzip_headers import Limits, survey

__all__ = ["Archive", "Budget", "Limits", "Member", "output_name"]

_EXTRA_HINT = "reading Infineon manifests needs py7zr: pip install 'thingpress-core[manifests]'"


def _py7zr() -> Any:
    try:
        import py7zr  # pyright: ignore[reportMissingImports]
    except ImportError as exc:
        raise MissingExtraError(_EXTRA_HINT, extra="manifests") from exc
    return py7zr


@dataclass(frozen=True)
class Member:
    """One member as py7zr lists it: its name, its declared unpacked size, file or directory."""

    name: str
    size: int
    is_file: bool


class _Refused(Exception):
    """Raised from inside py7zr's extraction when a member or the whole read outgrows its bound."""


class Budget:
    """The bytes one read may decompress, across the outer archive and every inner one.

    ``plan`` books what the headers say a step will cost, before the step runs; ``count`` sees
    every byte py7zr actually writes and stops extraction past the limit. ``written`` is what
    was counted so far. Whoever opens an `Archive` passes the budget it shares, so a test can
    read ``written`` or pass a budget of its own.
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


def _writer_factory(keep: Set[str], limit: int, budget: Budget, sink: Callable[[str, bytes], None]) -> Any:
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
    # py7zr's text may quote member names, which the archive chose
    detail = shown_text(" ".join(str(exc).split()), 200) or type(exc).__name__
    return ManifestError(f"{source}: {what} is not a readable 7z archive: {detail}", source=source)


def output_name(name: str) -> str:
    """The name py7zr hands its writer for a member (relative, normalized)."""
    return posixpath.normpath(name.lstrip("/"))


class Archive:
    """One 7z archive (outer or inner): headers surveyed against the limits, then opened by py7zr."""

    def __init__(self, fp: IO[bytes], *, source: str, what: str, limits: Limits, budget: Budget) -> None:
        py7zr = _py7zr()
        self.source = source
        self.what = what
        self.budget = budget
        try:
            survey(fp, where=source, what=what, limits=limits, budget=budget)
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
            Member(name=str(i.filename), size=int(i.uncompressed or 0), is_file=not i.is_directory)
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

        keep = set(names) | {output_name(n) for n in names}
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
            key = name if name in got else output_name(name)
            if key in got:
                result[name] = got[key]
        return result

    def close(self) -> None:
        # closing a broken archive must not hide the real error
        with contextlib.suppress(Exception):
            self.archive.close()
