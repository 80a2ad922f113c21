"""`open_ledger`: a ledger from where it lives, a file path or ``dynamodb://TABLE``."""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

from thingpress_core.errors import ConfigurationError
from thingpress_core.ledger._sqlite import SqliteLedger

if TYPE_CHECKING:
    from thingpress_core.clients import ClientFactory
    from thingpress_core.ledger._protocol import Ledger

__all__ = ["open_ledger"]

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://(.*)$")
_TABLE = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")  # DynamoDB's rule for table names


def open_ledger(
    location: str | os.PathLike[str],
    *,
    read_only: bool = False,
    create: bool = True,
    factory: ClientFactory | None = None,
) -> Ledger:
    """Open the ledger at ``location``.

    - a file path: a `SqliteLedger` (created when absent and ``create``; ``read_only`` takes
      no lock, for reading while an import writes). ``factory`` is not used.
    - ``dynamodb://TABLE``: a `DynamoDBLedger` on that table, whose clients come from
      ``factory`` (default: a new `ClientFactory`). The table is made by the deployment, so
      ``create`` and ``read_only`` do not apply. boto3 loads only here.

    Raises `ConfigurationError` for another scheme or a malformed table name, and what the
    backend raises for a location it cannot use.
    """
    if isinstance(location, str):
        match = _SCHEME.match(location)
        if match is not None:
            scheme, rest = match.group(1).lower(), match.group(2)
            if scheme != "dynamodb":
                raise ConfigurationError(
                    f"ledger location {location!r} has the unknown scheme {scheme}://; "
                    "give a file path or dynamodb://TABLE",
                    variable="ledger",
                    value=location,
                )
            if not _TABLE.match(rest):
                raise ConfigurationError(
                    f"ledger location {location!r} names no DynamoDB table (3 to 255 letters, "
                    "digits, '_', '-' or '.')",
                    variable="ledger",
                    value=location,
                )
            from thingpress_core.ledger._dynamodb import DynamoDBLedger

            return DynamoDBLedger(rest, factory=factory)
    return SqliteLedger(location, read_only=read_only, create=create)
