"""`ThingpressSettings`: every knob, from keyword arguments or ``THINGPRESS_*`` variables.

Keyword arguments win over the environment; nested fields use ``__`` in variable names
(``THINGPRESS_RESILIENCE__QUOTA_SHARE=0.1``). An invalid value raises
`~thingpress_core.errors.ConfigurationError` naming the variable and the value.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from thingpress_core.errors import ConfigurationError
from thingpress_core.resilience.settings import ResilienceSettings

__all__ = ["ENV_PREFIX", "ThingpressSettings", "partition_for"]

ENV_PREFIX = "THINGPRESS_"

_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
_ACCOUNT = re.compile(r"^\d{12}$")


def partition_for(region: str | None) -> str:
    """The ARN partition of an AWS region: ``aws``, ``aws-cn`` or ``aws-us-gov``."""
    region = region or ""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


class ThingpressSettings(BaseSettings):
    """Configuration for clients, retries, timeouts and resilience.

    Every field has a default; each is also read from ``THINGPRESS_<FIELD>``.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        case_sensitive=False,
    )

    region: str | None = Field(
        default=None,
        description="AWS region, e.g. eu-west-1. None: boto3's own lookup (AWS_REGION, profile).",
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

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ConfigurationError.from_validation_error(exc, env_prefix=ENV_PREFIX) from None

    @field_validator("region")
    @classmethod
    def _check_region(cls, value: str | None) -> str | None:
        if value is not None and not _REGION.match(value):
            raise ValueError("not an AWS region name such as eu-west-1")
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
        """The ARN partition of `region` (``aws``, ``aws-cn``, ``aws-us-gov``)."""
        return partition_for(self.region)
