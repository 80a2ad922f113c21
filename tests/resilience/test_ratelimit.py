"""RateLimiter on fake time: pacing, timeouts, the one-second window, AIMD."""

from __future__ import annotations

import math
import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thingpress_core.errors import ConfigurationError, RateLimitTimeoutError
from thingpress_core.resilience import RateLimiter, ResilienceSettings


def limiter(clock: Any, rates: dict[str, float], **kwargs: Any) -> RateLimiter:
    return RateLimiter(rates, clock=clock, sleep=clock.sleep, **kwargs)


@pytest.mark.parametrize(("rate", "count"), [(10.0, 100), (1.0, 7), (350.0, 1000), (0.5, 5)])
def test_n_acquisitions_take_the_time_the_rate_says(clock: Any, rate: float, count: int) -> None:
    rl = limiter(clock, {"iot.CreateThing": rate})
    start = clock()
    waited = sum(rl.acquire("iot.CreateThing") for _ in range(count))
    # The first call uses the idle bucket's one token; the rest arrive 1/rate apart.
    assert clock() - start == pytest.approx((count - 1) / rate)
    assert waited == pytest.approx((count - 1) / rate)


def test_burst_lets_an_idle_bucket_answer_at_once(clock: Any) -> None:
    rl = limiter(clock, {"op.A": 10.0}, burst=5)
    for _ in range(5):
        assert rl.acquire("op.A") == 0.0
    assert rl.acquire("op.A") == pytest.approx(0.1)
    clock.advance(100)  # a long idle period refills to the burst, not beyond
    for _ in range(5):
        assert rl.acquire("op.A") == 0.0
    assert rl.acquire("op.A") > 0


def test_operations_without_a_rate_are_not_limited(clock: Any) -> None:
    rl = limiter(clock, {"iot.CreateThing": 1.0})
    for _ in range(1000):
        assert rl.acquire("s3.GetObject") == 0.0
    assert clock.sleeps == []
    assert rl.rate("s3.GetObject") is None
    rl.record_throttle("s3.GetObject")
    rl.record_success("s3.GetObject")
    assert rl.rate("s3.GetObject") is None


def test_never_sleeps_holding_the_lock(clock: Any) -> None:
    rl: RateLimiter

    def sleep(seconds: float) -> None:
        assert not rl._lock.locked()
        clock.sleep(seconds)

    rl = RateLimiter({"op.A": 5.0}, clock=clock, sleep=sleep)
    for _ in range(10):
        rl.acquire("op.A")
    assert len(clock.sleeps) == 9
    assert all(s > 0 for s in clock.sleeps)


def test_timeout_raises_without_taking_a_token(clock: Any) -> None:
    rl = limiter(clock, {"op.A": 2.0})
    rl.acquire("op.A")
    with pytest.raises(RateLimitTimeoutError) as info:
        rl.acquire("op.A", timeout=0.1)
    assert info.value.name == "op.A"
    assert info.value.timeout == 0.1
    assert "op.A" in str(info.value)
    assert isinstance(info.value, TimeoutError)
    with pytest.raises(RateLimitTimeoutError):
        rl.acquire("op.A", timeout=0)
    # The refused callers reserved nothing: the next one waits only 1/rate.
    assert rl.acquire("op.A", timeout=0.5) == pytest.approx(0.5)


def test_concurrent_waiters_never_exceed_rate_plus_burst_in_any_second() -> None:
    rate, burst, threads, per_thread = 20.0, 3.0, 8, 40
    lock = threading.Lock()
    now = [0.0]
    local = threading.local()

    def clock() -> float:
        with lock:
            now[0] += 0.0007  # time moves a little with every reading
            local.last = now[0]
            return now[0]

    rl = RateLimiter({"op.A": rate}, clock=clock, sleep=lambda s: None, burst=burst)
    admitted: list[float] = []
    start = threading.Barrier(threads)

    def worker() -> None:
        start.wait(timeout=30)
        for _ in range(per_thread):
            waited = rl.acquire("op.A")
            with lock:
                admitted.append(local.last + waited)  # when the token was due

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=30)
    admitted.sort()
    assert len(admitted) == threads * per_thread
    j = 0
    for i, t in enumerate(admitted):
        while j < len(admitted) and admitted[j] < t + 1.0:
            j += 1
        assert j - i <= rate + burst, f"{j - i} calls in the second from {t}"
    # And no capacity is wasted: the last token is due when the rate says.
    span = admitted[-1] - admitted[0]
    assert span == pytest.approx((len(admitted) - burst) / rate, rel=0.05)


def test_throttle_decreases_multiplicatively_with_cooldown_and_floor(clock: Any) -> None:
    rl = limiter(clock, {"op.A": 100.0}, decrease_factor=0.5, floor=0.1, decrease_cooldown=1.0)
    rl.record_throttle("op.A")
    assert rl.rate("op.A") == pytest.approx(50.0)
    rl.record_throttle("op.A")  # same overload, seen by another thread
    assert rl.rate("op.A") == pytest.approx(50.0)
    for expected in (25.0, 12.5, 10.0, 10.0):
        clock.advance(1.0)
        rl.record_throttle("op.A")
        assert rl.rate("op.A") == pytest.approx(expected)
    assert rl.configured_rate("op.A") == 100.0


def test_default_decrease_is_seventy_percent(clock: Any) -> None:
    rl = limiter(clock, {"op.A": 10.0}, decrease_cooldown=0)
    rl.record_throttle("op.A")
    rl.record_throttle("op.A")
    assert rl.rate("op.A") == pytest.approx(10 * 0.7 * 0.7)


