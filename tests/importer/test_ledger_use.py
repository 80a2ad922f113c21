"""Issue 14: the importer records every confirmed step and a re-run costs nothing for done devices."""

from __future__ import annotations

import pytest
from fake_iot import GROUP, POLICY, TYPE, FakeIoT, generic_error, throttled
from memory_ledger import MemoryLedger

from thingpress_core.certificates import DeviceCertificate
from thingpress_core.certificates.generate import GeneratedCA, issue_certificate
from thingpress_core.errors import ConfigurationError, PreflightError
from thingpress_core.importer import CertificateImporter, ImportInterrupted, ImportOptions, OutcomeStatus
from thingpress_core.ledger import Target
from thingpress_core.manifests import ManifestEntry

TARGET = Target(account_id="123456789012", region="us-east-1")
OTHER = Target(account_id="210987654321", region="us-east-1")
OPTIONS = ImportOptions(
    policies=(POLICY,), thing_groups=(GROUP,), thing_type=TYPE, preflight=False, retry_pause=0.0
)
FLOOR = ["register", "thing", "principal", f"policy:{POLICY}", f"group:{GROUP}"]


def _fake() -> FakeIoT:
    return FakeIoT(policies=[POLICY, "P2"], thing_groups=[GROUP, "G2"], thing_types=[TYPE])


def _importer(
    fake: FakeIoT, ledger: MemoryLedger, options: ImportOptions = OPTIONS, target: Target = TARGET
) -> CertificateImporter:
    return CertificateImporter(fake, options=options, ledger=ledger, target=target, sleep=lambda _: None)


def test_every_confirmed_step_is_recorded_with_the_run(pool: tuple[DeviceCertificate, ...]) -> None:
    ledger, fake = MemoryLedger(), _fake()
    entry = ManifestEntry(thing_name="AA:BB", certificate=pool[0], index=7, vendor_id="AA:BB", source="m.csv")
    report = _importer(fake, ledger).import_all([entry])
    assert report.imported == 1
    record = ledger.device(TARGET.key, pool[0].certificate_id)
    assert record is not None
    assert list(record.steps) == FLOOR
    assert {mark.run_id for mark in record.steps.values()} == {report.run_id}
    assert all(mark.made for mark in record.steps.values())  # a new device: this run made every step
    assert (record.thing_name, record.thing_type, record.certificate_status) == ("AA:BB", TYPE, "ACTIVE")
    assert (record.source, record.entry_index, record.vendor_id) == ("m.csv", 7, "AA:BB")
    assert record.certificate_arn is not None
    run = ledger.run(report.run_id or "")
    assert run is not None
    assert (run.status, run.counts["imported"], run.options["policies"]) == ("finished", 1, [POLICY])
    assert report.ledger == "memory"


def test_a_rerun_over_a_done_ledger_makes_no_aws_call(pool: tuple[DeviceCertificate, ...]) -> None:
    ledger, fake = MemoryLedger(), _fake()
    _importer(fake, ledger).import_all(pool[:20])
    before = fake.stats().calls
    second = _importer(fake, ledger).import_all(pool[:20])
    assert (second.already_present, second.imported, second.failed) == (20, 0, 0)
    assert fake.stats().calls == before  # not a single call
    assert second.calls == {}


def test_a_partial_record_resumes_at_the_first_step_not_done(pool: tuple[DeviceCertificate, ...]) -> None:
    ledger, fake = MemoryLedger(), _fake()
    failing = {"armed": True}

    def faults(op: str, subject: str) -> BaseException | None:
        if op == "iot.AttachPolicy" and failing["armed"]:
            return generic_error(op)  # permanent: the run ends with the device half done
        return None

    fake.faults = faults
    first = _importer(fake, ledger).import_all([pool[1]])
    assert first.failed == 1
    record = ledger.device(TARGET.key, pool[1].certificate_id)
    assert record is not None
    assert list(record.steps) == ["register", "thing", "principal"]
    assert record.last_error_step == "attach_policy"
    assert "AttachPolicy" in (record.last_error or "")
    failing["armed"] = False
    before = dict(fake.stats().calls)
    second = _importer(fake, ledger).import_all([pool[1]])
    made = {op: n - before.get(op, 0) for op, n in fake.stats().calls.items() if n - before.get(op, 0)}
    assert made == {"iot.AttachPolicy": 1, "iot.AddThingToThingGroup": 1}  # only what was left
    assert second.imported == 1  # the device was made by a run of this ledger
    record = ledger.device(TARGET.key, pool[1].certificate_id)
    assert record is not None
    assert list(record.steps) == FLOOR
    assert record.last_error is None
    assert record.steps["register"].run_id == first.run_id
    assert record.steps[f"policy:{POLICY}"].run_id == second.run_id


