"""`QuotaReader`: the account's IoT quotas from the Service Quotas API, or the defaults with one warning.

moto has no IoT Core quotas: its Service Quotas backend implements only
ListAWSDefaultServiceQuotas and GetServiceQuota, for the ``vpc`` service code, and not
ListServiceQuotas at all. So these tests answer a real botocore ``service-quotas`` client
with botocore's ``Stubber`` (its answers are validated against the API's shapes, and the
calls still take the project's call path: limiter, breaker, error mapping, counters). One test
runs against moto itself to show the fallback when the service cannot answer.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.stub import Stubber

from thingpress_core.clients import ClientFactory
from thingpress_core.resilience import DEFAULT_RATE_LIMITS, RateLimiter, ResilienceSettings
from thingpress_core.services import QUOTA_CODES, AccountQuotas, QuotaReader
from thingpress_core.settings import ThingpressSettings

SQ_ARN = "arn:aws:servicequotas:us-east-1:123456789012:iotcore/"
SERVICE = {"ServiceCode": "iotcore"}
PAGE = {"ServiceCode": "iotcore", "MaxResults": 100}
CERTIFICATE_MODE = {
    "iot.RegisterCertificateWithoutCA": 1.0,
    "iot.CreateThing": 1.0,
    "iot.AttachThingPrincipal": 1.0,
    "iot.AttachPolicy": 1.0,
    "iot.AddThingToThingGroup": 1.0,
}


def quota(
    operation: str, value: float, *, code: str | None = None, period: tuple[int, str] | None = (1, "SECOND")
) -> dict[str, Any]:
    """One quota as Service Quotas lists it; ``code`` defaults to the real code of ``operation``."""
    code = code or QUOTA_CODES[f"iot.{operation}"]
    entry: dict[str, Any] = {
        "ServiceCode": "iotcore",
        "ServiceName": "AWS IoT Core",
        "QuotaArn": SQ_ARN + code,
        "QuotaCode": code,
        "QuotaName": f"{operation} API TPS",
        "Value": value,
        "Unit": "None",
        "Adjustable": True,
        "GlobalQuota": False,
    }
    if period is not None:
        entry["Period"] = {"PeriodValue": period[0], "PeriodUnit": period[1]}
    return entry


@pytest.fixture
def client() -> Any:
    import boto3

    return boto3.client("service-quotas", region_name="us-east-1")


@pytest.fixture
def stub(client: Any) -> Iterator[Stubber]:
    with Stubber(client) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def reader(client: Any, **settings: Any) -> QuotaReader:
    factory = ClientFactory(ThingpressSettings(region="us-east-1", account_id="123456789012", **settings))
    return QuotaReader(factory, client=client)


def test_applied_quotas_are_paged_matched_by_code_and_completed_from_the_defaults(
    client: Any, stub: Stubber
) -> None:
    first = [quota("RegisterCertificateWithoutCA", 100.0), quota("CreateThing", 100.0)]
    second = [quota("AttachThingPrincipal", 100.0), quota("AddThingToThingGroup", 100.0)]
    stub.add_response("list_service_quotas", {"Quotas": first, "NextToken": "page-2"}, PAGE)
    stub.add_response("list_service_quotas", {"Quotas": second}, {**PAGE, "NextToken": "page-2"})
    stub.add_response("list_aws_default_service_quotas", {"Quotas": [quota("AttachPolicy", 15.0)]}, PAGE)
    service = reader(client)

    found = service.read(CERTIFICATE_MODE)

    assert not found.fell_back
    registration = found.quotas["iot.RegisterCertificateWithoutCA"]
    assert (registration.rate, registration.source, registration.matched_by) == (100.0, "applied", "code")
    assert registration.quota_code == "L-4671C7C8"
    assert registration.quota_name == "RegisterCertificateWithoutCA API TPS"
    policy = found.quotas["iot.AttachPolicy"]
    assert (policy.rate, policy.source) == (15.0, "default")
    assert found.account_rate_limits["iot.RegisterCertificateWithoutCA"] == 100.0
    # two pages of one listing and one of the other, each a call on the call path
    assert service.stats().calls == {
        "service-quotas.ListAWSDefaultServiceQuotas": 1,
        "service-quotas.ListServiceQuotas": 2,
    }


def test_the_default_listing_is_not_asked_when_the_applied_one_has_everything(
    client: Any, stub: Stubber
) -> None:
    applied = [quota(op.split(".")[1], 50.0) for op in CERTIFICATE_MODE]
    stub.add_response("list_service_quotas", {"Quotas": applied}, PAGE)
    found = reader(client).read(CERTIFICATE_MODE)
    assert {q.source for q in found.quotas.values()} == {"applied"}
    # the stub fixture fails the test on any call it was not given an answer for


def test_a_quota_without_a_known_code_is_matched_by_name_and_near_names_are_not(
    client: Any, stub: Stubber
) -> None:
    applied = [
        quota("CreateThing", 400.0, code="L-00000001"),  # renumbered: found by its name
        quota("ListThingPrincipalsV2", 80.0, code="L-00ACEBE9"),  # not ListThingPrincipals
    ]
    stub.add_response("list_service_quotas", {"Quotas": applied}, PAGE)
    stub.add_response("list_aws_default_service_quotas", {"Quotas": []}, PAGE)
    found = reader(client).read(["iot.CreateThing", "iot.ListThingPrincipals"])
    create = found.quotas["iot.CreateThing"]
    assert (create.rate, create.matched_by, create.quota_code) == (400.0, "name", "L-00000001")
    principals = found.quotas["iot.ListThingPrincipals"]
    assert principals.source == "builtin"
    assert principals.rate == DEFAULT_RATE_LIMITS["iot.ListThingPrincipals"]
    assert "  iot.ListThingPrincipals 10/s (built-in default): not found in the account" in found.lines()


def test_a_per_minute_quota_becomes_a_rate_per_second_and_a_quota_without_value_is_skipped(
    client: Any, stub: Stubber
) -> None:
    no_value = quota("AttachPolicy", 1.0)
    del no_value["Value"]
    no_value["ErrorReason"] = {"ErrorCode": "DEPENDENCY_ACCESS_DENIED_ERROR", "ErrorMessage": "denied"}
    applied = [quota("CreateThing", 600.0, period=(1, "MINUTE")), no_value]
    stub.add_response("list_service_quotas", {"Quotas": applied}, PAGE)
    stub.add_response("list_aws_default_service_quotas", {"Quotas": [quota("AttachPolicy", 30.0)]}, PAGE)
    found = reader(client).read(["iot.CreateThing", "iot.AttachPolicy"])
    create = found.quotas["iot.CreateThing"]
    assert (create.rate, create.value, create.period_seconds) == (10.0, 600.0, 60.0)
    policy = found.quotas["iot.AttachPolicy"]
    assert (policy.rate, policy.source) == (30.0, "default")


def test_rate_limits_are_the_quota_times_the_share_and_apply_lets_the_limiter_take_the_share(
    client: Any, stub: Stubber
) -> None:
    stub.add_response("list_service_quotas", {"Quotas": [quota("RegisterCertificateWithoutCA", 100.0)]}, PAGE)
    stub.add_response("list_aws_default_service_quotas", {"Quotas": []}, PAGE)
    service = reader(client, resilience=ResilienceSettings(quota_share=0.25))
    found = service.read(["iot.RegisterCertificateWithoutCA", "iot.AttachPolicy"])

    assert found.rate_limits["iot.RegisterCertificateWithoutCA"] == 25.0
    assert found.rate_limits["iot.AttachPolicy"] == DEFAULT_RATE_LIMITS["iot.AttachPolicy"] * 0.25
    applied = found.apply(service.settings.resilience)
    assert applied.rate_limits["iot.RegisterCertificateWithoutCA"] == 100.0
    assert applied.effective_rate_limits()["iot.RegisterCertificateWithoutCA"] == 25.0
    assert applied.rate_limits["iot.CreateThing"] == DEFAULT_RATE_LIMITS["iot.CreateThing"]
    assert RateLimiter(applied).rate("iot.RegisterCertificateWithoutCA") == pytest.approx(25.0)


def test_the_plan_follows_the_quotas_found(client: Any, stub: Stubber) -> None:
    applied = [quota(op.split(".")[1], 100.0) for op in CERTIFICATE_MODE if op != "iot.AttachPolicy"]
    stub.add_response("list_service_quotas", {"Quotas": applied}, PAGE)
    stub.add_response("list_aws_default_service_quotas", {"Quotas": [quota("AttachPolicy", 15.0)]}, PAGE)
    found = reader(client).read(CERTIFICATE_MODE)
    plan = found.plan(CERTIFICATE_MODE, latency=0.05)
    assert plan.binding_operation == "iot.AttachPolicy"
    assert plan.quota_certificates_per_second == 15.0


@pytest.mark.parametrize(
    ("code", "status"),
    [("AccessDeniedException", 400), ("ThrottlingException", 400), ("ServiceException", 500)],
)
def test_any_error_falls_back_to_the_defaults_with_one_warning(
    client: Any, stub: Stubber, caplog: pytest.LogCaptureFixture, code: str, status: int
) -> None:
    stub.add_client_error("list_service_quotas", code, "not for you", http_status_code=status)
    caplog.set_level(logging.DEBUG, logger="thingpress_core")

    found = reader(client).read(CERTIFICATE_MODE)

    assert found.fell_back
    assert found.reason is not None
    assert code in found.reason
    assert found.rate_limits == {op: DEFAULT_RATE_LIMITS[op] for op in CERTIFICATE_MODE}
    assert {q.source for q in found.quotas.values()} == {"builtin"}
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "built-in defaults" in warnings[0].getMessage()
    assert found.lines()[0].startswith("IoT quotas: using the built-in defaults")
    # a fallback changes nothing
    settings = ResilienceSettings()
    assert found.apply(settings) is settings


def test_moto_cannot_list_iot_quotas_so_the_reader_falls_back(caplog: pytest.LogCaptureFixture) -> None:
    from moto import mock_aws

    with mock_aws():
        factory = ClientFactory(ThingpressSettings(region="us-east-1", account_id="123456789012"))
        found = QuotaReader(factory).read(["iot.AttachPolicy"])  # the client is built from the factory
    assert found.fell_back
    assert found.quotas["iot.AttachPolicy"].rate == DEFAULT_RATE_LIMITS["iot.AttachPolicy"]
    assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) == 1


def test_the_default_operations_cover_the_limited_iot_operations_and_the_known_codes() -> None:
    import boto3

    client = boto3.client("service-quotas", region_name="us-east-1")
    with Stubber(client) as stubber:
        stubber.add_client_error("list_service_quotas", "AccessDeniedException", "no")
        found = reader(client).read()
    expected = {op for op in DEFAULT_RATE_LIMITS if op.startswith("iot.")} | set(QUOTA_CODES)
    assert set(found.quotas) == expected


def test_operations_must_be_iot_operations() -> None:
    from thingpress_core.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="operations"):
        QuotaReader(client=object()).read(["sqs.SendMessage"])


def test_lines_say_what_was_found() -> None:
    from thingpress_core.services import OperationQuota

    found = AccountQuotas(
        quotas={
            "iot.AttachPolicy": OperationQuota(
                operation="iot.AttachPolicy",
                rate=15.0,
                source="applied",
                quota_code="L-CA7D4E3E",
                quota_name="AttachPolicy API TPS",
                value=15.0,
                matched_by="code",
            )
        },
        quota_share=0.5,
    )
    assert found.lines() == [
        "IoT quotas read from the account: 1 of 1 operations found; this process uses 0.5 of each",
        "  iot.AttachPolicy 15/s (applied, L-CA7D4E3E, matched by code)",
    ]
