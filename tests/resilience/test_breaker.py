"""CircuitBreaker behaviour on a fake clock: transitions, classification, call styles."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

from thingpress_core.errors import (
    AccessDeniedError,
    CircuitOpenError,
    ConfigurationError,
    InvalidRequestError,
    RateLimitTimeoutError,
    ResourceConflictError,
    ResourceNotFoundError,
    ServiceUnavailableError,
    ThrottledError,
)
from thingpress_core.resilience import (
    CircuitBreaker,
    CircuitBreakerSettings,
    CircuitEvent,
    CircuitPermit,
    CircuitSnapshot,
    CircuitState,
)


def throttled() -> ThrottledError:
    return ThrottledError("Rate exceeded", service="iot", operation="CreateThing", code="ThrottlingException")


def unavailable() -> ServiceUnavailableError:
    return ServiceUnavailableError("boom", service="iot", operation="CreateThing", http_status=503)


def raiser(exc: BaseException) -> Callable[[], None]:
    def fn() -> None:
        raise exc

    return fn


def ok() -> str:
    return "ok"


def make(clock: Callable[[], float], **settings: Any) -> CircuitBreaker:
    return CircuitBreaker("iot.CreateThing", CircuitBreakerSettings(**settings), clock=clock)


def fail(breaker: CircuitBreaker, times: int = 1, exc: Callable[[], BaseException] = throttled) -> None:
    for _ in range(times):
        with pytest.raises(type(exc())):
            breaker.call(raiser(exc()))


def test_defaults_match_the_issue() -> None:
    s = CircuitBreakerSettings()
    assert (s.failure_threshold, s.recovery_timeout, s.half_open_max_calls, s.success_threshold) == (
        5,
        30.0,
        1,
        1,
    )
    assert s.enabled is True
    assert s.failure_rate_threshold is None


@pytest.mark.parametrize(
    "values",
    [
        {"failure_threshold": 0},
        {"recovery_timeout": 0},
        {"recovery_timeout": float("inf")},
        {"recovery_backoff": 0.5},
        {"half_open_max_calls": 0},
        {"success_threshold": 0},
        {"failure_rate_threshold": 0},
        {"failure_rate_threshold": 101},
        {"window_size": 0},
        {"unknown": 1},
        {"failure_threshold": "many"},
    ],
)
def test_invalid_settings_raise_configuration_error(values: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError) as info:
        CircuitBreakerSettings(**values)
    assert next(iter(values)) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_opens_after_consecutive_failures_and_fails_fast(clock: Callable[[], float]) -> None:
    breaker = make(clock, failure_threshold=3, recovery_timeout=30)
    fail(breaker, 2)
    assert breaker.state is CircuitState.CLOSED
    fail(breaker)
    assert breaker.state is CircuitState.OPEN
    called = []
    with pytest.raises(CircuitOpenError) as info:
        breaker.call(lambda: called.append(1))
    assert called == []
    err = info.value
    assert err.name == "iot.CreateThing"
    assert err.retry_after == pytest.approx(30.0)
    assert str(err) == "circuit iot.CreateThing is open (3 consecutive failures); it will try again in 30.0 s"
    assert isinstance(err.snapshot, CircuitSnapshot)
    assert err.snapshot.state is CircuitState.OPEN
    assert err.snapshot.refusals == 1


def test_success_resets_the_consecutive_count(clock: Callable[[], float]) -> None:
    breaker = make(clock, failure_threshold=3)
    for _ in range(5):
        fail(breaker, 2)
        assert breaker.call(ok) == "ok"
    assert breaker.state is CircuitState.CLOSED
    assert breaker.snapshot().consecutive_failures == 0


@pytest.mark.parametrize(
    "exc",
    [
        lambda: InvalidRequestError("bad", service="iot", operation="CreateThing"),
        lambda: ResourceNotFoundError("missing", service="iot", operation="CreateThing"),
        lambda: ResourceConflictError("exists", service="iot", operation="CreateThing"),
        lambda: AccessDeniedError("denied", service="iot", operation="CreateThing"),
        lambda: RateLimitTimeoutError("late", name="iot.CreateThing", timeout=1.0),
        lambda: KeyError("x"),
        lambda: ValueError("x"),
    ],
)
def test_callers_mistakes_are_neutral(clock: Callable[[], float], exc: Callable[[], BaseException]) -> None:
    breaker = make(clock, failure_threshold=2)
    fail(breaker, 1)
    fail(breaker, 10, exc)  # neither failures nor successes
    snap = breaker.snapshot()
    assert breaker.state is CircuitState.CLOSED
    assert snap.consecutive_failures == 1
    assert (snap.failures, snap.ignored, snap.successes, snap.calls) == (1, 10, 0, 11)
    fail(breaker, 1)
    assert breaker.state is CircuitState.OPEN


@pytest.mark.parametrize(
    "exc", [unavailable, throttled, lambda: TimeoutError("slow"), lambda: ConnectionResetError("reset")]
)
def test_service_trouble_counts(clock: Callable[[], float], exc: Callable[[], BaseException]) -> None:
    breaker = make(clock, failure_threshold=2)
    fail(breaker, 2, exc)
    assert breaker.state is CircuitState.OPEN


def test_half_open_probe_success_closes(clock: Any) -> None:
    breaker = make(clock, failure_threshold=1, recovery_timeout=10)
    events: list[CircuitEvent] = []
    breaker.add_listener(events.append)
    fail(breaker)
    clock.advance(9.9)
    with pytest.raises(CircuitOpenError):
        breaker.call(ok)
    clock.advance(0.1)
    assert breaker.call(ok) == "ok"
    assert breaker.state is CircuitState.CLOSED
    assert [(e.old_state, e.new_state, e.reason) for e in events] == [
        (CircuitState.CLOSED, CircuitState.OPEN, "failure_threshold"),
        (CircuitState.OPEN, CircuitState.HALF_OPEN, "recovery_timeout"),
        (CircuitState.HALF_OPEN, CircuitState.CLOSED, "probe_succeeded"),
    ]
    assert all(e.name == "iot.CreateThing" for e in events)
    assert events[0].at == 1000.0
    assert events[2].at == pytest.approx(1010.0)


def test_failed_probes_back_off_up_to_the_cap_and_reset_on_close(clock: Any) -> None:
    breaker = make(
        clock, failure_threshold=1, recovery_timeout=10, recovery_backoff=2, max_recovery_timeout=35
    )
    fail(breaker)
    periods = []
    for _ in range(4):
        periods.append(breaker.snapshot().retry_after)
        clock.advance(breaker.snapshot().retry_after)
        fail(breaker)  # the probe fails
        assert breaker.state is CircuitState.OPEN
        with pytest.raises(CircuitOpenError, match="a recovery probe failed"):
            breaker.call(ok)
    assert periods == [10, 20, 35, 35]
    clock.advance(35)
    breaker.call(ok)
    assert breaker.state is CircuitState.CLOSED
    fail(breaker)
    assert breaker.snapshot().retry_after == 10


def test_neutral_probe_frees_the_slot_without_closing(clock: Any) -> None:
    breaker = make(clock, failure_threshold=1, recovery_timeout=5)
    fail(breaker)
    clock.advance(5)
    fail(breaker, 1, lambda: ResourceNotFoundError("missing", service="iot", operation="X"))
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.snapshot().half_open_in_flight == 0
    assert breaker.call(ok) == "ok"
    assert breaker.state is CircuitState.CLOSED


def test_half_open_admits_only_max_calls_probes(clock: Any) -> None:
    breaker = make(clock, failure_threshold=1, recovery_timeout=5, half_open_max_calls=2, success_threshold=3)
    fail(breaker)
    clock.advance(5)
    first, second = breaker.acquire(), breaker.acquire()
    with pytest.raises(CircuitOpenError) as info:
        breaker.acquire()
    assert "half-open" in str(info.value)
    assert info.value.retry_after == pytest.approx(1.0)
    assert info.value.snapshot is not None
    assert info.value.snapshot.half_open_in_flight == 2
    breaker.record_success(first)
    third = breaker.acquire()  # a freed slot admits the next probe
    breaker.record_success(second)
    assert breaker.state is CircuitState.HALF_OPEN
    breaker.record_success(third)
    assert breaker.state is CircuitState.CLOSED


def test_late_answer_from_closed_phase_does_not_decide_a_probe(clock: Any) -> None:
    breaker = make(clock, failure_threshold=1, recovery_timeout=5)
    slow = breaker.acquire()  # admitted while closed, answers much later
    fail(breaker)
    clock.advance(5)
    probe = breaker.acquire()
    breaker.record_success(slow)
    assert breaker.state is CircuitState.HALF_OPEN
    breaker.record_failure(throttled(), slow)
    assert breaker.state is CircuitState.HALF_OPEN
    breaker.record_success(probe)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.snapshot().calls == 4


def test_loop_api_without_permit(clock: Any) -> None:
    breaker = make(clock, failure_threshold=2, recovery_timeout=1)
    for _ in range(2):
        breaker.acquire()
        breaker.record_failure(throttled())
    assert breaker.state is CircuitState.OPEN
    clock.advance(1)
    breaker.acquire()
    breaker.record_success()
    assert breaker.state is CircuitState.CLOSED


def test_failure_rate_mode(clock: Any) -> None:
    breaker = make(clock, failure_threshold=100, failure_rate_threshold=50, window_size=10, minimum_calls=4)
    fail(breaker, 1)
    breaker.call(ok)
    fail(breaker, 1)
    assert breaker.state is CircuitState.CLOSED  # 3 calls < minimum_calls
    assert breaker.snapshot().failure_rate == pytest.approx(200 / 3)
    breaker.call(ok)  # 4 calls, 50 %: opens only on a failure
    assert breaker.state is CircuitState.CLOSED
    for _ in range(6):
        breaker.call(ok)
    # window now: F S F S S S S S S S = 20 %
    assert breaker.snapshot().failure_rate == pytest.approx(20.0)
    assert breaker.snapshot().window_calls == 10
    for _ in range(4):
        fail(breaker)
    # window: S S S S S S F F F F, 40 %
    assert breaker.snapshot().failure_rate == pytest.approx(40.0)
    assert breaker.state is CircuitState.CLOSED
    fail(breaker)
    assert breaker.state is CircuitState.OPEN
    assert breaker.snapshot().consecutive_failures == 5
    with pytest.raises(CircuitOpenError, match="failure rate at or above 50%"):
        breaker.call(ok)


def test_minimum_calls_is_capped_by_the_window(clock: Any) -> None:
    breaker = make(clock, failure_threshold=100, failure_rate_threshold=100, window_size=3, minimum_calls=50)
    fail(breaker, 3)
    assert breaker.state is CircuitState.OPEN


def test_decorator_keeps_metadata_and_arguments(clock: Any) -> None:
    breaker = make(clock)

    @breaker
    def add(a: int, b: int = 2, *, c: int = 0) -> int:
        """Add numbers."""
        return a + b + c

    assert add(1, c=3) == 6
    assert add.__name__ == "add"
    assert add.__doc__ == "Add numbers."
    assert breaker.snapshot().successes == 1


def test_decorator_records_failures_and_refuses(clock: Any) -> None:
    breaker = make(clock, failure_threshold=1)

    @breaker
    def broken() -> None:
        raise unavailable()

    with pytest.raises(ServiceUnavailableError):
        broken()
    with pytest.raises(CircuitOpenError):
        broken()


def test_context_manager(clock: Any) -> None:
    breaker = make(clock, failure_threshold=2)
    with breaker:
        pass
    with pytest.raises(ThrottledError), breaker:
        raise throttled()
    with pytest.raises(ThrottledError), breaker:
        with breaker:  # nested use keeps one permit per level
            pass
        raise throttled()
    assert breaker.state is CircuitState.CLOSED  # the inner success reset the count
    with pytest.raises(ThrottledError), breaker:
        raise throttled()
    assert breaker.state is CircuitState.OPEN
    with pytest.raises(CircuitOpenError), breaker:
        pytest.fail("must not run")
    snap = breaker.snapshot()
    assert (snap.successes, snap.failures, snap.refusals) == (2, 3, 1)


def test_keyboard_interrupt_is_neutral(clock: Any) -> None:
    breaker = make(clock, failure_threshold=1)
    with pytest.raises(KeyboardInterrupt):
        breaker.call(raiser(KeyboardInterrupt()))
    assert breaker.state is CircuitState.CLOSED
    assert breaker.snapshot().ignored == 1


def test_custom_classifier(clock: Any) -> None:
    breaker = CircuitBreaker(
        "x",
        CircuitBreakerSettings(failure_threshold=1),
        clock=clock,
        classify=lambda e: isinstance(e, KeyError),
    )
    fail(breaker, 3, throttled)
    assert breaker.state is CircuitState.CLOSED
    fail(breaker, 1, lambda: KeyError("k"))
    assert breaker.state is CircuitState.OPEN


def test_raising_classifier_is_logged_and_neutral(clock: Any, caplog: pytest.LogCaptureFixture) -> None:
    def bad(exc: BaseException) -> bool:
        raise RuntimeError("classifier bug")

    breaker = CircuitBreaker("x", CircuitBreakerSettings(failure_threshold=1), clock=clock, classify=bad)
    with caplog.at_level(logging.ERROR, logger="thingpress_core.resilience"):
        fail(breaker, 2)
    assert breaker.state is CircuitState.CLOSED
    assert "classifier failed" in caplog.text


def test_raising_listener_is_logged_and_ignored(clock: Any, caplog: pytest.LogCaptureFixture) -> None:
    breaker = make(clock, failure_threshold=1)
    seen: list[CircuitEvent] = []

    def bad(event: CircuitEvent) -> None:
        raise RuntimeError("listener bug")

    breaker.add_listener(bad)
    breaker.add_listener(seen.append)
    with caplog.at_level(logging.ERROR, logger="thingpress_core.resilience"):
        fail(breaker)
    assert breaker.state is CircuitState.OPEN
    assert len(seen) == 1
    assert "listener" in caplog.text
    assert any(r.name == "thingpress_core.resilience" and r.exc_info for r in caplog.records)
    breaker.remove_listener(seen.append)
    breaker.reset()
    assert len(seen) == 1


def test_listener_runs_outside_the_lock(clock: Any) -> None:
    breaker = make(clock, failure_threshold=1)
    snapshots: list[CircuitSnapshot] = []
    breaker.add_listener(lambda event: snapshots.append(breaker.snapshot()))  # would deadlock
    fail(breaker)
    assert snapshots[0].state is CircuitState.OPEN


def test_force_open_disable_reset(clock: Any) -> None:
    breaker = make(clock, failure_threshold=1, recovery_timeout=1)
    events: list[CircuitEvent] = []
    breaker.add_listener(events.append)
    breaker.force_open()
    clock.advance(1000)
    with pytest.raises(CircuitOpenError) as info:
        breaker.call(ok)
    assert info.value.retry_after is None
    assert "forced open" in str(info.value)
    assert breaker.snapshot().forced_open
    breaker.reset()
    assert breaker.call(ok) == "ok"
    assert [e.reason for e in events] == ["forced_open", "reset"]

    breaker.disable()
    assert not breaker.enabled
    fail(breaker, 5)  # passes straight through, unrecorded
    assert breaker.call(ok) == "ok"
    assert breaker.state is CircuitState.CLOSED
    assert breaker.snapshot().enabled is False
    breaker.enable()
    fail(breaker)
    assert breaker.state is CircuitState.OPEN
    breaker.disable()
    assert breaker.call(ok) == "ok"
    breaker.reset()
    assert breaker.enabled
    assert breaker.state is CircuitState.CLOSED


def test_disabled_by_settings(clock: Any) -> None:
    breaker = make(clock, failure_threshold=1, enabled=False)
    fail(breaker, 3)
    assert breaker.state is CircuitState.CLOSED
    permit = breaker.acquire()
    breaker.record_failure(throttled(), permit)
    assert breaker.snapshot().calls == 0


def test_reset_keeps_counters(clock: Any) -> None:
    breaker = make(clock, failure_threshold=1)
    fail(breaker)
    breaker.reset()
    snap = breaker.snapshot()
    assert snap.state is CircuitState.CLOSED
    assert snap.failures == 1
    assert snap.consecutive_failures == 0


def test_snapshot_fields_and_repr(clock: Any) -> None:
    breaker = make(clock, failure_threshold=1, recovery_timeout=7)
    fail(breaker)
    clock.advance(2)
    snap = breaker.snapshot()
    assert snap.opened_at == 1000.0
    assert snap.retry_at == 1007.0
    assert snap.retry_after == pytest.approx(5.0)
    assert snap.open_timeout == 7
    assert snap.at == 1002.0
    assert snap.model_dump(mode="json")["state"] == "open"
    assert "iot.CreateThing" in repr(breaker)
    assert str(CircuitState.HALF_OPEN) == "half_open"
    assert breaker.name == "iot.CreateThing"
    assert breaker.settings.recovery_timeout == 7


def test_disable_and_enable_release_half_open_slots(clock: Any) -> None:
    breaker = make(clock, failure_threshold=1, recovery_timeout=1)
    fail(breaker)
    clock.advance(1)
    stuck = breaker.acquire()  # a probe that will answer after the operator's toggle
    breaker.disable()
    breaker.enable()
    assert breaker.state is CircuitState.HALF_OPEN
    probe = breaker.acquire()  # the slot is free again
    breaker.record_failure(throttled(), stuck)  # stale: decides nothing
    assert breaker.state is CircuitState.HALF_OPEN
    breaker.record_success(probe)
    assert breaker.state is CircuitState.CLOSED


@pytest.mark.parametrize("how", ["operator", "settings"])
def test_disabled_breaker_records_nothing_without_a_permit_either(clock: Any, how: str) -> None:
    breaker = make(clock, failure_threshold=1, enabled=how == "operator")
    if how == "operator":
        breaker.disable()
    breaker.acquire()
    breaker.record_failure(throttled())  # the loop API without a permit
    breaker.record_success()
    snap = breaker.snapshot()
    assert snap.state is CircuitState.CLOSED
    assert (snap.calls, snap.failures, snap.successes) == (0, 0, 0)


def test_probe_of_an_earlier_phase_keeps_its_slot(clock: Any) -> None:
    """Issue 11 item 11, one thread: slots are freed by a probe's own answer, whatever the
    phase by then, and only the current phase's probes decide it."""
    breaker = make(clock, failure_threshold=1, recovery_timeout=5, recovery_backoff=1, half_open_max_calls=2)
    fail(breaker)
    clock.advance(5)
    a, b = breaker.acquire(), breaker.acquire()
    assert (a.probe, b.probe) == (True, True)
    breaker.record_failure(throttled(), b)
    assert breaker.state is CircuitState.OPEN
    assert breaker.snapshot().half_open_in_flight == 1  # A is still out there
    clock.advance(5)
    c = breaker.acquire()
    with pytest.raises(CircuitOpenError, match="probe slot"):
        breaker.acquire()  # A and C hold both slots
    breaker.record_success(a)  # frees A's slot, decides nothing
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.snapshot().half_open_in_flight == 1
    d = breaker.acquire()
    breaker.record_failure(throttled(), a)  # reported twice: no slot left to free, decides nothing
    assert breaker.state is CircuitState.HALF_OPEN
    breaker.record_success(c)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.snapshot().half_open_in_flight == 1  # D is still running after the close
    breaker.record_success(d)
    assert breaker.snapshot().half_open_in_flight == 0