def test_new_options_cost_only_their_own_calls(pool: tuple[DeviceCertificate, ...]) -> None:
    ledger, fake = MemoryLedger(), _fake()
    _importer(fake, ledger).import_all([pool[2]])
    before = dict(fake.stats().calls)
    more = OPTIONS.model_copy(update={"policies": (POLICY, "P2"), "thing_groups": (GROUP, "G2")})
    _importer(fake, ledger, more).import_all([pool[2]])
    made = {op: n - before.get(op, 0) for op, n in fake.stats().calls.items() if n - before.get(op, 0)}
    assert made == {"iot.AttachPolicy": 1, "iot.AddThingToThingGroup": 1}


def test_the_ledger_refuses_a_thing_name_another_certificate_holds_without_a_call(ca: GeneratedCA) -> None:
    ledger, fake = MemoryLedger(), _fake()
    first, _ = issue_certificate("shared-name", issuer=ca)
    second, _ = issue_certificate("shared-name", issuer=ca)
    _importer(fake, ledger).import_all([first])
    before = dict(fake.stats().calls)
    outcome = _importer(fake, ledger).import_certificate(second)
    assert outcome.status is OutcomeStatus.FAILED
    assert (outcome.reason, outcome.other_certificate_id, outcome.calls) == (
        "name_collision",
        first.certificate_id,
        0,
    )
    assert "the ledger" in (outcome.error or "")
    assert fake.stats().calls == before


def test_recheck_ignores_done_marks_and_repairs_what_aws_lacks(pool: tuple[DeviceCertificate, ...]) -> None:
    ledger, fake = MemoryLedger(), _fake()
    _importer(fake, ledger).import_all([pool[3]])
    # someone removed the thing's group membership in AWS; the ledger still says done
    fake.things[pool[3].common_name or ""].groups.clear()
    again = _importer(fake, ledger).import_all([pool[3]])
    assert again.calls == {}
    assert fake.things[pool[3].common_name or ""].groups == []
    rechecked = _importer(fake, ledger, OPTIONS.model_copy(update={"recheck": True})).import_all([pool[3]])
    assert rechecked.calls["iot.AddThingToThingGroup"] == 1
    assert fake.things[pool[3].common_name or ""].groups == [GROUP]


def test_a_device_found_registered_is_not_made_by_the_run(pool: tuple[DeviceCertificate, ...]) -> None:
    ledger, fake = MemoryLedger(), _fake()
    fake.register_certificate(pool[4])  # registered before, outside this ledger
    _importer(fake, ledger).import_all([pool[4]])
    record = ledger.device(TARGET.key, pool[4].certificate_id)
    assert record is not None
    assert not any(mark.made for mark in record.steps.values())  # a rollback leaves it alone


def test_records_of_another_target_are_never_used(pool: tuple[DeviceCertificate, ...]) -> None:
    ledger = MemoryLedger()
    _importer(_fake(), ledger).import_all([pool[5]])
    other_account = _fake()
    report = _importer(other_account, ledger, target=OTHER).import_all([pool[5]])
    assert report.imported == 1
    assert other_account.created_certificates == 1
    assert ledger.device(OTHER.key, pool[5].certificate_id) is not None


def test_an_interrupted_run_is_recorded_as_such(pool: tuple[DeviceCertificate, ...]) -> None:
    ledger, fake = MemoryLedger(), _fake()
    seen = []

    def progress(outcome: object) -> None:
        seen.append(outcome)
        if len(seen) == 3:
            raise KeyboardInterrupt

    with pytest.raises(ImportInterrupted) as info:
        _importer(fake, ledger, OPTIONS.model_copy(update={"concurrency": 1})).import_all(
            pool[:30], progress=progress
        )
    run = ledger.run(info.value.report.run_id or "")
    assert run is not None
    assert run.status == "interrupted"
    assert run.counts["total"] == info.value.report.total


