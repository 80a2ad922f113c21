"""`FailedMessage`: one SQS message that was not sent.

A plain value with no dependency on the rest of the package, so `thingpress_core.errors`
(whose `BatchSendError` lists them) can name it without an import cycle.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict

__all__ = ["FailedMessage"]


class FailedMessage(BaseModel):
    """One message `SQSService.send_messages` could not send.

    ``index`` is its 0-based position in the input; ``sender_fault`` True means resending
    the same message cannot succeed (too large, invalid characters).
    """

    model_config: ClassVar[ConfigDict] = ConfigDict(frozen=True, extra="forbid")

    index: int
    code: str
    message: str
    sender_fault: bool
