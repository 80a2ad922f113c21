"""IoTService's fleet operations: reading a device back and taking it apart, against moto.

moto does not page ListAttachedPolicies or ListThingGroupsForThing, so paging is checked with
botocore's Stubber; AWS answers moto does not give (a version conflict, a certificate in a
state that forbids registering it) are injected with FaultInjector.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from thingpress_core.errors import (
    AwsServiceError,
    InvalidRequestError,
    ResourceConflictError,
    ResourceNotFoundError,
)
from thingpress_core.resilience import DEFAULT_RATE_LIMITS, RateLimiter
from thingpress_core.services import CertificateRegistration, CertificateStatus, IoTService

if TYPE_CHECKING:
    from botocore.stub import Stubber

    from thingpress_core.certificates import DeviceCertificate
    from thingpress_core.clients import ClientFactory
    from thingpress_core.testing import FaultInjector

THING = "device-1"
FLEET_OPERATIONS = (
    "iot.ListAttachedPolicies",
    "iot.ListThingGroupsForThing",
    "iot.DetachPolicy",
    "iot.DetachThingPrincipal",
    "iot.RemoveThingFromThingGroup",
    "iot.DeleteThing",
    "iot.DeleteCertificate",
)


def _import(
    iot: IoTService, cert: DeviceCertificate, *, status: CertificateStatus = "ACTIVE"
) -> CertificateRegistration:
    """One device the way the importer leaves it: thing, certificate, policy, group."""
    reg = iot.register_certificate(cert, status=status)
    iot.ensure_thing(THING, thing_type="sensor")
    iot.attach_thing_principal(THING, reg.certificate_arn)
    iot.attach_policy("device-policy", reg.certificate_arn)
    iot.add_thing_to_group(THING, "fleet")
    iot.reset_stats()
    return reg


def _sent(factory: ClientFactory, operation: str) -> list[dict[str, Any]]:
    """The parameters of every ``operation`` request the factory's IoT client sends."""
    sent: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: object) -> None:
        sent.append(dict(params))

    factory.iot().meta.events.register(f"provide-client-params.iot.{operation}", record)
    return sent


# --------------------------------------------------------------- reading a device back


@pytest.mark.usefixtures("iot_setup")
def test_listings_read_a_device_back(iot: IoTService, certs: list[DeviceCertificate]) -> None:
    reg = _import(iot, certs[0])
    iot.factory.iot().create_policy(
        policyName="second", policyDocument='{"Version": "2012-10-17", "Statement": []}'
    )
    iot.attach_policy("second", reg.certificate_arn)
    iot.factory.iot().create_thing_group(thingGroupName="eu")
    iot.add_thing_to_group(THING, "eu")
    iot.reset_stats()

    assert sorted(iot.list_attached_policies(reg.certificate_arn)) == ["device-policy", "second"]
    assert sorted(iot.list_thing_groups_for_thing(THING)) == ["eu", "fleet"]
    assert iot.stats().calls == {"iot.ListAttachedPolicies": 1, "iot.ListThingGroupsForThing": 1}


@pytest.mark.usefixtures("iot_setup")
def test_listings_of_a_bare_certificate_and_thing_are_empty(
    iot: IoTService, certs: list[DeviceCertificate]
) -> None:
    reg = iot.register_certificate(certs[1])
    iot.ensure_thing("bare")
    assert iot.list_attached_policies(reg.certificate_arn) == ()
    assert iot.list_thing_groups_for_thing("bare") == ()


@pytest.mark.usefixtures("iot_setup")
def test_list_attached_policies_asks_for_direct_attachments_only(
    iot: IoTService, fast_factory: ClientFactory, certs: list[DeviceCertificate]
) -> None:
    reg = _import(iot, certs[0])
    sent = _sent(fast_factory, "ListAttachedPolicies")
    iot.list_attached_policies(reg.certificate_arn)
    # recursive is sent, not left to the service's default
    assert sent == [{"target": reg.certificate_arn, "recursive": False, "pageSize": 250}]


def test_listing_groups_of_a_missing_thing_is_not_found(iot: IoTService) -> None:
    with pytest.raises(ResourceNotFoundError) as caught:
        iot.list_thing_groups_for_thing("ghost")
    assert (caught.value.operation, caught.value.thing_name) == ("ListThingGroupsForThing", "ghost")


