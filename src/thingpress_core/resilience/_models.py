"""The values a breaker shows the outside: its state, snapshots and transition events."""

from __future__ import annotations

import dataclasses
import enum
from typing import NewType

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["CircuitEvent", "CircuitPermit", "CircuitSnapshot", "CircuitState"]


class CircuitState(str, enum.Enum):
    """Where a breaker is: letting calls through, refusing them, or probing."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"

    def __str__(self) -> str:
        return self.value


#: What `CircuitBreaker.acquire` hands out; give it back to ``record_success`` /
#: ``record_failure`` so a late answer from an earlier phase is not mistaken for a probe.
CircuitPermit = NewType("CircuitPermit", int)


class CircuitSnapshot(BaseModel):
    """A consistent picture of one breaker, for monitoring and for error messages.

    Times (``at``, ``opened_at``, ``retry_at``) are readings of the breaker's clock
    (`time.monotonic` by default): compare them with each other, not with the wall clock;
    ``retry_after`` is already relative. Counters only grow (``reset`` keeps them), so a
    monitor can export them as counters and take differences.
    """

    model_config = ConfigDict(frozen=True)

    name: str = Field(description="The breaker's name, e.g. iot.RegisterCertificateWithoutCA.")
    state: CircuitState
    enabled: bool = Field(description="False when disabled by settings or by an operator.")
    forced_open: bool = Field(description="True while an operator holds the breaker open.")
    consecutive_failures: int = Field(description="Failures since the last success (closed state).")
    failure_rate: float | None = Field(
        description="Percent of failures in the sliding window; None outside failure-rate mode."
    )
    window_calls: int = Field(description="Calls (successes and failures) in the sliding window.")
    opened_at: float | None = Field(description="Clock reading when the breaker last opened.")
    retry_at: float | None = Field(description="Clock reading when it will admit a probe.")
    retry_after: float | None = Field(description="Seconds from `at` until retry_at (>= 0).")
    open_timeout: float = Field(description="The current open period in seconds (grows by backoff).")
    half_open_in_flight: int = Field(description="Probes running now.")
    calls: int = Field(description="Admitted calls that finished (any outcome).")
    successes: int
    failures: int = Field(description="Outcomes the classifier counted as failures.")
    ignored: int = Field(description="Outcomes that counted neither way (a caller's mistake).")
    rejections: int = Field(description="Calls refused with CircuitOpenError.")
    at: float = Field(description="Clock reading when the snapshot was taken.")


@dataclasses.dataclass(frozen=True)
class CircuitEvent:
    """One state change of a breaker, handed to every listener.

    ``reason`` is one of ``failure_threshold``, ``failure_rate``, ``recovery_timeout``,
    ``probe_failed``, ``probe_succeeded``, ``forced_open``, ``reset``.
    """

    name: str
    old_state: CircuitState
    new_state: CircuitState
    at: float
    reason: str
