"""What every reader shares: the error policy, the naming vocabulary, certificate parsing."""

from __future__ import annotations

import logging
from typing import Literal, TypeAlias

from thingpress_core.certificates import DeviceCertificate
from thingpress_core.certificates._loading import parse_pem_bundle
from thingpress_core.errors import CertificateError, ConfigurationError, ManifestError, ManifestSignatureError
from thingpress_core.manifests._model import ManifestReport

__all__ = [
    "MAX_SKIPPED_ENTRIES",
    "OnError",
    "Policy",
    "ReaderNaming",
    "check_choice",
    "entry_error",
    "offered_name",
    "parse_der",
    "parse_pem",
]

logger = logging.getLogger("thingpress_core.manifests")

OnError: TypeAlias = Literal["raise", "skip", "yield"]
"""What a reader does with a bad entry: raise it, record it and go on, or also yield it in place."""

ReaderNaming: TypeAlias = Literal["default", "common_name", "certificate_id", "mac", "unique_id"] | None
"""The name a reader offers in `ManifestEntry.thing_name` (``read_manifest(naming=...)``).

``"default"``: the format's own choice (Microchip ``"unique_id"``, Espressif ``"mac"``, the
others ``"common_name"``); ``"common_name"``: the certificate's CN (Espressif: its ``cn``
column, else the CN); ``"certificate_id"``: the certificate id (every format); ``"mac"``: the
Espressif MAC; ``"unique_id"``: the signed Microchip uniqueId; None: no name (the importer
names the thing). The importer's ``ImportOptions.naming`` uses the same spellings.
"""


def check_choice(option: str, value: object, choices: tuple[object, ...]) -> None:
    if value not in choices:
        shown = ", ".join(repr(c) for c in choices)
        raise ConfigurationError(
            f"{option} must be one of {shown}, not {value!r}", variable=option, value=value
        )


def entry_error(
    source: str,
    index: int,
    message: str,
    *,
    noun: str = "entry",
    line: int | None = None,
    label: str | None = None,
    signature: bool = False,
) -> ManifestError:
    """A `ManifestError` (or `ManifestSignatureError`) naming the source and 1-based entry."""
    cls = ManifestSignatureError if signature else ManifestError
    where = f" (line {line})" if line is not None else f" ({label})" if label else ""
    return cls(f"{source}: {noun} {index + 1}{where}: {message}", source=source, index=index)


ON_ERROR: tuple[OnError, ...] = ("raise", "skip", "yield")

#: The most entries one read lists as skipped before it refuses the rest of the manifest. Each
#: costs a report record and a log line; a manifest of millions of three-byte bad entries
#: (``[[],[],...]``) cost 2.4 GB and 80 s for 14 MiB before this bound. A real manifest
#: that fails this often is broken as a whole.
MAX_SKIPPED_ENTRIES = 100_000
# Skipped entries logged one by one; past this, one line says the rest are in the report only.
_LOGGED_SKIPS = 1_000


