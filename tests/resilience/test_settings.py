"""ResilienceSettings from keyword arguments and from nested environment variables."""

from __future__ import annotations

import math
from typing import Any

import pytest
from pydantic import ValidationError

from thingpress_core.errors import ConfigurationError
from thingpress_core.resilience import DEFAULT_RATE_LIMITS, CircuitBreakerSettings, ResilienceSettings
from thingpress_core.settings import ThingpressSettings


def test_defaults_are_the_aws_iot_quotas() -> None:
    settings = ThingpressSettings().resilience
    assert settings.rate_limits == dict(DEFAULT_RATE_LIMITS)
    assert settings.rate_limits["iot.RegisterCertificateWithoutCA"] == 10
    assert settings.rate_limits["iot.DescribeThing"] == 350
    assert settings.quota_share == 1.0
    assert settings.breakers == {}
    assert settings.breaker_defaults == CircuitBreakerSettings()


def test_nested_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THINGPRESS_RESILIENCE__BREAKER_DEFAULTS__FAILURE_THRESHOLD", "3")
    monkeypatch.setenv("THINGPRESS_RESILIENCE__BREAKER_DEFAULTS__RECOVERY_TIMEOUT", "12.5")
    monkeypatch.setenv("THINGPRESS_RESILIENCE__QUOTA_SHARE", "0.1")
    monkeypatch.setenv("THINGPRESS_RESILIENCE__RATE_LIMITS", '{"iot.CreateThing": 50}')
    monkeypatch.setenv(
        "THINGPRESS_RESILIENCE__BREAKERS", '{"iot.RegisterCertificateWithoutCA": {"failure_threshold": 2}}'
    )
    monkeypatch.setenv("THINGPRESS_RESILIENCE__RATE_DECREASE_FACTOR", "0.5")
    settings = ThingpressSettings().resilience
    assert settings.breaker_defaults.failure_threshold == 3
    assert settings.quota_share == 0.1
    assert settings.rate_decrease_factor == 0.5
    # One operation changed, the other defaults kept.
    assert settings.rate_limits["iot.CreateThing"] == 50
    assert settings.rate_limits["iot.AttachPolicy"] == 15
    assert settings.effective_rate_limits()["iot.CreateThing"] == pytest.approx(5.0)
    # The override merges over the defaults field by field.
    merged = settings.breaker_settings("iot.RegisterCertificateWithoutCA")
    assert merged.failure_threshold == 2
    assert merged.recovery_timeout == 12.5
    other = settings.breaker_settings("iot.CreateThing")
    assert other.failure_threshold == 3
    # Read standalone, the same variables apply.
    assert ResilienceSettings() == settings


def test_keyword_arguments_beat_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THINGPRESS_RESILIENCE__QUOTA_SHARE", "0.1")
    assert ResilienceSettings(quota_share=0.5).quota_share == 0.5
    assert ThingpressSettings(resilience=ResilienceSettings(quota_share=0.25)).resilience.quota_share == 0.25


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("THINGPRESS_RESILIENCE__QUOTA_SHARE", "0"),
        ("THINGPRESS_RESILIENCE__QUOTA_SHARE", "1.5"),
        ("THINGPRESS_RESILIENCE__BREAKER_DEFAULTS__FAILURE_THRESHOLD", "zero"),
        ("THINGPRESS_RESILIENCE__BREAKER_DEFAULTS__HALF_OPEN_MAX_CALLS", "0"),
        ("THINGPRESS_RESILIENCE__RATE_LIMITS", '{"iot.CreateThing": -5}'),
        ("THINGPRESS_RESILIENCE__RATE_LIMITS", '{"not an operation": 5}'),
        ("THINGPRESS_RESILIENCE__BREAKERS", '{"iot.CreateThing": {"failure_threshold": 0}}'),
        ("THINGPRESS_RESILIENCE__RATE_BURST", "0.5"),
    ],
)
def test_invalid_environment_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as info:
        ThingpressSettings()
    assert info.value.variable is not None
    assert info.value.variable.startswith(variable)
    assert variable in str(info.value)
    with pytest.raises(ConfigurationError) as standalone:
        ResilienceSettings()
    assert variable in str(standalone.value)


def test_invalid_override_names_the_nested_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THINGPRESS_RESILIENCE__BREAKERS", '{"iot.CreateThing": {"failure_threshold": 0}}')
    with pytest.raises(ConfigurationError) as info:
        ThingpressSettings()
    assert "FAILURE_THRESHOLD" in str(info.value)


def test_operation_names_are_case_insensitive_for_known_operations() -> None:
    settings = ResilienceSettings(
        rate_limits={"iot.creatething": 7},
        breakers={"IOT.REGISTERCERTIFICATEWITHOUTCA": {"failure_threshold": 9}},
    )
    assert settings.rate_limits["iot.CreateThing"] == 7
    assert "iot.creatething" not in settings.rate_limits
    assert settings.breaker_settings("iot.RegisterCertificateWithoutCA").failure_threshold == 9


def test_new_operations_can_be_limited_and_limits_lifted() -> None:
    settings = ResilienceSettings(rate_limits={"sqs.SendMessageBatch": 300, "iot.DescribeThing": math.inf})
    effective = settings.effective_rate_limits()
    assert effective["sqs.SendMessageBatch"] == 300
    assert "iot.DescribeThing" not in effective
    assert effective["iot.CreateThing"] == 100


