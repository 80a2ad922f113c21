"""`estimate_import`: what an import of N certificates will cost and how long it should take.

Pure arithmetic, no AWS: the calls one certificate costs with these options
(`ImportOptions.calls_by_operation`), times the certificates, plus the calls made once per run
(the preflight's reads and, in group-policy mode, the group's AttachPolicy); and at the given
rate limits, which quota binds and the expected duration (`plan_concurrency`). The CLI's
``--dry-run`` prints it; a Lambda producer can log it before it enqueues a manifest.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from thingpress_core.importer._models import ImportOptions
from thingpress_core.resilience import ConcurrencyPlan, plan_concurrency

__all__ = ["DEFAULT_LATENCY", "ImportEstimate", "estimate_import"]

DEFAULT_LATENCY = 0.1
"""Seconds per IoT call assumed when none was measured (AWS answers in 30-100 ms)."""


class ImportEstimate(BaseModel):
    """The calls and the time an import should take.

    Attributes:
        certificates: how many certificates the estimate is for.
        calls: IoT calls per ``service.Operation`` for all of them, once-per-run calls included.
        setup_calls: the calls made once per run (preflight reads, group policies).
        plan: the workers, the binding quota and the rate (`ConcurrencyPlan`).
        seconds: the expected duration of the certificates' calls at ``plan``.
    """

    model_config: ClassVar[ConfigDict] = ConfigDict(frozen=True, extra="forbid")

    certificates: int = Field(ge=0)
    calls: dict[str, int]
    setup_calls: dict[str, int]
    plan: ConcurrencyPlan
    seconds: float = Field(ge=0.0)

    @property
    def total_calls(self) -> int:
        """Every IoT call of the import."""
        return sum(self.calls.values())

    def lines(self) -> list[str]:
        """The estimate for a person: calls by operation, the binding quota, the duration."""
        plan = self.plan
        head = (
            f"estimate for {self.certificates:,} certificate(s): {self.total_calls:,} IoT calls "
            f"({plan.calls_per_certificate:g} per certificate)"
        )
        body = [f"  {op}: {n:,}" for op, n in sorted(self.calls.items())]
        if plan.binding_operation is None:
            bound = "no rate limit applies"
        else:
            bound = (
                f"{plan.binding_operation} binds at {plan.quota_certificates_per_second:,.1f} certificates/s"
            )
        tail = (
            f"{bound}; expected {_duration(self.seconds)} with {plan.workers} worker(s) "
            f"({plan.expected_certificates_per_second:,.1f} certificates/s)"
        )
        return [head, *body, tail]


def estimate_import(
    options: ImportOptions,
    certificates: int,
    rate_limits: Mapping[str, float],
    *,
    latency: float = DEFAULT_LATENCY,
    workers: int | None = None,
) -> ImportEstimate:
    """Estimate an import of ``certificates`` new certificates with ``options``.

    Args:
        options: the import's options (they decide the calls per certificate).
        certificates: how many certificates (e.g. those a manifest holds).
        rate_limits: requests per second this process may send per ``service.Operation``
            (``ResilienceSettings.effective_rate_limits()``, or `AccountQuotas.rate_limits`).
        latency: seconds per call (measured, or `DEFAULT_LATENCY`).
        workers: a fixed worker count (the estimate then says what it reaches); None: the
            count `plan_concurrency` proposes.

    Counts every certificate as new (a re-run over a ledger costs less). Raises
    `ConfigurationError` for a negative count or a bad rate or latency.
    """
    per_certificate = options.calls_by_operation()
    plan = (
        plan_concurrency(per_certificate, rate_limits, latency=latency)
        if workers is None
        else plan_concurrency(per_certificate, rate_limits, latency=latency, cap=workers)
    )
    setup = _setup_calls(options)
    calls = {op: round(n * certificates) for op, n in per_certificate.items()}
    for op, n in setup.items():
        calls[op] = calls.get(op, 0) + n
    return ImportEstimate(
        certificates=certificates,
        calls=dict(sorted(calls.items())),
        setup_calls=setup,
        plan=plan,
        seconds=plan.expected_seconds(certificates),
    )


def _setup_calls(options: ImportOptions) -> dict[str, int]:
    """The calls an import makes once per run (preflight reads, group policies)."""
    calls: dict[str, int] = {}
    if options.preflight:
        reads = {
            "iot.GetPolicy": len(options.policies),
            "iot.DescribeThingGroup": len(options.thing_groups),
            "iot.DescribeThingType": int(options.thing_type is not None),
            "iot.DescribeBillingGroup": int(options.billing_group is not None),
            "iot.DescribeCACertificate": int(options.ca_certificate is not None),
        }
        calls.update({op: n for op, n in reads.items() if n})
    if options.group_policies:  # what the real import makes, also for a dry run's estimate
        calls.setdefault("iot.DescribeThingGroup", 1)
        calls["iot.AttachPolicy"] = len(options.group_policies)
    return calls


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:,.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:,.1f} min"
    return f"{seconds / 3600:,.1f} h"
