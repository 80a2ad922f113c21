"""What the producer reports: one failure, running totals, the whole run.

Plain values with no dependency on the rest of the package, so `thingpress_core.errors`
(whose `EnqueueError` carries an `EnqueueReport`) can name them without an import cycle.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["EnqueueFailure", "EnqueueProgress", "EnqueueReport"]


class EnqueueFailure(BaseModel):
    """One certificate that was not enqueued, and why.

    ``index`` is a manifest entry's own index, or the 0-based position of a certificate in
    the input.
    """

    model_config: ClassVar[ConfigDict] = ConfigDict(frozen=True, extra="forbid")

    index: int = Field(ge=0)
    certificate_id: str | None = None
    thing_name: str | None = None
    reason: str
    code: str | None = None


class EnqueueProgress(BaseModel):
    """Running totals `enqueue_manifest` hands its ``progress`` callback after each chunk."""

    model_config: ClassVar[ConfigDict] = ConfigDict(frozen=True, extra="forbid")

    total: int = Field(ge=0, description="certificates read so far")
    sent: int = Field(ge=0)
    failed: int = Field(ge=0)
    messages: int = Field(ge=0, description="SQS messages accepted so far")


class EnqueueReport(BaseModel):
    """What `enqueue_manifest` did. ``total == sent + len(failed)`` always holds."""

    model_config: ClassVar[ConfigDict] = ConfigDict(frozen=True, extra="forbid")

    queue_url: str
    total: int = Field(ge=0)
    sent: int = Field(ge=0)
    messages: int = Field(ge=0)
    failed: tuple[EnqueueFailure, ...] = ()
    duration_seconds: float = Field(default=0.0, ge=0.0)

    @model_validator(mode="after")
    def _check_total(self) -> EnqueueReport:
        if self.total != self.sent + len(self.failed):
            raise ValueError(f"total {self.total} != sent {self.sent} + failed {len(self.failed)}")
        return self

    @property
    def ok(self) -> bool:
        """True when every certificate was enqueued."""
        return not self.failed

    def summary(self) -> str:
        """One English line for a log or the end of a CLI run."""
        return (
            f"{self.total} certificates read, {self.sent} enqueued in {self.messages} messages, "
            f"{len(self.failed)} failed ({self.duration_seconds:.1f} s)"
        )
