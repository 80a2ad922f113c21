"""The words and patterns the whole package shares, each defined once.

AWS IoT facts (certificate statuses, the thing-name pattern) and the project's own vocabulary
(how things are named). Kept free of heavy imports, so settings and messages can use them
without loading cryptography or boto3.
"""

from __future__ import annotations

import re
from typing import Final, Literal, TypeAlias

__all__ = [
    "MAX_THING_NAME_LENGTH",
    "THING_NAME_PATTERN",
    "CertificateStatus",
    "RegistrationStatus",
    "ThingNamingChoice",
]

CertificateStatus: TypeAlias = Literal[
    "ACTIVE", "INACTIVE", "REVOKED", "PENDING_TRANSFER", "REGISTER_INACTIVE", "PENDING_ACTIVATION"
]
"""The statuses AWS IoT knows for a certificate."""

RegistrationStatus: TypeAlias = Literal["ACTIVE", "INACTIVE"]
"""The statuses an import may give a certificate it registers."""

ThingNamingChoice: TypeAlias = Literal["common_name", "certificate_id"]
"""The namings that can be written down (a CLI flag, an environment variable); the ``naming``
option in Python also takes a function of the certificate."""

MAX_THING_NAME_LENGTH: Final = 128

THING_NAME_PATTERN: Final = re.compile(r"\A[a-zA-Z0-9:_-]{1,128}\Z")
"""A whole valid AWS IoT thing name (anchored, so ``match`` and ``fullmatch`` agree)."""
