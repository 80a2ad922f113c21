"""Thing names from certificates: always valid for AWS IoT, the same in every process.

Names depend only on the certificate and the arguments (SHA-256, never Python's salted
``hash()``), so two workers, or a retry tomorrow, name a device identically.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import TypeAlias, cast

from thingpress_core._vocabulary import MAX_THING_NAME_LENGTH, THING_NAME_PATTERN, ThingNamingChoice
from thingpress_core.certificates._model import DeviceCertificate
from thingpress_core.errors import CertificateValidationError, ConfigurationError

__all__ = [
    "MAX_THING_NAME_LENGTH",
    "THING_NAME_PATTERN",
    "ThingNaming",
    "ThingNamingChoice",
    "check_prefix",
    "is_valid_thing_name",
    "sanitize_thing_name",
    "thing_name_for",
]

ThingNaming: TypeAlias = ThingNamingChoice | Callable[[DeviceCertificate], str]
"""How things are named (the ``naming`` option everywhere): from the certificate's common name,
its certificate id, or a caller's function of the certificate. The manifest readers' ``naming``
option uses the same spellings for the names a manifest offers (plus ``"mac"`` and
``"unique_id"``)."""


_INVALID = re.compile(r"[^a-zA-Z0-9:_-]")
_MAPPED_SUFFIX = 8  # hex digits of SHA-256 appended when characters were mapped
_SHORTENED_SUFFIX = 16  # hex digits of SHA-256 appended when a name was shortened


def is_valid_thing_name(name: object) -> bool:
    """True when ``name`` is a string AWS IoT accepts as a thing name."""
    return isinstance(name, str) and THING_NAME_PATTERN.match(name) is not None


def _digest(text: str, length: int) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:length]


def _shorten(name: str) -> str:
    """Cut to 128 characters: the first 111 characters, ``-``, 16 hex digits of SHA-256(name)."""
    if len(name) <= MAX_THING_NAME_LENGTH:
        return name
    keep = MAX_THING_NAME_LENGTH - _SHORTENED_SUFFIX - 1
    return f"{name[:keep]}-{_digest(name, _SHORTENED_SUFFIX)}"


def sanitize_thing_name(
    text: str, *, prefix: str = "", strict: bool = False, certificate_id: str | None = None
) -> str:
    """Make ``prefix + text`` a valid thing name (see `thing_name_for` for the rules)."""
    candidate = prefix + text
    if _INVALID.search(text) is not None:
        if strict:
            bad = sorted({repr(ch) for ch in _INVALID.findall(text)})
            raise CertificateValidationError(
                f"thing name {candidate!r} contains characters AWS IoT does not allow: {', '.join(bad)}",
                certificate_id=certificate_id,
                reason="invalid_name",
            )
        candidate = f"{prefix}{_INVALID.sub('_', text)}-{_digest(text, _MAPPED_SUFFIX)}"
    if len(candidate) > MAX_THING_NAME_LENGTH:
        if strict:
            raise CertificateValidationError(
                f"thing name {candidate[:40]!r}... is {len(candidate)} characters, "
                f"more than {MAX_THING_NAME_LENGTH}",
                certificate_id=certificate_id,
                reason="invalid_name",
            )
        candidate = _shorten(candidate)
    return candidate


def check_prefix(prefix: object) -> str:
    """``prefix`` when it is a valid thing-name prefix, ``""`` for none; else `ConfigurationError`."""
    if prefix is None or prefix == "":
        return ""
    limit = MAX_THING_NAME_LENGTH - _SHORTENED_SUFFIX - 2
    if not isinstance(prefix, str) or THING_NAME_PATTERN.match(prefix) is None or len(prefix) > limit:
        raise ConfigurationError(
            f"thing name prefix {prefix!r} must be 1 to {limit} characters of [a-zA-Z0-9:_-]",
            variable="prefix",
            value=prefix,
        )
    return prefix


def thing_name_for(
    cert: DeviceCertificate,
    *,
    naming: ThingNaming | None = None,
    prefix: str | None = None,
    strict: bool = False,
    offered: str | None = None,
) -> str:
    """A valid AWS IoT thing name (``[a-zA-Z0-9:_-]{1,128}``) for ``cert``.

    ``naming``: ``"common_name"`` (the certificate id when the CN is missing),
    ``"certificate_id"`` (the 64 hex digits), or a function of the certificate (its result
    passes through the same rules; an empty result falls back to the certificate id).
    ``offered`` is a name the input brought (a manifest's MAC or uniqueId): with no
    ``naming`` (the default) it is used, else the common name; an explicit ``naming``
    wins over it. Whatever its source, the text passes through the rules below, so a reader's
    CN with spaces or a 10 KB uniqueId gives a valid name like any other.

    Rules, applied to the text chosen:

    - Every character outside ``[a-zA-Z0-9:_-]`` becomes ``_`` and, because that alone could
      map two CNs to one name (``"a b"`` and ``"a.b"``), ``-`` and the first 8 hex digits of
      SHA-256 of the original text (UTF-8) are appended: ``"dev 1.lab"`` ->
      ``"dev_1_lab-<8 hex>"``. Text already valid is used as is.
    - ``prefix`` (itself valid, at most 110 characters) is put in front.
    - A name over 128 characters keeps its first 111 characters, then ``-`` and 16 hex digits
      of SHA-256 of the full name.
    - ``strict=True`` raises `CertificateValidationError` (reason ``invalid_name``) instead
      of mapping characters or shortening.

    An invalid ``prefix`` or ``naming`` raises `ConfigurationError`.
    """
    pre = check_prefix(prefix)
    text: str | None
    if naming is None:
        text = offered if offered else cert.common_name
    elif naming == "common_name":
        text = cert.common_name
    elif naming == "certificate_id":
        text = cert.certificate_id
    elif callable(naming):
        produced = cast(object, naming(cert))
        if produced is not None and not isinstance(produced, str):
            raise ConfigurationError(
                f"thing name function {getattr(naming, '__name__', naming)!r} returned "
                f"{type(produced).__name__}, not str",
                variable="naming",
                value=naming,
            )
        text = produced
    else:
        raise ConfigurationError(
            f"naming must be 'common_name', 'certificate_id' or a function, not {naming!r}",
            variable="naming",
            value=naming,
        )
    if not text:
        text = cert.certificate_id
    return sanitize_thing_name(text, prefix=pre, strict=strict, certificate_id=cert.certificate_id)