@pytest.mark.usefixtures("iot_setup")
def test_iterators_call_nothing_until_iterated(iot: IoTService, certs: list[DeviceCertificate]) -> None:
    reg = _import(iot, certs[0])
    policies = iot.iter_attached_policies(reg.certificate_arn)
    groups = iot.iter_thing_groups_for_thing(THING)
    assert iot.stats().total_calls == 0
    assert list(policies) == ["device-policy"]
    assert list(groups) == ["fleet"]
    assert iot.stats().total_calls == 2


# ---------------------------------------------------------------------------- paging


def _stubbed(aws: None) -> tuple[IoTService, Stubber]:
    import boto3
    from botocore.stub import Stubber

    from thingpress_core.clients import ClientFactory

    client = boto3.client("iot", region_name="us-east-1")
    return IoTService(ClientFactory(clients={"iot": client}), limiter=RateLimiter({})), Stubber(client)


ARN = "arn:aws:iot:us-east-1:123456789012:cert/" + "ab" * 32


def test_list_attached_policies_reads_every_page(aws: None) -> None:
    iot, stubber = _stubbed(aws)
    first = {"target": ARN, "recursive": False, "pageSize": 250}
    stubber.add_response(
        "list_attached_policies",
        {"policies": [{"policyName": "a", "policyArn": "arn:a"}, {"policyName": "b"}], "nextMarker": "m1"},
        first,
    )
    stubber.add_response(
        "list_attached_policies",
        {"policies": [{"policyName": "c"}], "nextMarker": "m2"},
        {**first, "marker": "m1"},
    )
    stubber.add_response("list_attached_policies", {"policies": []}, {**first, "marker": "m2"})
    with stubber:
        assert iot.list_attached_policies(ARN) == ("a", "b", "c")
    stubber.assert_no_pending_responses()
    assert iot.stats().calls == {"iot.ListAttachedPolicies": 3}


def test_list_thing_groups_for_thing_reads_every_page(aws: None) -> None:
    iot, stubber = _stubbed(aws)
    first = {"thingName": THING, "maxResults": 250}
    stubber.add_response(
        "list_thing_groups_for_thing",
        {"thingGroups": [{"groupName": "fleet", "groupArn": "arn:g"}], "nextToken": "t1"},
        first,
    )
    stubber.add_response(
        "list_thing_groups_for_thing",
        {"thingGroups": [{"groupName": "eu-dynamic"}]},
        {**first, "nextToken": "t1"},
    )
    with stubber:
        assert iot.list_thing_groups_for_thing(THING) == ("fleet", "eu-dynamic")
    stubber.assert_no_pending_responses()
    assert iot.stats().calls == {"iot.ListThingGroupsForThing": 2}


def test_the_lazy_iterator_fetches_a_page_when_it_is_reached(aws: None) -> None:
    iot, stubber = _stubbed(aws)
    first = {"target": ARN, "recursive": False, "pageSize": 250}
    stubber.add_response(
        "list_attached_policies", {"policies": [{"policyName": "a"}], "nextMarker": "m1"}, first
    )
    stubber.add_response(
        "list_attached_policies", {"policies": [{"policyName": "b"}]}, {**first, "marker": "m1"}
    )
    with stubber:
        names = iot.iter_attached_policies(ARN)
        assert next(names) == "a"
        assert iot.stats().total_calls == 1
        assert list(names) == ["b"]
    assert iot.stats().total_calls == 2


def test_a_failing_later_page_raises_from_that_page(aws: None) -> None:
    iot, stubber = _stubbed(aws)
    first = {"thingName": THING, "maxResults": 250}
    stubber.add_response(
        "list_thing_groups_for_thing", {"thingGroups": [{"groupName": "g"}], "nextToken": "t1"}, first
    )
    stubber.add_client_error(
        "list_thing_groups_for_thing", service_error_code="ResourceNotFoundException", http_status_code=404
    )
    with stubber, pytest.raises(ResourceNotFoundError):
        iot.list_thing_groups_for_thing(THING)
    assert iot.stats().calls == {"iot.ListThingGroupsForThing": 2}
    assert iot.stats().failures == {"iot.ListThingGroupsForThing": 1}


# -------------------------------------------------------------------------- teardown


