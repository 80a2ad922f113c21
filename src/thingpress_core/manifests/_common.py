"""What every reader shares: the error policy, certificate parsing, option checks."""

from __future__ import annotations

import logging
from typing import Literal

from thingpress_core.certificates import DeviceCertificate
from thingpress_core.certificates._loading import parse_pem_bundle
from thingpress_core.errors import CertificateError, ConfigurationError, ManifestError, ManifestSignatureError
from thingpress_core.manifests._model import ManifestReport

__all__ = ["OnError", "Policy", "check_choice", "entry_error", "parse_der", "parse_pem"]

logger = logging.getLogger("thingpress_core.manifests")

OnError = Literal["raise", "skip"]


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


class Policy:
    """Applies ``on_error``: raise the error, or record it in the report and go on."""

    def __init__(self, report: ManifestReport, on_error: OnError) -> None:
        check_choice("on_error", on_error, ("raise", "skip"))
        self.report = report
        self.on_error = on_error

    def fail(self, error: ManifestError, *, code: str, vendor_id: str | None = None) -> None:
        """Raise ``error`` (``on_error="raise"``) or record it as skipped."""
        if self.on_error == "raise":
            raise error
        self.skip(error.index if error.index is not None else -1, code, str(error), vendor_id=vendor_id)

    def skip(self, index: int, code: str, reason: str, *, vendor_id: str | None = None) -> None:
        """Record an entry that is not yielded; never silent: it is logged and reported."""
        self.report.add_skipped(index, code, reason, vendor_id=vendor_id)
        # an entry that carries nothing to import is expected (INFO); a bad entry is not
        logger.log(
            logging.INFO if code == "no_certificate" else logging.WARNING,
            "manifest entry skipped: %s",
            reason,
            extra={"manifest": self.report.source, "entry": index + 1, "skip_code": code},
        )


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
