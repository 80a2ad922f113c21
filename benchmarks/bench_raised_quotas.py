"""Raised quotas: what the import reaches once the account's quotas are raised (issue 18).

Every run goes through real HTTP to the light IoT stand-in (`_iot_standin`, in its own process)
with the CLI's stack: `ClientFactory` (endpoint_url at the stand-in) -> `IoTService` ->
`CertificateImporter`. The rate limits come from the stand-in's Service Quotas answers via
`QuotaReader` (what ``--quotas auto`` does), and the worker count from `plan_concurrency` at a
measured call latency.

- ``certificate mode at raised quotas``: RegisterCertificateWithoutCA raised to 100 TPS, every
  other quota at AWS's default (AttachPolicy 15): certificates/s, and which quota binds.
- ``group-policy mode``: the same quotas, the policies attached once to the thing group
  (4 calls per certificate, ``ImportOptions(policy_target="thing_group")``, built by
  `group_policy_options`).
- ``one-process ceiling``: every default quota x30 (RegisterCertificateWithoutCA 300/s, so
  1,500 calls/s): certificates/s of the import over a raw boto3 client making the same 5 calls
  per certificate from a thread pool of the same size (no limiter; botocore's standard retries
  absorb the stand-in's throttles).
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import Result
from _iot_standin import IoTStandIn
from bench_importer import _fake_aws_environment

BENCH = "raised_quotas"
POLICY, GROUP, TYPE = "DevicePolicy", "Fleet", "Sensor"
ACCOUNT, REGION = "123456789012", "us-east-1"
LATENCY = 0.020
PREFLIGHT = ("GetPolicy", "DescribeThingGroup", "DescribeThingType")
CERTIFICATE_MODE_CALLS = {
    "iot.RegisterCertificateWithoutCA": 1.0,
    "iot.CreateThing": 1.0,
    "iot.AttachThingPrincipal": 1.0,
    "iot.AttachPolicy": 1.0,
    "iot.AddThingToThingGroup": 1.0,
}


def _defaults() -> dict[str, float]:
    from thingpress_core.resilience import DEFAULT_RATE_LIMITS

    return {op: rate for op, rate in DEFAULT_RATE_LIMITS.items() if op.startswith("iot.")}


def raised_quotas() -> dict[str, float]:
    """The usual first raise: RegisterCertificateWithoutCA 10 -> 100 TPS, the rest at AWS's defaults."""
    return {**_defaults(), "iot.RegisterCertificateWithoutCA": 100.0}


class Measured(NamedTuple):  # not a dataclass: run.py loads this module without registering it
    rate: float
    imported: int
    failed: int
    seconds: float
    calls_per_certificate: float
    throttled: int
    workers: int
    binding: str | None
    plan: str


def _options(**overrides: object) -> Any:
    from thingpress_core.importer import ImportOptions

    values: dict[str, object] = {"policies": (POLICY,), "thing_groups": (GROUP,), "thing_type": TYPE}
    values.update(overrides)
    return ImportOptions(**values)


def group_policy_options(base: Any) -> Any | None:
    """The import options of group-policy mode, built from ``base`` (certificate mode): the
    policies attached once to the thing group, each certificate attached exclusively. Its
    calls per certificate (4: register, create thing, attach principal exclusively, add to
    group) are passed to `plan_concurrency` by `_group_policy_calls`."""
    from thingpress_core.importer import ImportOptions

    return ImportOptions.model_validate({**base.model_dump(), "policy_target": "thing_group"})


def _group_policy_calls() -> dict[str, float]:
    return {op: n for op, n in CERTIFICATE_MODE_CALLS.items() if op != "iot.AttachPolicy"}


def _measure_latency(endpoint_url: str) -> float:
    """Median seconds of one small call through botocore and the stand-in (a pre-flight read)."""
    import boto3

    client = boto3.client("iot", endpoint_url=endpoint_url, region_name=REGION)
    samples = []
    for _ in range(7):
        started = time.perf_counter()
        client.describe_thing_type(thingTypeName=TYPE)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def _wire_calls(
    standin: IoTStandIn, count: int, before: Mapping[str, int], setup: Mapping[str, int] | None = None
) -> tuple[float, int]:
    counts = standin.counts()
    answered = {op: n - before.get(op, 0) - (setup or {}).get(op, 0) for op, n in counts["answered"].items()}
    per_cert = sum(n for op, n in answered.items() if op not in PREFLIGHT) / count
    return per_cert, sum(counts["throttled"].values())