class Policy:
    """Applies ``on_error``: raise the error, or record it in the report and go on (and, with
    ``"yield"``, hand it back for the reader to yield in the bad entry's place).

    Each skipped entry is logged once, by whoever sees it last: an entry that is not yielded
    (``"skip"``, or one that carries nothing to import) is logged here, since nobody else
    sees it; an error yielded in the entry's place is not, since the caller receives it (the
    importer logs it as that item's failure). So a bad entry is never logged twice.
    """

    def __init__(self, report: ManifestReport, on_error: OnError) -> None:
        check_choice("on_error", on_error, ON_ERROR)
        self.report = report
        self.on_error = on_error
        self._logged = 0  # skipped entries logged one by one so far

    def fail(
        self, error: ManifestError, *, code: str, vendor_id: str | None = None
    ) -> tuple[ManifestError, ...]:
        """Raise ``error`` (``on_error="raise"``), or record it as skipped and return what the
        reader yields in the entry's place: ``(error,)`` for ``"yield"``, nothing for ``"skip"``.

        Readers call it as ``yield from policy.fail(...)``; called without ``yield from`` it
        still raises or records, so a bad entry is never lost. Only a ``"skip"`` is logged
        here: a yielded error is the caller's to report.
        """
        if self.on_error == "raise":
            raise error
        yielded = self.on_error == "yield"
        index = error.index if error.index is not None else -1
        self.skip(index, code, str(error), vendor_id=vendor_id, log=not yielded)
        return (error,) if yielded else ()

    def skip(
        self, index: int, code: str, reason: str, *, vendor_id: str | None = None, log: bool = True
    ) -> None:
        """Record an entry that is not imported; never silent: it is reported, and logged
        unless its error is yielded (``log=False``; the first `_LOGGED_SKIPS` logged one by
        one). Past `MAX_SKIPPED_ENTRIES` the manifest is refused."""
        count = len(self.report.skipped)
        if count >= MAX_SKIPPED_ENTRIES:
            source = self.report.source or "<manifest>"
            raise ManifestError(
                f"{source}: more than {MAX_SKIPPED_ENTRIES} entries skipped; refusing the rest of the "
                "manifest (the report lists those read so far)",
                source=source,
                index=index,
            )
        self.report.add_skipped(index, code, reason, vendor_id=vendor_id)
        if not log:
            return
        extra = {"manifest": self.report.source, "entry": index + 1, "skip_code": code}
        logged = self._logged
        self._logged += 1
        if logged < _LOGGED_SKIPS:
            # an entry that carries nothing to import is expected (INFO); a bad entry is not
            level = logging.INFO if code == "no_certificate" else logging.WARNING
            logger.log(level, "manifest entry skipped: %s", reason, extra=extra)
        elif logged == _LOGGED_SKIPS:
            logger.warning(
                "more than %d manifest entries skipped: the rest are listed in the report only",
                _LOGGED_SKIPS,
                extra=extra,
            )


def offered_name(
    naming: ReaderNaming,
    certificate: DeviceCertificate,
    *,
    vendor_id: str | None = None,
    common_name: str | None = None,
) -> str | None:
    """The ``thing_name`` an entry offers under ``naming`` (already resolved, never "default").

    ``vendor_id`` answers ``"mac"`` and ``"unique_id"`` (the reader table lets only the format
    that has one ask); ``common_name`` is a CN the manifest states, preferred to the
    certificate's own.
    """
    if naming == "common_name":
        return common_name or certificate.common_name
    if naming == "certificate_id":
        return certificate.certificate_id
    if naming in ("mac", "unique_id"):
        return vendor_id
    return None


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().replace("\n", " ")
    return text or type(exc).__name__


def parse_pem(
    data: str | bytes,
    *,
    source: str,
    index: int,
    noun: str = "entry",
    line: int | None = None,
    label: str | None = None,
) -> DeviceCertificate:
    """Exactly one certificate from PEM text, or a `ManifestError` naming the entry."""
    raw = data.encode("utf-8", "replace") if isinstance(data, str) else data
    try:
        certs = parse_pem_bundle(raw)
    except CertificateError as exc:
        message = f"not a valid certificate: {_describe(exc)}"
        raise entry_error(source, index, message, noun=noun, line=line, label=label) from exc
    if len(certs) != 1:
        message = f"not a valid certificate: expected one PEM certificate, found {len(certs)}"
        raise entry_error(source, index, message, noun=noun, line=line, label=label)
    return certs[0]


def parse_der(
    data: bytes,
    *,
    source: str,
    index: int,
    noun: str = "entry",
    line: int | None = None,
) -> DeviceCertificate:
    """A certificate from DER bytes, or a `ManifestError` naming the entry."""
    try:
        return DeviceCertificate.from_der(data)
    except CertificateError as exc:
        raise entry_error(source, index, _describe(exc), noun=noun, line=line) from exc
