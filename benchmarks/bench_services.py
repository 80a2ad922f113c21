"""Services: IoT calls per certificate, and the facades' CPU overhead over raw boto3.

1. ``calls per certificate``: one certificate with one policy, one group and a thing type,
   imported through `IoTService` against in-process moto, counted by the facade's own
   `CallStats`. The floor is 5; the old Thingpress layer makes 11 (two DescribeCertificate,
   two DescribeThing, ListThingPrincipals and UpdateThing on top of the five), which is the
   baseline here.
2. ``CPU per certificate``: the same five operations for N fresh certificates through the
   facades, and through the same boto3 client called directly, interleaved in one run
   against the same moto. The ratio is the facades' overhead (rate limiter, breaker, error
   mapping, counters, result models). Rate limits are off on both sides: the benchmark
   measures CPU, not quota pacing.
3. ``call path per call``: the call path alone around a no-op method (no boto3, no moto),
   next to calling the method directly: the fixed cost each AWS call pays.
"""

from __future__ import annotations

import gc
import json
import time
from typing import Any

from _harness import Result

BENCH = "services"
OLD_LAYER_CALLS = 11
POLICY = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}]}
)


def _setup(factory: Any) -> None:
    client = factory.iot()
    client.create_thing_type(thingTypeName="sensor")
    client.create_thing_group(thingGroupName="fleet")
    client.create_policy(policyName="device-policy", policyDocument=POLICY)


def _import_facade(iot: Any, cert: Any) -> None:
    reg = iot.register_certificate(cert)
    name = cert.common_name
    iot.ensure_thing(name, thing_type="sensor")
    iot.attach_thing_principal(name, reg.certificate_arn)
    iot.attach_policy("device-policy", reg.certificate_arn)
    iot.add_thing_to_group(name, "fleet")


def _import_direct(client: Any, cert: Any) -> None:
    from botocore.exceptions import ClientError

    try:
        arn = client.register_certificate_without_ca(certificatePem=cert.pem, status="ACTIVE")[
            "certificateArn"
        ]
    except ClientError as exc:  # pragma: no cover - fresh certificates only
        arn = exc.response["resourceArn"]
    name = cert.common_name
    client.create_thing(thingName=name, thingTypeName="sensor")
    client.attach_thing_principal(thingName=name, principal=arn)
    client.attach_policy(policyName="device-policy", target=arn)
    client.add_thing_to_thing_group(thingGroupName="fleet", thingName=name)


def _count_calls() -> Result:
    from moto import mock_aws

    from thingpress_core.certificates.generate import generate_device_certificates
    from thingpress_core.clients import ClientFactory
    from thingpress_core.resilience import RateLimiter
    from thingpress_core.services import IoTService
    from thingpress_core.settings import ThingpressSettings

    with mock_aws(config={"iot": {"use_valid_cert": True}}):
        factory = ClientFactory(ThingpressSettings(region="us-east-1", account_id="123456789012"))
        _setup(factory)
        iot = IoTService(factory, limiter=RateLimiter({}))
        _import_facade(iot, next(generate_device_certificates(1, cn_prefix="count-")))
        stats = iot.stats()
    calls = stats.total_calls
    return Result(
        benchmark=BENCH,
        name="IoT calls per certificate (1 policy, 1 group, thing type)",
        value=float(calls),
        unit="calls",
        baseline=float(OLD_LAYER_CALLS),
        baseline_name="old Thingpress layer (11 calls)",
        target="value == 5 (the floor)",
        ok=calls == 5,
        note=", ".join(f"{k.removeprefix('iot.')}={v}" for k, v in stats.calls.items()),
    )


def _cpu_per_certificate(quick: bool) -> Result:
    import statistics

    from moto import mock_aws

    from thingpress_core.certificates.generate import generate_device_certificates
    from thingpress_core.clients import ClientFactory
    from thingpress_core.resilience import RateLimiter
    from thingpress_core.services import IoTService
    from thingpress_core.settings import ThingpressSettings

    pairs = 60 if quick else 400
    certs = list(generate_device_certificates(pairs * 2, cn_prefix="bench-"))
    facade_times: list[float] = []
    direct_times: list[float] = []
    clock = time.process_time
    with mock_aws(config={"iot": {"use_valid_cert": True}}):
        factory = ClientFactory(ThingpressSettings(region="us-east-1", account_id="123456789012"))
        _setup(factory)
        client = factory.iot()
        iot = IoTService(factory, limiter=RateLimiter({}))
        # warm both paths (botocore loads models and builds handlers on first use)
        warm = list(generate_device_certificates(2, cn_prefix="warm-"))
        _import_direct(client, warm[0])
        _import_facade(iot, warm[1])
        gc.collect()
        # Alternate certificate by certificate (and which side goes first), so moto's growing
        # state and any drift weigh on both sides alike; compare medians, robust to GC pauses.
        for i in range(pairs):
            a, b = certs[2 * i], certs[2 * i + 1]
            if i % 2:
                start = clock()
                _import_facade(iot, a)
                middle = clock()
                _import_direct(client, b)
                end = clock()
                facade_times.append(middle - start)
                direct_times.append(end - middle)
            else:
                start = clock()
                _import_direct(client, a)
                middle = clock()
                _import_facade(iot, b)
                end = clock()
                direct_times.append(middle - start)
                facade_times.append(end - middle)
    facade = statistics.median(facade_times)
    direct = statistics.median(direct_times)
    return Result(
        benchmark=BENCH,
        name="CPU per certificate through the facades (moto)",
        value=facade * 1000,
        unit="ms",
        baseline=direct * 1000,
        baseline_name="boto3 client called directly",
        target="ratio <= 1.10",
        ok=facade / direct <= 1.10,
        note=f"median of {pairs} certificates per side, alternating; 5 calls each",
    )


def _call_path_overhead(quick: bool) -> Result:
    import logging

    from thingpress_core.resilience import CircuitBreakerRegistry, RateLimiter
    from thingpress_core.services._path import CallCounter, CallPath

    path = CallPath(
        "iot",
        registry=CircuitBreakerRegistry(),
        limiter=RateLimiter({}),
        counter=CallCounter(),
        logger=logging.getLogger("thingpress_core.services.iot"),
    )
    answer = {"thingArn": "arn", "ResponseMetadata": {"RetryAttempts": 0}}

    def method(**_: Any) -> dict[str, Any]:
        return answer

    params = {"thingName": "t"}
    n = 20_000 if quick else 200_000

    def through_path() -> None:
        call = path.call
        for _ in range(n):
            call("CreateThing", method, params)

    def direct() -> None:
        for _ in range(n):
            method(**params)

    def best(fn: Any) -> float:
        times = []
        for _ in range(3):
            gc.collect()
            start = time.process_time()
            fn()
            times.append(time.process_time() - start)
        return min(times) / n

    through_path()  # warm
    with_path = best(through_path)
    without = best(direct)
    return Result(
        benchmark=BENCH,
        name="call path cost per call (no-op method)",
        value=with_path * 1e6,
        unit="µs",
        baseline=without * 1e6,
        baseline_name="the method called directly",
        note="fixed CPU each AWS call pays for limiter + breaker + mapping + counters",
    )


def run(quick: bool) -> list[Result]:
    """Measure; ``quick`` shrinks the certificate counts."""
    import logging

    logger = logging.getLogger("thingpress_core")
    level = logger.level
    logger.setLevel(logging.ERROR)  # the facades log expected answers; keep the table clean
    try:
        return [_count_calls(), _cpu_per_certificate(quick), _call_path_overhead(quick)]
    finally:
        logger.setLevel(level)
