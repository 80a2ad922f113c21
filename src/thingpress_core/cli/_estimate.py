"""The import's pace: rate limits from the account's quotas (``--quotas auto``), the worker
count that holds the binding quota (when ``--concurrency`` is not given), and the estimate a
``--dry-run`` prints."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from thingpress_core.cli._app import err_console

if TYPE_CHECKING:
    from thingpress_core.clients import ClientFactory
    from thingpress_core.importer import ImportOptions
    from thingpress_core.resilience import ResilienceSettings

__all__ = ["DEFAULT_WORKERS", "account_resilience", "choose_workers", "print_estimate"]

#: Workers when no rate limit applies (``--sandbox-rate fast``), so nothing to plan from.
DEFAULT_WORKERS = 8


def account_resilience(factory: ClientFactory, options: ImportOptions, mode: str) -> ResilienceSettings:
    """The resilience settings the import's limiter runs with: the factory's, and with ``mode``
    ``auto`` the rates of the account's quotas (Service Quotas API) for the import's operations.
    Prints what was found, or the one warning of a fallback."""
    resilience = factory.settings.resilience
    if mode != "auto":
        return resilience
    from thingpress_core.services import QuotaReader

    operations = sorted({*options.calls_by_operation(), "iot.AttachPolicy"})
    found = QuotaReader(factory).read(operations)
    lines = found.lines()
    if found.fell_back:
        err_console.print(f"warning: {lines[0]}", highlight=False, markup=False)
        return resilience
    for line in lines:
        err_console.print(line, highlight=False, markup=False)
    return found.apply(resilience)


def choose_workers(options: ImportOptions, rate_limits: dict[str, float], latency: float) -> int:
    """The worker count for these rate limits (`plan_concurrency`), printed with its reason."""
    from thingpress_core.resilience import plan_concurrency

    plan = plan_concurrency(options.calls_by_operation(), rate_limits, latency=latency)
    if plan.binding_operation is None:
        err_console.print(f"workers: {DEFAULT_WORKERS} (no rate limit applies)", highlight=False)
        return DEFAULT_WORKERS
    operation = plan.binding_operation.partition(".")[2]
    rate = rate_limits[plan.binding_operation]
    capped = f", capped at {plan.cap}" if plan.limited_by_cap else ""
    err_console.print(
        f"workers: {plan.workers} ({operation} binds at {rate:g}/s{capped}; "
        f"{latency * 1000:.0f} ms per call assumed; --concurrency sets it)",
        highlight=False,
    )
    return plan.workers


def print_estimate(
    options: ImportOptions, certificates: int, rate_limits: dict[str, float], *, latency: float, workers: Any
) -> None:
    """The estimate of a real import of ``certificates`` (`estimate_import`), for a dry run."""
    from thingpress_core.importer import estimate_import

    real = options.model_copy(update={"dry_run": False})
    estimate = estimate_import(real, certificates, rate_limits, latency=latency, workers=workers)
    for line in estimate.lines():
        err_console.print(line, highlight=False, markup=False)
