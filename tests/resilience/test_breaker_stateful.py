"""The breaker against a small reference model, driven by hypothesis on a fake clock."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    rule,
)

from thingpress_core.errors import CircuitOpenError, ResourceNotFoundError, ThrottledError
from thingpress_core.resilience import (
    CircuitBreaker,
    CircuitBreakerSettings,
    CircuitPermit,
    CircuitState,
)

OUTCOMES = st.sampled_from(["success", "failure", "neutral"])


def exception_for(outcome: str) -> BaseException:
    if outcome == "failure":
        return ThrottledError("throttled", service="iot", operation="X")
    return ResourceNotFoundError("missing", service="iot", operation="X")


@dataclass
class Model:
    """The specification, written as plainly as possible (no lock, no fast path)."""

    s: CircuitBreakerSettings
    state: CircuitState = CircuitState.CLOSED
    phase: int = 0
    consecutive: int = 0
    window: list[bool] = field(default_factory=list)
    open_timeout: float = 0.0
    retry_at: float | None = None
    in_flight: int = 0
    probe_successes: int = 0
    forced: bool = False
    disabled: bool = False
    calls: int = 0
    successes: int = 0
    failures: int = 0
    ignored: int = 0
    rejections: int = 0

    def __post_init__(self) -> None:
        self.open_timeout = self.s.recovery_timeout

    def move(self, state: CircuitState, now: float) -> None:
        self.phase += 1
        self.state = state
        self.in_flight = 0
        self.probe_successes = 0
        if state is CircuitState.OPEN:
            self.retry_at = None if self.forced else now + self.open_timeout
        if state is CircuitState.CLOSED:
            self.consecutive = 0
            self.window = []
            self.open_timeout = self.s.recovery_timeout
            self.retry_at = None

    def admit(self, now: float) -> int | None:
        """The phase the call was admitted in; -2 when bypassed; None when refused."""
        if self.disabled:
            return -2
        if self.state is CircuitState.CLOSED and not self.forced:
            return self.phase
        if self.state is CircuitState.OPEN and not self.forced:
            assert self.retry_at is not None
            if now >= self.retry_at:
                self.move(CircuitState.HALF_OPEN, now)
        if self.state is CircuitState.HALF_OPEN and self.in_flight < self.s.half_open_max_calls:
            self.in_flight += 1
            return self.phase
        self.rejections += 1
        return None

    def record(self, phase: int, outcome: str, now: float) -> None:
        if phase == -2:
            return
        self.calls += 1
        self.successes += outcome == "success"
        self.failures += outcome == "failure"
        self.ignored += outcome == "neutral"
        if phase != self.phase:
            return
        if self.state is CircuitState.CLOSED and outcome != "neutral":
            failed = outcome == "failure"
            self.consecutive = self.consecutive + 1 if failed else 0
            if self.s.failure_rate_threshold is not None:
                self.window = [*self.window, failed][-self.s.window_size :]
            if failed:
                rate_trip = (
                    self.s.failure_rate_threshold is not None
                    and len(self.window) >= min(self.s.minimum_calls, self.s.window_size)
                    and 100.0 * sum(self.window) / len(self.window) >= self.s.failure_rate_threshold
                )
                if self.consecutive >= self.s.failure_threshold or rate_trip:
                    self.move(CircuitState.OPEN, now)
        elif self.state is CircuitState.HALF_OPEN:
            self.in_flight -= 1
            if outcome == "success":
                self.probe_successes += 1
                if self.probe_successes >= self.s.success_threshold:
                    self.move(CircuitState.CLOSED, now)
            elif outcome == "failure":
                cap = max(self.s.max_recovery_timeout, self.s.recovery_timeout)
                self.open_timeout = min(cap, self.open_timeout * self.s.recovery_backoff)
                self.move(CircuitState.OPEN, now)


@dataclass
class Held:
    permit: CircuitPermit
    phase: int


breaker_settings = st.builds(
    CircuitBreakerSettings,
    failure_threshold=st.integers(1, 4),
    failure_rate_threshold=st.none() | st.sampled_from([25.0, 50.0, 100.0]),
    window_size=st.integers(1, 6),
    minimum_calls=st.integers(1, 8),
    recovery_timeout=st.sampled_from([1.0, 2.5, 10.0]),
    recovery_backoff=st.sampled_from([1.0, 2.0, 3.0]),
    max_recovery_timeout=st.sampled_from([1.0, 20.0, 60.0]),
    half_open_max_calls=st.integers(1, 3),
    success_threshold=st.integers(1, 3),
)


class BreakerMachine(RuleBasedStateMachine):
    held = Bundle("held")

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0

    @initialize(s=breaker_settings)
    def setup(self, s: CircuitBreakerSettings) -> None:
        self.breaker = CircuitBreaker("iot.X", s, clock=lambda: self.now)
        self.model = Model(s)

    @rule(seconds=st.sampled_from([0.0, 0.5, 1.0, 2.5, 10.0, 30.0]))
    def advance(self, seconds: float) -> None:
        self.now += seconds

    @rule(outcome=OUTCOMES)
    def call(self, outcome: str) -> None:
        phase = self.model.admit(self.now)
        ran = []

        def fn() -> str:
            ran.append(1)
            if outcome != "success":
                raise exception_for(outcome)
            return "ok"

        try:
            self.breaker.call(fn)
        except CircuitOpenError:
            assert phase is None
            assert ran == []
            return
        except (ThrottledError, ResourceNotFoundError):
            assert outcome != "success"
        assert phase is not None
        assert ran == [1]
        self.model.record(phase, outcome, self.now)

    @rule(outcome=OUTCOMES)
    def call_in_with_block(self, outcome: str) -> None:
        phase = self.model.admit(self.now)
        ran = []
        try:
            with self.breaker:
                ran.append(1)
                if outcome != "success":
                    raise exception_for(outcome)
        except CircuitOpenError:
            assert phase is None
            assert ran == []
            return
        except (ThrottledError, ResourceNotFoundError):
            assert outcome != "success"
        assert phase is not None
        assert ran == [1]
        self.model.record(phase, outcome, self.now)

    @rule(target=held)
    def acquire(self) -> Held | None:
        phase = self.model.admit(self.now)
        try:
            permit = self.breaker.acquire()
        except CircuitOpenError as exc:
            refused = exc
        else:
            assert phase is not None
            return Held(permit, phase)
        assert phase is None
        assert refused.snapshot is not None
        return None

    @rule(item=consumes(held), outcome=OUTCOMES)
    def finish(self, item: Held | None, outcome: str) -> None:
        if item is None:
            return
        if outcome == "success":
            self.breaker.record_success(item.permit)
        else:
            self.breaker.record_failure(exception_for(outcome), item.permit)
        self.model.record(item.phase, outcome, self.now)

    @rule(item=consumes(held), outcome=OUTCOMES)
    def finish_without_permit(self, item: Held | None, outcome: str) -> None:
        """The loop API without a permit: the answer is taken to belong to the current phase,
        except in half-open with no probe in flight, where it decides nothing."""
        if item is None:
            return
        if outcome == "success":
            self.breaker.record_success()
        else:
            self.breaker.record_failure(exception_for(outcome))
        m = self.model
        if m.disabled:
            phase = -2
        elif m.state is CircuitState.HALF_OPEN and m.in_flight == 0:
            phase = -1  # counted, decides nothing
        else:
            phase = m.phase
        m.record(phase, outcome, self.now)

    @rule(action=st.sampled_from(["force_open", "disable", "enable", "reset"]))
    def operator(self, action: str) -> None:
        """Operator overrides, folded into one rule so they stay rarer than calls."""
        getattr(self.breaker, action)()
        m = self.model
        if action == "force_open":
            m.forced = True
            m.move(CircuitState.OPEN, self.now)
        elif action == "reset":
            m.forced = False
            m.disabled = False
            m.move(CircuitState.CLOSED, self.now)
        else:
            m.disabled = action == "disable"
            m.phase += 1
            m.in_flight = 0
            m.probe_successes = 0

    @invariant()
    def agrees_with_model(self) -> None:
        if not hasattr(self, "model"):
            return
        snap = self.breaker.snapshot()
        m = self.model
        assert snap.state is m.state
        assert snap.consecutive_failures == m.consecutive
        assert snap.retry_at == m.retry_at
        assert snap.open_timeout == m.open_timeout
        assert snap.half_open_in_flight == m.in_flight
        assert snap.half_open_in_flight <= m.s.half_open_max_calls
        assert (snap.calls, snap.successes, snap.failures, snap.ignored, snap.rejections) == (
            m.calls,
            m.successes,
            m.failures,
            m.ignored,
            m.rejections,
        )
        assert snap.forced_open == m.forced
        assert snap.enabled == (not m.disabled)
        if m.s.failure_rate_threshold is not None:
            assert snap.window_calls == len(m.window)
            expected_rate = 100.0 * sum(m.window) / len(m.window) if m.window else 0.0
            assert snap.failure_rate == pytest.approx(expected_rate)
        else:
            assert snap.failure_rate is None
        if m.retry_at is None:
            assert snap.retry_after is None
        else:
            assert snap.retry_after == pytest.approx(max(0.0, m.retry_at - self.now))


BreakerMachine.TestCase.settings = settings(
    max_examples=300,
    stateful_step_count=40,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestBreakerMachine = BreakerMachine.TestCase


def test_model_is_exercised() -> None:
    """A sanity check that the model opens like the breaker on the simplest path."""
    model = Model(CircuitBreakerSettings(failure_threshold=1, recovery_timeout=1))
    phase = model.admit(0.0)
    assert phase == 0
    model.record(phase, "failure", 0.0)
    assert model.state is CircuitState.OPEN
    assert model.admit(0.5) is None
    assert model.admit(1.0) == 2
    assert model.state is CircuitState.HALF_OPEN
