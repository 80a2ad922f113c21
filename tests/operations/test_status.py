"""set_status on moto: UpdateCertificate at one call a device, idempotent, recorded in the ledger."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ops_support import GROUP, POLICY, TARGET, TYPE, State, import_run

from thingpress_core.certificates import DeviceCertificate
from thingpress_core.importer import ImportOptions
from thingpress_core.ledger import SqliteLedger
from thingpress_core.operations import DeviceRef, RetryRounds, ledger_devices, set_status
from thingpress_core.services import IoTService
from thingpress_core.testing import FaultInjector

if TYPE_CHECKING:
    from thingpress_core.clients import ClientFactory

STAGED = ImportOptions(
    policies=(POLICY,), thing_groups=(GROUP,), thing_type=TYPE, status="INACTIVE", retry_pause=0.0
)


def test_a_staged_fleet_is_activated_once_and_the_ledger_knows(
    iot: IoTService, ledger: SqliteLedger, certs: tuple[DeviceCertificate, ...]
) -> None:
    import_run(iot, ledger, certs[:5], STAGED)
    assert set(State().certificates.values()) == {"INACTIVE"}

    report = set_status(iot, ledger_devices(ledger, target=TARGET), "ACTIVE", ledger=ledger)
    assert (report.total, report.changed, report.unchanged, report.failed) == (5, 5, 0, 0)
    assert report.calls == {"iot.UpdateCertificate": 5}
    assert set(State().certificates.values()) == {"ACTIVE"}
    assert {r.certificate_status for r in ledger.devices(target=TARGET.key)} == {"ACTIVE"}
    assert report.run_id is not None
    run = ledger.run(report.run_id)
    assert run is not None
    assert (run.kind, run.status, run.counts["changed"]) == ("activate", "finished", 5)

    again = set_status(iot, ledger_devices(ledger, target=TARGET), "ACTIVE", ledger=ledger)
    assert (again.changed, again.unchanged, again.total_calls) == (0, 5, 0)  # the ledger says so: no call
    assert "already ACTIVE" in again.summary()

    down = set_status(iot, list(certs[:5]), "INACTIVE", ledger=ledger)
    assert (down.changed, down.calls) == (5, {"iot.UpdateCertificate": 5})
    assert set(State().certificates.values()) == {"INACTIVE"}
    down_run = ledger.run(down.run_id or "")
    assert down_run is not None
    assert down_run.kind == "deactivate"
    # the import's steps are untouched: a status change makes no step and no mark
    record = ledger.device(TARGET.key, certs[0].certificate_id)
    assert record is not None
    assert record.certificate_status == "INACTIVE"
    assert record.run_id == down.run_id
    assert len(list(ledger.devices(target=TARGET.key, run_id=down.run_id))) == 0


def test_without_a_ledger_every_device_costs_one_idempotent_call(
    iot: IoTService, ledger: SqliteLedger, certs: tuple[DeviceCertificate, ...]
) -> None:
    import_run(iot, ledger, certs[:3])
    for _ in range(2):
        report = set_status(iot, list(certs[:3]), "ACTIVE")
        assert (report.changed, report.failed, report.run_id) == (3, 0, None)
        assert report.calls == {"iot.UpdateCertificate": 3}
    assert set(State().certificates.values()) == {"ACTIVE"}


def test_an_unknown_certificate_fails_not_found_and_the_rest_goes_on(
    iot: IoTService, ledger: SqliteLedger, certs: tuple[DeviceCertificate, ...]
) -> None:
    import_run(iot, ledger, certs[:2])
    unknown = DeviceRef(certificate_id=certs[9].certificate_id, thing_name="nowhere")
    report = set_status(iot, [certs[0], unknown, certs[1]], "INACTIVE")
    assert (report.total, report.changed, report.failed) == (3, 2, 1)
    (failure,) = report.failures
    assert (failure.certificate_id, failure.failed_step, failure.reason, failure.transient) == (
        certs[9].certificate_id,
        "update_certificate",
        "not_found",
        False,
    )
    assert failure.error is not None
    assert certs[9].certificate_id in failure.error


def test_set_status_under_20_percent_throttling_ends_complete(
    iot: IoTService, ledger: SqliteLedger, factory: ClientFactory, certs: tuple[DeviceCertificate, ...]
) -> None:
    import_run(iot, ledger, certs[:30], STAGED)
    with FaultInjector(factory, seed=3, fast_retries=True) as faults:
        faults.throttle("iot.*", rate=0.20)
        report = set_status(
            iot,
            ledger_devices(ledger, target=TARGET),
            "ACTIVE",
            ledger=ledger,
            retry=RetryRounds(rounds=10, pause=0.0),
            sleep=lambda _: None,
        )
        assert faults.count(kind="throttle") > 3
    assert (report.total, report.changed, report.failed) == (30, 30, 0)
    assert set(State().certificates.values()) == {"ACTIVE"}
