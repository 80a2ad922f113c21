"""The checks `IoTService` makes before an AWS IoT call, and certificate ids read from ARNs.

A bad thing name, certificate id or status fails here, with an `InvalidRequestError` that
names it, before the rate limiter, the breaker or AWS see the request (neither botocore nor
moto checks thing names).
"""

from __future__ import annotations

import re
from typing import get_args

from thingpress_core._vocabulary import THING_NAME_PATTERN, CertificateStatus
from thingpress_core.errors import InvalidRequestError

__all__ = ["certificate_id_of", "check_certificate_id", "check_status", "check_thing_name"]

_CERTIFICATE_ID = re.compile(r"\A[0-9a-f]{64}\Z")
_STATUSES: frozenset[str] = frozenset(get_args(CertificateStatus))


def check_thing_name(name: object, operation: str) -> None:
    """Raise `InvalidRequestError` unless ``name`` is 1 to 128 of ``a-z A-Z 0-9 : _ -``."""
    if not isinstance(name, str) or not THING_NAME_PATTERN.match(name):
        raise InvalidRequestError(
            f"invalid thing name {name!r}: use 1 to 128 of a-z A-Z 0-9 : _ -",
            service="iot",
            operation=operation,
            code="InvalidThingName",
            thing_name=name if isinstance(name, str) else None,
        )


def check_certificate_id(certificate_id: object, operation: str) -> None:
    """Raise `InvalidRequestError` unless ``certificate_id`` is 64 lowercase hex digits."""
    if not isinstance(certificate_id, str) or not _CERTIFICATE_ID.match(certificate_id):
        raise InvalidRequestError(
            f"invalid certificate id {certificate_id!r}: expected 64 lowercase hex digits",
            service="iot",
            operation=operation,
            code="InvalidCertificateId",
        )


def check_status(status: object, operation: str, certificate_id: str) -> None:
    """Raise `InvalidRequestError` unless ``status`` is a certificate status AWS IoT knows."""
    if status not in _STATUSES:
        raise InvalidRequestError(
            f"certificate status {status!r} is not one of {sorted(_STATUSES)}",
            service="iot",
            operation=operation,
            certificate_id=certificate_id,
        )


def certificate_id_of(certificate_arn: str) -> str | None:
    """The certificate id at the end of a certificate ARN (``...:cert/<id>``), else None."""
    _, sep, tail = certificate_arn.rpartition(":cert/")
    return tail if sep and tail else None
