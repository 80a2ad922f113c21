"""The values manifest readers produce: entries, formats, and the per-read report."""

from __future__ import annotations

import enum
import threading
from typing import TYPE_CHECKING, ClassVar, Generic

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypeVar

from thingpress_core.certificates import DeviceCertificate

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

__all__ = ["ManifestEntry", "ManifestFormat", "ManifestReader", "ManifestReport", "SkippedEntry"]


class ManifestFormat(str, enum.Enum):
    """The manifest formats `read_manifest` understands (a ``str`` enum: ``"microchip"``...)."""

    PEM = "pem"
    GENERATED = "generated"
    ESPRESSIF = "espressif"
    MICROCHIP = "microchip"
    INFINEON = "infineon"

    def __str__(self) -> str:
        return self.value


class ManifestEntry(BaseModel):
    """One device certificate read from a manifest.

    ``index`` is the 0-based position of the entry (row, JWS entry, archive member) in the
    manifest; messages show it 1-based. ``thing_name`` is what the manifest says the thing is
    called (None lets the importer's naming strategy decide); ``vendor_id`` is the vendor's id
    for the chip (Microchip uniqueId, Infineon chip id, Espressif MAC).
    """

    model_config: ClassVar[ConfigDict] = ConfigDict(frozen=True)

    thing_name: str | None
    certificate: DeviceCertificate
    chain: tuple[DeviceCertificate, ...] = ()
    vendor_id: str | None = None
    index: int
    source: str | None = None

    def __repr__(self) -> str:
        return (
            f"ManifestEntry(index={self.index}, thing_name={self.thing_name!r}, "
            f"vendor_id={self.vendor_id!r}, certificate_id={self.certificate.certificate_id!r})"
        )


class SkippedEntry(BaseModel):
    """An entry that was read but not yielded, and why.

    ``code`` is a short machine-readable word: ``no_certificate`` (a verified entry that
    carries no certificate), ``signature`` (signature, signer or payload check failed),
    ``invalid`` (the entry or its certificate cannot be read), ``not_a_certificate`` (a PEM
    block or archive member that holds something else). ``vendor_id`` is set only where the
    manifest's id for the chip can be believed: never for a Microchip entry that failed
    verification, whose only uniqueId is unsigned.
    """

    model_config: ClassVar[ConfigDict] = ConfigDict(frozen=True)

    index: int = Field(description="0-based position of the entry in the manifest")
    code: str
    reason: str
    vendor_id: str | None = None

    @property
    def number(self) -> int:
        """The 1-based entry number used in messages."""
        return self.index + 1


class ManifestReport:
    """What one read of a manifest saw: every entry is either yielded or listed in `skipped`.

    It fills in while the reader is iterated; `complete` turns True when the reader has seen
    the end of the manifest. ``entries`` counts the entries the manifest holds so far (yielded
    plus skipped).
    """

    def __init__(self, *, source: str | None, format: ManifestFormat) -> None:
        self.source = source
        self.format = format
        self.yielded: int = 0
        self.skipped: list[SkippedEntry] = []
        self.complete: bool = False
        self._lock = threading.Lock()

    @property
    def entries(self) -> int:
        return self.yielded + len(self.skipped)

    def add_skipped(self, index: int, code: str, reason: str, *, vendor_id: str | None = None) -> None:
        with self._lock:
            self.skipped.append(SkippedEntry(index=index, code=code, reason=reason, vendor_id=vendor_id))

    def count_yielded(self) -> None:
        with self._lock:
            self.yielded += 1

    def summary(self) -> str:
        """One English line, e.g. ``"x.json (microchip): 10 entries, 0 certificates, ..."``."""
        name = self.source or "<manifest>"
        text = f"{name} ({self.format.value}): {self.entries} entries, {self.yielded} certificates"
        if self.skipped:
            by_code: dict[str, int] = {}
            for item in self.skipped:
                by_code[item.code] = by_code.get(item.code, 0) + 1
            detail = ", ".join(f"{count} {code}" for code, count in sorted(by_code.items()))
            text += f", {len(self.skipped)} skipped ({detail})"
        if not self.complete:
            text += " (not read to the end)"
        return text

    def __repr__(self) -> str:
        return f"ManifestReport({self.summary()!r})"


#: What a `ManifestReader` yields: `ManifestEntry`, or with ``on_error="yield"`` also the
#: [`ManifestError`][thingpress_core.errors.ManifestError] of each bad entry. A bare ``ManifestReader`` means
#: ``ManifestReader[ManifestEntry]``.
_Item_co = TypeVar("_Item_co", covariant=True, default=ManifestEntry)


class ManifestReader(Generic[_Item_co]):
    """The iterator `read_manifest` returns: iterate it for entries, read `report` for the rest.

    It is a plain iterator (``for entry in read_manifest(...)`` works); the extra is
    `report`, which lists every skipped entry with its number and reason. It yields
    `ManifestEntry` values, and with ``on_error="yield"`` the `ManifestError` of each bad entry
    in its place (``ManifestReader[ManifestEntry | ManifestError]``); only entries count as
    ``report.yielded``.
    """

    def __init__(
        self,
        entries: Iterator[_Item_co],
        report: ManifestReport,
        *,
        release: Callable[[], None] | None = None,
    ) -> None:
        self._entries = entries
        self._release = release
        self.report = report

    @property
    def format(self) -> ManifestFormat:
        return self.report.format

    @property
    def source(self) -> str | None:
        return self.report.source

    def __iter__(self) -> ManifestReader[_Item_co]:
        return self

    def __next__(self) -> _Item_co:
        try:
            item = next(self._entries)
        except StopIteration:
            self.report.complete = True
            raise
        if isinstance(item, ManifestEntry):
            self.report.count_yielded()
        return item

    def close(self) -> None:
        """Stop reading and release the input (files opened by path are closed)."""
        close = getattr(self._entries, "close", None)
        if close is not None:
            close()
        if self._release is not None:
            # an input opened before the first entry was asked for (to detect its format)
            self._release()
            self._release = None

    def __enter__(self) -> ManifestReader[_Item_co]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ManifestReader({self.report.summary()!r})"
