"""Resilience settings: breaker defaults and overrides, per-operation rate limits.

Placeholder filled in by the resilience work; `ThingpressSettings.resilience` holds one.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ResilienceSettings"]


class ResilienceSettings(BaseModel):
    """How hard thingpress-core pushes each AWS operation, and when it backs off."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    quota_share: float = Field(default=1.0, gt=0.0, le=1.0)
