"""IoTService against moto (use_valid_cert), with injected faults for what moto cannot do."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pytest

from thingpress_core.errors import (
    AccessDeniedError,
    AwsServiceError,
    CircuitOpenError,
    InvalidRequestError,
    LimitExceededError,
    ResourceNotFoundError,
    ServiceUnavailableError,
    ThrottledError,
)
from thingpress_core.resilience import CircuitBreakerRegistry, CircuitState, RateLimiter, ResilienceSettings
from thingpress_core.services import (
    CertificateDescription,
    CertificateRegistration,
    IoTService,
    PolicyInfo,
    Thing,
    ThingGroupInfo,
    ThingTypeInfo,
)

if TYPE_CHECKING:
    from thingpress_core.certificates import DeviceCertificate
    from thingpress_core.clients import ClientFactory
    from thingpress_core.testing import FaultInjector

ACCOUNT = "123456789012"


def arn_of(cert: DeviceCertificate) -> str:
    return f"arn:aws:iot:us-east-1:{ACCOUNT}:cert/{cert.certificate_id}"


# ------------------------------------------------------------------------ register


def test_register_returns_der_sha256_id_and_arn(iot: IoTService, certs: list[DeviceCertificate]) -> None:
    reg = iot.register_certificate(certs[0])
    assert reg == CertificateRegistration(
        certificate_id=certs[0].certificate_id, certificate_arn=arn_of(certs[0]), created=True
    )
    assert iot.describe_certificate(reg.certificate_id).status == "ACTIVE"


def test_register_twice_gives_same_id_and_arn_not_created(
    iot: IoTService, certs: list[DeviceCertificate]
) -> None:
    first = iot.register_certificate(certs[0])
    second = iot.register_certificate(certs[0])
    assert (second.certificate_id, second.certificate_arn) == (first.certificate_id, first.certificate_arn)
    assert first.created is True
    assert second.created is False
    stats = iot.stats()
    assert stats.calls == {"iot.RegisterCertificateWithoutCA": 2}
    assert stats.failures == {}  # the 409 is an expected answer


def test_register_passes_status_explicitly(
    iot: IoTService, certs: list[DeviceCertificate], fast_factory: ClientFactory
) -> None:
    sent: list[dict[str, object]] = []
    fast_factory.iot().meta.events.register(
        "provide-client-params.iot.RegisterCertificateWithoutCA",
        lambda params, **_: sent.append(dict(params)),
    )
    iot.register_certificate(certs[0])
    reg = iot.register_certificate(certs[1], status="INACTIVE")
    # the default is sent too, not left to the service's own default
    assert [params["status"] for params in sent] == ["ACTIVE", "INACTIVE"]
    assert iot.describe_certificate(reg.certificate_id).status == "INACTIVE"


def test_register_conflict_without_resource_fields_computes_them(
    iot: IoTService, faults: FaultInjector, certs: list[DeviceCertificate]
) -> None:
    faults.error(
        "iot.RegisterCertificateWithoutCA", code="ResourceAlreadyExistsException", status=409, times=1
    )
    reg = iot.register_certificate(certs[2])
    assert reg == CertificateRegistration(
        certificate_id=certs[2].certificate_id, certificate_arn=arn_of(certs[2]), created=False
    )


def test_register_conflict_takes_resource_id_from_the_error(
    iot: IoTService, faults: FaultInjector, certs: list[DeviceCertificate]
) -> None:
    faults.error(
        "iot.RegisterCertificateWithoutCA",
        code="ResourceAlreadyExistsException",
        status=409,
        fields={"resourceId": "a" * 64, "resourceArn": "arn:aws:iot:us-east-1:123456789012:cert/" + "a" * 64},
        times=1,
    )
    reg = iot.register_certificate(certs[2])
    assert reg.certificate_id == "a" * 64
    assert reg.certificate_arn.endswith("cert/" + "a" * 64)
    assert reg.created is False


def test_register_rejects_unknown_status_before_any_call(
    iot: IoTService, certs: list[DeviceCertificate]
) -> None:
    with pytest.raises(InvalidRequestError, match="status"):
        iot.register_certificate(certs[0], status="BOGUS")  # type: ignore[arg-type]
    assert iot.stats().total_calls == 0


def test_register_never_logs_the_certificate_body(
    iot: IoTService, certs: list[DeviceCertificate], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="thingpress_core")
    iot.register_certificate(certs[0])
    iot.register_certificate(certs[0])
    text = caplog.text
    assert "BEGIN CERTIFICATE" not in text
    body_line = certs[0].pem.splitlines()[1]
    assert body_line not in text
    already = [r for r in caplog.records if "registered already" in r.getMessage()]
    assert already
    assert already[0].levelno == logging.INFO
    assert getattr(already[0], "certificate_id", None) == certs[0].certificate_id
    assert getattr(already[0], "operation", None) == "iot.RegisterCertificateWithoutCA"


# -------------------------------------------------------------------------- things


@pytest.mark.usefixtures("iot_setup")
def test_ensure_thing_creates_with_type_and_attributes(iot: IoTService, fast_factory: ClientFactory) -> None:
    thing = iot.ensure_thing("device-1", thing_type="sensor", attributes={"vendor": "acme"})
    assert thing == Thing(
        name="device-1",
        arn=f"arn:aws:iot:us-east-1:{ACCOUNT}:thing/device-1",
        thing_type="sensor",
        created=True,
        updated=False,
    )
    described = fast_factory.iot().describe_thing(thingName="device-1")
    assert described["thingTypeName"] == "sensor"
    assert described["attributes"] == {"vendor": "acme"}
    assert iot.stats().calls == {"iot.CreateThing": 1}


@pytest.mark.usefixtures("iot_setup")
def test_ensure_thing_twice_is_one_call_each_and_same_arn(iot: IoTService) -> None:
    first = iot.ensure_thing("device-1", thing_type="sensor")
    second = iot.ensure_thing("device-1", thing_type="sensor")
    assert second.arn == first.arn
    # AWS answers an identical repeat like a creation; only a conflict reads as "existed".
    assert second.updated is False
    assert iot.stats().calls == {"iot.CreateThing": 2}


@pytest.mark.usefixtures("iot_setup")
def test_ensure_thing_with_another_type_updates_it(
    iot: IoTService, faults: FaultInjector, fast_factory: ClientFactory
) -> None:
    iot.ensure_thing("device-1", thing_type="sensor")
    # moto overwrites on a conflicting CreateThing; AWS answers 409. Inject AWS's answer.
    faults.error("iot.CreateThing", code="ResourceAlreadyExistsException", status=409, times=1)
    thing = iot.ensure_thing("device-1", thing_type="gateway", attributes={"rev": "2"})
    assert thing.created is False
    assert thing.updated is True
    assert thing.thing_type == "gateway"
    assert thing.arn == f"arn:aws:iot:us-east-1:{ACCOUNT}:thing/device-1"
    described = fast_factory.iot().describe_thing(thingName="device-1")
    assert described["thingTypeName"] == "gateway"
    assert described["attributes"] == {"rev": "2"}
    assert iot.stats().calls == {"iot.CreateThing": 2, "iot.UpdateThing": 1}
    assert iot.stats().failures == {}


@pytest.mark.usefixtures("iot_setup")
def test_ensure_thing_conflict_with_nothing_to_change_makes_no_update(
    iot: IoTService, faults: FaultInjector
) -> None:
    iot.ensure_thing("device-1", thing_type="sensor")
    faults.error("iot.CreateThing", code="ResourceAlreadyExistsException", status=409, times=1)
    thing = iot.ensure_thing("device-1")
    assert (thing.created, thing.updated) == (False, False)
    assert iot.stats().calls == {"iot.CreateThing": 2}


@pytest.mark.parametrize(
    "name",
    ["", "has space", "slash/name", "x" * 129, "ümlaut", "dot.name", "new\nline"],
)
def test_invalid_thing_names_fail_before_any_call(iot: IoTService, name: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        iot.ensure_thing(name)
    assert repr(name) in str(info.value)
    assert info.value.service == "iot"
    assert info.value.operation == "CreateThing"
    with pytest.raises(InvalidRequestError):
        iot.attach_thing_principal(name, "arn:aws:iot:us-east-1:123456789012:cert/" + "0" * 64)
    with pytest.raises(InvalidRequestError, match=r"invalid thing name"):
        iot.add_thing_to_group(name, "fleet")
    assert iot.stats().total_calls == 0


def test_valid_thing_name_edge_cases_pass(iot: IoTService) -> None:
    assert iot.ensure_thing("a:b_c-D9").name == "a:b_c-D9"
    assert iot.ensure_thing("x" * 128).created is True


def test_ensure_thing_with_missing_type_is_not_found(iot: IoTService) -> None:
    with pytest.raises(ResourceNotFoundError) as info:
        iot.ensure_thing("device-1", thing_type="no-such-type")
    assert info.value.thing_name == "device-1"
    assert iot.stats().failures == {"iot.CreateThing": 1}


# ------------------------------------------------------------------ attachments


@pytest.mark.usefixtures("iot_setup")
def test_full_import_of_one_certificate_is_five_calls(
    iot: IoTService, certs: list[DeviceCertificate], fast_factory: ClientFactory
) -> None:
    reg = iot.register_certificate(certs[0])
    thing = iot.ensure_thing("device-1", thing_type="sensor")
    iot.attach_thing_principal(thing.name, reg.certificate_arn)
    iot.attach_policy("device-policy", reg.certificate_arn)
    iot.add_thing_to_group(thing.name, "fleet")
    stats = iot.stats()
    assert stats.total_calls == 5
    assert stats.calls == {
        "iot.AddThingToThingGroup": 1,
        "iot.AttachPolicy": 1,
        "iot.AttachThingPrincipal": 1,
        "iot.CreateThing": 1,
        "iot.RegisterCertificateWithoutCA": 1,
    }
    client = fast_factory.iot()
    assert client.list_thing_principals(thingName="device-1")["principals"] == [reg.certificate_arn]
    assert [
        p["policyName"] for p in client.list_attached_policies(target=reg.certificate_arn)["policies"]
    ] == ["device-policy"]
    assert client.list_things_in_thing_group(thingGroupName="fleet")["things"] == ["device-1"]


@pytest.mark.usefixtures("iot_setup")
def test_attachments_repeat_harmlessly(
    iot: IoTService, certs: list[DeviceCertificate], fast_factory: ClientFactory
) -> None:
    reg = iot.register_certificate(certs[0])
    iot.ensure_thing("device-1")
    for _ in range(2):
        iot.attach_thing_principal("device-1", reg.certificate_arn)
        iot.attach_policy("device-policy", reg.certificate_arn)
        iot.add_thing_to_group("device-1", "fleet")
    assert fast_factory.iot().list_things_in_thing_group(thingGroupName="fleet")["things"] == ["device-1"]
    assert iot.stats().failures == {}


@pytest.mark.usefixtures("iot_setup")
def test_attach_thing_principal_exclusive_is_sent(
    iot: IoTService, certs: list[DeviceCertificate], fast_factory: ClientFactory
) -> None:
    seen: list[dict[str, object]] = []
    fast_factory.iot().meta.events.register(
        "provide-client-params.iot.AttachThingPrincipal", lambda params, **_: seen.append(dict(params))
    )
    reg = iot.register_certificate(certs[0])
    iot.ensure_thing("device-1")
    iot.attach_thing_principal("device-1", reg.certificate_arn, exclusive=True)
    assert seen[-1]["thingPrincipalType"] == "EXCLUSIVE_THING"


@pytest.mark.usefixtures("iot_setup")
def test_add_to_missing_group_is_not_found(iot: IoTService) -> None:
    iot.ensure_thing("device-1")
    with pytest.raises(ResourceNotFoundError) as info:
        iot.add_thing_to_group("device-1", "no-such-group")
    assert info.value.name == "iot.AddThingToThingGroup"


def test_attach_missing_policy_is_not_found(iot: IoTService, certs: list[DeviceCertificate]) -> None:
    reg = iot.register_certificate(certs[0])
    with pytest.raises(ResourceNotFoundError) as info:
        iot.attach_policy("no-such-policy", reg.certificate_arn)
    assert info.value.certificate_id == certs[0].certificate_id


def test_attach_policy_limit_is_a_hard_limit(
    iot: IoTService, faults: FaultInjector, certs: list[DeviceCertificate]
) -> None:
    faults.error("iot.AttachPolicy", code="LimitExceededException", status=410)
    with pytest.raises(LimitExceededError):
        iot.attach_policy("device-policy", iot.certificate_arn(certs[0].certificate_id))


# ------------------------------------------------------------------ pre-flight reads


@pytest.mark.usefixtures("iot_setup")
def test_preflight_reads(iot: IoTService) -> None:
    policy = iot.get_policy("device-policy")
    assert isinstance(policy, PolicyInfo)
    assert policy.name == "device-policy"
    assert policy.arn.endswith(":policy/device-policy")
    assert "iot:Connect" in policy.document
    group = iot.describe_thing_group("fleet")
    assert isinstance(group, ThingGroupInfo)
    assert (group.name, group.arn.endswith(":thinggroup/fleet")) == ("fleet", True)
    thing_type = iot.describe_thing_type("sensor")
    assert isinstance(thing_type, ThingTypeInfo)
    assert (thing_type.name, thing_type.deprecated) == ("sensor", False)


@pytest.mark.parametrize(
    ("method", "operation"),
    [
        ("get_policy", "GetPolicy"),
        ("describe_thing_group", "DescribeThingGroup"),
        ("describe_thing_type", "DescribeThingType"),
    ],
)
def test_preflight_reads_raise_not_found(
    iot: IoTService, method: str, operation: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="thingpress_core")
    with pytest.raises(ResourceNotFoundError) as info:
        getattr(iot, method)("missing")
    assert info.value.operation == operation
    assert isinstance(info.value, LookupError)
    assert all(r.levelno < logging.WARNING for r in caplog.records)


def test_describe_certificate(iot: IoTService, certs: list[DeviceCertificate]) -> None:
    reg = iot.register_certificate(certs[0])
    desc = iot.describe_certificate(reg.certificate_id)
    assert isinstance(desc, CertificateDescription)
    assert (desc.certificate_id, desc.certificate_arn, desc.status) == (
        reg.certificate_id,
        reg.certificate_arn,
        "ACTIVE",
    )
    assert desc.not_after is not None


def test_describe_unknown_certificate_is_not_found(iot: IoTService) -> None:
    with pytest.raises(ResourceNotFoundError) as info:
        iot.describe_certificate("f" * 64)
    assert info.value.certificate_id == "f" * 64


def test_describe_certificate_throttle_is_not_missing(iot: IoTService, faults: FaultInjector) -> None:
    faults.throttle("iot.DescribeCertificate")
    with pytest.raises(ThrottledError) as info:
        iot.describe_certificate("f" * 64)
    assert not isinstance(info.value, ResourceNotFoundError)
    assert faults.count("iot.DescribeCertificate") == 3  # botocore made three attempts


def test_update_certificate_status(iot: IoTService, certs: list[DeviceCertificate]) -> None:
    reg = iot.register_certificate(certs[0])
    iot.update_certificate_status(reg.certificate_id, "INACTIVE")
    assert iot.describe_certificate(reg.certificate_id).status == "INACTIVE"
    with pytest.raises(InvalidRequestError):
        iot.update_certificate_status(reg.certificate_id, "nonsense")  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError, match="certificate id"):
        iot.update_certificate_status("not-an-id", "ACTIVE")


def test_certificate_arn_is_local(iot: IoTService, certs: list[DeviceCertificate]) -> None:
    assert iot.certificate_arn(certs[0].certificate_id) == arn_of(certs[0])
    assert iot.thing_arn("dev") == f"arn:aws:iot:us-east-1:{ACCOUNT}:thing/dev"
    assert iot.stats().total_calls == 0
    with pytest.raises(InvalidRequestError):
        iot.certificate_arn("XYZ")


def test_access_denied_maps(iot: IoTService, faults: FaultInjector) -> None:
    faults.error("iot.GetPolicy", code="AccessDeniedException", status=403)
    with pytest.raises(AccessDeniedError) as info:
        iot.get_policy("p")
    assert isinstance(info.value, PermissionError)
    assert info.value.http_status == 403


def test_connection_error_maps_to_service_unavailable(iot: IoTService, faults: FaultInjector) -> None:
    faults.connection_error("iot.GetPolicy")
    with pytest.raises(ServiceUnavailableError) as info:
        iot.get_policy("p")
    assert info.value.code == "EndpointConnectionError"
    assert info.value.__cause__ is not None
    assert faults.count("iot.GetPolicy", kind="connection_error") == 3


# ------------------------------------------------------------------ breaker and stats


def _iot_with_breaker(factory: ClientFactory) -> IoTService:
    settings = ResilienceSettings.model_validate({"breaker_defaults": {"failure_threshold": 2}})
    return IoTService(factory, registry=CircuitBreakerRegistry(settings), limiter=RateLimiter({}))


def test_breaker_opens_after_injected_5xx(fast_factory: ClientFactory, faults: FaultInjector) -> None:
    iot = _iot_with_breaker(fast_factory)
    faults.server_error("iot.GetPolicy", status=503)
    for _ in range(2):
        with pytest.raises(ServiceUnavailableError):
            iot.get_policy("p")
    assert faults.count("iot.GetPolicy") == 6  # 2 calls x 3 botocore attempts
    assert iot.registry.get("iot.GetPolicy").state is CircuitState.OPEN
    with pytest.raises(CircuitOpenError):
        iot.get_policy("p")
    assert faults.count("iot.GetPolicy") == 6  # refused without a request
    stats = iot.stats()
    assert stats.calls == {"iot.GetPolicy": 2}
    assert stats.failures == {"iot.GetPolicy": 2}
    assert stats.refused == {"iot.GetPolicy": 1}
    assert stats.retries == {"iot.GetPolicy": 4}


def test_breaker_never_opens_on_not_found(fast_factory: ClientFactory) -> None:
    iot = _iot_with_breaker(fast_factory)
    for _ in range(5):
        with pytest.raises(ResourceNotFoundError):
            iot.get_policy("missing")
    assert iot.registry.get("iot.GetPolicy").state is CircuitState.CLOSED
    assert iot.stats().calls == {"iot.GetPolicy": 5}


def test_throttle_after_retries_slows_the_limiter(fast_factory: ClientFactory, faults: FaultInjector) -> None:
    limiter = RateLimiter({"iot.GetPolicy": 1000.0})
    iot = IoTService(fast_factory, limiter=limiter)
    faults.throttle("iot.GetPolicy")
    with pytest.raises(ThrottledError):
        iot.get_policy("p")
    rate = limiter.rate("iot.GetPolicy")
    assert rate is not None
    assert rate < 1000.0


def test_throttle_within_retries_succeeds(iot: IoTService, faults: FaultInjector) -> None:
    iot.factory.iot().create_policy(
        policyName="p", policyDocument='{"Version": "2012-10-17", "Statement": []}'
    )
    faults.throttle("iot.GetPolicy", times=2)
    assert iot.get_policy("p").name == "p"
    assert iot.stats().retries == {"iot.GetPolicy": 2}
    assert faults.retry_delays  # botocore computed delays; none were slept


def test_a_throttle_botocore_retried_away_still_slows_the_limiter(
    fast_factory: ClientFactory, faults: FaultInjector
) -> None:
    fast_factory.iot().create_policy(
        policyName="p", policyDocument='{"Version": "2012-10-17", "Statement": []}'
    )
    limiter = RateLimiter({"iot.GetPolicy": 1000.0, "iot.CreateThing": 1000.0})
    iot = IoTService(fast_factory, limiter=limiter)
    faults.throttle("iot.GetPolicy", times=1)
    assert iot.get_policy("p").name == "p"  # the second attempt got through
    slowed = limiter.rate("iot.GetPolicy")
    assert slowed is not None
    assert slowed < 1000.0
    assert limiter.rate("iot.CreateThing") == 1000.0  # only the throttled operation slows


def test_two_facades_on_one_client_report_each_throttle_once(
    fast_factory: ClientFactory, faults: FaultInjector
) -> None:
    limiter = RateLimiter({"iot.GetPolicy": 1000.0}, decrease_cooldown=0.0)
    first = IoTService(fast_factory, limiter=limiter)
    second = IoTService(fast_factory, limiter=limiter)
    first.factory.iot()
    for facade in (first, second):
        with pytest.raises(ResourceNotFoundError):
            facade.get_policy("missing")  # fetches (and hooks) the shared client
    faults.throttle("iot.GetPolicy", times=1)
    with pytest.raises(ResourceNotFoundError):
        first.get_policy("missing")
    rate = limiter.rate("iot.GetPolicy")
    assert rate is not None
    assert rate == pytest.approx(1000.0 * 0.7)  # one decrease, not one per facade


def test_reset_stats(iot: IoTService) -> None:
    with pytest.raises(AwsServiceError):
        iot.get_policy("missing")
    assert iot.stats().total_calls == 1
    iot.reset_stats()
    assert iot.stats().total_calls == 0
    assert iot.stats().total_failures == 0


def test_calls_counted_exactly_under_threads(iot: IoTService, iot_setup: None) -> None:
    import threading
    from concurrent.futures import ThreadPoolExecutor

    # moto in-process is not thread-safe ("OrderedDict mutated during iteration"): the stand-in
    # handles one CreateThing at a time, while our threads still count concurrently around it
    moto_lock = threading.Lock()

    def enter(**_: object) -> None:
        moto_lock.acquire()

    def leave(**_: object) -> None:
        moto_lock.release()

    events = iot.factory.iot().meta.events
    events.register("before-call.iot.CreateThing", enter)
    events.register("after-call.iot.CreateThing", leave)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda i: iot.ensure_thing(f"t-{i}"), range(40)))
    assert iot.stats().calls == {"iot.CreateThing": 40}


def test_defaults_are_built_lazily(aws: None) -> None:
    from thingpress_core.settings import ThingpressSettings

    iot = IoTService(settings=ThingpressSettings(region="us-east-1", account_id=ACCOUNT))
    assert iot.factory.region == "us-east-1"
    assert iot.factory is iot.factory
    assert iot.registry is iot.registry
    assert iot.limiter.rate("iot.RegisterCertificateWithoutCA") == pytest.approx(10.0)
    assert iot.settings.account_id == ACCOUNT