def run_import(
    certs: Sequence[Any], quotas: Mapping[str, float], options: Any, calls: Mapping[str, float]
) -> Measured:
    """One import of ``certs`` against a fresh stand-in with ``quotas``, as the CLI would run it."""
    from thingpress_core.clients import ClientFactory
    from thingpress_core.importer import CertificateImporter
    from thingpress_core.resilience import RateLimiter
    from thingpress_core.services import IoTService, QuotaReader
    from thingpress_core.settings import ThingpressSettings

    with IoTStandIn(
        quotas=quotas, latency=LATENCY, policies=[POLICY], groups=[GROUP], thing_types=[TYPE]
    ) as standin:
        latency = _measure_latency(standin.endpoint_url)
        settings = ThingpressSettings(
            region=REGION, account_id=ACCOUNT, endpoint_url=standin.endpoint_url, max_pool_connections=100
        )
        factory = ClientFactory(settings)
        found = QuotaReader(factory).read()  # --quotas auto
        assert not found.fell_back, found.reason
        plan = found.plan(calls, latency=latency)
        service = IoTService(factory, limiter=RateLimiter(found.apply(settings.resilience)))
        before = standin.counts()["answered"]
        importer = CertificateImporter(
            service, options=options.model_copy(update={"concurrency": plan.workers})
        )
        report = importer.import_all(iter(certs))
        # the group's policies are attached once per run (group-policy mode): not a certificate's
        setup = {"AttachPolicy": len(getattr(options, "group_policies", ()))}
        per_cert, throttled = _wire_calls(standin, len(certs), before, setup)
    return Measured(
        rate=report.rate_per_second,
        imported=report.imported,
        failed=report.failed,
        seconds=report.duration_seconds,
        calls_per_certificate=per_cert,
        throttled=throttled,
        workers=plan.workers,
        binding=plan.binding_operation,
        plan=plan.summary(),
    )


def run_raw_boto3(certs: Sequence[Any], quotas: Mapping[str, float], workers: int) -> Measured:
    """The same 5 calls per certificate from a plain boto3 client and a thread pool."""
    import boto3
    from botocore.config import Config

    from thingpress_core.certificates import thing_name_for

    with IoTStandIn(
        quotas=quotas, latency=LATENCY, policies=[POLICY], groups=[GROUP], thing_types=[TYPE]
    ) as standin:
        config = Config(retries={"mode": "standard", "total_max_attempts": 10}, max_pool_connections=100)
        client = boto3.client("iot", endpoint_url=standin.endpoint_url, region_name=REGION, config=config)
        failed = 0
        lock = threading.Lock()

        def one(cert: Any) -> None:
            nonlocal failed
            try:
                arn = client.register_certificate_without_ca(certificatePem=cert.pem, status="ACTIVE")[
                    "certificateArn"
                ]
                name = thing_name_for(cert)
                client.create_thing(thingName=name, thingTypeName=TYPE)
                client.attach_thing_principal(thingName=name, principal=arn)
                client.attach_policy(policyName=POLICY, target=arn)
                client.add_thing_to_thing_group(thingGroupName=GROUP, thingName=name)
            except Exception:
                with lock:
                    failed += 1

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(one, certs))
        seconds = time.perf_counter() - started
        per_cert, throttled = _wire_calls(standin, len(certs), {})
    done = len(certs) - failed
    return Measured(done / seconds, done, failed, seconds, per_cert, throttled, workers, None, "raw boto3")


