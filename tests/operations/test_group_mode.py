"""Verify and rollback of a group-policy import (issue 18) on moto."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from ops_support import GROUP, POLICY, TARGET, TYPE, State, cert_arn, import_run

from thingpress_core.certificates import DeviceCertificate
from thingpress_core.errors import ConfigurationError
from thingpress_core.importer import ImportOptions
from thingpress_core.ledger import SqliteLedger
from thingpress_core.operations import DeviceRef, ExpectedState, ledger_devices, rollback_run, verify_devices
from thingpress_core.services import IoTService

GROUP_MODE = ImportOptions(
    policies=(POLICY,),
    thing_groups=(GROUP,),
    thing_type=TYPE,
    policy_target="thing_group",
    retry_pause=0.0,
    concurrency=4,
)


def no_sleep(_: float) -> None:
    return None


def _group_arn(iot: IoTService) -> str:
    return iot.describe_thing_group(GROUP).arn


def test_verify_reads_the_group_policies_once_and_each_device_membership(
    iot: IoTService, ledger: SqliteLedger, certs: tuple[DeviceCertificate, ...]
) -> None:
    import_run(iot, ledger, certs[:6], GROUP_MODE)
    report = verify_devices(iot, certs[:6], expected=GROUP_MODE, sleep=no_sleep)
    assert (report.in_sync, report.drifted) == (6, 0)
    assert report.calls["iot.DescribeThingGroup"] == 1
    assert report.calls["iot.ListAttachedPolicies"] == 1  # the group's, not one per certificate
    assert report.calls["iot.ListThingGroupsForThing"] == 6
    assert report.expected["policy_target"] == "thing_group"


def test_verify_reports_a_policy_the_group_lost_on_every_device_and_repair_restores_it(
    iot: IoTService, ledger: SqliteLedger, certs: tuple[DeviceCertificate, ...]
) -> None:
    import_run(iot, ledger, certs[:3], GROUP_MODE)
    iot.detach_policy(POLICY, _group_arn(iot))
    iot.remove_thing_from_group(certs[0].common_name or "", GROUP)
    report = verify_devices(iot, certs[:3], expected=GROUP_MODE, sleep=no_sleep)
    assert report.drifted == 3
    assert report.problems == {"group_missing": 1, "policy_missing": 3}
    drift = report.drifted_devices[0].problems
    assert any(p.code == "policy_missing" and GROUP in p.detail for p in drift)
    # the certificates were never meant to hold the policy: repair puts it on the group only
    repaired = verify_devices(iot, certs[:3], expected=GROUP_MODE, repair=True, sleep=no_sleep)
    assert repaired.failed == 0
    assert set(iot.list_attached_policies(_group_arn(iot))) == {POLICY}
    assert all(iot.list_attached_policies(cert_arn(c)) == () for c in certs[:3])
    assert verify_devices(iot, certs[:3], expected=GROUP_MODE, sleep=no_sleep).drifted == 0


def test_expected_state_from_the_run_keeps_the_mode(
    iot: IoTService, ledger: SqliteLedger, certs: tuple[DeviceCertificate, ...]
) -> None:
    run_id = import_run(iot, ledger, certs[:2], GROUP_MODE).run_id
    assert run_id is not None
    run = next(r for r in ledger.runs(target=TARGET.key) if r.run_id == run_id)
    expected = ExpectedState.from_run(run)
    assert expected.policy_target == "thing_group"
    devices: list[DeviceRef] = list(ledger_devices(ledger, run_id=run_id, target=TARGET))
    report = verify_devices(iot, devices, expected=expected, sleep=no_sleep)
    assert (report.in_sync, report.drifted) == (2, 0)


def test_expected_state_refuses_group_mode_without_one_group() -> None:
    with pytest.raises(ConfigurationError, match="exactly one thing group"):
        ExpectedState(policies=(POLICY,), policy_target="thing_group")


@pytest.fixture
def moto_group_policies(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto 5.2's DeleteCertificate reads every policy target as a certificate and fails on a
    thing group's (AWS has no such problem): let its check see the certificates' only."""
    from moto.iot.models import IoTBackend

    original = IoTBackend._validation_delete  # pyright: ignore[reportPrivateUsage]

    def check(self: Any, cert: Any, force_delete: bool = False) -> None:
        kept = self.principal_policies
        self.principal_policies = {k: v for k, v in kept.items() if ":cert/" in k[0]}
        try:
            original(self, cert, force_delete)
        finally:
            self.principal_policies = kept

    monkeypatch.setattr(IoTBackend, "_validation_delete", check)


@pytest.mark.usefixtures("moto_group_policies")
def test_rollback_leaves_the_group_policy_and_says_so(
    iot: IoTService,
    ledger: SqliteLedger,
    certs: tuple[DeviceCertificate, ...],
    caplog: pytest.LogCaptureFixture,
) -> None:
    run_id = import_run(iot, ledger, certs[:4], GROUP_MODE).run_id
    assert run_id is not None
    with caplog.at_level(logging.INFO, logger="thingpress_core.operations"):
        report = rollback_run(iot, ledger, run_id, sleep=no_sleep)
    assert (report.changed, report.failed) == (4, 0)
    assert "iot.DetachPolicy" not in report.calls
    state = State()
    assert all(state.gone(c) for c in certs[:4])
    assert set(iot.list_attached_policies(_group_arn(iot))) == {POLICY}
    assert any("leaves them there" in r.getMessage() for r in caplog.records)