def test_override_merge_keeps_unset_fields() -> None:
    defaults = CircuitBreakerSettings(failure_threshold=4, recovery_timeout=60, max_recovery_timeout=100)
    override = CircuitBreakerSettings(recovery_timeout=200)
    merged = defaults.merged(override)
    assert (merged.failure_threshold, merged.recovery_timeout, merged.max_recovery_timeout) == (4, 200, 100)
    assert defaults.merged(None) is defaults
    assert defaults.merged(CircuitBreakerSettings()) is defaults


def test_settings_are_frozen() -> None:
    settings = ResilienceSettings()
    with pytest.raises(ValidationError):
        settings.quota_share = 0.5  # type: ignore[misc]
    assert settings.quota_share == 1.0


def test_circuit_breaker_settings_read_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # The documented rule: only ResilienceSettings (and ThingpressSettings) read the environment.
    monkeypatch.setenv("THINGPRESS_RESILIENCE__BREAKER_DEFAULTS__FAILURE_THRESHOLD", "3")
    monkeypatch.setenv("THINGPRESS_RESILIENCE__BREAKERS", '{"iot.CreateThing": {"recovery_timeout": 90}}')
    assert CircuitBreakerSettings().failure_threshold == 5
    assert CircuitBreakerSettings().model_fields_set == set()
    standalone = ResilienceSettings()
    nested = ThingpressSettings().resilience
    for settings in (standalone, nested):
        assert settings.breaker_defaults.failure_threshold == 3
        # the override holds only what its variable set, so merging keeps the defaults' value
        assert settings.breakers["iot.CreateThing"].model_fields_set == {"recovery_timeout"}
        merged = settings.breaker_settings("iot.CreateThing")
        assert (merged.failure_threshold, merged.recovery_timeout) == (3, 90)


def test_circuit_breaker_settings_errors_name_the_field_and_keep_the_cause() -> None:
    with pytest.raises(ConfigurationError) as info:
        CircuitBreakerSettings(failure_threshold=0)
    assert str(info.value).startswith("invalid configuration in CircuitBreakerSettings: failure_threshold=0:")
    assert info.value.variable == "failure_threshold"
    assert isinstance(info.value.__cause__, ValidationError)
    assert isinstance(info.value, ValueError)
    with pytest.raises(ConfigurationError, match="failure_threshhold=3: Extra inputs are not permitted"):
        CircuitBreakerSettings(failure_threshhold=3)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    "validate",
    [
        lambda: CircuitBreakerSettings.model_validate({"window_size": 0}),
        lambda: CircuitBreakerSettings.model_validate_json('{"window_size": 0}'),
        lambda: CircuitBreakerSettings.model_validate_strings({"window_size": "0"}),
    ],
    ids=["model_validate", "model_validate_json", "model_validate_strings"],
)
def test_circuit_breaker_settings_validate_methods_raise_configuration_errors(validate: Any) -> None:
    with pytest.raises(ConfigurationError, match="CircuitBreakerSettings: window_size=") as info:
        validate()
    assert isinstance(info.value.__cause__, ValidationError)


@pytest.mark.parametrize(
    "validate",
    [
        lambda: ResilienceSettings.model_validate({"breaker_defaults": {"window_size": 0}}),
        lambda: ResilienceSettings.model_validate_json('{"breaker_defaults": {"window_size": 0}}'),
        lambda: ResilienceSettings(breaker_defaults={"window_size": 0}),
        lambda: ThingpressSettings.model_validate({"resilience": {"breaker_defaults": {"window_size": 0}}}),
    ],
    ids=["model_validate", "model_validate_json", "constructor", "nested twice"],
)
def test_nested_breaker_errors_name_the_full_variable(validate: Any) -> None:
    with pytest.raises(ConfigurationError) as info:
        validate()
    assert info.value.variable == "THINGPRESS_RESILIENCE__BREAKER_DEFAULTS__WINDOW_SIZE"
    assert isinstance(info.value.__cause__, ValidationError)


def test_model_validate_reads_the_environment_as_the_constructor_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("THINGPRESS_RESILIENCE__QUOTA_SHARE", "0.2")
    monkeypatch.setenv("THINGPRESS_RESILIENCE__RATE_BURST", "4")
    for settings in (
        ResilienceSettings.model_validate({"rate_burst": 2}),
        ResilienceSettings.model_validate_json('{"rate_burst": 2}'),
        ResilienceSettings(rate_burst=2),
    ):
        assert (settings.quota_share, settings.rate_burst) == (0.2, 2)  # the data given wins


def test_a_dictionary_variable_that_is_not_json_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THINGPRESS_RESILIENCE__RATE_LIMITS", "iot.CreateThing=5")
    with pytest.raises(ConfigurationError, match="cannot parse THINGPRESS_RESILIENCE__RATE_LIMITS") as info:
        ResilienceSettings()
    assert info.value.variable == "THINGPRESS_RESILIENCE__RATE_LIMITS"
    assert info.value.__cause__ is not None
    # through the parent, pydantic-settings only knows the top field
    with pytest.raises(ConfigurationError, match="THINGPRESS_RESILIENCE__\\* variable") as nested:
        ThingpressSettings()
    assert nested.value.variable == "THINGPRESS_RESILIENCE"
