"""`ThingpressSettings`: every knob, from keyword arguments or ``THINGPRESS_*`` variables.

Keyword arguments win over the environment; nested fields use ``__`` in variable names
(``THINGPRESS_RESILIENCE__QUOTA_SHARE=0.1``). An invalid value raises
[`ConfigurationError`][thingpress_core.errors.ConfigurationError] naming the variable and the
value; type checkers (mypy with the pydantic plugin, pyright) already flag a misspelt or
mistyped keyword.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from thingpress_core._config import ConfigSettings
from thingpress_core.resilience import ResilienceSettings

if TYPE_CHECKING:
    from botocore.endpoint_provider import RuleSetStandardLibrary

__all__ = ["ENV_PREFIX", "ThingpressSettings", "partition_for"]

ENV_PREFIX = "THINGPRESS_"

# The shape of a region name, checked without botocore: two or more letters, words, a number
# (eu-west-1, us-gov-west-1, us-isob-east-1, eu-isoe-west-1, eusc-de-east-1).
_REGION = re.compile(r"^[a-z]{2,}(-[a-z]+)+-\d+$")
_ACCOUNT = re.compile(r"^\d{12}$")


@functools.lru_cache(maxsize=1)
def _partitions() -> RuleSetStandardLibrary:
    # botocore's own partition data and matcher, loaded on first use only: importing
    # thingpress_core must not import botocore.
    from botocore.endpoint_provider import RuleSetStandardLibrary
    from botocore.loaders import create_loader

    return RuleSetStandardLibrary(create_loader().load_data("partitions"))


@functools.lru_cache(maxsize=64)
def _partition_of(region: str) -> str:
    return str(_partitions().aws_partition(region)["name"])


def partition_for(region: str | None) -> str:
    """The ARN partition of an AWS region, from botocore's partition data.

    ``aws``, ``aws-cn``, ``aws-us-gov``, ``aws-iso``, ``aws-iso-b``, ``aws-iso-e``, ``aws-iso-f``,
    ``aws-eusc``, ...: a region botocore lists, else the first partition whose region pattern
    matches, else ``aws`` (botocore's endpoint rules decide the same way). ``None`` is ``aws``
    without loading botocore.
    """
    if not region:
        return "aws"
    return _partition_of(region)


class ThingpressSettings(ConfigSettings):
    """Configuration for clients, retries, timeouts and resilience.

    Every field has a default; each is also read from ``THINGPRESS_<FIELD>``. Invalid values
    raise [`ConfigurationError`][thingpress_core.errors.ConfigurationError] naming the variable,
    with pydantic's ``ValidationError`` as its ``__cause__``. ``model_validate`` and ``model_validate_json``
    read the environment too, the data given winning over it.
    """

    model_config: ClassVar[SettingsConfigDict] = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        case_sensitive=False,
    )

    region: str | None = Field(
        default=None,
        description=(
            "AWS region, e.g. eu-west-1. None: AWS_REGION, else boto3's own lookup "
            "(AWS_DEFAULT_REGION, the profile)."
        ),
    )
    profile: str | None = Field(default=None, description="Named AWS profile for the boto3 session.")
    endpoint_url: str | None = Field(
        default=None,
        description="Send every call to this endpoint (a moto server, a VPC endpoint).",
    )
    account_id: str | None = Field(
        default=None,
        description="12-digit account id used to build ARNs locally. None: one STS call, cached.",
    )
    connect_timeout: float = Field(default=5.0, gt=0, le=300, description="Seconds to open a connection.")
    read_timeout: float = Field(default=30.0, gt=0, le=900, description="Seconds to wait for an answer.")
    max_pool_connections: int = Field(
        default=32, ge=1, le=1024, description="HTTP connections each client keeps (>= the concurrency)."
    )
    retry_mode: Literal["standard", "adaptive"] = Field(
        default="standard", description="botocore retry mode."
    )
    total_max_attempts: int = Field(
        default=5,
        ge=1,
        le=20,
        description="Attempts per call including the first (botocore's total_max_attempts).",
    )
    resilience: ResilienceSettings = Field(
        default_factory=ResilienceSettings,
        description="Circuit breakers and per-operation rate limits.",
    )

    @field_validator("region")
    @classmethod
    def _check_region(cls, value: str | None) -> str | None:
        if value is not None and not _REGION.match(value):
            raise ValueError("not an AWS region name such as eu-west-1 or us-gov-west-1")
        return value

    @field_validator("account_id")
    @classmethod
    def _check_account(cls, value: str | None) -> str | None:
        if value is not None and not _ACCOUNT.match(value):
            raise ValueError("an AWS account id is 12 digits")
        return value

    @field_validator("endpoint_url")
    @classmethod
    def _check_endpoint(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @property
    def partition(self) -> str:
        """The ARN partition of `region` (``aws``, ``aws-cn``, ``aws-us-gov``, ``aws-iso-b``, ...)."""
        return partition_for(self.region)