def test_success_recovers_additively_to_the_configured_rate(clock: Any) -> None:
    rl = limiter(clock, {"op.A": 10.0})  # increase 5 % of configured per second
    rl.record_throttle("op.A")
    assert rl.rate("op.A") == pytest.approx(7.0)
    start = clock()
    previous = 7.0
    while rl.rate("op.A") != 10.0:
        rl.acquire("op.A")
        rl.record_success("op.A")
        current = rl.rate("op.A")
        assert current is not None
        assert previous < current <= 10.0
        previous = current
    # 3 rps to regain at 0.5 rps per second of successes: about 6 seconds.
    assert clock() - start == pytest.approx(6.0, abs=1.0)
    rl.record_success("op.A")
    assert rl.rate("op.A") == 10.0


def test_settles_just_under_a_real_quota_lower_than_configured(clock: Any) -> None:
    """Told 20 rps where AWS allows 10, the limiter converges just under 10."""
    real_quota = 10.0
    rl = limiter(clock, {"op.A": 20.0})
    server_tokens, server_last = 1.0, clock()
    admitted: list[float] = []
    throttled: list[float] = []
    while clock() < 1000.0 + 120.0:
        rl.acquire("op.A")
        now = clock()
        server_tokens = min(1.0, server_tokens + (now - server_last) * real_quota)
        server_last = now
        if server_tokens >= 1.0:
            server_tokens -= 1.0
            admitted.append(now)
            rl.record_success("op.A")
        else:
            throttled.append(now)
            rl.record_throttle("op.A")
    late = [t for t in admitted if t >= 1060.0]
    late_rate = len(late) / 60.0
    assert 0.75 * real_quota <= late_rate <= real_quota
    assert len([t for t in throttled if t >= 1060.0]) / 60.0 < 1.0  # under one throttle a second


def test_reset_restores_the_configured_rate(clock: Any) -> None:
    rl = limiter(clock, {"op.A": 10.0, "op.B": 4.0})
    rl.record_throttle("op.A")
    rl.record_throttle("op.B")
    rl.reset("op.A")
    assert rl.rates() == {"op.A": 10.0, "op.B": pytest.approx(2.8)}
    rl.reset()
    assert rl.rates() == {"op.A": 10.0, "op.B": 4.0}


def test_built_from_settings_uses_the_quota_share(clock: Any) -> None:
    settings = ResilienceSettings(
        quota_share=0.1, rate_limits={"iot.DescribeThing": math.inf}, rate_burst=2.0, rate_decrease_factor=0.5
    )
    rl = RateLimiter(settings, clock=clock, sleep=clock.sleep)
    assert rl.rate("iot.RegisterCertificateWithoutCA") == pytest.approx(1.0)
    assert rl.rate("iot.CreateThing") == pytest.approx(10.0)
    assert rl.rate("iot.DescribeThing") is None
    assert rl.burst == 2.0
    rl.record_throttle("iot.CreateThing")
    assert rl.rate("iot.CreateThing") == pytest.approx(5.0)


@pytest.mark.parametrize(
    ("rates", "kwargs"),
    [
        ({"op.A": 0.0}, {}),
        ({"op.A": -1.0}, {}),
        ({"op.A": math.nan}, {}),
        ({"op.A": 1.0}, {"burst": 0.5}),
        ({"op.A": 1.0}, {"decrease_factor": 1.0}),
        ({"op.A": 1.0}, {"floor": 0.0}),
        ({"op.A": 1.0}, {"decrease_cooldown": -1.0}),
        ({"op.A": 1.0}, {"increase": math.inf}),
    ],
)
def test_invalid_parameters(clock: Any, rates: dict[str, float], kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match="RateLimiter"):
        limiter(clock, rates, **kwargs)


def test_infinite_rate_means_unlimited(clock: Any) -> None:
    rl = limiter(clock, {"op.A": math.inf})
    assert rl.rate("op.A") is None
    assert rl.acquire("op.A") == 0.0


@settings(max_examples=60, deadline=None)
@given(
    rate=st.sampled_from([0.5, 1.0, 3.0, 10.0, 100.0]),
    burst=st.sampled_from([1.0, 2.0, 5.0]),
    steps=st.lists(
        st.tuples(
            st.sampled_from([0.0, 0.01, 0.3, 1.0, 5.0]), st.sampled_from(["acquire", "throttle", "ok"])
        ),
        min_size=1,
        max_size=120,
    ),
)
def test_any_sequence_respects_the_window(rate: float, burst: float, steps: list[tuple[float, str]]) -> None:
    """Whatever the pattern of arrivals, throttles and successes, no second admits more than
    the configured rate plus the burst, and the rate stays within [floor, configured]."""
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    rl = RateLimiter({"op.A": rate}, clock=lambda: now[0], sleep=sleep, burst=burst)
    admitted: list[float] = []
    for gap, action in steps:
        now[0] += gap
        if action == "acquire":
            rl.acquire("op.A")
            admitted.append(now[0])
        elif action == "throttle":
            rl.record_throttle("op.A")
        else:
            rl.record_success("op.A")
        current = rl.rate("op.A")
        assert current is not None
        assert rate * 0.05 - 1e-9 <= current <= rate
    j = 0
    for i, t in enumerate(admitted):
        while j < len(admitted) and admitted[j] < t + 1.0 - 1e-9:
            j += 1
        assert j - i <= rate + burst


def test_a_plain_mapping_ignores_the_environment(monkeypatch: pytest.MonkeyPatch, clock: Any) -> None:
    monkeypatch.setenv("THINGPRESS_RESILIENCE__RATE_BURST", "5")
    monkeypatch.setenv("THINGPRESS_RESILIENCE__QUOTA_SHARE", "not a number")
    rl = limiter(clock, {"op.A": 10.0})  # neither value is read, so neither can break it
    assert rl.burst == 1.0
    rl.record_throttle("op.A")
    assert rl.rate("op.A") == pytest.approx(7.0)
