"""Fleet operations at the AWS quotas: verify, deactivate (set_status) and rollback.

Each operation runs over devices a real import left in a `SqliteLedger`, through the real
`IoTService` and its rate limiter on in-process moto, with `FaultInjector` adding 20 ms to every
IoT call and enforcing the default AWS IoT quotas (``aws-iot-defaults``), the harness of
``bench_importer``'s throughput figure. For each operation:

- ``calls per device``: the IoT calls the report counts, divided by the devices (a device
  the ledger shows needs nothing costs none);
- ``devices/s ÷ the bottleneck``: the operation's rate against the rate its binding quota
  allows, ``min over operations of quota / calls of that operation per device`` (for verify:
  DescribeCertificate and ListPrincipalThings, 10/s, one each per device; for a status change:
  UpdateCertificate, 10/s; for a rollback of devices with one policy and one group:
  UpdateCertificate and DeleteCertificate, 10/s). Target: at least 0.9, and nothing throttled
  (the limiter, not AWS's 429s, keeps the pace).

The import that fills the ledger runs without quotas or latency; it is not measured here.
"""

from __future__ import annotations

import contextlib
import math
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import Result
from bench_importer import (
    ACCOUNT,
    GROUP,
    LATENCY,
    POLICY,
    REGION,
    TYPE,
    _backend,
    _fake_aws_environment,
    _options,
    create_import_resources,
)

BENCH = "operations"


@contextlib.contextmanager
def _fleet(count: int, directory: Path) -> Iterator[tuple[Any, Any, Any, str]]:
    """moto with ``count`` devices imported (unpaced) into a SQLite ledger: (factory, ledger,
    target, run id of the import)."""
    from thingpress_core.certificates.generate import generate_device_certificates
    from thingpress_core.clients import ClientFactory
    from thingpress_core.importer import CertificateImporter
    from thingpress_core.ledger import SqliteLedger, Target
    from thingpress_core.resilience import DEFAULT_RATE_LIMITS, RateLimiter
    from thingpress_core.services import IoTService
    from thingpress_core.settings import ThingpressSettings

    with _fake_aws_environment(), _backend("moto"), SqliteLedger(directory / "ops.db") as ledger:
        settings = ThingpressSettings(region=REGION, account_id=ACCOUNT, max_pool_connections=32)
        factory = ClientFactory(settings)
        client = factory.iot()
        create_import_resources(client)
        target = Target(account_id=ACCOUNT, region=REGION)
        unpaced = IoTService(factory, limiter=RateLimiter(dict.fromkeys(DEFAULT_RATE_LIMITS, math.inf)))
        importer = CertificateImporter(unpaced, options=_options(), ledger=ledger, target=target)
        report = importer.import_all(generate_device_certificates(count, cn_prefix="ops-"))
        assert report.imported == count, report.summary()
        assert report.run_id is not None
        yield factory, ledger, target, report.run_id


def _paced(factory: Any, operation: Callable[[Any], Any]) -> tuple[Any, int]:
    """``operation(iot)`` through a limiter at the default quotas, with the quotas enforced and
    20 ms per call: (its report, requests throttled)."""
    from thingpress_core.resilience import DEFAULT_RATE_LIMITS, RateLimiter
    from thingpress_core.services import IoTService
    from thingpress_core.testing import FaultInjector

    service = IoTService(factory, limiter=RateLimiter(dict(DEFAULT_RATE_LIMITS)))
    with FaultInjector(factory) as faults:
        faults.latency("iot.*", LATENCY)
        faults.quota("aws-iot-defaults")
        report = operation(service)
        throttled = faults.count(kind="throttle")
    return report, throttled


def _bound(calls: dict[str, int], devices: int) -> tuple[float, str]:
    """Devices/s the quotas allow for these calls, and the operation that binds."""
    from thingpress_core.resilience import DEFAULT_RATE_LIMITS

    per_device = {op: n / devices for op, n in calls.items() if n}
    rates = {op: DEFAULT_RATE_LIMITS[op] / n for op, n in per_device.items()}
    binding = min(rates, key=rates.__getitem__)
    return rates[binding], binding


def _figures(label: str, report: Any, throttled: int, devices: int, concurrency: int) -> list[Result]:
    calls = dict(report.calls)
    per_device = sum(calls.values()) / devices
    bound, binding = _bound(calls, devices)
    ratio = report.rate_per_second / bound
    by_operation = ", ".join(f"{op.split('.', 1)[1]} {n / devices:g}" for op, n in sorted(calls.items()))
    return [
        Result(
            BENCH,
            f"{label}: IoT calls per device ({devices} devices, 1 policy + 1 group + type)",
            per_device,
            "calls",
            note=by_operation,
        ),
        Result(
            BENCH,
            f"{label}: devices/s at default quotas ÷ the bottleneck ({devices} devices, "
            f"20 ms/call, concurrency {concurrency})",
            report.rate_per_second,
            "devices/s",
            baseline=bound,
            baseline_name=f"{binding} quota ÷ its calls per device",
            ratio=ratio,
            target="ratio >= 0.9, 0 throttled",
            ok=ratio >= 0.9 and throttled == 0 and report.failed == 0,
            note=f"{report.summary()}; throttled {throttled}",
        ),
    ]


def run(quick: bool) -> list[Result]:
    from thingpress_core.operations import (
        ExpectedState,
        ledger_devices,
        rollback_run,
        set_status,
        verify_devices,
    )

    count = 40 if quick else 150
    concurrency = 8
    results: list[Result] = []
    expected = ExpectedState(policies=(POLICY,), thing_groups=(GROUP,), thing_type=TYPE)
    with tempfile.TemporaryDirectory() as tmp, _fleet(count, Path(tmp)) as (factory, ledger, target, run_id):
        report, throttled = _paced(
            factory,
            lambda iot: verify_devices(
                iot, ledger_devices(ledger, target=target), expected=expected, concurrency=concurrency
            ),
        )
        assert report.in_sync == count, report.summary()
        results += _figures("verify", report, throttled, count, concurrency)
        report, throttled = _paced(
            factory,
            lambda iot: set_status(
                iot,
                ledger_devices(ledger, target=target),
                "INACTIVE",
                ledger=ledger,
                target=target,
                concurrency=concurrency,
            ),
        )
        assert report.changed == count, report.summary()
        results += _figures("deactivate", report, throttled, count, concurrency)
        report, throttled = _paced(
            factory, lambda iot: rollback_run(iot, ledger, run_id, target=target, concurrency=concurrency)
        )
        assert report.changed == count, report.summary()
        results += _figures("rollback", report, throttled, count, concurrency)
    return results


if __name__ == "__main__":
    for result in run(quick="--quick" in sys.argv):
        print(result)