def test_throttling_is_retried_and_only_confirmed_steps_recorded(pool: tuple[DeviceCertificate, ...]) -> None:
    ledger, fake = MemoryLedger(), _fake()
    once: set[str] = set()

    def faults(op: str, subject: str) -> BaseException | None:
        if op == "iot.CreateThing" and subject not in once:
            once.add(subject)
            return throttled(op)
        return None

    fake.faults = faults
    report = _importer(fake, ledger).import_all(pool[6:10])
    assert report.imported == 4
    for cert in pool[6:10]:
        record = ledger.device(TARGET.key, cert.certificate_id)
        assert record is not None
        assert list(record.steps) == FLOOR


def test_a_ledger_with_a_service_that_has_no_factory_needs_a_target(
    pool: tuple[DeviceCertificate, ...],
) -> None:
    importer = CertificateImporter(_fake(), options=OPTIONS, ledger=MemoryLedger())
    with pytest.raises(ConfigurationError, match="target="):
        importer.import_all(pool[:1])


def test_a_device_the_ledger_puts_on_another_thing_is_refused_without_a_call(
    pool: tuple[DeviceCertificate, ...],
) -> None:
    """Imported under its MAC, then offered under another name: the ledger knows it is on a
    thing already, so no second thing, and not one AWS call; allowed, it gets the second."""
    ledger, fake = MemoryLedger(), _fake()
    by_mac = ManifestEntry(thing_name="A0B1C2D3E4F5", certificate=pool[2], index=0)
    assert _importer(fake, ledger).import_all([by_mac]).imported == 1
    before = dict(fake.stats().calls)
    by_cn = ManifestEntry(thing_name="device-cn", certificate=pool[2], index=0)
    refused = _importer(fake, ledger).import_all([by_cn])
    assert refused.failed == 1
    failure = refused.failures[0]
    assert (failure.reason, failure.other_things) == ("certificate_on_other_thing", ("A0B1C2D3E4F5",))
    assert fake.stats().calls == before
    allowed = OPTIONS.model_copy(update={"allow_multiple_things": True})
    again = _importer(fake, ledger, options=allowed).import_all([by_cn])
    assert (again.failed, again.already_present + again.imported) == (0, 1)
    holding = {t.name for t in fake.things.values() if any(pool[2].certificate_id in p for p in t.principals)}
    assert holding == {"A0B1C2D3E4F5", "device-cn"}


def test_with_a_ledger_the_preflight_waits_for_the_first_device_that_needs_aws(
    pool: tuple[DeviceCertificate, ...],
) -> None:
    checked = OPTIONS.model_copy(update={"preflight": True})
    ledger, fake = MemoryLedger(), _fake()
    first = _importer(fake, ledger, options=checked).import_all(pool[:4])
    assert first.calls.get("iot.GetPolicy") == 1
    before = fake.stats().calls
    again = _importer(fake, ledger, options=checked).import_all(pool[:4])
    assert again.already_present == 4
    assert fake.stats().calls == before  # not even the preflight's reads

    # one new device: the preflight runs before it, once
    more = _importer(fake, ledger, options=checked).import_all(pool[:6])
    assert (more.already_present, more.imported) == (4, 2)
    assert more.calls["iot.GetPolicy"] == 1


def test_a_lazy_preflight_that_fails_still_ends_the_run_before_any_write(
    pool: tuple[DeviceCertificate, ...],
) -> None:
    ledger, fake = MemoryLedger(), _fake()
    _importer(fake, ledger).import_all(pool[:2])
    missing = OPTIONS.model_copy(update={"preflight": True, "policies": ("Gone",), "concurrency": 4})
    before = dict(fake.stats().calls)
    with pytest.raises(PreflightError, match="Gone"):
        _importer(fake, ledger, options=missing).import_all(pool[:10])
    made = {op: n - before.get(op, 0) for op, n in fake.stats().calls.items() if n - before.get(op, 0)}
    assert set(made) <= {"iot.GetPolicy", "iot.DescribeThingGroup", "iot.DescribeThingType"}
    assert made["iot.GetPolicy"] == 1  # checked once, not once per device
    (failed_run,) = [r for r in ledger.runs() if r.status == "failed"]
    assert failed_run.options["policies"] == ["Gone"]
