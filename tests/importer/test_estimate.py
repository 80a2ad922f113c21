"""`estimate_import`: calls by operation, once-per-run calls, the binding quota and the time."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from thingpress_core.errors import ConfigurationError
from thingpress_core.importer import ImportOptions, estimate_import
from thingpress_core.resilience import DEFAULT_RATE_LIMITS

CERTIFICATE_MODE = ImportOptions(policies=("P",), thing_groups=("G",), thing_type="T")
GROUP_MODE = CERTIFICATE_MODE.model_copy(update={"policy_target": "thing_group", "exclusive": True})
RAISED = {**DEFAULT_RATE_LIMITS, "iot.RegisterCertificateWithoutCA": 100.0}


def test_certificate_mode_at_the_default_quotas() -> None:
    estimate = estimate_import(CERTIFICATE_MODE, 1000, DEFAULT_RATE_LIMITS)
    assert estimate.calls == {
        "iot.AddThingToThingGroup": 1000,
        "iot.AttachPolicy": 1000,
        "iot.AttachThingPrincipal": 1000,
        "iot.CreateThing": 1000,
        "iot.DescribeThingGroup": 1,
        "iot.DescribeThingType": 1,
        "iot.GetPolicy": 1,
        "iot.RegisterCertificateWithoutCA": 1000,
    }
    assert estimate.plan.binding_operation == "iot.RegisterCertificateWithoutCA"
    assert estimate.seconds == pytest.approx(100.0)  # 10 certificates a second
    assert any("binds at 10.0 certificates/s" in line for line in estimate.lines())


def test_raised_registration_makes_attach_policy_bind_and_group_mode_lifts_it() -> None:
    certificate = estimate_import(CERTIFICATE_MODE, 9000, RAISED)
    group = estimate_import(GROUP_MODE, 9000, RAISED)
    assert certificate.plan.binding_operation == "iot.AttachPolicy"
    assert certificate.seconds == pytest.approx(600.0)  # 15 a second
    assert group.plan.quota_certificates_per_second == pytest.approx(100.0)
    assert group.seconds == pytest.approx(90.0)
    assert group.calls["iot.AttachPolicy"] == 1  # once, to the group
    assert group.setup_calls["iot.AttachPolicy"] == 1
    assert group.plan.calls_per_certificate == 4.0


def test_a_fixed_worker_count_caps_the_rate() -> None:
    estimate = estimate_import(CERTIFICATE_MODE, 100, RAISED, latency=0.1, workers=1)
    assert estimate.plan.workers == 1
    assert estimate.plan.limited_by_cap
    # one worker, 5 calls of 0.1 s each: 2 certificates a second
    assert estimate.seconds == pytest.approx(50.0)


def test_bad_inputs_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="latency"):
        estimate_import(CERTIFICATE_MODE, 10, RAISED, latency=-1.0)
    with pytest.raises(ConfigurationError):
        estimate_import(CERTIFICATE_MODE, -1, RAISED)


@given(
    count=st.integers(min_value=0, max_value=10**7),
    register=st.floats(min_value=1.0, max_value=10_000.0),
    policy=st.floats(min_value=1.0, max_value=10_000.0),
)
def test_the_calls_and_the_time_follow_the_binding_rate(count: int, register: float, policy: float) -> None:
    limits = {**DEFAULT_RATE_LIMITS, "iot.RegisterCertificateWithoutCA": register, "iot.AttachPolicy": policy}
    estimate = estimate_import(CERTIFICATE_MODE, count, limits, latency=0.0)
    per_certificate = estimate.total_calls - sum(estimate.setup_calls.values())
    assert per_certificate == 5 * count
    binding = min(register, policy, 100.0)
    assert math.isclose(estimate.seconds, count / binding, rel_tol=1e-9)