@pytest.mark.usefixtures("iot_setup")
def test_teardown_takes_a_device_apart_one_call_each(
    iot: IoTService, fast_factory: ClientFactory, certs: list[DeviceCertificate]
) -> None:
    reg = _import(iot, certs[0])
    iot.detach_policy("device-policy", reg.certificate_arn)
    iot.remove_thing_from_group(THING, "fleet")
    iot.detach_thing_principal(THING, reg.certificate_arn)
    iot.update_certificate_status(reg.certificate_id, "INACTIVE")
    iot.delete_certificate(reg.certificate_id)
    iot.delete_thing(THING)
    assert iot.stats().calls == {
        "iot.DeleteCertificate": 1,
        "iot.DeleteThing": 1,
        "iot.DetachPolicy": 1,
        "iot.DetachThingPrincipal": 1,
        "iot.RemoveThingFromThingGroup": 1,
        "iot.UpdateCertificate": 1,
    }
    assert iot.stats().failures == {}
    with pytest.raises(ResourceNotFoundError):
        iot.describe_certificate(reg.certificate_id)
    with pytest.raises(ResourceNotFoundError):
        iot.describe_thing(THING)
    client = fast_factory.iot()
    assert client.list_things_in_thing_group(thingGroupName="fleet")["things"] == []
    assert client.list_targets_for_policy(policyName="device-policy")["targets"] == []


@pytest.mark.usefixtures("iot_setup")
def test_each_detach_removes_only_its_link(
    iot: IoTService, fast_factory: ClientFactory, certs: list[DeviceCertificate]
) -> None:
    reg = _import(iot, certs[0])
    iot.detach_policy("device-policy", reg.certificate_arn)
    assert iot.list_attached_policies(reg.certificate_arn) == ()
    assert iot.list_thing_principals(THING) == (reg.certificate_arn,)
    iot.remove_thing_from_group(THING, "fleet")
    assert iot.list_thing_groups_for_thing(THING) == ()
    assert iot.list_thing_principals(THING) == (reg.certificate_arn,)
    iot.detach_thing_principal(THING, reg.certificate_arn)
    assert iot.list_thing_principals(THING) == ()
    assert iot.describe_certificate(reg.certificate_id).status == "ACTIVE"  # detaching leaves it alone


@pytest.mark.usefixtures("iot_setup")
def test_removing_a_thing_from_a_group_it_is_not_in_succeeds(iot: IoTService) -> None:
    iot.ensure_thing(THING)
    iot.remove_thing_from_group(THING, "fleet")
    assert iot.stats().failures == {}


@pytest.mark.usefixtures("iot_setup")
def test_delete_thing_sends_the_expected_version_only_when_given(
    iot: IoTService, fast_factory: ClientFactory
) -> None:
    sent = _sent(fast_factory, "DeleteThing")
    iot.ensure_thing("one")
    iot.ensure_thing("two")
    iot.delete_thing("one")
    iot.delete_thing("two", expected_version=1)
    assert sent == [{"thingName": "one"}, {"thingName": "two", "expectedVersion": 1}]


@pytest.mark.usefixtures("iot_setup")
def test_delete_thing_version_conflict_is_a_conflict(iot: IoTService, faults: FaultInjector) -> None:
    # moto ignores expectedVersion; AWS answers 409 VersionConflictException
    iot.ensure_thing(THING)
    faults.error("iot.DeleteThing", code="VersionConflictException", status=409, times=1)
    with pytest.raises(ResourceConflictError) as caught:
        iot.delete_thing(THING, expected_version=7)
    assert caught.value.code == "VersionConflictException"
    assert iot.describe_thing(THING).name == THING


# ---------------------------------------------------------------------- error mapping


@pytest.mark.usefixtures("iot_setup")
def test_deleting_an_active_certificate_is_a_conflict(
    iot: IoTService, certs: list[DeviceCertificate]
) -> None:
    reg = iot.register_certificate(certs[0])
    with pytest.raises(ResourceConflictError) as caught:
        iot.delete_certificate(reg.certificate_id)
    assert caught.value.code == "CertificateStateException"
    assert caught.value.certificate_id == reg.certificate_id
    assert iot.describe_certificate(reg.certificate_id).status == "ACTIVE"  # still there
    # the caller's mistake does not count against the service's health
    assert iot.registry.get("iot.DeleteCertificate").snapshot().failures == 0


@pytest.mark.usefixtures("iot_setup")
def test_deleting_an_inactive_certificate_still_on_a_thing_is_a_conflict(
    iot: IoTService, certs: list[DeviceCertificate]
) -> None:
    reg = _import(iot, certs[0], status="INACTIVE")
    iot.detach_policy("device-policy", reg.certificate_arn)
    with pytest.raises(ResourceConflictError) as caught:
        iot.delete_certificate(reg.certificate_id)
    assert caught.value.code == "DeleteConflictException"