def bench_certificate_mode(count: int) -> tuple[list[Result], Measured]:
    certs = _certs(count, "raised-")
    measured = run_import(certs, raised_quotas(), _options(), CERTIFICATE_MODE_CALLS)
    result = Result(
        BENCH,
        f"certificate mode, RegisterCertificateWithoutCA 100 TPS, AttachPolicy 15 ({count:,} certs, "
        f"{LATENCY * 1000:.0f} ms/call, HTTP stand-in)",
        measured.rate,
        "certs/s",
        baseline=15.0,
        baseline_name="AttachPolicy quota",
        target="ratio >= 0.9 (AttachPolicy binds)",
        ok=measured.rate >= 0.9 * 15.0 and measured.failed == 0,
        note=_note(measured),
    )
    return [result], measured


def bench_group_policy_mode(count: int, certificate_mode: Measured) -> list[Result]:
    options = group_policy_options(_options())
    if options is None:
        return []
    certs = _certs(count, "group-")
    measured = run_import(certs, raised_quotas(), options, _group_policy_calls())
    return [
        Result(
            BENCH,
            f"group-policy mode, RegisterCertificateWithoutCA 100 TPS, AttachPolicy 15 ({count:,} certs)",
            measured.rate,
            "certs/s",
            baseline=100.0,
            baseline_name="RegisterCertificateWithoutCA quota",
            target="ratio >= 0.9",
            ok=measured.rate >= 90.0 and measured.failed == 0,
            note=_note(measured),
        ),
        Result(
            BENCH,
            "group-policy mode over certificate mode, same quotas",
            measured.rate,
            "certs/s",
            baseline=certificate_mode.rate,
            baseline_name="certificate mode",
            target="ratio >= 5",
            ok=measured.rate >= 5 * certificate_mode.rate,
        ),
        Result(
            BENCH,
            "calls per certificate, group-policy mode (on the wire)",
            measured.calls_per_certificate,
            "calls",
            baseline=4.0,
            baseline_name="floor",
            target="ratio == 1",
            ok=measured.calls_per_certificate == 4.0,
        ),
    ]


def bench_ceiling(count: int) -> list[Result]:
    quotas = {op: rate * 30 for op, rate in _defaults().items()}
    certs = _certs(count, "ceiling-")
    ours = run_import(certs, quotas, _options(), CERTIFICATE_MODE_CALLS)
    raw = run_raw_boto3(certs, quotas, ours.workers)
    return [
        Result(
            BENCH,
            f"one-process ceiling at x30 default quotas ({count:,} certs, {ours.workers} workers)",
            ours.rate,
            "certs/s",
            baseline=raw.rate,
            baseline_name="raw boto3, same calls and workers",
            target="ratio >= 0.95",
            ok=ours.rate >= 0.95 * raw.rate and ours.failed == 0,
            note=f"ours: {_note(ours)}; raw boto3: {raw.imported} done, {raw.failed} failed, "
            f"{raw.calls_per_certificate:.2f} calls/cert on the wire, {raw.throttled} throttled, "
            f"{raw.seconds:.1f} s; quota allows 300 certs/s",
        ),
        Result(
            BENCH,
            "calls per certificate, certificate mode (on the wire, x30 quotas)",
            ours.calls_per_certificate,
            "calls",
            baseline=5.0,
            baseline_name="floor",
            target="ratio == 1",
            ok=ours.calls_per_certificate == 5.0,
        ),
    ]


def _note(m: Measured) -> str:
    return (
        f"{m.imported} imported, {m.failed} failed, {m.throttled} throttled, {m.seconds:.1f} s, "
        f"{m.calls_per_certificate:.2f} calls/cert on the wire; plan: {m.plan}"
    )


def _certs(count: int, prefix: str) -> list[Any]:
    from thingpress_core.certificates.generate import generate_device_certificates

    return list(generate_device_certificates(count, cn_prefix=prefix))


def run(quick: bool) -> list[Result]:
    with _fake_aws_environment():
        results, certificate_mode = bench_certificate_mode(120 if quick else 450)
        results += bench_group_policy_mode(600 if quick else 3000, certificate_mode)
        results += bench_ceiling(1200 if quick else 6000)
    return results


if __name__ == "__main__":
    for result in run(quick="--quick" in sys.argv):
        print(result)
