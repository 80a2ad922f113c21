"""The breaker against a small reference model, driven by hypothesis on a fake clock.

Besides agreeing with the model step by step, the machine keeps its own list of the probes it
holds and checks the guarantee directly: no more than ``half_open_max_calls`` probes are ever
outstanding, however many half-open phases they were admitted in.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
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
    precondition,
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


@dataclass(eq=False)
class Ticket:
    """What the model hands out: the phase of the admission and whether it is a probe.
    Compared by identity, like permits: two probes of one phase are two slots."""

    phase: int
    probe: bool


BYPASS = Ticket(-2, False)


@dataclass
class Model:
    """The specification, written as plainly as possible (no lock, no fast path).

    ``holding`` lists the probes admitted and not yet answered, oldest first, in any phase
    since the last operator action; ``in_flight`` counts those of the current phase, the only
    ones whose answers decide it.
    """

    s: CircuitBreakerSettings
    state: CircuitState = CircuitState.CLOSED
    phase: int = 0
    consecutive: int = 0
    window: list[bool] = field(default_factory=list)
    open_timeout: float = 0.0
    retry_at: float | None = None
    holding: list[Ticket] = field(default_factory=list)
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
        self.in_flight = 0  # the probes of the phase that ends keep their slots (`holding`)
        self.probe_successes = 0
        if state is CircuitState.OPEN:
            self.retry_at = None if self.forced else now + self.open_timeout
        if state is CircuitState.CLOSED:
            self.consecutive = 0
            self.window = []
            self.open_timeout = self.s.recovery_timeout
            self.retry_at = None

    def operator_action(self) -> None:
        """Every operator action starts a phase in which no probe holds a slot."""
        self.phase += 1
        self.holding = []
        self.in_flight = 0
        self.probe_successes = 0

    def admit(self, now: float) -> Ticket | None:
        """The ticket of an admitted call; `BYPASS` when disabled; None when refused."""
        if self.disabled:
            return BYPASS
        if self.state is CircuitState.CLOSED and not self.forced:
            return Ticket(self.phase, probe=False)
        if self.state is CircuitState.OPEN and not self.forced:
            assert self.retry_at is not None
            if now >= self.retry_at:
                self.move(CircuitState.HALF_OPEN, now)
        if self.state is CircuitState.HALF_OPEN and len(self.holding) < self.s.half_open_max_calls:
            ticket = Ticket(self.phase, probe=True)
            self.holding.append(ticket)
            self.in_flight += 1
            return ticket
        self.rejections += 1
        return None

    def count(self, outcome: str) -> None:
        self.calls += 1
        self.successes += outcome == "success"
        self.failures += outcome == "failure"
        self.ignored += outcome == "neutral"

    def record(self, ticket: Ticket, outcome: str, now: float) -> None:
        if ticket is BYPASS:
            return
        self.count(outcome)
        if ticket.probe:
            if ticket not in self.holding:
                return  # its slot was already freed (by an operator action here)
            self.holding.remove(ticket)  # its own slot, whatever the phase now
        if ticket.phase == self.phase:
            self.decide(outcome, now)

    def record_without_permit(self, outcome: str, now: float) -> None:
        """Taken as an answer of the current phase; in half-open it frees the oldest slot of
        this phase, or, with no probe of this phase in flight, is counted and decides nothing."""
        if self.disabled:
            return
        self.count(outcome)
        if self.state is CircuitState.HALF_OPEN:
            if self.in_flight == 0:
                return
            self.holding.remove(next(t for t in self.holding if t.phase == self.phase))
        self.decide(outcome, now)

    def decide(self, outcome: str, now: float) -> None:
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


@dataclass(eq=False)
class Held:
    permit: CircuitPermit
    ticket: Ticket


breaker_settings = st.builds(
    CircuitBreakerSettings,
    failure_threshold=st.integers(1, 4),
    failure_rate_threshold=st.none() | st.sampled_from([25.0, 50.0, 100.0]),
    window_size=st.integers(1, 6),
    minimum_calls=st.integers(1, 8),
    recovery_timeout=st.sampled_from([1.0, 2.5, 10.0]),
    recovery_backoff=st.sampled_from([1.0, 2.0, 3.0]),
    max_recovery_timeout=st.sampled_from([1.0, 20.0, 60.0]),
    half_open_max_calls=st.sampled_from([1, 2, 3, 3]),  # several slots: probes across phases
    success_threshold=st.integers(1, 3),
)

#: Every way of making one whole call; each must behave exactly like the others.
STYLES = st.sampled_from(["call", "decorator", "guard", "with", "async", "async_decorator"])


class BreakerMachine(RuleBasedStateMachine):
    held = Bundle("held")

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.loop = asyncio.new_event_loop()
        # The probes this machine holds right now, admitted since the last operator action
        # (which starts the count over by design). Answers given without a permit cannot say
        # which call they belong to; after one, only the model's count is checked.
        self.running: list[Held] = []
        self.ambiguous = False

    def teardown(self) -> None:
        self.loop.close()

    @initialize(s=breaker_settings)
    def setup(self, s: CircuitBreakerSettings) -> None:
        self.breaker = CircuitBreaker("iot.X", s, clock=lambda: self.now)
        self.model = Model(s)

    @rule(seconds=st.sampled_from([0.0, 0.5, 1.0, 2.5, 10.0, 30.0]))
    def advance(self, seconds: float) -> None:
        self.now += seconds

    def _run(self, style: str, fn: Callable[[], str]) -> str:
        breaker = self.breaker
        if style == "call":
            return breaker.call(fn)
        if style == "decorator":
            return breaker(fn)()
        if style == "guard":
            with breaker.guard():
                return fn()
        if style == "with":
            with breaker:
                return fn()

        async def coroutine_fn() -> str:
            await asyncio.sleep(0)  # a real suspension inside the breaker
            return fn()

        if style == "async":
            return self.loop.run_until_complete(breaker.call_async(coroutine_fn))
        assert style == "async_decorator"
        return self.loop.run_until_complete(breaker(coroutine_fn)())

    @rule(outcome=OUTCOMES, style=STYLES)
    def call(self, outcome: str, style: str) -> None:
        ticket = self.model.admit(self.now)
        ran = []

        def fn() -> str:
            ran.append(1)
            if outcome != "success":
                raise exception_for(outcome)
            return "ok"

        try:
            assert self._run(style, fn) == "ok"
        except CircuitOpenError:
            assert ticket is None
            assert ran == []
            return
        except (ThrottledError, ResourceNotFoundError):
            assert outcome != "success"
        assert ticket is not None
        assert ran == [1]
        self.model.record(ticket, outcome, self.now)

    @rule(target=held)
    def acquire(self) -> Held | None:
        return self._acquire()

    @precondition(lambda self: self.model.state is CircuitState.OPEN and not self.model.forced)
    @rule(target=held)
    def acquire_when_due(self) -> Held | None:
        """Wait out the open period and take a probe: without this rule the machine seldom
        holds probes across phases, the very case the slot guarantee is about."""
        assert self.model.retry_at is not None
        self.now = max(self.now, self.model.retry_at)
        return self._acquire()

    def _acquire(self) -> Held | None:
        ticket = self.model.admit(self.now)
        try:
            permit = self.breaker.acquire()
        except CircuitOpenError as exc:
            refused = exc
        else:
            assert ticket is not None
            assert permit.probe == ticket.probe
            item = Held(permit, ticket)
            if ticket.probe:
                self.running.append(item)
            return item
        assert ticket is None
        assert refused.snapshot is not None
        return None

    @rule(
        item=consumes(held),
        outcome=OUTCOMES,
        # Without a permit a quarter of the time: it blurs which probe answered (see below).
        how=st.sampled_from(["record", "with", "record", "no_permit"]),
    )
    def finish(self, item: Held | None, outcome: str, how: str) -> None:
        """Report a held permit, long after other phases may have come and gone."""
        if item is None:
            return
        if item in self.running:
            self.running.remove(item)
            self.ambiguous |= how == "no_permit"
        exc = None if outcome == "success" else exception_for(outcome)
        if how == "with":
            item.permit.__exit__(None if exc is None else type(exc), exc, None)
        elif how == "record":
            if exc is None:
                self.breaker.record_success(item.permit)
            else:
                self.breaker.record_failure(exc, item.permit)
        else:
            self.finish_without_permit(exc)
            return
        self.model.record(item.ticket, outcome, self.now)

    def finish_without_permit(self, exc: BaseException | None) -> None:
        """The loop API without a permit: the answer is taken to belong to the current phase,
        except in half-open with no probe of this phase in flight, where it decides nothing."""
        if self.model.state is CircuitState.HALF_OPEN:
            self.ambiguous = True  # it may free the slot of a probe that is still running
        if exc is None:
            self.breaker.record_success()
        else:
            self.breaker.record_failure(exc)
        outcome = "success" if exc is None else "failure" if isinstance(exc, ThrottledError) else "neutral"
        self.model.record_without_permit(outcome, self.now)

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
        m.operator_action()
        self.running = []
        self.ambiguous = False

    @invariant()
    def probes_never_exceed_the_limit(self) -> None:
        """The guarantee itself, counted from the probes this machine really holds."""
        if not hasattr(self, "model"):
            return
        limit = self.model.s.half_open_max_calls
        snap = self.breaker.snapshot()
        assert snap.half_open_in_flight <= limit
        if not self.ambiguous:
            assert len(self.running) <= limit
            assert snap.half_open_in_flight == len(self.running)

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
        assert snap.half_open_in_flight == len(m.holding)
        assert snap.half_open_in_flight <= m.s.half_open_max_calls
        assert (snap.calls, snap.successes, snap.failures, snap.ignored, snap.refusals) == (
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
    ticket = model.admit(0.0)
    assert ticket is not None
    assert (ticket.phase, ticket.probe) == (0, False)
    model.record(ticket, "failure", 0.0)
    assert model.state is CircuitState.OPEN
    assert model.admit(0.5) is None
    probe = model.admit(1.0)
    assert probe is not None
    assert (probe.phase, probe.probe) == (2, True)
    assert model.state is CircuitState.HALF_OPEN


def test_model_keeps_an_earlier_phase_probe_in_its_slot() -> None:
    """The issue's example in the model: two slots, A and B admitted, B fails, a new half-open
    phase starts while A still runs: one more probe, not two."""
    model = Model(CircuitBreakerSettings(failure_threshold=1, recovery_timeout=1, half_open_max_calls=2))
    model.record(Ticket(0, probe=False), "failure", 0.0)
    a, b = model.admit(1.0), model.admit(1.0)
    assert a is not None
    assert b is not None
    model.record(b, "failure", 1.0)
    assert model.state is CircuitState.OPEN
    c = model.admit(3.0)
    assert c is not None
    assert c.probe
    assert model.admit(3.0) is None
    model.record(a, "success", 3.0)  # an earlier phase: frees its slot, decides nothing
    assert model.state is CircuitState.HALF_OPEN
    assert model.holding == [c]
    assert model.in_flight == 1
