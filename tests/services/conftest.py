"""Facades on in-process moto, with no rate limits and botocore retries that never sleep."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from thingpress_core.certificates import DeviceCertificate
    from thingpress_core.clients import ClientFactory
    from thingpress_core.services import IoTService, S3Service, SQSService
    from thingpress_core.testing import FaultInjector


@pytest.fixture
def fast_factory(aws: None) -> ClientFactory:
    """Like `factory`, with three attempts per call so injected faults resolve quickly."""
    from thingpress_core.clients import ClientFactory
    from thingpress_core.settings import ThingpressSettings

    return ClientFactory(
        ThingpressSettings(region="us-east-1", account_id="123456789012", total_max_attempts=3)
    )


@pytest.fixture
def faults(fast_factory: ClientFactory) -> Iterator[FaultInjector]:
    """A seeded injector on `fast_factory` whose botocore backoff does not sleep."""
    from thingpress_core.testing import FaultInjector

    with FaultInjector(fast_factory, seed=1, fast_retries=True) as injector:
        yield injector


@pytest.fixture
def iot(fast_factory: ClientFactory) -> IoTService:
    from thingpress_core.resilience import RateLimiter
    from thingpress_core.services import IoTService

    return IoTService(fast_factory, limiter=RateLimiter({}))


@pytest.fixture
def s3(iot: IoTService) -> S3Service:
    from thingpress_core.services import S3Service

    return S3Service(iot.factory, registry=iot.registry, limiter=iot.limiter)


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def sqs(iot: IoTService, sleeps: list[float]) -> SQSService:
    from thingpress_core.services import SQSService

    return SQSService(iot.factory, registry=iot.registry, limiter=iot.limiter, sleep=sleeps.append, seed=3)


@pytest.fixture(scope="session")
def certs() -> list[DeviceCertificate]:
    from thingpress_core.certificates.generate import generate_device_certificates

    return list(generate_device_certificates(4))


@pytest.fixture
def iot_setup(fast_factory: ClientFactory) -> None:
    """A thing type ``sensor``, a group ``fleet`` and a policy ``device-policy`` in moto."""
    client = fast_factory.iot()
    client.create_thing_type(thingTypeName="sensor")
    client.create_thing_type(thingTypeName="gateway")
    client.create_thing_group(thingGroupName="fleet")
    client.create_policy(
        policyName="device-policy",
        policyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}],
            }
        ),
    )