@pytest.mark.usefixtures("iot_setup")
def test_force_delete_removes_a_certificate_that_still_has_a_policy(
    iot: IoTService, fast_factory: ClientFactory, certs: list[DeviceCertificate]
) -> None:
    reg = _import(iot, certs[0], status="INACTIVE")
    iot.detach_thing_principal(THING, reg.certificate_arn)
    sent = _sent(fast_factory, "DeleteCertificate")
    with pytest.raises(ResourceConflictError) as caught:
        iot.delete_certificate(reg.certificate_id)
    assert caught.value.code == "DeleteConflictException"
    iot.delete_certificate(reg.certificate_id, force_delete=True)
    assert sent == [
        {"certificateId": reg.certificate_id},
        {"certificateId": reg.certificate_id, "forceDelete": True},
    ]
    with pytest.raises(ResourceNotFoundError):
        iot.describe_certificate(reg.certificate_id)


def test_deleting_an_unknown_certificate_is_not_found(iot: IoTService) -> None:
    with pytest.raises(ResourceNotFoundError) as caught:
        iot.delete_certificate("0" * 64)
    assert caught.value.certificate_id == "0" * 64


def test_deleting_a_missing_thing_is_not_found_on_moto(iot: IoTService) -> None:
    # AWS itself answers success for a thing that does not exist; moto answers 404
    with pytest.raises(ResourceNotFoundError) as caught:
        iot.delete_thing("ghost")
    assert (caught.value.operation, caught.value.thing_name) == ("DeleteThing", "ghost")


@pytest.mark.usefixtures("iot_setup")
def test_deleting_a_thing_that_still_has_a_certificate_is_invalid(
    iot: IoTService, certs: list[DeviceCertificate]
) -> None:
    _import(iot, certs[0])
    with pytest.raises(InvalidRequestError, match="still attached"):
        iot.delete_thing(THING)
    assert iot.describe_thing(THING).name == THING


@pytest.mark.usefixtures("iot_setup")
def test_detaching_a_policy_that_is_not_attached_is_not_found(
    iot: IoTService, certs: list[DeviceCertificate]
) -> None:
    reg = iot.register_certificate(certs[0])
    with pytest.raises(ResourceNotFoundError):
        iot.detach_policy("device-policy", reg.certificate_arn)


def test_a_certificate_state_answer_on_register_is_not_read_as_registered(
    iot: IoTService, faults: FaultInjector, certs: list[DeviceCertificate]
) -> None:
    # CertificateStateException maps to ResourceConflictError like "already exists" does;
    # only ResourceAlreadyExistsException means "registered already"
    faults.error("iot.RegisterCertificateWithoutCA", code="CertificateStateException", status=406, times=1)
    with pytest.raises(ResourceConflictError) as caught:
        iot.register_certificate(certs[3])
    assert caught.value.code == "CertificateStateException"


def _bad_calls() -> list[tuple[str, Callable[[IoTService], object]]]:
    return [
        ("ListThingGroupsForThing", lambda iot: iot.list_thing_groups_for_thing("bad name")),
        ("ListThingGroupsForThing", lambda iot: iot.iter_thing_groups_for_thing("bad/name")),
        ("DetachThingPrincipal", lambda iot: iot.detach_thing_principal("bad name", ARN)),
        ("RemoveThingFromThingGroup", lambda iot: iot.remove_thing_from_group("bad name", "fleet")),
        ("DeleteThing", lambda iot: iot.delete_thing("")),
        ("DeleteCertificate", lambda iot: iot.delete_certificate("AB" * 32)),
        ("DeleteCertificate", lambda iot: iot.delete_certificate("ab" * 31)),
    ]


@pytest.mark.parametrize(("operation", "call"), _bad_calls())
def test_bad_names_and_ids_fail_before_any_call(
    iot: IoTService, operation: str, call: Callable[[IoTService], object]
) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        call(iot)  # the iterator checks when it is made, not when it is first read
    assert caught.value.operation == operation
    assert iot.stats().total_calls == 0


# ------------------------------------------------------------- counting and rate limits


