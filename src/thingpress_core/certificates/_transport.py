"""Carry certificates as text (SQS messages, JSON): base64 of the PEM text.

Plain base64 of PEM decodes in any language with two standard calls. The old Thingpress
form, a Python bytes repr ``"b'<base64 of PEM>'"``, is still read (never evaluated).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import cast

from thingpress_core.certificates._loading import DEFAULT_MAX_CERTIFICATE_BYTES, load_certificates
from thingpress_core.certificates._model import DeviceCertificate
from thingpress_core.errors import CertificateError, CertificateParseError

__all__ = ["decode_transport", "encode_for_transport"]


def encode_for_transport(certs: DeviceCertificate | Iterable[DeviceCertificate]) -> str:
    """Base64 (standard alphabet, no line breaks) of the concatenated PEM text of ``certs``.

    Raises `CertificateError` (a ``ValueError``) when ``certs`` is empty or holds anything
    but `DeviceCertificate` objects.
    """
    value = cast(object, certs)
    if isinstance(value, DeviceCertificate):
        items: tuple[object, ...] = (value,)
    elif isinstance(value, Iterable) and not isinstance(value, str | bytes | bytearray | memoryview):
        items = tuple(cast(Iterable[object], value))
    else:
        raise CertificateError(f"encode_for_transport needs certificates, not {type(value).__name__}")
    if not items:
        raise CertificateError("encode_for_transport needs at least one certificate")
    for item in items:
        if not isinstance(item, DeviceCertificate):
            shown = type(item).__name__
            raise CertificateError(f"encode_for_transport needs DeviceCertificate objects, not {shown}")
    pem = "".join(cast(DeviceCertificate, item).pem for item in items)
    return base64.b64encode(pem.encode("ascii")).decode("ascii")


def decode_transport(
    text: str | bytes, *, source: str | None = None, max_bytes: int = DEFAULT_MAX_CERTIFICATE_BYTES
) -> list[DeviceCertificate]:
    """The certificates of an `encode_for_transport` string, or of the legacy ``"b'...'"`` form.

    Plain PEM, DER and base64 of DER are accepted as well (anything `load_certificates`
    reads). Raises `CertificateParseError` naming ``source`` (default ``"transport text"``).
    """
    where = source if source is not None else "transport text"
    value = cast(object, text)
    if not isinstance(value, str | bytes):
        raise CertificateParseError(
            f"{where}: expected str or bytes, got {type(value).__name__}", source=where
        )
    return load_certificates(text, source=where, max_bytes=max_bytes)
