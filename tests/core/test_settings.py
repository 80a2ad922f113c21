from __future__ import annotations

import pathlib
import subprocess
import sys
from typing import Any

import pytest
from pydantic import ValidationError

from thingpress_core.errors import ConfigurationError
from thingpress_core.settings import ThingpressSettings, partition_for


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
        ("THINGPRESS_REGION", "eusc-de"),
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
    with pytest.raises(ConfigurationError, match="THINGPRESS_READ_TIMEOUT") as info:
        ThingpressSettings(read_timeout=0)
    # pydantic's own report stays reachable: the cause is kept, not suppressed
    assert isinstance(info.value.__cause__, ValidationError)
    assert info.value.__suppress_context__
    assert info.value.__cause__.errors()[0]["loc"] == ("read_timeout",)


def test_unknown_keyword_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="THINGPRESS_REGOIN"):
        ThingpressSettings(regoin="eu-west-1")  # type: ignore[call-arg]


@pytest.mark.parametrize(
    "validate",
    [
        lambda: ThingpressSettings.model_validate({"retry_mode": "legacy"}),
        lambda: ThingpressSettings.model_validate_json('{"retry_mode": "legacy"}'),
        lambda: ThingpressSettings.model_validate_strings({"retry_mode": "legacy"}),
    ],
    ids=["model_validate", "model_validate_json", "model_validate_strings"],
)
def test_validate_methods_raise_configuration_errors(validate: Any) -> None:
    with pytest.raises(ConfigurationError) as info:
        validate()
    assert info.value.variable == "THINGPRESS_RETRY_MODE"
    assert info.value.value == "legacy"
    assert isinstance(info.value.__cause__, ValidationError)


def test_input_that_is_not_a_mapping_names_the_class() -> None:
    with pytest.raises(
        ConfigurationError, match="ThingpressSettings='eu-west-1': Input should be a valid dict"
    ):
        ThingpressSettings.model_validate("eu-west-1")


def test_model_validate_reads_the_environment_under_the_data(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THINGPRESS_REGION", "eu-west-1")
    monkeypatch.setenv("THINGPRESS_READ_TIMEOUT", "12")
    loaded = ThingpressSettings.model_validate_json('{"region": "ap-southeast-2"}')
    assert (loaded.region, loaded.read_timeout) == ("ap-southeast-2", 12.0)


def test_invalid_environment_value_through_model_validate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THINGPRESS_RESILIENCE__QUOTA_SHARE", "2")
    with pytest.raises(ConfigurationError) as info:
        ThingpressSettings.model_validate({})
    assert info.value.variable == "THINGPRESS_RESILIENCE__QUOTA_SHARE"
    assert info.value.value == "2"


def test_pydantic_settings_private_keywords_still_work(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    env_file = tmp_path / "thingpress.env"
    env_file.write_text("THINGPRESS_REGION=ap-south-1\nTHINGPRESS_RESILIENCE__QUOTA_SHARE=0.2\n")
    from_file = ThingpressSettings(_env_file=env_file)  # type: ignore[call-arg]
    assert (from_file.region, from_file.resilience.quota_share) == ("ap-south-1", 0.2)
    # Another prefix: the nested settings come from the parent's variables only; the
    # THINGPRESS_RESILIENCE__ variable is not read a second time by the nested class.
    monkeypatch.setenv("OTHER_REGION", "eu-north-1")
    monkeypatch.setenv("THINGPRESS_RESILIENCE__RATE_BURST", "3")
    other = ThingpressSettings(_env_prefix="OTHER_")  # type: ignore[call-arg]
    assert (other.region, other.resilience.rate_burst) == ("eu-north-1", 1.0)
    assert ThingpressSettings().resilience.rate_burst == 3.0


# Every partition botocore knows, and a region of each (the iso ones included).
_PARTITIONS = [
    ("eu-west-1", "aws"),
    ("us-east-1", "aws"),
    ("cn-north-1", "aws-cn"),
    ("cn-northwest-1", "aws-cn"),
    ("us-gov-west-1", "aws-us-gov"),
    ("us-iso-east-1", "aws-iso"),
    ("us-isob-east-1", "aws-iso-b"),
    ("eu-isoe-west-1", "aws-iso-e"),
    ("us-isof-south-1", "aws-iso-f"),
    ("eusc-de-east-1", "aws-eusc"),
]


def _botocore_partitions() -> set[str]:
    from botocore.loaders import create_loader

    return {p["id"] for p in create_loader().load_data("partitions")["partitions"]}


@pytest.mark.parametrize(("region", "partition"), _PARTITIONS)
def test_partition_follows_region(region: str, partition: str) -> None:
    if partition not in _botocore_partitions():  # the partitions come from botocore's own data
        pytest.skip(f"this botocore does not know partition {partition} yet")
    assert ThingpressSettings(region=region).partition == partition
    assert partition_for(region) == partition


def test_partition_of_a_region_botocore_does_not_list_yet() -> None:
    # a new region of a known partition matches that partition's pattern; anything else is aws
    assert partition_for("us-isob-west-9") == "aws-iso-b"
    assert partition_for("cn-south-7") == "aws-cn"
    assert partition_for("xx-nowhere-1") == "aws"
    assert partition_for(None) == "aws"
    assert partition_for("") == "aws"


def test_every_region_botocore_lists_is_accepted() -> None:
    from botocore.loaders import create_loader

    data = create_loader().load_data("partitions")
    regions = [
        (region, partition["id"])
        for partition in data["partitions"]
        for region in partition["regions"]
        if not region.endswith("-global")  # aws-global and friends name endpoints, not regions
    ]
    assert len(regions) > 30
    for region, partition in regions:
        assert ThingpressSettings(region=region).partition == partition, region


def test_partition_data_loads_only_when_asked() -> None:
    code = (
        "import sys\n"
        "from thingpress_core import ThingpressSettings\n"
        "from thingpress_core.settings import partition_for\n"
        "s = ThingpressSettings(region='us-isob-east-1')\n"
        "print('botocore' in sys.modules, partition_for(None), 'botocore' in sys.modules)\n"
        "print(s.partition, 'botocore' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "aws", "False", "aws-iso-b", "True"]


def test_settings_are_frozen() -> None:
    s = ThingpressSettings()
    with pytest.raises(Exception, match="frozen"):
        s.region = "eu-west-1"  # type: ignore[misc]
