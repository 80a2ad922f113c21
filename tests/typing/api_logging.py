"""Type-checked only: the public API of thingpress_core.logging."""

from __future__ import annotations

import logging
from typing import Any

from thingpress_core.logging import RedactingFilter, install_redaction, redact, redact_event_dict, redaction


def logging_api() -> None:
    handler_filter: logging.Filter = RedactingFilter()
    installed: RedactingFilter = install_redaction()
    named: RedactingFilter = install_redaction("myapp")
    by_logger: RedactingFilter = install_redaction(logging.getLogger("myapp"))
    text: str = redact("X-Amz-Security-Token: abc")
    with redaction() as active:
        same: RedactingFilter = active
    event: dict[str, Any] = {"event": "called", "certificatePem": "-----BEGIN CERTIFICATE-----"}
    cleaned = redact_event_dict(None, "info", event)
    print(handler_filter, installed, named, by_logger, text, same, cleaned["event"])
