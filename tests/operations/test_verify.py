"""verify_devices on moto: exactly the drift injected, the reads it costs, repair, the ledger."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from ops_support import EXTRA, GROUP, OPTIONS, POLICY, TARGET, TYPE, State, cert_arn, import_run

from thingpress_core.certificates import DeviceCertificate
from thingpress_core.errors import CertificateParseError
from thingpress_core.importer import ImportOptions
from thingpress_core.ledger import SqliteLedger
from thingpress_core.manifests import ManifestEntry
from thingpress_core.operations import (
    DeviceRef,
    ExpectedState,
    RetryRounds,
    VerifyOutcome,
    ledger_devices,
    verify_devices,
)
from thingpress_core.services import IoTService
from thingpress_core.testing import FaultInjector

if TYPE_CHECKING:
    from thingpress_core.clients import ClientFactory

EXPECTED = ExpectedState.from_options(OPTIONS)
NO_WAIT = RetryRounds(pause=0.0)


def _name(cert: DeviceCertificate) -> str:
    assert cert.common_name is not None
    return cert.common_name


def _inject_drift(factory: ClientFactory, devices: tuple[DeviceCertificate, ...]) -> None:
    """Six kinds of damage done by hand to devices 0..5; devices 6.. are left alone."""
    client = factory.iot()
    client.detach_policy(policyName=POLICY, target=cert_arn(devices[0]))
    client.update_certificate(certificateId=devices[1].certificate_id, newStatus="INACTIVE")
    client.remove_thing_from_thing_group(thingGroupName=GROUP, thingName=_name(devices[2]))
    client.create_thing(thingName="spare-thing")
    client.attach_thing_principal(thingName="spare-thing", principal=cert_arn(devices[3]))
    client.detach_thing_principal(thingName=_name(devices[4]), principal=cert_arn(devices[4]))
    client.delete_thing(thingName=_name(devices[4]))
    client.update_thing(thingName=_name(devices[5]), removeThingType=True)


def _codes(outcome: VerifyOutcome) -> list[str]:
    return [p.code for p in outcome.problems]


def test_a_fleet_in_sync_costs_five_reads_a_device_and_reports_no_drift(
    iot: IoTService, ledger: SqliteLedger, certs: tuple[DeviceCertificate, ...]
) -> None:
    import_run(iot, ledger, certs[:6])
    report = verify_devices(
        iot, ledger_devices(ledger, target=TARGET), expected=EXPECTED, sleep=lambda _: None
    )
    assert (report.total, report.in_sync, report.drifted, report.failed) == (6, 6, 0, 0)
    assert report.calls == {
        "iot.DescribeCertificate": 6,
        "iot.DescribeThing": 6,
        "iot.ListAttachedPolicies": 6,
        "iot.ListPrincipalThings": 6,
        "iot.ListThingGroupsForThing": 6,
    }
    # no policies and no groups expected: those two reads are not made at all
    bare = verify_devices(iot, ledger_devices(ledger, target=TARGET), expected=ExpectedState())
    assert set(bare.calls) == {"iot.DescribeCertificate", "iot.DescribeThing", "iot.ListPrincipalThings"}
    assert bare.in_sync == 6


def test_verify_finds_exactly_the_drift_injected_and_nothing_else(
    iot: IoTService, ledger: SqliteLedger, factory: ClientFactory, certs: tuple[DeviceCertificate, ...]
) -> None:
    devices = certs[:9]
    import_run(iot, ledger, devices)
    _inject_drift(factory, devices)
    seen: list[VerifyOutcome] = []
    report = verify_devices(
        iot,
        ledger_devices(ledger, target=TARGET),
        expected=EXPECTED,
        progress=seen.append,
        sleep=lambda _: None,
    )
    found = {o.certificate_id: _codes(o) for o in report.drifted_devices}
    assert found == {
        devices[0].certificate_id: ["policy_missing"],
        devices[1].certificate_id: ["certificate_status"],
        devices[2].certificate_id: ["group_missing"],
        devices[3].certificate_id: ["other_things"],
        devices[4].certificate_id: ["thing_missing"],
        devices[5].certificate_id: ["thing_type"],
    }
    assert (report.total, report.in_sync, report.drifted, report.failed, report.changed) == (9, 3, 6, 0, 0)
    assert report.problems == {
        "certificate_status": 1,
        "group_missing": 1,
        "other_things": 1,
        "policy_missing": 1,
        "thing_missing": 1,
        "thing_type": 1,
    }
    assert len(seen) == 9  # progress saw every final outcome
    by_id = {o.certificate_id: o for o in report.drifted_devices}
    status = by_id[devices[1].certificate_id].problems[0]
    assert (status.expected, status.found) == ("ACTIVE", "INACTIVE")
    other = by_id[devices[3].certificate_id].problems[0]
    assert other.found == "spare-thing"
    assert "spare-thing" in other.detail
    assert by_id[devices[0].certificate_id].problems[0].subject == POLICY
    # the missing thing's groups are not read (nothing to read), every other device's are
    assert report.calls["iot.ListThingGroupsForThing"] == 8
    assert report.calls["iot.DescribeCertificate"] == 9


def test_shared_certificates_and_nameless_devices_are_judged_by_what_is_known(
    iot: IoTService, ledger: SqliteLedger, factory: ClientFactory, certs: tuple[DeviceCertificate, ...]
) -> None:
    import_run(iot, ledger, certs[:2])
    client = factory.iot()
    client.create_thing(thingName="second-home")
    client.attach_thing_principal(thingName="second-home", principal=cert_arn(certs[0]))
    shared = EXPECTED.model_copy(update={"allow_multiple_things": True})
    assert verify_devices(iot, list(certs[:2]), expected=shared).drifted == 0
    # without a thing name only the certificate is judged: its things are no one's "others"
    nameless = [DeviceRef(certificate_id=c.certificate_id) for c in certs[:2]]
    report = verify_devices(iot, nameless, expected=EXPECTED)
    assert (report.in_sync, report.drifted) == (2, 0)
    assert set(report.calls) == {
        "iot.DescribeCertificate",
        "iot.ListPrincipalThings",
        "iot.ListAttachedPolicies",
    }
    client.detach_policy(policyName=POLICY, target=cert_arn(certs[1]))
    again = verify_devices(iot, nameless, expected=EXPECTED)
    assert [_codes(o) for o in again.drifted_devices] == [["policy_missing"]]


def test_a_missing_certificate_skips_the_reads_about_it(
    iot: IoTService, ledger: SqliteLedger, factory: ClientFactory, certs: tuple[DeviceCertificate, ...]
) -> None:
    import_run(iot, ledger, certs[:2])
    client, gone = factory.iot(), certs[0]
    client.detach_policy(policyName=POLICY, target=cert_arn(gone))
    client.detach_thing_principal(thingName=_name(gone), principal=cert_arn(gone))
    client.update_certificate(certificateId=gone.certificate_id, newStatus="INACTIVE")
    client.delete_certificate(certificateId=gone.certificate_id)
    report = verify_devices(iot, ledger_devices(ledger, target=TARGET), expected=EXPECTED)
    assert [(o.certificate_id, _codes(o)) for o in report.drifted_devices] == [
        (gone.certificate_id, ["certificate_missing"])
    ]
    # the thing is still read (it exists, in its group); the certificate's lists are not
    assert report.calls["iot.ListPrincipalThings"] == 1
    assert report.calls["iot.ListAttachedPolicies"] == 1
    assert report.calls["iot.DescribeThing"] == 2
    assert report.calls["iot.ListThingGroupsForThing"] == 2


def test_verify_records_a_run_and_leaves_device_records_alone(
    iot: IoTService, ledger: SqliteLedger, factory: ClientFactory, certs: tuple[DeviceCertificate, ...]
) -> None:
    import_run(iot, ledger, certs[:9])
    _inject_drift(factory, certs[:9])
    before = list(ledger.devices(target=TARGET.key))
    report = verify_devices(iot, ledger_devices(ledger, target=TARGET), expected=EXPECTED, ledger=ledger)
    assert list(ledger.devices(target=TARGET.key)) == before
    assert report.run_id is not None
    assert report.ledger == ledger.location
    run = ledger.run(report.run_id)
    assert run is not None
    assert (run.kind, run.status) == ("verify", "finished")
    assert (run.counts["total"], run.counts["drifted"], run.counts["in_sync"]) == (9, 6, 3)
    assert run.options["policies"] == [POLICY]


def test_repair_runs_the_importers_steps_for_what_they_can_fix(
    iot: IoTService, ledger: SqliteLedger, factory: ClientFactory, certs: tuple[DeviceCertificate, ...]
) -> None:
    devices = certs[:9]
    import_run(iot, ledger, devices)
    _inject_drift(factory, devices)
    # device 6 moved to another thing: its repair would put it on a second thing
    client = factory.iot()
    client.detach_thing_principal(thingName=_name(devices[6]), principal=cert_arn(devices[6]))
    client.create_thing(thingName="moved-to")
    client.attach_thing_principal(thingName="moved-to", principal=cert_arn(devices[6]))
    report = verify_devices(
        iot, list(devices), expected=EXPECTED, repair=True, ledger=ledger, sleep=lambda _: None
    )
    assert (report.drifted, report.failed) == (7, 1), report.failures
    by_id = {o.certificate_id: o for o in report.drifted_devices}
    repaired = {cid for cid, o in by_id.items() if o.repaired}
    assert repaired == {devices[i].certificate_id for i in (0, 2, 4, 5)}
    assert report.changed == 4
    for i, word in ((1, "set_status"), (3, "by hand")):  # nothing the importer's steps fix
        left = by_id[devices[i].certificate_id]
        assert (left.status, left.repaired) == ("unchanged", False)
        assert left.note is not None
        assert word in left.note
    # the importer refuses to attach a certificate that is on another thing to a second one
    moved = by_id[devices[6].certificate_id]
    assert _codes(moved) == ["principal_not_attached", "other_things"]
    assert (moved.status, moved.failed_step, moved.reason) == (
        "failed",
        "repair",
        "certificate_on_other_thing",
    )
    assert report.failures == [moved]

    state = State()
    for i in (0, 2, 4, 5, 7, 8):
        assert state.wired(devices[i]), i
    again = verify_devices(iot, list(devices), expected=EXPECTED)
    remaining = sorted(c for o in again.drifted_devices for c in _codes(o))
    assert remaining == ["certificate_status", "other_things", "other_things", "principal_not_attached"]
    # the repair's steps went into the ledger under the verify run
    record = ledger.device(TARGET.key, devices[4].certificate_id)
    assert record is not None
    assert record.done("thing")


def test_repair_without_a_certificate_body_reports_what_it_cannot_do(
    iot: IoTService, ledger: SqliteLedger, factory: ClientFactory, certs: tuple[DeviceCertificate, ...]
) -> None:
    import_run(iot, ledger, certs[:2])
    factory.iot().detach_policy(policyName=POLICY, target=cert_arn(certs[0]))
    report = verify_devices(iot, ledger_devices(ledger, target=TARGET), expected=EXPECTED, repair=True)
    (outcome,) = report.drifted_devices
    assert (outcome.status, outcome.repaired, report.changed) == ("unchanged", False, 0)
    assert outcome.note is not None
    assert "certificate itself" in outcome.note
    assert (cert_arn(certs[0]), POLICY) not in State().principal_policies
    assert "iot.AttachPolicy" not in report.calls


def test_manifest_entries_are_named_as_the_import_named_them(
    iot: IoTService, ledger: SqliteLedger, certs: tuple[DeviceCertificate, ...]
) -> None:
    entries = [
        ManifestEntry(thing_name=f"AA:BB:{i:02d}", certificate=c, index=i) for i, c in enumerate(certs[:3])
    ]
    options = ImportOptions(policies=(POLICY,), thing_name_prefix="plant1-", retry_pause=0.0)
    assert import_run(iot, ledger, entries, options).imported == 3
    checked = verify_devices(iot, entries, expected=options)
    assert (checked.in_sync, checked.drifted) == (3, 0)
    # expecting another thing type than the import gave: every thing drifts, named by the entry
    wrong = verify_devices(iot, entries, expected=ExpectedState(thing_type=TYPE, thing_name_prefix="plant1-"))
    assert {o.thing_name for o in wrong.drifted_devices} == {f"plant1-AA:BB:{i:02d}" for i in range(3)}


def test_an_unreadable_item_is_a_failure_and_the_counts_add_up(
    iot: IoTService, ledger: SqliteLedger, certs: tuple[DeviceCertificate, ...]
) -> None:
    import_run(iot, ledger, certs[:2])
    broken = CertificateParseError(
        "devices.pem entry 2: not a PEM certificate", source="devices.pem", index=1
    )
    report = verify_devices(iot, [certs[0], broken, certs[1], 42], expected=EXPECTED)  # type: ignore[list-item]  # wrong items on purpose
    assert (report.total, report.in_sync, report.failed) == (4, 2, 2)
    steps = sorted((o.failed_step, o.index) for o in report.failures)
    assert steps == [("input", 1), ("input", 3)]
    assert report.failures[0].error is not None


def test_verify_under_20_percent_throttling_ends_complete(
    iot: IoTService, ledger: SqliteLedger, factory: ClientFactory, certs: tuple[DeviceCertificate, ...]
) -> None:
    devices = certs[:40]
    import_run(iot, ledger, devices)
    _inject_drift(factory, devices)
    with FaultInjector(factory, seed=11, fast_retries=True) as faults:
        faults.throttle("iot.*", rate=0.20)
        report = verify_devices(
            iot,
            ledger_devices(ledger, target=TARGET),
            expected=EXPECTED,
            concurrency=8,
            retry=RetryRounds(rounds=10, pause=0.0),
            sleep=lambda _: None,
        )
        throttled = faults.count(kind="throttle")
    assert throttled > 20  # the throttling really happened
    assert (report.total, report.failed, report.drifted, report.in_sync) == (40, 0, 6, 34)
    assert sum(report.call_retries.values()) > 0
    assert sorted(c for o in report.drifted_devices for c in _codes(o)) == sorted(
        [
            "policy_missing",
            "certificate_status",
            "group_missing",
            "other_things",
            "thing_missing",
            "thing_type",
        ]
    )


def test_a_device_ref_names_its_fields_and_refuses_a_bad_id() -> None:
    from thingpress_core.errors import ConfigurationError

    ref = DeviceRef(certificate_id="AB" * 32, thing_name="t")
    assert ref.certificate_id == "ab" * 32  # AWS ids are lowercase
    with pytest.raises(ConfigurationError, match="certificate_id"):
        DeviceRef(certificate_id="xyz")


def test_expected_state_from_a_run_record_takes_its_options(
    iot: IoTService, ledger: SqliteLedger, certs: tuple[DeviceCertificate, ...]
) -> None:
    options = ImportOptions(policies=(POLICY, EXTRA), thing_groups=(GROUP,), thing_type=TYPE, retry_pause=0.0)
    report = import_run(iot, ledger, certs[:1], options)
    run = ledger.run(report.run_id or "")
    assert run is not None
    expected = ExpectedState.from_run(run)
    assert (expected.policies, expected.thing_groups, expected.thing_type, expected.status) == (
        (POLICY, EXTRA),
        (GROUP,),
        TYPE,
        None,
    )
