"""The benchmarks' IoT stand-in answers botocore in AWS's shapes, keeps the state checks need, and throttles.

Runs the server on a thread (``in_process=True``) with no latency; the throttle test uses a
quota of one call per second and two calls in a row, so it needs no sleeping.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from _iot_standin import IoTStandIn
from thingpress_core.certificates.generate import generate_device_certificates
from thingpress_core.errors import ThrottledError


@pytest.fixture
def standin() -> Iterator[IoTStandIn]:
    quotas = {"iot.AttachPolicy": 1.0, "iot.RegisterCertificateWithoutCA": 100.0}
    with IoTStandIn(
        quotas=quotas, latency=0.0, policies=["P"], groups=["G"], thing_types=["T"], in_process=True
    ) as server:
        yield server


@pytest.fixture
def iot(standin: IoTStandIn) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(retries={"mode": "standard", "total_max_attempts": 1})
    return boto3.client("iot", endpoint_url=standin.endpoint_url, region_name="us-east-1", config=config)


def test_the_import_calls_parse_and_the_state_holds(iot: Any, standin: IoTStandIn) -> None:
    cert = next(iter(generate_device_certificates(1)))
    registered = iot.register_certificate_without_ca(certificatePem=cert.pem, status="ACTIVE")
    assert registered["certificateId"] == cert.certificate_id
    arn = registered["certificateArn"]
    with pytest.raises(iot.exceptions.ResourceAlreadyExistsException) as again:
        iot.register_certificate_without_ca(certificatePem=cert.pem, status="ACTIVE")
    assert again.value.response["resourceId"] == cert.certificate_id
    assert iot.create_thing(thingName="dev-1", thingTypeName="T")["thingArn"].endswith("thing/dev-1")
    iot.create_thing(thingName="dev-1", thingTypeName="T")  # identical: fine
    iot.attach_thing_principal(thingName="dev-1", principal=arn, thingPrincipalType="EXCLUSIVE_THING")
    iot.attach_policy(policyName="P", target=arn)
    iot.add_thing_to_thing_group(thingGroupName="G", thingName="dev-1")
    assert iot.list_principal_things(principal=arn)["things"] == ["dev-1"]
    assert iot.describe_thing(thingName="dev-1")["thingTypeName"] == "T"
    assert iot.list_attached_policies(target=arn)["policies"][0]["policyName"] == "P"
    assert iot.list_thing_groups_for_thing(thingName="dev-1")["thingGroups"][0]["groupName"] == "G"
    assert iot.get_policy(policyName="P")["policyName"] == "P"
    assert iot.describe_thing_group(thingGroupName="G")["thingGroupName"] == "G"
    assert iot.describe_thing_type(thingTypeName="T")["thingTypeName"] == "T"
    assert standin.counts()["answered"]["RegisterCertificateWithoutCA"] == 2


def test_conflicts_and_missing_resources_answer_like_aws(iot: Any) -> None:
    iot.create_thing(thingName="dev-2", thingTypeName="T")
    with pytest.raises(iot.exceptions.ResourceAlreadyExistsException):
        iot.create_thing(thingName="dev-2")
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.describe_thing(thingName="nobody")
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.get_policy(policyName="missing")
    iot.create_thing(thingName="dev-3")
    arn = "arn:aws:iot:us-east-1:123456789012:cert/" + "ab" * 32
    iot.attach_thing_principal(thingName="dev-2", principal=arn, thingPrincipalType="EXCLUSIVE_THING")
    with pytest.raises(iot.exceptions.InvalidRequestException):
        iot.attach_thing_principal(thingName="dev-3", principal=arn)


def test_over_the_quota_is_an_aws_throttle(iot: Any, standin: IoTStandIn) -> None:
    arn = "arn:aws:iot:us-east-1:123456789012:cert/" + "cd" * 32
    iot.attach_policy(policyName="P", target=arn)
    with pytest.raises(iot.exceptions.ThrottlingException) as caught:
        iot.attach_policy(policyName="P", target=arn)
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert standin.counts()["throttled"] == {"AttachPolicy": 1}


def test_the_project_maps_its_throttle_and_reads_its_quotas(standin: IoTStandIn) -> None:
    from thingpress_core.clients import ClientFactory
    from thingpress_core.resilience import RateLimiter
    from thingpress_core.services import IoTService, QuotaReader
    from thingpress_core.settings import ThingpressSettings

    settings = ThingpressSettings(
        region="us-east-1", account_id="123456789012", endpoint_url=standin.endpoint_url, total_max_attempts=1
    )
    factory = ClientFactory(settings)
    found = QuotaReader(factory).read(["iot.AttachPolicy", "iot.RegisterCertificateWithoutCA"])
    assert not found.fell_back
    assert found.account_rate_limits == {"iot.AttachPolicy": 1.0, "iot.RegisterCertificateWithoutCA": 100.0}
    service = IoTService(factory, limiter=RateLimiter({}))
    arn = "arn:aws:iot:us-east-1:123456789012:cert/" + "ef" * 32
    service.attach_policy("P", arn)
    with pytest.raises(ThrottledError):
        service.attach_policy("P", arn)
