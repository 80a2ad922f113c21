"""Type-checked only (mypy --strict, pyright), never run: the core public API keeps its types."""

from __future__ import annotations

from typing import TYPE_CHECKING

import boto3

from thingpress_core import ClientFactory, ThingpressSettings, __version__
from thingpress_core.errors import (
    AccessDeniedError,
    AwsServiceError,
    CircuitOpenError,
    ConfigurationError,
    ResourceConflictError,
    ThingpressError,
    ThrottledError,
)
from thingpress_core.resilience import CircuitBreakerRegistry, CircuitBreakerSettings, ResilienceSettings
from thingpress_core.services import map_aws_error
from thingpress_core.settings import partition_for

if TYPE_CHECKING:
    from mypy_boto3_iot import IoTClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient


def settings_api() -> None:
    s = ThingpressSettings(region="eu-west-1", total_max_attempts=3, retry_mode="adaptive")
    region: str | None = s.region
    attempts: int = s.total_max_attempts
    partition: str = s.partition
    share: float = s.resilience.quota_share
    print(region, attempts, partition, share, __version__)
    nested = ThingpressSettings(
        resilience=ResilienceSettings(
            quota_share=0.5, breaker_defaults=CircuitBreakerSettings(failure_threshold=3)
        )
    )
    loaded: ThingpressSettings = ThingpressSettings.model_validate({"region": "us-isob-east-1"})
    parsed: ThingpressSettings = ThingpressSettings.model_validate_json('{"read_timeout": 12}')
    standalone: ResilienceSettings = ResilienceSettings.model_validate({"quota_share": 0.1})
    iso: str = partition_for("us-isob-east-1")
    print(nested, loaded, parsed, standalone, iso, partition_for(None))
    # a registry takes either settings object
    registries = [CircuitBreakerRegistry(s), CircuitBreakerRegistry(s.resilience), CircuitBreakerRegistry()]
    print(registries)
    try:
        ThingpressSettings(read_timeout=0)
    except ConfigurationError as exc:
        variable: str | None = exc.variable
        print(variable, exc.value, exc.__cause__)


def factory_api() -> None:
    factory = ClientFactory(ThingpressSettings(), session=boto3.Session())
    iot: IoTClient = factory.iot()
    s3: S3Client = factory.client("s3")
    sqs: SQSClient = factory.sqs()
    account: str = factory.account_id()
    region: str = factory.region
    print(iot, s3, sqs, account, region, factory.settings.read_timeout)


def errors_api(exc: BaseException) -> str:
    mapped: AwsServiceError = map_aws_error(exc, service="iot", operation="CreateThing")
    if isinstance(mapped, ThrottledError | AccessDeniedError):
        return mapped.name
    if isinstance(mapped, ResourceConflictError):
        rid: str | None = mapped.resource_id
        return rid or ""
    err: ThingpressError = ConfigurationError("bad", variable="THINGPRESS_REGION", value="x")
    open_error = CircuitOpenError("open", name="iot.CreateThing", retry_after=1.5)
    later: float | None = open_error.retry_after
    return f"{err} {later} {mapped.code} {mapped.http_status} {mapped.request_id}"


def sandbox_api() -> None:
    from thingpress_core.sandbox import Sandbox, SandboxThing

    with Sandbox() as box:
        box.create_resources(policies=["P"], thing_groups=["G"], thing_type="T")
        factory: ClientFactory = box.factory
        url: str | None = box.endpoint_url
        things: list[SandboxThing] = box.things(limit=5)
        counts: dict[str, int] = box.counts()
        print(factory, url, [t.certificate_ids for t in things], counts["things"])
        box.reset()
