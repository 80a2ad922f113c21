"""Cost of getting an IoT client: ClientFactory's cache against building one per call.

The old layer built ``boto3.Session().client("iot")`` (or ``session.client("iot")``) on every
AWS call. The figure is the time per cached lookup; the baselines are the two per-call builds,
measured in the same run. Ratio = cached / per-call build (smaller is better).
"""

from __future__ import annotations

import os

from _harness import Result, best_of

os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")


def run(quick: bool) -> list[Result]:
    import boto3

    from thingpress_core import ClientFactory, ThingpressSettings

    factory = ClientFactory(ThingpressSettings(region="us-east-1"))
    factory.iot()  # build once; the figure is the lookup
    session = boto3.Session(region_name="us-east-1")
    session.client("iot")  # warm botocore's loaders so the baseline is the steady-state cost

    lookups = 20_000 if quick else 200_000
    builds = 10 if quick else 50
    cached = best_of(factory.iot, number=lookups) / lookups
    per_session_client = best_of(lambda: session.client("iot"), repeat=3, number=builds) / builds
    per_new_session = (
        best_of(lambda: boto3.Session(region_name="us-east-1").client("iot"), repeat=3, number=builds)
        / builds
    )
    return [
        Result(
            "clients",
            "cached factory.iot() vs session.client('iot')",
            cached * 1e6,
            "µs/call",
            baseline=per_session_client * 1e6,
            baseline_name="session.client per call",
            target="ratio << 1",
            ok=cached < per_session_client / 100,
        ),
        Result(
            "clients",
            "cached factory.iot() vs boto3.Session().client('iot')",
            cached * 1e6,
            "µs/call",
            baseline=per_new_session * 1e6,
            baseline_name="new Session + client per call",
            target="ratio << 1",
            ok=cached < per_new_session / 100,
        ),
    ]
