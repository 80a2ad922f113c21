"""Infineon OPTIGA Trust M manifests: a 7z archive of 7z archives of PEM files.

The outer archive holds, per reel, ``<reel>_<guid>_<TYPE>_Certs.7z`` for each certificate
slot (TYPE is E0E0, E0E1 or E0E2), an AES-encrypted ``<reel>_<guid>_keys.7z`` and a README.
Each inner archive holds ``<chipID>_<TYPE>.pem`` files, one CRLF PEM certificate each.

Only the selected inner archives are read (the keys archive is never opened). A 7z file costs
what its headers say, not what it weighs, so both levels are read through `_sevenzip`: each
archive's headers are checked against ``max_members`` and ``max_dictionary_bytes`` before
py7zr sees it (`_sevenzip_headers`), and the outer and every inner archive share one budget
of ``max_unpacked_bytes``, which counts every member decoded on the way to a wanted one.
"""

from __future__ import annotations

import io
import posixpath
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import IO

from thingpress_core.certificates._loading import check_positive_int
from thingpress_core.certificates._model import shown_text
from thingpress_core.errors import ConfigurationError, ManifestError
from thingpress_core.manifests._common import Policy, ReaderNaming, entry_error, offered_name, parse_pem
from thingpress_core.manifests._model import ManifestEntry
from thingpress_core.manifests._sevenzip import Archive, Budget, Limits, Member, output_name

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
# Member names come from the archive: in messages they are escaped and cut to this length.
_MAX_NAME_SHOWN = 120


def _shown(name: str) -> str:
    return shown_text(name, _MAX_NAME_SHOWN)


def _namesakes(members: Sequence[Member]) -> set[str]:
    """Names that more than one member has (as py7zr hands them out): py7zr extracts by name, so
    such members cannot be told apart, and one member's bytes would stand for another's."""
    counts = Counter(output_name(m.name) for m in members)
    return {m.name for m in members if counts[output_name(m.name)] > 1}


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
    member_limit = check_positive_int("max_members", max_members)
    budget = Budget(check_positive_int("max_unpacked_bytes", max_unpacked_bytes), source)
    limits = Limits(
        max_members=member_limit,
        max_dictionary_bytes=check_positive_int("max_dictionary_bytes", max_dictionary_bytes),
    )
    outer = Archive(fp, source=source, what="the Infineon archive", limits=limits, budget=budget)
    try:
        selected: list[Member] = []
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
        twice = _namesakes([m for m in outer.members if m.is_file])
        for member in selected:
            if member.name in twice:
                raise ManifestError(
                    f"{source}: the Infineon archive holds more than one member named "
                    f"{_shown(member.name)}; refusing it (cannot tell which holds the certificates)",
                    source=source,
                )
            if member.size > max_bytes:
                raise ManifestError(
                    f"{source}: {_shown(member.name)} unpacks to {member.size} bytes, "
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
                raise ManifestError(f"{source}: {_shown(member.name)} could not be extracted", source=source)
            inner_name = f"{source}!{_shown(member.name)}"
            yield from _read_inner(
                data,
                source=source,
                inner_name=inner_name,
                policy=policy,
                cert_type=wanted_type,
                start=index,
                limits=limits,
                max_bytes=max_bytes,
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
    limits: Limits,
    max_bytes: int,
    budget: Budget,
    naming: ReaderNaming,
    count: list[int],
) -> Iterator[ManifestEntry | ManifestError]:
    inner = Archive(
        io.BytesIO(data), source=inner_name, what="certificate archive", limits=limits, budget=budget
    )
    try:
        files = sorted((m for m in inner.members if m.is_file), key=lambda m: m.name)
        count[0] = len(files)
        twice = _namesakes(files)
        pems = [m for m in files if _PEM_MEMBER.match(posixpath.basename(m.name)) and m.name not in twice]
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
            raw_base = posixpath.basename(member.name)
            base = _shown(raw_base)
            match = _PEM_MEMBER.match(raw_base)
            if match is None:
                policy.skip(
                    index,
                    "not_a_certificate",
                    f"{inner_name}: member {index + 1} ({base}) is not a .pem file; not imported",
                )
                continue
            chip = match.group("chip")
            if member.name in twice:
                yield from policy.fail(
                    entry_error(
                        inner_name,
                        index,
                        "shares its name with another member; cannot tell which certificate is which",
                        noun="member",
                        label=base,
                    ),
                    code="invalid",
                    vendor_id=chip,
                )
                continue
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
