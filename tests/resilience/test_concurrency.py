"""`plan_concurrency`: Little's law over the binding quota, capped, never below one worker."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from thingpress_core.errors import ConfigurationError
from thingpress_core.resilience._concurrency import ConcurrencyPlan, plan_concurrency

CERTIFICATE_MODE = {
    "iot.RegisterCertificateWithoutCA": 1.0,
    "iot.CreateThing": 1.0,
    "iot.AttachThingPrincipal": 1.0,
    "iot.AttachPolicy": 1.0,
    "iot.AddThingToThingGroup": 1.0,
}
DEFAULTS = {
    "iot.RegisterCertificateWithoutCA": 10.0,
    "iot.CreateThing": 100.0,
    "iot.AttachThingPrincipal": 100.0,
    "iot.AttachPolicy": 15.0,
    "iot.AddThingToThingGroup": 100.0,
}

operations = st.sampled_from([f"iot.Op{i}" for i in range(6)])
calls_maps = st.dictionaries(operations, st.integers(min_value=1, max_value=4).map(float), min_size=1)
rates = st.floats(min_value=0.1, max_value=5000.0, allow_nan=False)
latencies = st.floats(min_value=0.0, max_value=2.0, allow_nan=False)
caps = st.integers(min_value=1, max_value=256)


@st.composite
def workloads(draw: st.DrawFn) -> tuple[dict[str, float], dict[str, float]]:
    calls = draw(calls_maps)
    limits = {op: draw(rates) for op in calls if draw(st.booleans()) or len(calls) == 1}
    return calls, limits


def test_default_quotas_bind_on_registration_and_size_by_littles_law() -> None:
    plan = plan_concurrency(CERTIFICATE_MODE, DEFAULTS, latency=0.1)
    assert plan.binding_operation == "iot.RegisterCertificateWithoutCA"
    assert plan.quota_certificates_per_second == 10.0
    # 10 certs/s x 5 calls x 0.1 s = 5 calls in flight, x 1.5 headroom = 7.5 -> 8
    assert plan.workers == 8
    assert plan.expected_certificates_per_second == 10.0
    assert not plan.limited_by_cap
    assert plan.expected_seconds(1000) == pytest.approx(100.0)


def test_raised_registration_quota_moves_the_binding_to_attach_policy() -> None:
    raised = {**DEFAULTS, "iot.RegisterCertificateWithoutCA": 100.0}
    plan = plan_concurrency(CERTIFICATE_MODE, raised, latency=0.1)
    assert plan.binding_operation == "iot.AttachPolicy"
    assert plan.quota_certificates_per_second == 15.0
    without_policy = {op: n for op, n in CERTIFICATE_MODE.items() if op != "iot.AttachPolicy"}
    group_mode = plan_concurrency(without_policy, raised, latency=0.1)
    assert group_mode.quota_certificates_per_second == 100.0
    assert group_mode.workers > plan.workers


def test_the_cap_lowers_the_expected_rate_and_says_so() -> None:
    plan = plan_concurrency(CERTIFICATE_MODE, dict.fromkeys(DEFAULTS, 1000.0), latency=0.2, cap=10)
    assert plan.workers == 10
    assert plan.limited_by_cap
    # 10 workers, each a certificate per 5 x 0.2 s
    assert plan.expected_certificates_per_second == pytest.approx(10.0)
    assert "capped at 10" in plan.summary()


def test_nothing_limited_runs_at_the_cap_and_names_no_binding() -> None:
    plan = plan_concurrency(CERTIFICATE_MODE, {}, latency=0.05, cap=32)
    assert plan.binding_operation is None
    assert plan.workers == 32
    assert math.isinf(plan.quota_certificates_per_second)
    assert "no rate limit" in plan.summary()


@pytest.mark.parametrize(
    ("kwargs", "variable"),
    [
        ({"latency": -0.1}, "latency"),
        ({"latency": math.inf}, "latency"),
        ({"latency": 0.1, "headroom": 0.5}, "headroom"),
        ({"latency": 0.1, "cap": 0}, "cap"),
    ],
)
def test_bad_parameters_are_named(kwargs: dict[str, float], variable: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        plan_concurrency(CERTIFICATE_MODE, DEFAULTS, **kwargs)  # type: ignore[arg-type]  # floats for cap on purpose
    assert caught.value.variable == variable


def test_a_non_positive_rate_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="rate_limits"):
        plan_concurrency(CERTIFICATE_MODE, {**DEFAULTS, "iot.CreateThing": 0.0}, latency=0.1)


def test_expected_seconds_refuses_a_negative_count() -> None:
    plan = plan_concurrency(CERTIFICATE_MODE, DEFAULTS, latency=0.1)
    assert plan.expected_seconds(0) == 0.0
    with pytest.raises(ConfigurationError):
        plan.expected_seconds(-1)


@given(workloads(), latencies, caps)
def test_workers_stay_between_one_and_the_cap(
    workload: tuple[dict[str, float], dict[str, float]], latency: float, cap: int
) -> None:
    calls, limits = workload
    plan = plan_concurrency(calls, limits, latency=latency, cap=cap)
    assert 1 <= plan.workers <= cap


@given(workloads(), latencies)
def test_the_binding_operation_has_the_smallest_rate_per_call(
    workload: tuple[dict[str, float], dict[str, float]], latency: float
) -> None:
    calls, limits = workload
    plan = plan_concurrency(calls, limits, latency=latency)
    paces = {op: limits[op] / n for op, n in calls.items() if op in limits}
    if not paces:
        assert plan.binding_operation is None
        return
    assert plan.binding_operation is not None
    assert paces[plan.binding_operation] == min(paces.values())
    assert plan.quota_certificates_per_second == min(paces.values())
    assert plan.expected_certificates_per_second <= plan.quota_certificates_per_second


@given(workloads(), latencies, st.floats(min_value=1.0, max_value=50.0), operations)
def test_more_rate_never_means_fewer_workers(
    workload: tuple[dict[str, float], dict[str, float]], latency: float, factor: float, raised: str
) -> None:
    calls, limits = workload
    before = plan_concurrency(calls, limits, latency=latency)
    higher = dict(limits)
    if raised in higher:
        higher[raised] *= factor
    after = plan_concurrency(calls, higher, latency=latency)
    assert after.workers >= before.workers
    assert after.quota_certificates_per_second >= before.quota_certificates_per_second


@given(workloads(), latencies, st.floats(min_value=0.0, max_value=2.0))
def test_more_latency_never_means_fewer_workers(
    workload: tuple[dict[str, float], dict[str, float]], latency: float, extra: float
) -> None:
    calls, limits = workload
    before = plan_concurrency(calls, limits, latency=latency)
    after = plan_concurrency(calls, limits, latency=latency + extra)
    assert after.workers >= before.workers


@given(workloads(), st.floats(min_value=0.001, max_value=2.0))
def test_uncapped_workers_hold_the_quota(
    workload: tuple[dict[str, float], dict[str, float]], latency: float
) -> None:
    calls, limits = workload
    plan: ConcurrencyPlan = plan_concurrency(calls, limits, latency=latency, cap=10**9)
    if plan.binding_operation is None:
        return
    in_flight = plan.quota_certificates_per_second * plan.calls_per_certificate * latency
    assert plan.workers >= in_flight
    assert not plan.limited_by_cap
    assert plan.expected_certificates_per_second == plan.quota_certificates_per_second


def test_on_a_tie_the_registration_binds() -> None:
    calls = dict.fromkeys(
        (
            "iot.AddThingToThingGroup",
            "iot.AttachThingPrincipal",
            "iot.CreateThing",
            "iot.RegisterCertificateWithoutCA",
        ),
        1.0,
    )
    plan = plan_concurrency(calls, dict.fromkeys(calls, 100.0), latency=0.02)
    assert plan.binding_operation == "iot.RegisterCertificateWithoutCA"
    assert plan.quota_certificates_per_second == 100.0
