from __future__ import annotations

import pytest

from thingpress_core.errors import ConfigurationError
from thingpress_core.settings import ThingpressSettings


def test_defaults_are_documented_values() -> None:
    s = ThingpressSettings()
    assert s.region is None
    assert s.retry_mode == "standard"
    assert s.total_max_attempts == 5
    assert s.max_pool_connections == 32
    assert s.partition == "aws"


def test_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THINGPRESS_REGION", "eu-west-1")
    monkeypatch.setenv("THINGPRESS_RETRY_MODE", "adaptive")
    monkeypatch.setenv("THINGPRESS_TOTAL_MAX_ATTEMPTS", "7")
    monkeypatch.setenv("THINGPRESS_ENDPOINT_URL", "http://127.0.0.1:5000")
    s = ThingpressSettings()
    assert (s.region, s.retry_mode, s.total_max_attempts) == ("eu-west-1", "adaptive", 7)
    assert s.endpoint_url == "http://127.0.0.1:5000"


def test_keyword_arguments_beat_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THINGPRESS_REGION", "eu-west-1")
    monkeypatch.setenv("THINGPRESS_READ_TIMEOUT", "12")
    s = ThingpressSettings(region="ap-southeast-2")
    assert s.region == "ap-southeast-2"
    assert s.read_timeout == 12.0  # the environment still fills what the keywords leave out


def test_nested_resilience_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THINGPRESS_RESILIENCE__QUOTA_SHARE", "0.25")
    assert ThingpressSettings().resilience.quota_share == 0.25


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("THINGPRESS_TOTAL_MAX_ATTEMPTS", "abc"),
        ("THINGPRESS_TOTAL_MAX_ATTEMPTS", "0"),
        ("THINGPRESS_RETRY_MODE", "legacy"),
        ("THINGPRESS_REGION", "Europe"),
        ("THINGPRESS_ACCOUNT_ID", "12345"),
        ("THINGPRESS_CONNECT_TIMEOUT", "-1"),
        ("THINGPRESS_ENDPOINT_URL", "localhost:5000"),
        ("THINGPRESS_MAX_POOL_CONNECTIONS", "0"),
        ("THINGPRESS_RESILIENCE__QUOTA_SHARE", "1.5"),
    ],
)
def test_invalid_environment_value_names_variable_and_value(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as info:
        ThingpressSettings()
    assert variable in str(info.value)
    assert repr(value) in str(info.value)
    assert info.value.variable == variable
    assert info.value.value == value
    assert isinstance(info.value, ValueError)


def test_invalid_keyword_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="THINGPRESS_READ_TIMEOUT"):
        ThingpressSettings(read_timeout=0)


def test_unknown_keyword_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="THINGPRESS_REGOIN"):
        ThingpressSettings(regoin="eu-west-1")  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("region", "partition"),
    [("eu-west-1", "aws"), ("cn-north-1", "aws-cn"), ("us-gov-west-1", "aws-us-gov")],
)
def test_partition_follows_region(region: str, partition: str) -> None:
    assert ThingpressSettings(region=region).partition == partition


def test_settings_are_frozen() -> None:
    s = ThingpressSettings()
    with pytest.raises(Exception, match="frozen"):
        s.region = "eu-west-1"  # type: ignore[misc]
