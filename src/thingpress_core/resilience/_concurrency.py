"""`plan_concurrency`: the worker count that keeps the binding quota busy, and what it yields.

An import is a pipeline of certificates, each costing a few calls of a few operations
(RegisterCertificateWithoutCA once, CreateThing once, ...). Each operation has a rate limit,
so the certificates per second the account allows are the smallest ``rate / calls`` over the
operations one certificate uses: that operation *binds*. A worker thread carries one
certificate at a time, one call at a time, so by Little's law the calls in flight needed to
hold that pace are ``certificates/s x calls per certificate x latency``, one per worker.
Fewer workers leave the quota idle; many more only queue at the rate limiter. The plan rounds
up after multiplying by a headroom (latency varies; the limiter's waits are not in it),
never goes below one worker, and stays under a cap (threads cost memory and the GIL, and a
single process with 64 workers already holds 1,000 calls/s at 64 ms per call).

Pure: no clock, no AWS. [`plan`][thingpress_core.services.AccountQuotas.plan] feeds it the rate
limits read from the account.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from thingpress_core.errors import ConfigurationError

__all__ = ["DEFAULT_CONCURRENCY_CAP", "DEFAULT_HEADROOM", "ConcurrencyPlan", "plan_concurrency"]

DEFAULT_CONCURRENCY_CAP = 64
"""The most workers `plan_concurrency` proposes unless told otherwise."""

DEFAULT_HEADROOM = 1.5
"""Workers beyond Little's law's figure, as a factor: latency varies around its mean."""


class ConcurrencyPlan(BaseModel):
    """How many workers to run, which quota binds, and what the import should then reach.

    Attributes:
        workers: the worker count (at least 1, at most ``cap``).
        binding_operation: the operation whose ``rate / calls per certificate`` is smallest
            (``service.Operation``), or None when no operation the certificate uses is limited.
        quota_certificates_per_second: certificates per second the rate limits allow (the
            binding operation's rate over its calls per certificate); ``inf`` when unlimited.
        expected_certificates_per_second: what ``workers`` can reach at ``latency``: the quota
            figure, or less when the cap (not the quota) binds.
        limited_by_cap: True when the cap stopped the workers short of holding the quota.
        calls_per_certificate: total calls one certificate costs.
        latency: the call latency the plan assumed, in seconds.
        cap: the cap that applied.
    """

    model_config: ClassVar[ConfigDict] = ConfigDict(frozen=True, extra="forbid")

    workers: int = Field(ge=1)
    binding_operation: str | None
    quota_certificates_per_second: float
    expected_certificates_per_second: float
    limited_by_cap: bool
    calls_per_certificate: float
    latency: float
    cap: int

    def expected_seconds(self, certificates: int) -> float:
        """Expected duration of an import of ``certificates`` at this plan (0 for none)."""
        if certificates < 0:
            raise ConfigurationError("certificates must be >= 0", variable="certificates", value=certificates)
        if certificates == 0:
            return 0.0
        rate = self.expected_certificates_per_second
        return certificates / rate if rate > 0 and math.isfinite(rate) else 0.0

    def summary(self) -> str:
        """One English line, e.g. for ``inspect`` and ``--dry-run``."""
        if self.binding_operation is None:
            bound = "no rate limit applies"
        else:
            bound = (
                f"{self.binding_operation} binds at {self.quota_certificates_per_second:,.1f} certificates/s"
            )
        cap = f" (capped at {self.cap})" if self.limited_by_cap else ""
        return (
            f"{self.workers} workers{cap}: {bound}; expected "
            f"{self.expected_certificates_per_second:,.1f} certificates/s at "
            f"{self.latency * 1000:.0f} ms per call, {self.calls_per_certificate:g} calls per certificate"
        )


def plan_concurrency(
    calls_per_certificate: Mapping[str, float],
    rate_limits: Mapping[str, float],
    *,
    latency: float,
    headroom: float = DEFAULT_HEADROOM,
    cap: int = DEFAULT_CONCURRENCY_CAP,
) -> ConcurrencyPlan:
    """The workers that keep the binding quota busy: ``ceil(c x L x lat x headroom)``, in ``[1, cap]``.

    Args:
        calls_per_certificate: calls one certificate costs per ``service.Operation``
            (``{"iot.RegisterCertificateWithoutCA": 1, "iot.CreateThing": 1, ...}``).
        rate_limits: requests per second this process may send per operation (the limiter's
            effective limits: quota x quota_share). An operation not named, or ``inf``, is
            unlimited.
        latency: mean seconds per call (measured, or assumed), >= 0.
        headroom: factor over Little's law's figure, >= 1.
        cap: the most workers, >= 1.

    With ``c`` the binding certificates/s (smallest ``rate / calls``) and ``L`` the calls per
    certificate, ``c x L x latency`` calls are in flight at the quota's pace. The expected
    certificates/s is ``c``, or ``workers / (L x latency)`` when the cap binds first. Raises
    `ConfigurationError` naming the parameter for a negative or non-finite input.
    """
    _check("latency", latency, low=0.0)
    _check("headroom", headroom, low=1.0)
    if cap < 1:
        raise ConfigurationError("cap must be an integer >= 1", variable="cap", value=cap)
    binding: str | None = None
    certificate_rate = math.inf
    total_calls = 0.0
    for operation, calls in sorted(calls_per_certificate.items()):
        _check(f"calls_per_certificate[{operation!r}]", calls, low=0.0)
        total_calls += calls
        rate = rate_limits.get(operation, math.inf)
        if math.isnan(rate) or rate <= 0:
            raise ConfigurationError(
                f"rate_limits[{operation!r}] must be a positive number of requests per second",
                variable="rate_limits",
                value=rate,
            )
        if calls == 0 or math.isinf(rate):
            continue
        pace = rate / calls
        # on a tie the registration binds: it is the quota to raise first
        registers = ".Register" in operation
        if pace < certificate_rate or (pace == certificate_rate and registers):
            certificate_rate, binding = pace, operation
    seconds_per_certificate = total_calls * latency
    if math.isinf(certificate_rate):
        wanted = math.inf
    else:
        wanted = certificate_rate * seconds_per_certificate * headroom
    workers = cap if wanted > cap else max(1, math.ceil(wanted))
    worker_rate = workers / seconds_per_certificate if seconds_per_certificate > 0 else math.inf
    expected = min(certificate_rate, worker_rate)
    return ConcurrencyPlan(
        workers=workers,
        binding_operation=binding,
        quota_certificates_per_second=certificate_rate,
        expected_certificates_per_second=expected,
        limited_by_cap=worker_rate < certificate_rate,
        calls_per_certificate=total_calls,
        latency=latency,
        cap=cap,
    )


def _check(name: str, value: float, *, low: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise ConfigurationError(f"{name} must be a number", variable=name, value=value)
    if not math.isfinite(value) or value < low:
        raise ConfigurationError(f"{name} must be a finite number >= {low:g}", variable=name, value=value)