def test_probe_still_running_after_close_counts_in_the_next_half_open(clock: Any) -> None:
    breaker = make(clock, failure_threshold=1, recovery_timeout=5, half_open_max_calls=2)
    fail(breaker)
    clock.advance(5)
    slow, quick = breaker.acquire(), breaker.acquire()
    breaker.record_success(quick)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.snapshot().half_open_in_flight == 1  # slow is still running
    fail(breaker, 1)  # closed-phase calls are not probes: they never hold a slot
    assert breaker.state is CircuitState.OPEN
    clock.advance(5)
    probe = breaker.acquire()
    with pytest.raises(CircuitOpenError):
        breaker.acquire()  # slow and probe hold both slots
    breaker.record_failure(throttled(), slow)  # two phases late: frees its slot, decides nothing
    assert breaker.state is CircuitState.HALF_OPEN
    second = breaker.acquire()
    breaker.record_failure(throttled(), probe)
    assert breaker.state is CircuitState.OPEN
    breaker.record_success(second)
    assert breaker.snapshot().half_open_in_flight == 0


@pytest.mark.parametrize("action", ["reset", "disable_enable", "force_open_reset"])
def test_operator_actions_free_every_probe_slot(clock: Any, action: str) -> None:
    """A permit that is never reported holds its slot until an operator steps in."""
    breaker = make(clock, failure_threshold=1, recovery_timeout=5)
    fail(breaker)
    clock.advance(5)
    lost = breaker.acquire()  # never reported
    with pytest.raises(CircuitOpenError):
        breaker.acquire()
    if action == "reset":
        breaker.reset()
        fail(breaker)
        clock.advance(5)
    elif action == "disable_enable":
        breaker.disable()
        breaker.enable()
    else:
        breaker.force_open()
        assert breaker.snapshot().half_open_in_flight == 0
        breaker.reset()
        fail(breaker)
        clock.advance(5)
    assert breaker.snapshot().half_open_in_flight == 0
    probe = breaker.acquire()
    breaker.record_success(lost)  # late: frees nothing (the operator already did), decides nothing
    assert breaker.snapshot().half_open_in_flight == 1
    assert breaker.state is CircuitState.HALF_OPEN
    breaker.record_success(probe)
    assert breaker.state is CircuitState.CLOSED


