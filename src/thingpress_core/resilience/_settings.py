"""Resilience settings: breaker defaults and overrides, per-operation rate limits.

`ResilienceSettings` is the ``resilience`` field of
[`ThingpressSettings`][thingpress_core.settings.ThingpressSettings], so every field is read
from ``THINGPRESS_RESILIENCE__<FIELD>`` (nested fields joined by ``__``, dictionaries as
JSON):

```bash
THINGPRESS_RESILIENCE__BREAKER_DEFAULTS__FAILURE_THRESHOLD=3
THINGPRESS_RESILIENCE__QUOTA_SHARE=0.1
THINGPRESS_RESILIENCE__RATE_LIMITS='{"iot.CreateThing": 50}'
THINGPRESS_RESILIENCE__BREAKERS='{
  "iot.RegisterCertificateWithoutCA": {"failure_threshold": 2}}'
```

Rate limits merge over `DEFAULT_RATE_LIMITS`: naming one operation changes that operation
and keeps the AWS defaults of all the others. ``inf`` lifts the limit of one operation.
A per-operation breaker override merges over ``breaker_defaults`` field by field: only the
fields the override sets replace the defaults.

Only `ResilienceSettings` (and
[`ThingpressSettings`][thingpress_core.settings.ThingpressSettings] above it) read the
environment. `CircuitBreakerSettings` is a plain value and never does: the same class holds
``breaker_defaults`` and every per-operation override, so ``CircuitBreakerSettings()`` could
not tell which variables are its own, and an override that picked up the defaults' variables
would count them as fields it sets and replace the defaults with them when merged. The
breaker settings the environment asks for are ``ResilienceSettings().breaker_defaults`` (or
``.breaker_settings("iot.CreateThing")`` for one operation, overrides merged).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import ClassVar, Literal

from pydantic import ConfigDict, Field, field_validator
from pydantic_settings import SettingsConfigDict

from thingpress_core._config import ConfigModel, ConfigSettings

__all__ = ["DEFAULT_RATE_LIMITS", "ENV_PREFIX", "CircuitBreakerSettings", "ResilienceSettings"]

ENV_PREFIX = "THINGPRESS_RESILIENCE__"

#: AWS IoT Core's default per-account quotas, in requests per second (all adjustable), for
#: every IoT operation [`IoTService`][thingpress_core.services.IoTService] calls.
#:
#: Where each figure comes from (docs/services/iot.md has the table and how to check yours):
#:
#: - [SQ] the Service Quotas API, service code ``iotcore`` (the thing registry: things, thing
#:   groups and types, thing principals), as listed in a public dump of that API; the quota
#:   code is given, so ``aws service-quotas get-aws-default-service-quota --service-code
#:   iotcore --quota-code L-...`` shows the figure for your region.
#: - [GR] the "AWS IoT Core throttling limits" table of the AWS General Reference
#:   (https://docs.aws.amazon.com/general/latest/gr/iot-core.html#throttling-limits), read from
#:   its earlier home in the AWS IoT Developer Guide (github.com/awsdocs/aws-iot-docs,
#:   doc_source/limits-iot.md) for the certificate and policy operations, whose figures have
#:   not changed since; the thing-registry rows of that old table were lower and were raised
#:   (see [SQ]).
#: - [DESIGN] the figures the design note gives (RegisterCertificateWithoutCA is newer than
#:   the old table).
DEFAULT_RATE_LIMITS: Mapping[str, float] = MappingProxyType(
    {
        # certificates and policies
        "iot.RegisterCertificateWithoutCA": 10.0,  # [DESIGN]
        "iot.RegisterCertificate": 10.0,  # [GR] (quota code L-8C0011A3)
        "iot.DescribeCACertificate": 10.0,  # [GR] (quota code L-E72BB356)
        "iot.DescribeCertificate": 10.0,  # [GR]
        "iot.UpdateCertificate": 10.0,  # [GR]
        "iot.DeleteCertificate": 10.0,  # [GR]
        "iot.AttachPolicy": 15.0,  # [GR]
        "iot.DetachPolicy": 15.0,  # [GR]
        "iot.ListAttachedPolicies": 15.0,  # [GR]
        "iot.GetPolicy": 10.0,  # [GR]
        # things, thing groups and thing types
        "iot.CreateThing": 100.0,  # [SQ] L-64CBACAC
        "iot.UpdateThing": 100.0,  # [SQ] L-211F680E
        "iot.DescribeThing": 350.0,  # [SQ] L-0EF0F5EE
        "iot.DeleteThing": 100.0,  # [SQ] L-889800F7
        "iot.AttachThingPrincipal": 100.0,  # [SQ] L-F64D1AA6
        "iot.DetachThingPrincipal": 100.0,  # [SQ] L-B5EE4A16
        "iot.ListThingPrincipals": 10.0,  # [SQ] L-FC3EF4D9
        "iot.ListPrincipalThings": 10.0,  # [SQ] L-C481616A
        "iot.AddThingToThingGroup": 100.0,  # [SQ] L-2904683A
        "iot.RemoveThingFromThingGroup": 100.0,  # [SQ] L-2A81A394
        "iot.ListThingGroupsForThing": 100.0,  # [SQ] L-75F129AD
        "iot.DescribeThingGroup": 100.0,  # [SQ] L-52E1E197
        "iot.DescribeThingType": 100.0,  # [SQ] L-DDCF8E97
        "iot.DescribeBillingGroup": 100.0,  # [SQ] L-23DF46E7
        "iot.AddThingToBillingGroup": 60.0,  # [SQ] L-1F4BE39E
    }
)

_OPERATION = re.compile(r"^[a-z0-9][a-z0-9-]*\.[A-Za-z][A-Za-z0-9]*$")


def _canonical_operation(key: str) -> str:
    """Check a ``service.Operation`` key; restore the case of a known one.

    Environment variable names are case-insensitive, so ``iot.creatething`` means
    ``iot.CreateThing``.
    """
    key = key.strip()
    for known in DEFAULT_RATE_LIMITS:
        if known.lower() == key.lower():
            return known
    if not _OPERATION.match(key):
        raise ValueError(f"{key!r} is not a 'service.Operation' name such as 'iot.CreateThing'")
    return key


class CircuitBreakerSettings(ConfigModel):
    """When a breaker opens, how long it stays open, and how it probes for recovery.

    A plain value: it reads no environment variables (see the module docstring). Invalid values
    raise [`ConfigurationError`][thingpress_core.errors.ConfigurationError] naming the field.
    """

    model_config: ClassVar[ConfigDict] = ConfigDict(frozen=True, extra="forbid")

    failure_threshold: int = Field(
        default=5, ge=1, le=1_000_000, description="Consecutive failures that open the breaker."
    )
    failure_rate_threshold: float | None = Field(
        default=None,
        gt=0,
        le=100,
        description=(
            "Also open when this percentage of the last window_size calls failed "
            "(once minimum_calls were seen). None: consecutive-failure mode only."
        ),
    )
    window_size: int = Field(
        default=20, ge=1, le=100_000, description="Calls in the failure-rate sliding window."
    )
    minimum_calls: int = Field(
        default=10,
        ge=1,
        le=100_000,
        description="Calls the window must hold before the failure rate can open the breaker "
        "(capped at window_size).",
    )
    recovery_timeout: float = Field(
        default=30.0, gt=0, le=86_400, description="Seconds open before the first probe."
    )
    recovery_backoff: float = Field(
        default=2.0,
        ge=1.0,
        le=100.0,
        description="Multiplier of the open period after each failed probe (1: no growth).",
    )
    max_recovery_timeout: float = Field(
        default=300.0,
        gt=0,
        le=86_400,
        description="Cap of the grown open period (never below recovery_timeout).",
    )
    half_open_max_calls: int = Field(
        default=1, ge=1, le=10_000, description="Probes admitted at the same time when half-open."
    )
    success_threshold: int = Field(
        default=1, ge=1, le=10_000, description="Successful probes that close the breaker."
    )
    enabled: bool = Field(default=True, description="False: calls pass straight through.")

    @field_validator("recovery_timeout", "recovery_backoff", "max_recovery_timeout")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    def merged(self, override: CircuitBreakerSettings | None) -> CircuitBreakerSettings:
        """These settings with the fields ``override`` sets explicitly replaced."""
        if override is None or not override.model_fields_set:
            return self
        values = self.model_dump()
        values.update(override.model_dump(include=set(override.model_fields_set)))
        return CircuitBreakerSettings(**values)


class ResilienceSettings(ConfigSettings):
    """How hard thingpress-core pushes each AWS operation, and when it backs off.

    Read standalone, it uses ``THINGPRESS_RESILIENCE__*``; inside `ThingpressSettings` the
    same variables reach it through the parent. Invalid values raise
    [`ConfigurationError`][thingpress_core.errors.ConfigurationError] naming the variable.
    """

    model_config: ClassVar[SettingsConfigDict] = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        case_sensitive=False,
    )

    breaker_defaults: CircuitBreakerSettings = Field(
        default_factory=CircuitBreakerSettings,
        description="Breaker settings for every operation without its own override.",
    )
    breakers: dict[str, CircuitBreakerSettings] = Field(
        default_factory=dict,
        description="Per-operation overrides keyed 'service.Operation', merged over breaker_defaults.",
    )
    rate_limits: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_RATE_LIMITS),
        description="Requests per second per 'service.Operation' for the whole account; merged "
        "over the AWS IoT defaults. inf: unlimited. Operations not named are not limited.",
    )
    quota_share: float = Field(
        default=1.0,
        gt=0.0,
        le=1.0,
        description="Fraction of each account quota this process may use (0.1 = one of ten workers).",
    )
    quotas: Literal["builtin", "auto"] = Field(
        default="builtin",
        description="Where the CLI's import takes the rate limits from: builtin (rate_limits, AWS's "
        "published defaults unless set) or auto (the account's applied IoT quotas, read from the "
        "Service Quotas API at pre-flight; the built-in ones with a warning when that fails).",
    )
    rate_burst: float = Field(
        default=1.0,
        ge=1.0,
        le=10_000.0,
        description="Tokens an idle bucket holds: any t seconds admit at most rate*t + rate_burst calls.",
    )
    rate_decrease_factor: float = Field(
        default=0.7, gt=0.0, lt=1.0, description="A throttle multiplies the current rate by this."
    )
    rate_increase: float = Field(
        default=0.05,
        gt=0.0,
        le=1.0,
        description="Recovery speed: fraction of the configured rate regained per second of "
        "successful calls.",
    )
    rate_floor: float = Field(
        default=0.05,
        gt=0.0,
        le=1.0,
        description="The rate never drops below this fraction of the configured rate.",
    )
    rate_decrease_cooldown: float = Field(
        default=1.0,
        ge=0.0,
        le=60.0,
        description="Seconds after a decrease during which further throttles do not lower the "
        "rate again (one overload seen by many threads counts once).",
    )

    @field_validator("breakers", mode="after")
    @classmethod
    def _check_breakers(cls, value: dict[str, CircuitBreakerSettings]) -> dict[str, CircuitBreakerSettings]:
        return {_canonical_operation(key): item for key, item in value.items()}

    @field_validator("rate_limits", mode="after")
    @classmethod
    def _merge_rate_limits(cls, value: dict[str, float]) -> dict[str, float]:
        merged = dict(DEFAULT_RATE_LIMITS)
        for key, rate in value.items():
            if math.isnan(rate) or rate <= 0:
                raise ValueError(f"rate of {key!r} must be a positive number of requests per second")
            merged[_canonical_operation(key)] = rate
        return merged

    def breaker_settings(self, name: str) -> CircuitBreakerSettings:
        """The settings of the breaker for ``name``: defaults merged with its override."""
        return self.breaker_defaults.merged(self.breakers.get(name))

    def effective_rate_limits(self) -> dict[str, float]:
        """Requests per second this process may send per operation: rate × quota_share.

        Unlimited (``inf``) operations are left out.
        """
        return {
            name: rate * self.quota_share for name, rate in self.rate_limits.items() if math.isfinite(rate)
        }
