"""Group-policy mode (issue 18) on moto: the policies go to the thing group once per run, each
certificate costs 4 calls, the certificates hold no policy; bad combinations are refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from fake_iot import GROUP, POLICY, TYPE

from thingpress_core.certificates import DeviceCertificate
from thingpress_core.errors import ConfigurationError, PreflightError
from thingpress_core.importer import CertificateImporter, ImportOptions
from thingpress_core.ledger import SqliteLedger, Target
from thingpress_core.resilience import RateLimiter
from thingpress_core.services import IoTService

if TYPE_CHECKING:
    from thingpress_core.clients import ClientFactory

pytestmark = pytest.mark.usefixtures("serial_moto")

ACCOUNT, REGION = "123456789012", "us-east-1"
TARGET = Target(account_id=ACCOUNT, region=REGION)
GROUP_MODE = ImportOptions(
    policies=(POLICY, "Extra1"),
    thing_groups=(GROUP,),
    thing_type=TYPE,
    policy_target="thing_group",
    retry_pause=0.0,
    concurrency=4,
)


def _resources(factory: ClientFactory) -> str:
    client = factory.iot()
    document = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}],
    }
    for policy in (POLICY, "Extra1"):
        client.create_policy(policyName=policy, policyDocument=json.dumps(document))
    client.create_thing_type(thingTypeName=TYPE)
    return str(client.create_thing_group(thingGroupName=GROUP)["thingGroupArn"])


def _service(factory: ClientFactory) -> IoTService:
    return IoTService(factory, limiter=RateLimiter({}))


def _cert_arn(cert: DeviceCertificate) -> str:
    return f"arn:aws:iot:{REGION}:{ACCOUNT}:cert/{cert.certificate_id}"


def _policies(factory: ClientFactory, target: str) -> set[str]:
    return {p["policyName"] for p in factory.iot().list_attached_policies(target=target)["policies"]}


def test_four_calls_per_certificate_and_the_policies_on_the_group_only(
    factory: ClientFactory, pool: tuple[DeviceCertificate, ...]
) -> None:
    group_arn = _resources(factory)
    sent: list[Any] = []
    factory.iot().meta.events.register(
        "provide-client-params.iot.AttachThingPrincipal", lambda params, **_: sent.append(params)
    )
    report = CertificateImporter(_service(factory), options=GROUP_MODE).import_all(pool[:12])
    assert report.imported == 12
    assert report.calls == {
        # the preflight's reads, then each policy attached once to the group
        "iot.GetPolicy": 2,
        "iot.DescribeThingGroup": 1,
        "iot.DescribeThingType": 1,
        "iot.AttachPolicy": 2,
        # 4 per certificate
        "iot.RegisterCertificateWithoutCA": 12,
        "iot.CreateThing": 12,
        "iot.AttachThingPrincipal": 12,
        "iot.AddThingToThingGroup": 12,
    }
    per_certificate = sum(n for op, n in report.calls.items() if op not in _SETUP) / 12
    assert per_certificate == 4.0
    assert _policies(factory, group_arn) == {POLICY, "Extra1"}
    assert all(_policies(factory, _cert_arn(c)) == set() for c in pool[:12])
    assert {p.get("thingPrincipalType") for p in sent} == {"EXCLUSIVE_THING"}
    members = factory.iot().list_things_in_thing_group(thingGroupName=GROUP)["things"]
    assert len(members) == 12


_SETUP = {"iot.GetPolicy", "iot.DescribeThingGroup", "iot.DescribeThingType", "iot.AttachPolicy"}


def test_a_second_run_attaches_again_harmlessly_and_a_ledger_skips_done_devices(
    factory: ClientFactory, pool: tuple[DeviceCertificate, ...], tmp_path: Path
) -> None:
    group_arn = _resources(factory)
    with SqliteLedger(tmp_path / "ledger.db") as ledger:
        first = CertificateImporter(_service(factory), options=GROUP_MODE, ledger=ledger, target=TARGET)
        assert first.import_all(pool[:5]).imported == 5
        again = CertificateImporter(_service(factory), options=GROUP_MODE, ledger=ledger, target=TARGET)
        report = again.import_all(pool[:5])
        # done without policy steps in the device records: no call at all, not even the preflight
        assert (report.already_present, report.calls) == (5, {})
        run = ledger.runs(target=TARGET.key)[0]
        assert run.options["policy_target"] == "thing_group"
        assert run.options["exclusive"] is True
    assert _policies(factory, group_arn) == {POLICY, "Extra1"}


def test_without_preflight_the_group_policies_are_still_attached(
    factory: ClientFactory, pool: tuple[DeviceCertificate, ...]
) -> None:
    group_arn = _resources(factory)
    options = GROUP_MODE.model_copy(update={"preflight": False})
    report = CertificateImporter(_service(factory), options=options).import_all(pool[:2])
    assert report.calls["iot.DescribeThingGroup"] == 1  # for the group's ARN
    assert report.calls["iot.AttachPolicy"] == 2
    assert _policies(factory, group_arn) == {POLICY, "Extra1"}


def test_a_dry_run_attaches_nothing(factory: ClientFactory, pool: tuple[DeviceCertificate, ...]) -> None:
    group_arn = _resources(factory)
    options = GROUP_MODE.model_copy(update={"dry_run": True})
    report = CertificateImporter(_service(factory), options=options).import_all(pool[:2])
    assert report.skipped == 2
    assert "iot.AttachPolicy" not in report.calls
    assert _policies(factory, group_arn) == set()


def test_a_missing_group_fails_the_preflight_before_any_attachment(
    factory: ClientFactory, pool: tuple[DeviceCertificate, ...]
) -> None:
    _resources(factory)
    options = GROUP_MODE.model_copy(update={"thing_groups": ("Nowhere",)})
    with pytest.raises(PreflightError, match="Nowhere"):
        CertificateImporter(_service(factory), options=options).import_all(pool[:2])
    assert factory.iot().list_certificates()["certificates"] == []


def test_group_mode_forces_exclusive_and_counts_four_calls() -> None:
    assert GROUP_MODE.exclusive is True
    assert ImportOptions(
        policies=(POLICY,), thing_groups=(GROUP,), policy_target="thing_group", exclusive=False
    ).exclusive
    assert GROUP_MODE.calls_per_certificate() == 4
    assert GROUP_MODE.certificate_policies == ()
    assert GROUP_MODE.group_policies == (POLICY, "Extra1")
    assert "iot.AttachPolicy" not in GROUP_MODE.calls_by_operation()
    certificate_mode = GROUP_MODE.model_copy(update={"policy_target": "certificate"})
    assert certificate_mode.calls_by_operation()["iot.AttachPolicy"] == 2.0


@pytest.mark.parametrize(
    ("groups", "policies", "said"),
    [
        ((), (POLICY,), "0 thing group"),
        ((GROUP, "G2"), (POLICY,), "2 thing group"),
        ((GROUP,), (), "0 policy"),
    ],
)
def test_bad_combinations_are_refused_at_construction(
    groups: tuple[str, ...], policies: tuple[str, ...], said: str
) -> None:
    with pytest.raises(ConfigurationError, match="exactly one thing group") as caught:
        ImportOptions(policies=policies, thing_groups=groups, policy_target="thing_group")
    assert said in str(caught.value)


def test_attach_group_policies_is_refused_in_certificate_mode() -> None:
    importer = CertificateImporter(object(), options=ImportOptions(policies=(POLICY,)))  # type: ignore[arg-type]  # never called
    with pytest.raises(ConfigurationError, match="policy_target"):
        importer.attach_group_policies()