def test_guard_reports_the_block(clock: Any) -> None:
    breaker = make(clock, failure_threshold=2)
    with breaker.guard() as permit:
        assert isinstance(permit, CircuitPermit)
        assert not permit.probe
    with pytest.raises(ThrottledError), breaker.guard():
        raise throttled()
    with pytest.raises(KeyError), breaker.guard():
        raise KeyError("x")  # neutral, and it still propagates
    with pytest.raises(ThrottledError), breaker.guard():
        raise throttled()
    assert breaker.state is CircuitState.OPEN
    ran = []
    with pytest.raises(CircuitOpenError), breaker.guard():
        ran.append(1)
    assert ran == []
    snap = breaker.snapshot()
    assert (snap.successes, snap.failures, snap.ignored, snap.refusals) == (1, 2, 1, 1)


def test_guard_probe_frees_its_slot(clock: Any) -> None:
    breaker = make(clock, failure_threshold=1, recovery_timeout=5)
    fail(breaker)
    clock.advance(5)
    with breaker.guard() as permit:
        assert permit.probe
        assert "probe" in repr(permit)
        assert breaker.snapshot().half_open_in_flight == 1
    assert breaker.state is CircuitState.CLOSED
    assert breaker.snapshot().half_open_in_flight == 0


def test_closed_breaker_hands_out_one_shared_permit_per_phase(clock: Any) -> None:
    """No allocation per call while closed; a new phase gets a new permit, so an answer from
    before a trip is recognised as late."""
    breaker = make(clock, failure_threshold=1, recovery_timeout=1)
    first, second = breaker.acquire(), breaker.guard()
    assert first is second
    breaker.record_success(first)
    breaker.record_success(second)
    fail(breaker)
    clock.advance(1)
    breaker.call(ok)
    assert breaker.state is CircuitState.CLOSED
    third = breaker.acquire()
    assert third is not first
    assert third.generation > first.generation


def test_call_refuses_a_coroutine_function(clock: Any) -> None:
    """Without the check the breaker would count a success before the coroutine even ran."""
    breaker = make(clock, failure_threshold=1, recovery_timeout=5)

    async def create() -> str:
        raise unavailable()

    with pytest.raises(TypeError, match=r"call_async") as info:
        breaker.call(create)
    assert "returned a coroutine" in str(info.value)
    snap = breaker.snapshot()
    assert (snap.successes, snap.failures, snap.ignored) == (0, 0, 1)
    fail(breaker)
    clock.advance(5)
    with pytest.raises(TypeError):
        breaker.call(create)  # a probe: its slot is freed, the phase is not decided
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.snapshot().half_open_in_flight == 0


def test_decorator_works_on_methods(clock: Any) -> None:
    breaker = make(clock, failure_threshold=1)

    class Client:
        def __init__(self) -> None:
            self.calls = 0

        @breaker
        def create(self, name: str) -> str:
            self.calls += 1
            if name == "bad":
                raise unavailable()
            return name

    client = Client()
    assert client.create("a") == "a"
    with pytest.raises(ServiceUnavailableError):
        client.create("bad")
    with pytest.raises(CircuitOpenError):
        client.create("a")
    assert client.calls == 2
