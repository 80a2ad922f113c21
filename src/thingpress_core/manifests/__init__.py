"""Vendor manifest readers: Microchip (signed JWS), Infineon (nested 7z), Espressif (CSV),
generated (base64 lines) and plain PEM bundles.

```python
from thingpress_core.manifests import read_manifest

reader = read_manifest("ECC608C-TNGTLSU-B.json", verifiers=["MCHP_manifest_signer_5.crt"])
for entry in reader:
    print(entry.index, entry.thing_name, entry.certificate.certificate_id)
print(reader.report.summary())      # every entry is yielded or listed in report.skipped
```
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Iterator
from typing import Any, Literal

from thingpress_core.errors import ConfigurationError
from thingpress_core.manifests._common import OnError, Policy, check_choice
from thingpress_core.manifests._detect import HEAD_BYTES, detect_format
from thingpress_core.manifests._microchip import Verifier, VerifierInput, load_verifiers
from thingpress_core.manifests._model import (
    ManifestEntry,
    ManifestFormat,
    ManifestReader,
    ManifestReport,
    SkippedEntry,
)
from thingpress_core.manifests._source import (
    DEFAULT_MAX_BYTES,
    ManifestSource,
    _BoundedStream,
    check_max_bytes,
    open_seekable,
    open_source,
    source_name,
)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "ManifestEntry",
    "ManifestFormat",
    "ManifestReader",
    "ManifestReport",
    "ManifestSource",
    "SkippedEntry",
    "ThingNameSource",
    "Verifier",
    "VerifierInput",
    "detect_format",
    "load_verifiers",
    "read_manifest",
]

_COMMON_OPTIONS = frozenset({"on_error"})

#: Where `ManifestEntry.thing_name` comes from (``read_manifest(thing_name=...)``):
#: ``"default"`` is the format's own choice (Microchip ``unique_id``, Espressif ``mac``, the
#: others ``cn``); ``None`` leaves the name to the importer. A source the format does not
#: have (``"mac"`` for a PEM bundle) raises `ConfigurationError` on the first ``next()``.
ThingNameSource = Literal["default", "unique_id", "mac", "cn"]


def _reader_options(fmt: ManifestFormat) -> frozenset[str]:
    if fmt is ManifestFormat.MICROCHIP:
        from thingpress_core.manifests._microchip import OPTIONS
    elif fmt is ManifestFormat.INFINEON:
        from thingpress_core.manifests._infineon import OPTIONS
    elif fmt is ManifestFormat.ESPRESSIF:
        from thingpress_core.manifests._espressif import OPTIONS
    elif fmt is ManifestFormat.GENERATED:
        from thingpress_core.manifests._generated import OPTIONS
    else:
        from thingpress_core.manifests._pem import OPTIONS
    return OPTIONS


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


def read_manifest(
    source: ManifestSource,
    *,
    format: ManifestFormat | str | None = None,
    on_error: OnError = "raise",
    max_bytes: int = DEFAULT_MAX_BYTES,
    name: str | None = None,
    thing_name: ThingNameSource | None = "default",
    verifiers: VerifierInput | Iterable[VerifierInput] | None = None,
    check_verifier_validity: bool | None = None,
    cert_type: str | None = None,
    max_members: int | None = None,
    max_unpacked_bytes: int | None = None,
    max_dictionary_bytes: int | None = None,
) -> ManifestReader:
    """Read a vendor manifest and iterate its device certificates as `ManifestEntry` values.

    ``source`` is bytes, a path (``str`` or ``Path``) or a binary stream. ``format`` is detected
    from the content (then the file name) when not given. ``name`` names the source in errors
    (default: the path, the stream's ``name``, or ``<bytes>``).

    Options for every format: ``on_error`` (``"raise"``: the first bad entry raises a
    `ManifestError` naming it; for Microchip the whole manifest is checked before anything is
    yielded. ``"skip"``: bad entries are recorded in ``reader.report.skipped`` and reading goes
    on), ``max_bytes`` (larger input is refused, never truncated) and ``thing_name`` (see
    `ThingNameSource`). Per format (``None``, the default, means not given: the format's
    default applies):

    - microchip: ``verifiers`` (required: paths, directories, PEM/DER bytes or certificates),
      ``check_verifier_validity`` (default True), ``thing_name="unique_id" | "cn" | None``;
    - infineon: ``cert_type`` (default ``"E0E0"``), ``max_members`` (default 200_000, per
      archive level), ``max_unpacked_bytes`` (default 64 MiB decompressed by the whole read),
      ``max_dictionary_bytes`` (default 64 MiB, the largest decoder dictionary an archive may
      ask for), ``thing_name="cn" | None``;
    - espressif: ``thing_name="mac" | "cn" | None``;
    - generated, pem: ``thing_name="cn" | None``.

    Returns a `ManifestReader`: an iterator of entries whose ``report`` lists every entry that
    was not yielded (``report.skipped``: index, code, reason), e.g. a verified Microchip entry
    that carries no certificate. Nothing is skipped silently. Reading is lazy: it streams where
    the format allows (PEM, generated, Espressif, the files of an Infineon archive).

    Raises `ConfigurationError` for a bad option (an option of another format at once; a bad
    option value on the first ``next()``) and `ManifestError` / `ManifestSignatureError` for
    bad input. When the format is detected, options that belong only to other formats
    (``verifiers`` for a CSV, say) are ignored; with an explicit ``format`` they raise.
    """
    # Only what the caller set goes to the reader (its own defaults fill the rest), and only
    # what the caller set can be refused as belonging to another format.
    options: dict[str, Any] = {} if thing_name == "default" else {"thing_name": thing_name}
    per_format: dict[str, object] = {
        "verifiers": verifiers,
        "check_verifier_validity": check_verifier_validity,
        "cert_type": cert_type,
        "max_members": max_members,
        "max_unpacked_bytes": max_unpacked_bytes,
        "max_dictionary_bytes": max_dictionary_bytes,
    }
    options.update((key, value) for key, value in per_format.items() if value is not None)
    check_choice("on_error", on_error, ("raise", "skip"))
    limit = check_max_bytes(max_bytes)
    display = source_name(source, name)
    fmt = _as_format(format)
    detected = fmt is None
    if fmt is None and not isinstance(source, bytes | bytearray | memoryview | str | os.PathLike):
        seekable = getattr(source, "seekable", None)
        if not (seekable is not None and seekable()) and not isinstance(source, io.BufferedReader):
            # a pipe or socket: buffer it (within the bound) so the head can be peeked
            source = io.BufferedReader(_BoundedStream(source, limit, display), buffer_size=HEAD_BYTES * 2)
    if fmt is None:
        fmt = detect_format(
            source, name=name or (display if display not in ("<bytes>", "<stream>") else None)
        )
    allowed = _COMMON_OPTIONS | _reader_options(fmt)
    if detected:
        # options meant for another format (a CLI passes --verifier and --cert-type whatever the
        # file turns out to be) do not apply to this one; names no reader knows still fail
        known = set().union(*(_reader_options(f) for f in ManifestFormat))
        options = {k: v for k, v in options.items() if k in allowed or k not in known}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ConfigurationError(
            f"option {', '.join(unknown)} does not apply to {fmt.value} manifests; "
            f"{fmt.value} takes: " + ", ".join(sorted(allowed | {"max_bytes", "name", "format"})),
            variable=unknown[0],
            value=options[unknown[0]],
        )
    report = ManifestReport(source=display, format=fmt)
    policy = Policy(report, on_error)
    return ManifestReader(_entries(source, fmt, display, limit, policy, options), report)


def _entries(
    source: ManifestSource,
    fmt: ManifestFormat,
    display: str,
    max_bytes: int,
    policy: Policy,
    options: dict[str, Any],
) -> Iterator[ManifestEntry]:
    if fmt is ManifestFormat.INFINEON:
        from thingpress_core.manifests._infineon import read_infineon

        with open_seekable(source, name=display, max_bytes=max_bytes) as fp:
            yield from read_infineon(fp, source=display, policy=policy, max_bytes=max_bytes, **options)
        return
    with open_source(source, name=display, max_bytes=max_bytes) as stream:
        if fmt is ManifestFormat.MICROCHIP:
            from thingpress_core.manifests._microchip import read_microchip

            yield from read_microchip(stream, source=display, policy=policy, **options)
        elif fmt is ManifestFormat.ESPRESSIF:
            from thingpress_core.manifests._espressif import read_espressif

            yield from read_espressif(stream, source=display, policy=policy, **options)
        elif fmt is ManifestFormat.GENERATED:
            from thingpress_core.manifests._generated import read_generated

            yield from read_generated(stream, source=display, policy=policy, **options)
        else:
            from thingpress_core.manifests._pem import read_pem

            yield from read_pem(stream, source=display, policy=policy, **options)


# public objects show the package path in reprs and docs; the private modules can move
for _obj in (ManifestEntry, ManifestFormat, ManifestReader, ManifestReport, SkippedEntry, Verifier):
    _obj.__module__ = __name__
for _fn in (read_manifest, detect_format, load_verifiers):
    _fn.__module__ = __name__
del _obj, _fn
