"""The values a breaker shows the outside: its state, snapshots and transition events."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable
from types import TracebackType
from typing import ClassVar, final

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["CircuitEvent", "CircuitPermit", "CircuitSnapshot", "CircuitState"]


class CircuitState(str, enum.Enum):
    """Where a breaker is: letting calls through, refusing them, or probing."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"

    def __str__(self) -> str:
        return self.value


@final
class CircuitPermit:
    """One admission through a `CircuitBreaker`: what ``acquire()`` and ``guard()`` hand out.

    Report the outcome once: give it back to ``record_success(permit)`` or
    ``record_failure(exc, permit)``, or use it as a context manager (``with breaker.guard():``),
    which reports the block's outcome when it ends. An exception still propagates.

    ``generation`` is the breaker phase the call was admitted in, so a late answer from an
    earlier phase is counted but never decides the current one. ``probe`` is True for a
    half-open probe, which holds one of the ``half_open_max_calls`` slots until its own outcome
    is reported, in whatever phase that happens. Only a breaker makes permits; a closed breaker
    hands every caller of one phase the same permit, so none is allocated per call.
    """

    __slots__ = ("_settle", "generation", "probe")

    generation: int
    probe: bool

    def __init__(
        self,
        settle: Callable[[CircuitPermit, BaseException | None], None],
        generation: int,
        probe: bool,
    ) -> None:
        self._settle = settle
        self.generation = generation
        self.probe = probe

    def __enter__(self) -> CircuitPermit:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._settle(self, exc)

    def __repr__(self) -> str:
        kind = "probe" if self.probe else "call"
        return f"<CircuitPermit {kind} of generation {self.generation}>"


class CircuitSnapshot(BaseModel):
    """A consistent picture of one breaker, for monitoring and for error messages.

    Times (``at``, ``opened_at``, ``retry_at``) are readings of the breaker's clock
    (`time.monotonic` by default): compare them with each other, not with the wall clock;
    ``retry_after`` is already relative. Counters only grow (``reset`` keeps them), so a
    monitor can export them as counters and take differences.
    """

    model_config: ClassVar[ConfigDict] = ConfigDict(frozen=True)

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
    half_open_in_flight: int = Field(
        description="Probes running now: admitted while half-open and not yet answered, whatever "
        "phase the breaker is in since (an operator action starts the count over)."
    )
    calls: int = Field(description="Admitted calls that finished (any outcome).")
    successes: int
    failures: int = Field(description="Outcomes the classifier counted as failures.")
    ignored: int = Field(description="Outcomes that counted neither way (a caller's mistake).")
    refusals: int = Field(description="Calls refused with CircuitOpenError.")
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