def _each_fleet_call(reg: CertificateRegistration) -> list[tuple[str, Callable[[IoTService], object]]]:
    """Every fleet operation once, in an order that succeeds on a device made by `_import`."""
    return [
        ("iot.ListAttachedPolicies", lambda iot: iot.list_attached_policies(reg.certificate_arn)),
        ("iot.ListThingGroupsForThing", lambda iot: iot.list_thing_groups_for_thing(THING)),
        ("iot.DetachPolicy", lambda iot: iot.detach_policy("device-policy", reg.certificate_arn)),
        ("iot.RemoveThingFromThingGroup", lambda iot: iot.remove_thing_from_group(THING, "fleet")),
        ("iot.DetachThingPrincipal", lambda iot: iot.detach_thing_principal(THING, reg.certificate_arn)),
        ("iot.DeleteThing", lambda iot: iot.delete_thing(THING)),
        ("iot.DeleteCertificate", lambda iot: iot.delete_certificate(reg.certificate_id, force_delete=True)),
    ]


@pytest.mark.usefixtures("iot_setup")
def test_each_fleet_operation_has_its_own_bucket(
    fast_factory: ClientFactory, certs: list[DeviceCertificate]
) -> None:
    slept: list[float] = []
    # a clock that never moves: a bucket refills only by its one burst token
    limiter = RateLimiter(dict.fromkeys(FLEET_OPERATIONS, 1.0), clock=lambda: 0.0, sleep=slept.append)
    iot = IoTService(fast_factory, limiter=limiter)
    reg = _import(iot, certs[0], status="INACTIVE")
    calls = _each_fleet_call(reg)
    assert sorted(name for name, _ in calls) == sorted(FLEET_OPERATIONS)
    for _, call in calls:
        call(iot)
    assert slept == []  # one token each: no operation drew from another's bucket
    assert iot.stats().calls == dict.fromkeys(sorted(FLEET_OPERATIONS), 1)
    iot.list_attached_policies(reg.certificate_arn)
    assert slept == [1.0]  # its own bucket was empty


@pytest.mark.parametrize("operation", FLEET_OPERATIONS)
@pytest.mark.usefixtures("iot_setup")
def test_each_fleet_operation_is_paced_and_counted_under_its_name(
    fast_factory: ClientFactory, certs: list[DeviceCertificate], operation: str
) -> None:
    slept: list[float] = []
    limiter = RateLimiter({operation: 4.0}, clock=lambda: 0.0, sleep=slept.append)
    iot = IoTService(fast_factory, limiter=limiter)
    reg = _import(iot, certs[0], status="INACTIVE")
    call = dict(_each_fleet_call(reg))[operation]
    for _ in range(3):
        with contextlib.suppress(AwsServiceError):  # a repeated delete finds nothing: still a call
            call(iot)
    assert slept == [0.25, 0.5]  # the second and third waited for tokens at 4/s
    assert iot.stats().calls == {operation: 3}


def test_every_operation_the_facade_calls_has_a_default_rate(
    iot: IoTService, certs: list[DeviceCertificate]
) -> None:
    cert_id = certs[0].certificate_id
    arn = "arn:aws:iot:us-east-1:123456789012:cert/" + cert_id
    reg = CertificateRegistration(certificate_id=cert_id, certificate_arn=arn, created=True)
    everything: list[Callable[[IoTService], object]] = [
        lambda iot: iot.register_certificate(certs[0]),
        lambda iot: iot.describe_certificate(cert_id),
        lambda iot: iot.update_certificate_status(cert_id, "INACTIVE"),
        lambda iot: iot.ensure_thing(THING),
        lambda iot: iot.update_thing(THING, attributes={"a": "b"}),
        lambda iot: iot.describe_thing(THING),
        lambda iot: iot.list_thing_principals(THING),
        lambda iot: iot.list_principal_things(arn),
        lambda iot: iot.attach_thing_principal(THING, arn),
        lambda iot: iot.attach_policy("p", arn),
        lambda iot: iot.add_thing_to_group(THING, "g"),
        lambda iot: iot.get_policy("p"),
        lambda iot: iot.describe_thing_group("g"),
        lambda iot: iot.describe_thing_type("t"),
        *(call for _, call in _each_fleet_call(reg)),
    ]
    for call in everything:
        with contextlib.suppress(AwsServiceError):  # a missing policy, group, ...: still a call
            call(iot)
    called = set(iot.stats().calls)
    assert len(called) == 21  # every operation above was made
    assert called <= set(DEFAULT_RATE_LIMITS), sorted(called - set(DEFAULT_RATE_LIMITS))


def test_the_default_limiter_paces_the_fleet_operations(aws: None) -> None:
    from thingpress_core.settings import ThingpressSettings

    iot = IoTService(settings=ThingpressSettings(region="us-east-1", account_id="123456789012"))
    unpaced = [name for name in FLEET_OPERATIONS if iot.limiter.rate(name) is None]
    assert unpaced == []
