"""The one table of manifest formats: each format's reader, its options and its namings.

`read_manifest` looks a format up here and nowhere else: which options belong to it, what
``naming="default"`` means for it, which namings it can offer, and whether its reader needs
a file it can seek in. Adding a format is one reader module, one `ManifestFormat` member and
one row of `READERS` (plus a rule in `_detect` when its content can be recognised).

A reader is a generator function ``read(stream, *, source, policy, naming, **options)`` that
yields `ManifestEntry` values, and with ``on_error="yield"`` (through
``yield from policy.fail(...)``) the `ManifestError` of each bad entry in its place. A
seekable reader is also given ``max_bytes=``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from thingpress_core.errors import ConfigurationError, ManifestError
from thingpress_core.manifests._common import ReaderNaming
from thingpress_core.manifests._espressif import read_espressif
from thingpress_core.manifests._generated import read_generated
from thingpress_core.manifests._infineon import read_infineon
from thingpress_core.manifests._microchip import read_microchip
from thingpress_core.manifests._model import ManifestEntry, ManifestFormat
from thingpress_core.manifests._pem import read_pem

__all__ = ["READERS", "ReaderSpec"]

# the names a format offers besides "default" and None, which every format accepts
_EVERY_FORMAT: tuple[ReaderNaming, ...] = ("common_name", "certificate_id")


@dataclass(frozen=True)
class ReaderSpec:
    """How to read one format.

    ``read`` is the reader; ``options`` the keyword options it takes besides ``naming`` and
    ``on_error``; ``default_naming`` what ``naming="default"`` means; ``namings`` the names it
    can offer (besides ``"default"`` and None); ``seekable``: the reader needs a file it can
    seek in (an archive) and is told ``max_bytes``.
    """

    read: Callable[..., Iterator[ManifestEntry | ManifestError]]
    options: frozenset[str]
    default_naming: ReaderNaming
    namings: tuple[ReaderNaming, ...]
    seekable: bool = False

    def naming(self, fmt: ManifestFormat, value: object) -> ReaderNaming:
        """``value`` resolved for this format (``"default"`` becomes the format's own choice).

        Raises `ConfigurationError` naming the option, the value and what this format offers.
        """
        if value == "default":
            return self.default_naming
        for offered in (None, *self.namings):
            if value == offered:
                return offered
        if value == "cn":
            raise ConfigurationError(
                "naming='cn' is not a naming: use naming='common_name' (the certificate's common name)",
                variable="naming",
                value=value,
            )
        choices = ", ".join(repr(n) for n in ("default", *self.namings, None))
        raise ConfigurationError(
            f"naming must be one of {choices} for {fmt.value} manifests, not {value!r}",
            variable="naming",
            value=value,
        )


READERS: Mapping[ManifestFormat, ReaderSpec] = MappingProxyType(
    {
        ManifestFormat.PEM: ReaderSpec(
            read=read_pem, options=frozenset(), default_naming="common_name", namings=_EVERY_FORMAT
        ),
        ManifestFormat.GENERATED: ReaderSpec(
            read=read_generated, options=frozenset(), default_naming="common_name", namings=_EVERY_FORMAT
        ),
        ManifestFormat.ESPRESSIF: ReaderSpec(
            read=read_espressif,
            options=frozenset(),
            default_naming="mac",
            namings=("mac", *_EVERY_FORMAT),
        ),
        ManifestFormat.MICROCHIP: ReaderSpec(
            read=read_microchip,
            options=frozenset({"verifiers", "check_verifier_validity"}),
            default_naming="unique_id",
            namings=("unique_id", *_EVERY_FORMAT),
        ),
        ManifestFormat.INFINEON: ReaderSpec(
            read=read_infineon,
            options=frozenset({"cert_type", "max_members", "max_unpacked_bytes", "max_dictionary_bytes"}),
            default_naming="common_name",
            namings=_EVERY_FORMAT,
            seekable=True,
        ),
    }
)
