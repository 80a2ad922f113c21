"""Vendor manifest readers: Microchip (signed JWS), Infineon (nested 7z), Espressif (CSV),
generated (base64 lines) and plain PEM bundles.

```python
from thingpress_core.manifests import read_manifest

reader = read_manifest(
    "ECC608C-TNGTLSU-B.json", verifiers=["MCHP_manifest_signer_5.crt"]
)
for entry in reader:
    print(entry.index, entry.thing_name, entry.certificate.certificate_id)
print(reader.report.summary())  # every entry is yielded or in report.skipped
```

A source is opened once (`_source`): one bounded stream, the name messages use and its first
bytes, from which the format is detected; the reader then reads that same stream. Each
format has one row in the reader table (`_readers.READERS`: its reader, options, default
naming and the namings it offers), so adding a format is one reader module, one
`ManifestFormat` member and one table row.

Naming, one vocabulary everywhere: ``naming=`` says what name an entry offers in
`ManifestEntry.thing_name` (see `ReaderNaming`): ``"default"`` (the format's own choice:
Microchip ``"unique_id"``, Espressif ``"mac"``, the others ``"common_name"``),
``"common_name"``, ``"certificate_id"`` (every format), ``"mac"`` (Espressif),
``"unique_id"`` (Microchip), or None (no name). The importer's strategy option is also
called ``naming`` (`ImportOptions.naming`: ``"common_name"``, ``"certificate_id"``, a
function, or None = the name the manifest offers) and spells its values the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Literal, overload

from thingpress_core._public import publish
from thingpress_core.errors import ConfigurationError, ManifestError
from thingpress_core.manifests._common import ON_ERROR, OnError, Policy, ReaderNaming, check_choice
from thingpress_core.manifests._detect import HEAD_BYTES, detect_format, format_from_head, undetected
from thingpress_core.manifests._model import (
    ManifestEntry,
    ManifestFormat,
    ManifestReader,
    ManifestReport,
    SkippedEntry,
)
from thingpress_core.manifests._readers import READERS, ReaderSpec
from thingpress_core.manifests._source import (
    DEFAULT_MAX_MANIFEST_BYTES,
    ManifestSource,
    OpenedSource,
    check_max_bytes,
    open_source,
    source_name,
    suffix_name,
)
from thingpress_core.manifests._verifiers import Verifier, VerifierInput, load_verifiers

__all__ = [
    "DEFAULT_MAX_MANIFEST_BYTES",
    "ManifestEntry",
    "ManifestFormat",
    "ManifestReader",
    "ManifestReport",
    "ManifestSource",
    "ReaderNaming",
    "SkippedEntry",
    "Verifier",
    "VerifierInput",
    "detect_format",
    "load_verifiers",
    "read_manifest",
]

# options read_manifest itself handles, whatever the format
_OWN_OPTIONS = ("format", "max_bytes", "name", "naming", "on_error")


def _as_format(format: ManifestFormat | str | None) -> ManifestFormat | None:
    if format is None or isinstance(format, ManifestFormat):
        return format
    try:
        return ManifestFormat(str(format).lower())
    except ValueError:
        raise ConfigurationError(
            f"unknown manifest format {format!r}; expected one of "
            + ", ".join(f.value for f in ManifestFormat),
            variable="format",
            value=format,
        ) from None


@overload
def read_manifest(
    source: ManifestSource,
    *,
    format: ManifestFormat | str | None = None,
    on_error: Literal["raise", "skip"] = "raise",
    max_bytes: int = DEFAULT_MAX_MANIFEST_BYTES,
    name: str | None = None,
    naming: ReaderNaming = "default",
    verifiers: VerifierInput | Iterable[VerifierInput] | None = None,
    check_verifier_validity: bool | None = None,
    cert_type: str | None = None,
    max_members: int | None = None,
    max_unpacked_bytes: int | None = None,
    max_dictionary_bytes: int | None = None,
) -> ManifestReader[ManifestEntry]: ...


@overload
def read_manifest(
    source: ManifestSource,
    *,
    format: ManifestFormat | str | None = None,
    on_error: OnError,
    max_bytes: int = DEFAULT_MAX_MANIFEST_BYTES,
    name: str | None = None,
    naming: ReaderNaming = "default",
    verifiers: VerifierInput | Iterable[VerifierInput] | None = None,
    check_verifier_validity: bool | None = None,
    cert_type: str | None = None,
    max_members: int | None = None,
    max_unpacked_bytes: int | None = None,
    max_dictionary_bytes: int | None = None,
) -> ManifestReader[ManifestEntry | ManifestError]: ...


def read_manifest(
    source: ManifestSource,
    *,
    format: ManifestFormat | str | None = None,
    on_error: OnError = "raise",
    max_bytes: int = DEFAULT_MAX_MANIFEST_BYTES,
    name: str | None = None,
    naming: ReaderNaming = "default",
    verifiers: VerifierInput | Iterable[VerifierInput] | None = None,
    check_verifier_validity: bool | None = None,
    cert_type: str | None = None,
    max_members: int | None = None,
    max_unpacked_bytes: int | None = None,
    max_dictionary_bytes: int | None = None,
) -> ManifestReader[ManifestEntry | ManifestError]:
    """Read a vendor manifest and iterate its device certificates as `ManifestEntry` values.

    ``source`` is bytes, a path (``str`` or ``Path``) or a binary stream, opened once.
    ``format`` is detected from the content (then the file name) when not given. ``name``
    names the source in errors (default: the path, the stream's ``name``, or ``<bytes>``).

    Options for every format: ``on_error`` (``"raise"``: the first bad entry raises a
    `ManifestError` naming it; for Microchip the whole manifest is checked before anything is
    yielded. ``"skip"``: bad entries are recorded in ``reader.report.skipped`` and reading goes
    on. ``"yield"``: as ``"skip"``, and the reader also yields each bad entry's `ManifestError`
    (``source`` and ``index`` set) in its place, in input order; the reader does not log the
    errors it yields, the caller does), ``max_bytes`` (larger input
    is refused, never truncated) and ``naming`` (see `ReaderNaming`; ``"default"`` is the
    format's own choice). Per format (``None``, the default, means not given: the format's
    default applies):

    - microchip: ``verifiers`` (required: paths, directories, PEM/DER bytes or certificates),
      ``check_verifier_validity`` (default True), ``naming="unique_id"`` (default);
    - infineon: ``cert_type`` (default ``"E0E0"``), ``max_members`` (default 200_000, per
      archive level), ``max_unpacked_bytes`` (default 64 MiB decompressed by the whole read),
      ``max_dictionary_bytes`` (default 64 MiB, the largest decoder dictionary an archive may
      ask for);
    - espressif: ``naming="mac"`` (default) or ``"common_name"`` (the ``cn`` column);
    - every format: ``naming="common_name"`` (the default of infineon, generated and pem),
      ``"certificate_id"`` or None.

    Returns a `ManifestReader`: an iterator of entries whose ``report`` lists every entry that
    was not yielded as an entry (``report.skipped``: index, code, reason), e.g. a verified
    Microchip entry that carries no certificate (never yielded as an error: it is not one).
    Nothing is skipped silently. Reading is lazy: it streams where the format allows (PEM,
    generated, Espressif, the files of an Infineon archive). A fault that leaves the rest of
    the input unreadable (a PEM block without its END line, broken CSV quoting, a broken JSON
    document or archive) raises whatever ``on_error`` says.

    Raises `ConfigurationError` for a bad option (an option of another format at once; a bad
    option value on the first ``next()``) and `ManifestError` / `ManifestSignatureError` for
    bad input. When the format is detected, options that belong only to other formats
    (``verifiers`` for a CSV, say) are ignored; with an explicit ``format`` they raise.
    """
    # Only what the caller set goes to the reader (its own defaults fill the rest), and only
    # what the caller set can be refused as belonging to another format.
    per_format: dict[str, object] = {
        "verifiers": verifiers,
        "check_verifier_validity": check_verifier_validity,
        "cert_type": cert_type,
        "max_members": max_members,
        "max_unpacked_bytes": max_unpacked_bytes,
        "max_dictionary_bytes": max_dictionary_bytes,
    }
    options: dict[str, Any] = {key: value for key, value in per_format.items() if value is not None}
    check_choice("on_error", on_error, ON_ERROR)
    limit = check_max_bytes(max_bytes)
    display = source_name(source, name)
    fmt = _as_format(format)
    opened: OpenedSource | None = None
    if fmt is None:
        # detected from the head of the one opened source, which the reader then goes on reading
        opened = open_source(source, name=display, max_bytes=limit)
        _refuse_empty(opened)
        fmt = format_from_head(opened.head, suffix_name(display, name))
        if fmt is None:
            opened.close()
            raise undetected(display, opened.head)
        # options meant for another format (a CLI passes --verifier and --cert-type whatever the
        # file turns out to be) do not apply to this one
        options = {k: v for k, v in options.items() if k in READERS[fmt].options}
    spec = READERS[fmt]
    unknown = sorted(set(options) - spec.options)
    if unknown:
        raise ConfigurationError(
            f"option {', '.join(unknown)} does not apply to {fmt.value} manifests; "
            f"{fmt.value} takes: " + ", ".join(sorted(spec.options | set(_OWN_OPTIONS))),
            variable=unknown[0],
            value=options[unknown[0]],
        )
    report = ManifestReport(source=display, format=fmt)
    policy = Policy(report, on_error)
    entries = _entries(source, opened, spec, fmt, naming, display, limit, policy, options)
    return ManifestReader(entries, report, release=opened.close if opened is not None else None)


def _refuse_empty(opened: OpenedSource) -> None:
    """An empty manifest is the same answer whatever its name or format: no entries.

    (A head shorter than `HEAD_BYTES` is the whole manifest: only whitespace means empty.)
    """
    if not opened.head.strip() and len(opened.head) < HEAD_BYTES:
        opened.close()
        raise ManifestError(f"{opened.name}: the manifest is empty: it holds no entries", source=opened.name)


def _entries(
    source: ManifestSource,
    opened: OpenedSource | None,
    spec: ReaderSpec,
    fmt: ManifestFormat,
    naming: object,
    display: str,
    max_bytes: int,
    policy: Policy,
    options: dict[str, Any],
) -> Iterator[ManifestEntry | ManifestError]:
    """The entries of ``spec``'s reader over the source, opened here unless it already is."""
    try:
        resolved = spec.naming(fmt, naming)
        if opened is None:
            opened = open_source(source, name=display, max_bytes=max_bytes)
            _refuse_empty(opened)
        if spec.seekable:
            options = {**options, "max_bytes": max_bytes}
            stream = opened.seekable()
        else:
            stream = opened.stream
        yield from spec.read(stream, source=opened.name, policy=policy, naming=resolved, **options)
    finally:
        if opened is not None:
            opened.close()


# Tracebacks, reprs and the API docs name this package, so the private modules can move.
publish(__name__, globals())
