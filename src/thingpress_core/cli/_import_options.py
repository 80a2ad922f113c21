"""Options of ``import`` (and ``enqueue``): association, where the policies go, the pace, and
what a bad manifest entry does."""

from __future__ import annotations

from typing import Annotated

import typer

from thingpress_core.cli._app import flag

__all__ = ["ConcurrencyOpt", "ExclusiveOpt", "OnBadEntryOpt", "PolicyViaGroupOpt", "QuotasOpt"]

ExclusiveOpt = Annotated[
    bool,
    flag(
        "--exclusive",
        "Attach each certificate to its thing exclusively (EXCLUSIVE_THING): it names its thing, "
        "and AWS refuses to attach it to a second one.",
    ),
]
PolicyViaGroupOpt = Annotated[
    bool,
    flag(
        "--policy-via-group",
        "Attach the policies once to the one --thing-group instead of to every certificate: "
        "4 calls per certificate, no AttachPolicy each (implies --exclusive).",
    ),
]

ConcurrencyOpt = Annotated[
    int | None,
    typer.Option(
        "--concurrency",
        min=1,
        max=128,
        metavar="N",
        help="Worker threads. Default: enough to hold the binding quota (printed).",
    ),
]
QuotasOpt = Annotated[
    str | None,
    typer.Option(
        "--quotas",
        metavar="builtin|auto",
        help="Rate limits: builtin (AWS's published defaults, or THINGPRESS_RESILIENCE__RATE_LIMITS) "
        "or auto (the account's IoT quotas from the Service Quotas API). "
        "Default: THINGPRESS_RESILIENCE__QUOTAS, else builtin.",
    ),
]

OnBadEntryOpt = Annotated[
    str,
    typer.Option(
        "--on-bad-entry",
        metavar="auto|fail|refuse",
        help="auto: refuse a signed manifest with any bad entry, report other bad entries as failed; "
        "fail: report every bad entry as failed; refuse: refuse the whole file.",
    ),
]
