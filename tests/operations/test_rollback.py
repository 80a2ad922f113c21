"""rollback_run on moto: exactly what one run made is undone, resumably, under faults."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from ops_support import EXTRA, GROUP, POLICY, TARGET, TYPE, State, cert_arn, import_run

from thingpress_core.certificates import DeviceCertificate
from thingpress_core.errors import ConfigurationError
from thingpress_core.importer import ImportOptions
from thingpress_core.ledger import SqliteLedger, Target
from thingpress_core.operations import (
    ExpectedState,
    OperationInterrupted,
    RetryRounds,
    RollbackOutcome,
    last_run,
    ledger_devices,
    plan_rollback,
    rollback_run,
    verify_devices,
)
from thingpress_core.services import IoTService
from thingpress_core.testing import FaultInjector

if TYPE_CHECKING:
    from thingpress_core.clients import ClientFactory

TWO_POLICIES = ImportOptions(
    policies=(POLICY, EXTRA), thing_groups=(GROUP,), thing_type=TYPE, retry_pause=0.0, concurrency=4
)


def no_sleep(seconds: float) -> None:
    """Retry rounds without waiting."""


def _two_runs(
    iot: IoTService, ledger: SqliteLedger, factory: ClientFactory, certs: tuple[DeviceCertificate, ...]
) -> tuple[str, str]:
    """Run 1 imports certs 0-2. Run 2 imports certs 3-6 with a second policy, and meets:
    cert 0 (run 1's: gets the extra policy from run 2), and cert 7, registered in AWS before
    any run (found: run 2 makes nothing of it... but its thing and attachments)."""
    first = import_run(iot, ledger, certs[:3])
    client = factory.iot()
    client.register_certificate_without_ca(certificatePem=certs[7].pem, status="ACTIVE")
    second = import_run(iot, ledger, [certs[0], *certs[3:8]], TWO_POLICIES)
    assert first.run_id is not None
    assert second.run_id is not None
    return first.run_id, second.run_id


def test_rollback_of_run_2_undoes_what_it_made_and_nothing_else(
    iot: IoTService, ledger: SqliteLedger, factory: ClientFactory, certs: tuple[DeviceCertificate, ...]
) -> None:
    run1, run2 = _two_runs(iot, ledger, factory, certs)
    seen: list[RollbackOutcome] = []
    report = rollback_run(iot, ledger, run2, progress=seen.append, sleep=no_sleep)

    state = State()
    for cert in certs[3:7]:  # made by run 2: nothing left
        assert state.gone(cert), cert.common_name
    # run 1's devices are whole; cert 0 lost only the policy run 2 attached to it
    for cert in certs[:3]:
        assert state.wired(cert), cert.common_name
    assert (cert_arn(certs[0]), EXTRA) not in state.principal_policies
    # cert 7 was registered before any run: run 2 made nothing of the certificate itself, so
    # the certificate stays (and so does every step whose mark says "found")
    assert state.certificates.get(certs[7].certificate_id) == "ACTIVE"
    # shared resources are never deleted
    assert {POLICY, EXTRA} <= state.policies
    assert GROUP in state.groups
    assert TYPE in state.types

    assert (report.total, report.failed) == (6, 0), report.failures
    assert report.changed == 5  # certs 0, 3-6
    assert report.unchanged == 1  # cert 7: nothing of it was made by run 2
    assert report.undone == {
        "deactivate": 4,
        "detach_policy": 9,
        "detach_principal": 4,
        "remove_from_group": 4,
        "delete_thing": 4,
        "delete_certificate": 4,
    }
    assert report.calls == {
        "iot.DeleteCertificate": 4,
        "iot.DeleteThing": 4,
        "iot.DetachPolicy": 9,
        "iot.DetachThingPrincipal": 4,
        "iot.RemoveThingFromThingGroup": 4,
        "iot.UpdateCertificate": 4,
    }
    assert report.kept > 0
    assert len(seen) == 6

    # the ledger: run 2's marks are gone, run 1's stay, and the rollback is a run of its own
    left = [r.certificate_id for r in ledger.devices(target=TARGET.key, run_id=run2)]
    assert left == [certs[7].certificate_id]  # only what run 2 found keeps its marks
    record = ledger.device(TARGET.key, certs[0].certificate_id)
    assert record is not None
    assert {m.run_id for m in record.steps.values()} == {run1}
    assert report.run_id is not None
    run = ledger.run(report.run_id)
    assert run is not None
    assert (run.kind, run.of_run, run.status) == ("rollback", run2, "finished")

    # run 1's devices still verify clean against run 1's options
    run1_record = ledger.run(run1)
    assert run1_record is not None
    check = verify_devices(
        iot, ledger_devices(ledger, target=TARGET, run_id=run1), expected=ExpectedState.from_run(run1_record)
    )
    assert (check.total, check.in_sync) == (3, 3)

    # a second rollback of run 2 finds nothing left to undo
    again = rollback_run(iot, ledger, run2, sleep=no_sleep)
    assert (again.changed, again.failed, again.total_calls) == (0, 0, 0)


def test_a_device_a_later_run_built_on_is_left_whole_until_that_run_is_rolled_back(
    iot: IoTService, ledger: SqliteLedger, factory: ClientFactory, certs: tuple[DeviceCertificate, ...]
) -> None:
    run1, run2 = _two_runs(iot, ledger, factory, certs)
    plan = plan_rollback(ledger, run1)
    assert (plan.devices, plan.to_undo, plan.blocked) == (3, 2, 1)
    assert run2 in plan.blocked_devices[0]

    first = rollback_run(iot, ledger, run1, sleep=no_sleep)
    (blocked,) = first.failures
    assert (blocked.certificate_id, blocked.failed_step, blocked.reason) == (
        certs[0].certificate_id,
        "blocked",
        "blocked",
    )
    assert blocked.error is not None
    assert f"roll back {run2} first" in blocked.error
    assert State().wired(certs[0], policies=(POLICY, EXTRA))  # not touched at all

    rollback_run(iot, ledger, run2, sleep=no_sleep)
    second = rollback_run(iot, ledger, run1, sleep=no_sleep)
    assert (second.total, second.changed, second.failed) == (1, 1, 0)
    state = State()
    for cert in certs[:7]:
        assert state.gone(cert), cert.common_name


def test_dry_run_prints_the_plan_with_counts_and_calls_nothing(
    iot: IoTService, ledger: SqliteLedger, factory: ClientFactory, certs: tuple[DeviceCertificate, ...]
) -> None:
    _, run2 = _two_runs(iot, ledger, factory, certs)
    runs_before = len(ledger.runs())
    calls_before = iot.stats().calls
    report = rollback_run(iot, ledger, run2, dry_run=True)
    assert iot.stats().calls == calls_before
    assert len(ledger.runs()) == runs_before  # a dry run records nothing
    plan = report.plan
    assert plan is not None
    assert report.dry_run
    assert (plan.devices, plan.to_undo, plan.untouched, plan.blocked) == (6, 5, 1, 0)
    assert plan.steps == {
        "deactivate": 4,
        "detach_policy": 9,
        "detach_principal": 4,
        "remove_from_group": 4,
        "delete_thing": 4,
        "delete_certificate": 4,
    }
    assert plan.total_calls == 29
    assert plan.minimum_seconds({"iot.DetachPolicy": 3.0}) == pytest.approx(3.0)
    text = "\n".join(plan.lines())
    assert "detach_policy" in text
    assert "iot.DeleteCertificate" in text
    assert report.summary().startswith("dry run: ")
    # and the plan is what the real rollback then does
    done = rollback_run(iot, ledger, run2, sleep=no_sleep)
    assert done.undone == plan.steps


def test_a_rollback_interrupted_midway_then_run_again_finishes(
    iot: IoTService, ledger: SqliteLedger, certs: tuple[DeviceCertificate, ...]
) -> None:
    run = import_run(iot, ledger, certs[:12]).run_id
    assert run is not None

    def stop_after_three(outcome: RollbackOutcome) -> None:
        stop_after_three.seen += 1  # type: ignore[attr-defined]  # a counter on the function
        if stop_after_three.seen == 3:  # type: ignore[attr-defined]
            raise KeyboardInterrupt

    stop_after_three.seen = 0  # type: ignore[attr-defined]
    with pytest.raises(OperationInterrupted) as info:
        rollback_run(iot, ledger, run, concurrency=2, progress=stop_after_three, sleep=no_sleep)
    partial = info.value.report
    assert partial.interrupted
    assert 3 <= partial.total < 12
    assert partial.total + len(partial.unfinished) <= 12
    assert partial.run_id is not None
    interrupted = ledger.run(partial.run_id)
    assert interrupted is not None
    assert interrupted.status == "interrupted"

    rest = rollback_run(iot, ledger, run, sleep=no_sleep)
    assert rest.failed == 0
    assert partial.total + rest.changed == 12  # each device rolled back exactly once
    state = State()
    for cert in certs[:12]:
        assert state.gone(cert), cert.common_name
    deleted = partial.calls.get("iot.DeleteCertificate", 0) + rest.calls.get("iot.DeleteCertificate", 0)
    assert deleted == 12


def test_a_device_that_failed_midway_resumes_at_its_first_undo_not_done(
    iot: IoTService, ledger: SqliteLedger, factory: ClientFactory, certs: tuple[DeviceCertificate, ...]
) -> None:
    run = import_run(iot, ledger, certs[:4]).run_id
    assert run is not None
    with FaultInjector(factory, fast_retries=True) as faults:
        faults.error("iot.DeleteThing", code="InvalidRequestException", status=400, times=1)
        first = rollback_run(iot, ledger, run, retry=RetryRounds(rounds=0), sleep=no_sleep)
    (failed,) = first.failures
    assert (failed.failed_step, failed.reason) == ("delete_thing", "invalid_request")
    assert failed.undone == (
        "deactivate",
        f"detach_policy:{POLICY}",
        "detach_principal",
        f"remove_from_group:{GROUP}",
    )
    record = ledger.device(TARGET.key, failed.certificate_id or "")
    assert record is not None
    assert sorted(record.steps) == ["register", "thing"]  # what is left to undo, and only that

    second = rollback_run(iot, ledger, run, sleep=no_sleep)
    assert (second.total, second.changed, second.failed) == (1, 1, 0)
    assert second.calls == {"iot.DeleteCertificate": 1, "iot.DeleteThing": 1, "iot.UpdateCertificate": 1}
    state = State()
    for cert in certs[:4]:
        assert state.gone(cert), cert.common_name


def test_a_refusal_right_after_a_detachment_goes_round_again(
    iot: IoTService, ledger: SqliteLedger, factory: ClientFactory, certs: tuple[DeviceCertificate, ...]
) -> None:
    """AWS detaches a thing principal asynchronously: DeleteCertificate may still see it."""
    run = import_run(iot, ledger, certs[:2]).run_id
    assert run is not None
    pauses: list[float] = []
    with FaultInjector(factory, fast_retries=True) as faults:
        faults.error("iot.DeleteCertificate", code="DeleteConflictException", status=409, times=1)
        report = rollback_run(iot, ledger, run, retry=RetryRounds(pause=2.0), sleep=pauses.append)
    assert (report.changed, report.failed, report.retried, report.rounds) == (2, 0, 1, 1)
    assert pauses == [2.0]
    assert all(State().gone(cert) for cert in certs[:2])


def test_rollback_under_20_percent_throttling_ends_complete(
    iot: IoTService, ledger: SqliteLedger, factory: ClientFactory, certs: tuple[DeviceCertificate, ...]
) -> None:
    keep = import_run(iot, ledger, certs[:5]).run_id
    run = import_run(iot, ledger, certs[5:45]).run_id
    assert keep is not None
    assert run is not None
    with FaultInjector(factory, seed=5, fast_retries=True) as faults:
        faults.throttle("iot.*", rate=0.20)
        report = rollback_run(
            iot, ledger, run, concurrency=8, retry=RetryRounds(rounds=10, pause=0.0), sleep=no_sleep
        )
        throttled = faults.count(kind="throttle")
    assert throttled > 20
    assert (report.total, report.changed, report.failed) == (40, 40, 0), report.failures[:2]
    state = State()
    assert all(state.gone(cert) for cert in certs[5:45])
    assert all(state.wired(cert) for cert in certs[:5])


def test_unknown_runs_other_targets_and_runs_that_made_nothing_are_refused(
    iot: IoTService, ledger: SqliteLedger, certs: tuple[DeviceCertificate, ...]
) -> None:
    run = import_run(iot, ledger, certs[:1]).run_id
    assert run is not None
    with pytest.raises(ConfigurationError, match="not in ledger"):
        rollback_run(iot, ledger, "20200101T000000Z-000000")
    elsewhere = Target(account_id="210987654321", region="eu-west-1")
    with pytest.raises(ConfigurationError, match="refusing"):
        rollback_run(iot, ledger, run, target=elsewhere)
    rollback = rollback_run(iot, ledger, run, sleep=no_sleep).run_id
    assert rollback is not None
    with pytest.raises(ConfigurationError, match="rollback run"):
        rollback_run(iot, ledger, rollback)
    assert State().gone(certs[0])


def test_a_service_in_another_account_is_refused(
    ledger: SqliteLedger, factory: ClientFactory, iot: IoTService, certs: tuple[DeviceCertificate, ...]
) -> None:
    from thingpress_core.clients import ClientFactory
    from thingpress_core.settings import ThingpressSettings

    run = import_run(iot, ledger, certs[:1]).run_id
    assert run is not None
    other = IoTService(ClientFactory(ThingpressSettings(region="eu-west-1", account_id="123456789012")))
    with pytest.raises(ConfigurationError, match="talks to 123456789012/eu-west-1"):
        rollback_run(other, ledger, run)
    assert State().wired(certs[0])


def test_last_run_is_the_newest_of_its_kind(
    iot: IoTService, ledger: SqliteLedger, certs: tuple[DeviceCertificate, ...]
) -> None:
    assert last_run(ledger) is None
    import_run(iot, ledger, certs[:1])
    newest = import_run(iot, ledger, certs[1:2]).run_id
    found = last_run(ledger, TARGET.key)
    assert found is not None
    assert found.run_id == newest
    rollback_run(iot, ledger, found.run_id, sleep=no_sleep)
    latest_rollback = last_run(ledger, kind="rollback")
    assert latest_rollback is not None
    assert latest_rollback.of_run == newest
    assert last_run(ledger, "999999999999/us-east-1") is None


def test_with_the_dynamodb_ledger_undos_leave_the_shared_record_and_a_rerun_resumes(
    iot: IoTService, factory: ClientFactory, certs: tuple[DeviceCertificate, ...]
) -> None:
    """DynamoDB merges the steps of a save: only the steps named in ``removed`` go."""
    from thingpress_core.ledger import DynamoDBLedger

    ledger = DynamoDBLedger("ops-ledger", factory=factory, create=True)
    run = import_run(iot, ledger, certs[:3]).run_id
    assert run is not None
    with FaultInjector(factory, fast_retries=True) as faults:
        faults.error("iot.DeleteThing", code="InvalidRequestException", status=400, times=1)
        first = rollback_run(iot, ledger, run, retry=RetryRounds(rounds=0), sleep=no_sleep)
    (failed,) = first.failures
    record = ledger.device(TARGET.key, failed.certificate_id or "")
    assert record is not None
    assert sorted(record.steps) == ["register", "thing"]
    assert record.certificate_status == "INACTIVE"
    second = rollback_run(iot, ledger, run, sleep=no_sleep)
    assert (second.total, second.changed, second.failed) == (1, 1, 0)
    assert all(State().gone(cert) for cert in certs[:3])
    assert list(ledger.devices(target=TARGET.key, run_id=run)) == []
