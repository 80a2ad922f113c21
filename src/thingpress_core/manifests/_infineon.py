"""Infineon OPTIGA Trust M manifests: a 7z archive of 7z archives of PEM files.

The outer archive holds, per reel, ``<reel>_<guid>_<TYPE>_Certs.7z`` for each certificate
slot (TYPE is E0E0, E0E1 or E0E2), an AES-encrypted ``<reel>_<guid>_keys.7z`` and a README.
Each inner archive holds ``<chipID>_<TYPE>.pem`` files, one CRLF PEM certificate each.

Only the selected inner archive is read (the keys archive is never opened). py7zr extracts a
member into memory, so every size is bounded by the archive's declared sizes *before* anything
is extracted, and a writer that refuses to grow past the declared size backs that up: nothing
is ever truncated; too big is refused with a `ManifestError`.
"""

from __future__ import annotations

import contextlib
import io
import posixpath
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any, Literal

from thingpress_core.certificates._loading import check_positive_int
from thingpress_core.errors import ConfigurationError, ManifestError
from thingpress_core.manifests._common import Policy, check_choice, entry_error, parse_pem
from thingpress_core.manifests._model import ManifestEntry

__all__ = ["DEFAULT_MAX_MEMBERS", "OPTIONS", "read_infineon"]

OPTIONS = frozenset({"on_error", "thing_name", "cert_type", "max_members"})

#: The most members either archive level may hold unless ``max_members=`` says otherwise.
DEFAULT_MAX_MEMBERS = 200_000
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
class _Member:
    name: str
    size: int
    is_file: bool


class _Refused(Exception):
    """Raised from inside py7zr's extraction when a member outgrows its bound."""


def _writer_factory(limit: int, sink: Callable[[str, bytes], None]) -> Any:
    """A py7zr WriterFactory whose writers refuse to grow past ``limit`` bytes."""
    from py7zr.io import Py7zIO, WriterFactory  # pyright: ignore[reportMissingImports]

    class _Writer(Py7zIO):  # pyright: ignore[reportUntypedBaseClass]
        def __init__(self, filename: str) -> None:
            self.filename = filename
            self.buffer = io.BytesIO()
            self.written = 0

        def write(self, s: bytes | bytearray) -> int:
            self.written += len(s)
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
            sink(self.filename, self.buffer.getvalue())
            self.buffer.close()

    class _Factory(WriterFactory):  # pyright: ignore[reportUntypedBaseClass]
        def create(self, filename: str) -> Py7zIO:  # pyright: ignore[reportUnknownParameterType]
            return _Writer(filename)

    return _Factory()


def _archive_error(source: str, what: str, exc: BaseException) -> ManifestError:
    if type(exc).__name__ == "PasswordRequired" or "password" in str(exc).lower():
        return ManifestError(f"{source}: {what} is encrypted; refusing to open it", source=source)
    detail = str(exc).strip().replace("\n", " ")[:200] or type(exc).__name__
    return ManifestError(f"{source}: {what} is not a readable 7z archive: {detail}", source=source)


class _Archive:
    """One 7z archive (outer or inner), opened with its member table checked against limits."""

    def __init__(self, fp: IO[bytes], *, source: str, what: str, max_members: int) -> None:
        py7zr = _py7zr()
        self.source = source
        self.what = what
        try:
            self.archive = py7zr.SevenZipFile(fp, mode="r")
        except Exception as exc:
            raise _archive_error(source, what, exc) from exc
        try:
            if self.archive.needs_password():
                raise ManifestError(f"{source}: {what} is encrypted; refusing to open it", source=source)
            infos = self.archive.list()
        except ManifestError:
            self.close()
            raise
        except Exception as exc:
            self.close()
            raise _archive_error(source, what, exc) from exc
        if len(infos) > max_members:
            self.close()
            raise ManifestError(
                f"{source}: {what} holds {len(infos)} members, "
                f"more than max_members={max_members}; refusing it",
                source=source,
            )
        self.members = [
            _Member(name=str(i.filename), size=int(i.uncompressed or 0), is_file=not i.is_directory)
            for i in infos
        ]

    def extract(self, names: list[str], *, limit: int) -> dict[str, bytes]:
        """The named members' bytes; each member is refused past ``limit`` bytes."""
        got: dict[str, bytes] = {}

        def sink(filename: str, data: bytes) -> None:
            got[filename] = data

        wanted = set(names)
        try:
            self.archive.reset()
            self.archive.extract(targets=wanted, factory=_writer_factory(limit, sink))
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
            key = name if name in got else posixpath.normpath(name.lstrip("/"))
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
    cert_type: str = "E0E0",
    thing_name: Literal["cn"] | None = "cn",
    max_members: int = DEFAULT_MAX_MEMBERS,
) -> Iterator[ManifestEntry]:
    """Yield one entry per PEM file of the selected ``*_<cert_type>_Certs.7z`` inner archive(s).

    ``index`` counts the inner archive's files in name order (across reels when the outer
    archive holds several); ``vendor_id`` is the chip id from the file name.
    """
    check_choice("thing_name", thing_name, ("cn", None))
    if not _CERT_TYPE.match(str(cert_type)):
        raise ConfigurationError(
            "cert_type must name an OPTIGA Trust M certificate slot such as E0E0, E0E1 or E0E2, "
            f"not {cert_type!r}",
            variable="cert_type",
            value=cert_type,
        )
    wanted_type = str(cert_type).upper()
    limit_members = check_positive_int("max_members", max_members)
    outer = _Archive(fp, source=source, what="the Infineon archive", max_members=limit_members)
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
        index = 0
        count = [0]  # files in the last inner archive, so the next reel's indexes follow on
        for member in selected:
            if member.size > max_bytes:
                raise ManifestError(
                    f"{source}: {member.name} unpacks to {member.size} bytes, "
                    f"more than max_bytes={max_bytes}; refusing it (raise max_bytes to read it)",
                    source=source,
                )
            data = outer.extract([member.name], limit=max(member.size, 0)).get(member.name)
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
                max_bytes=max_bytes,
                max_members=limit_members,
                thing_name=thing_name,
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
    max_bytes: int,
    max_members: int,
    thing_name: Literal["cn"] | None,
    count: list[int],
) -> Iterator[ManifestEntry]:
    inner = _Archive(io.BytesIO(data), source=inner_name, what="certificate archive", max_members=max_members)
    try:
        files = sorted((m for m in inner.members if m.is_file), key=lambda m: m.name)
        count[0] = len(files)
        pems = [m for m in files if _PEM_MEMBER.match(posixpath.basename(m.name))]
        total = sum(m.size for m in pems if m.size <= MAX_PEM_BYTES)
        if total > max_bytes:
            raise ManifestError(
                f"{inner_name}: the certificates unpack to {total} bytes, "
                f"more than max_bytes={max_bytes}; refusing them",
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
                policy.fail(
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
                policy.fail(
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
                policy.fail(
                    entry_error(inner_name, index, "could not be extracted", noun="member", label=base),
                    code="invalid",
                    vendor_id=chip,
                )
                continue
            try:
                cert = parse_pem(raw, source=inner_name, index=index, noun="member", label=base)
            except ManifestError as exc:
                policy.fail(exc, code="invalid", vendor_id=chip)
                continue
            yield ManifestEntry(
                thing_name=cert.common_name if thing_name == "cn" else None,
                certificate=cert,
                vendor_id=chip,
                index=index,
                source=inner_name,
            )
    finally:
        inner.close()
