"""import_all: streaming, retry rounds, duplicates, preflight, progress and the report."""

from __future__ import annotations

import itertools
import json
import threading
from collections import Counter
from collections.abc import Iterator

import pytest
from fake_iot import GROUP, POLICY, TYPE, FakeIoT, throttled

from thingpress_core.certificates import DeviceCertificate
from thingpress_core.certificates.generate import GeneratedCA, generate_device_certificates
from thingpress_core.errors import CertificateParseError, CircuitOpenError, PreflightError
from thingpress_core.importer import (
    CertificateImporter,
    ImportInterrupted,
    ImportOptions,
    ImportOutcome,
    ImportReport,
    OutcomeStatus,
)
from thingpress_core.manifests import ManifestEntry

FULL = ImportOptions(policies=(POLICY,), thing_groups=(GROUP,), thing_type=TYPE, retry_pause=0.5)


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def importer_for(
    fake: FakeIoT, options: ImportOptions = FULL, sleeps: Sleeps | None = None
) -> CertificateImporter:
    return CertificateImporter(fake, options=options, sleep=sleeps if sleeps is not None else Sleeps())


def test_every_certificate_is_imported_with_the_floor_calls(
    fake: FakeIoT, pool: tuple[DeviceCertificate, ...]
) -> None:
    report = importer_for(fake).import_all(iter(pool[:50]))
    assert (report.total, report.imported, report.failed) == (50, 50, 0)
    assert report.calls == {
        "iot.GetPolicy": 1,
        "iot.DescribeThingGroup": 1,
        "iot.DescribeThingType": 1,
        "iot.RegisterCertificateWithoutCA": 50,
        "iot.CreateThing": 50,
        "iot.AttachThingPrincipal": 50,
        "iot.AttachPolicy": 50,
        "iot.AddThingToThingGroup": 50,
    }
    assert report.total_calls == 3 + 5 * 50
    assert report.failures == []
    assert report.ok
    assert report.rounds == 0
    assert report.retried == 0
    assert len(fake.things) == 50
    assert len(fake.threads) > 1  # it really ran on the pool


def test_a_second_run_reports_already_present_and_creates_nothing(
    fake: FakeIoT, pool: tuple[DeviceCertificate, ...]
) -> None:
    importer_for(fake).import_all(pool[:30])
    before = (fake.created_certificates, fake.created_things)
    report = importer_for(fake).import_all(pool[:30])
    assert (report.already_present, report.imported, report.failed) == (30, 0, 0)
    assert (fake.created_certificates, fake.created_things) == before
    assert all(len(t.principals) == 1 and t.groups == [GROUP] for t in fake.things.values())


def test_the_input_is_streamed_within_a_window_of_twice_the_concurrency(
    fake: FakeIoT, pool: tuple[DeviceCertificate, ...]
) -> None:
    finished = 0
    max_ahead = 0
    consumer = threading.get_ident()

    def source() -> Iterator[DeviceCertificate]:
        nonlocal max_ahead
        for read, cert in enumerate(pool, start=1):
            max_ahead = max(max_ahead, read - finished)
            yield cert

    def progress(outcome: ImportOutcome) -> None:
        nonlocal finished
        assert threading.get_ident() == consumer  # called on the calling thread
        finished += 1

    options = FULL.model_copy(update={"concurrency": 4})
    report = importer_for(fake, options).import_all(source(), progress=progress)
    assert report.total == finished == len(pool)
    assert max_ahead <= 2 * 4 + 1


def test_transient_failures_go_round_again_after_the_others_and_resume_at_their_step(
    pool: tuple[DeviceCertificate, ...],
) -> None:
    # Each of the first 10 certificates' AttachPolicy is throttled twice, then succeeds.
    victims = {f"arn:aws:iot:us-east-1:123456789012:cert/{c.certificate_id}" for c in pool[:10]}
    seen: Counter[str] = Counter()
    lock = threading.Lock()
    order: list[str] = []

    def faults(op: str, subject: str) -> BaseException | None:
        with lock:
            order.append(subject)
            if op == "iot.AttachPolicy" and subject in victims:
                seen[subject] += 1
                if seen[subject] <= 2:
                    return throttled(op)
        return None

    fake = FakeIoT(policies=[POLICY], thing_groups=[GROUP], thing_types=[TYPE], faults=faults)
    sleeps = Sleeps()
    report = importer_for(fake, sleeps=sleeps).import_all(pool[:40])
    assert (report.imported, report.failed, report.retried, report.rounds) == (40, 0, 10, 2)
    assert sleeps == [0.5, 1.0]  # retry_pause, doubled
    # Resumed at the failed step: register, thing and principal were not repeated.
    assert report.calls["iot.RegisterCertificateWithoutCA"] == 40
    assert report.calls["iot.CreateThing"] == 40
    assert report.calls["iot.AttachPolicy"] == 40 + 20
    assert report.call_failures == {"iot.AttachPolicy": 20}
    # The retries came after every other certificate was done: no call for any of the 30
    # certificates that never failed comes after the first call of the first retry round.
    others = {c.certificate_id for c in pool[10:40]}
    others |= {f"arn:aws:iot:us-east-1:123456789012:cert/{c}" for c in set(others)}
    others |= {f"device-{i:06d}" for i in range(10, 40)}
    last_other = max(i for i, subject in enumerate(order) if subject in others)
    victim_calls = [i for i, subject in enumerate(order) if subject in victims]
    first_retry = victim_calls[10]  # the first ten are the victims' first AttachPolicy
    assert last_other < first_retry


def test_a_retried_certificate_keeps_its_imported_status(pool: tuple[DeviceCertificate, ...]) -> None:
    # The first attempt created everything but the group membership; the retry must not say
    # "already present" just because its own calls were repeats.
    calls: Counter[str] = Counter()

    def faults(op: str, subject: str) -> BaseException | None:
        calls[op] += 1
        return throttled(op) if op == "iot.AddThingToThingGroup" and calls[op] == 1 else None

    fake = FakeIoT(policies=[POLICY], thing_groups=[GROUP], thing_types=[TYPE], faults=faults)
    outcomes: list[ImportOutcome] = []
    report = importer_for(fake).import_all([pool[0]], progress=outcomes.append)
    assert report.imported == 1
    assert outcomes[0].attempts == 2
    assert outcomes[0].calls == 6


def test_retry_rounds_are_bounded_and_the_failure_is_reported_transient(
    pool: tuple[DeviceCertificate, ...],
) -> None:
    fake = FakeIoT(
        policies=[POLICY],
        thing_groups=[GROUP],
        thing_types=[TYPE],
        faults=lambda op, s: throttled(op) if op == "iot.CreateThing" and s == "device-000001" else None,
    )
    sleeps = Sleeps()
    options = FULL.model_copy(update={"transient_rounds": 2})
    report = importer_for(fake, options, sleeps).import_all(pool[:5])
    assert (report.imported, report.failed, report.rounds) == (4, 1, 2)
    failure = report.failures[0]
    assert (failure.failed_step, failure.transient, failure.attempts) == ("thing", True, 3)
    assert failure.calls == 1 + 3  # one registration, three CreateThing attempts
    assert failure.index == 1
    assert len(sleeps) == 2


def test_no_retry_rounds_when_transient_rounds_is_zero(pool: tuple[DeviceCertificate, ...]) -> None:
    fake = FakeIoT(faults=lambda op, _: throttled(op) if op == "iot.CreateThing" else None)
    sleeps = Sleeps()
    report = importer_for(fake, ImportOptions(transient_rounds=0), sleeps).import_all(pool[:3])
    assert (report.failed, report.rounds, sleeps) == (3, 0, [])


def test_an_open_breaker_sets_the_pause_before_the_next_round(pool: tuple[DeviceCertificate, ...]) -> None:
    refused: set[str] = set()

    def faults(op: str, subject: str) -> BaseException | None:
        if op == "iot.RegisterCertificateWithoutCA" and subject not in refused:
            refused.add(subject)
            return CircuitOpenError("open", name=op, retry_after=12.5)
        return None

    sleeps = Sleeps()
    outcomes: list[ImportOutcome] = []
    report = importer_for(FakeIoT(faults=faults), ImportOptions(retry_pause=0.1), sleeps).import_all(
        pool[:4], progress=outcomes.append
    )
    assert report.imported == 4
    assert sleeps == [12.5]
    # refusals never reached AWS: neither a call nor an attempt (issue 11: they are not tries)
    assert [(o.calls, o.attempts) for o in outcomes] == [(3, 1)] * 4


def test_an_outage_pauses_reading_instead_of_queueing_the_whole_input(
    pool: tuple[DeviceCertificate, ...], ca: GeneratedCA
) -> None:
    # While the breaker is open every certificate fails at once; the importer must not race
    # through the input queueing everything for later. It starts a round early and pauses.
    down = True
    read = finished = max_ahead = 0

    def faults(op: str, subject: str) -> BaseException | None:
        if down and op == "iot.RegisterCertificateWithoutCA":
            return CircuitOpenError("circuit open", name=op, retry_after=5.0)
        return None

    def recover(seconds: float) -> None:
        nonlocal down
        sleeps.append(seconds)
        down = False

    def source() -> Iterator[DeviceCertificate]:
        nonlocal read, max_ahead
        for cert in generate_device_certificates(600, ca=ca, cn_prefix="outage-"):
            read += 1
            max_ahead = max(max_ahead, read - finished)
            yield cert

    def progress(outcome: ImportOutcome) -> None:
        nonlocal finished
        finished += 1

    sleeps: list[float] = []
    importer = CertificateImporter(
        FakeIoT(faults=faults), options=ImportOptions(concurrency=2), sleep=recover
    )
    report = importer.import_all(source(), progress=progress)
    assert (report.imported, report.failed) == (600, 0)
    assert sleeps == [5.0]  # the open breaker's retry_after
    assert max_ahead <= 256 + 2 * 2 + 1  # the waiting list's bound plus the window


def test_permanent_failures_do_not_stop_the_run(fake: FakeIoT, pool: tuple[DeviceCertificate, ...]) -> None:
    items: list[object] = list(pool[:20])
    # a name a manifest offers that is not valid is mapped, not refused (issue 11)
    items[3] = ManifestEntry(thing_name="not valid!", certificate=pool[3], index=3)
    items[9] = b"garbage"
    items[15] = CertificateParseError("devices.pem entry 16: not base64", source="devices.pem", index=15)
    report = importer_for(fake).import_all(items)  # type: ignore[arg-type]
    assert (report.total, report.imported, report.failed) == (20, 18, 2)
    by_index = {f.index: f for f in report.failures}
    assert 3 not in by_index
    assert by_index[9].failed_step == "input"
    assert by_index[15].failed_step == "parse"
    assert "entry 16" in (by_index[15].error or "")
    assert all(f.error for f in report.failures)


def test_a_reader_that_raises_ends_the_run_with_what_was_read(
    fake: FakeIoT, pool: tuple[DeviceCertificate, ...]
) -> None:
    def source() -> Iterator[DeviceCertificate]:
        yield from pool[:5]
        raise OSError("connection reset while reading the manifest")

    report = importer_for(fake).import_all(source())
    assert (report.total, report.imported, report.failed) == (6, 5, 1)
    assert report.failures[0].failed_step == "parse"
    assert "connection reset" in (report.failures[0].error or "")


def test_duplicates_are_imported_once_then_reported_already_present(
    fake: FakeIoT, pool: tuple[DeviceCertificate, ...]
) -> None:
    items = [pool[0], pool[0], pool[1], pool[0], pool[1]]
    outcomes: list[ImportOutcome] = []
    report = importer_for(fake).import_all(items, progress=outcomes.append)
    assert (report.total, report.imported, report.already_present) == (5, 2, 3)
    by_index = {o.index: o.status for o in outcomes}
    assert by_index == {
        0: OutcomeStatus.IMPORTED,
        1: OutcomeStatus.ALREADY_PRESENT,
        2: OutcomeStatus.IMPORTED,
        3: OutcomeStatus.ALREADY_PRESENT,
        4: OutcomeStatus.ALREADY_PRESENT,
    }
    assert fake.created_certificates == 2


def test_a_stream_of_one_certificate_repeated_does_not_grow_without_bound(
    fake: FakeIoT, pool: tuple[DeviceCertificate, ...]
) -> None:
    # Every repeat waits for the one before it; the waiting ones must count against the
    # window, or the reader would pull the whole stream in while the first is in flight.
    read = finished = max_ahead = 0

    def source() -> Iterator[DeviceCertificate]:
        nonlocal read, max_ahead
        for cert in itertools.repeat(pool[0], 200):
            read += 1
            max_ahead = max(max_ahead, read - finished)
            yield cert

    def progress(outcome: ImportOutcome) -> None:
        nonlocal finished
        finished += 1

    importer = importer_for(fake, ImportOptions(concurrency=2))
    report = importer.import_all(source(), progress=progress)
    assert (report.imported, report.already_present) == (1, 199)
    assert max_ahead <= 2 * 2 + 1


# -- preflight ---------------------------------------------------------------------------------


def test_preflight_lists_everything_missing_in_one_error_and_touches_no_certificate(
    fake: FakeIoT, pool: tuple[DeviceCertificate, ...]
) -> None:
    options = ImportOptions(policies=(POLICY, "Nope"), thing_groups=("Missing", GROUP), thing_type="Ghost")
    read = 0

    def source() -> Iterator[DeviceCertificate]:
        nonlocal read
        for cert in pool:
            read += 1
            yield cert

    with pytest.raises(PreflightError) as info:
        importer_for(fake, options).import_all(source())
    assert info.value.missing == ("policy:Nope", "thing_group:Missing", "thing_type:Ghost")
    message = str(info.value)
    assert "'Nope'" in message
    assert "'Missing'" in message
    assert "'Ghost'" in message
    assert read == 0
    assert "iot.RegisterCertificateWithoutCA" not in fake.stats().calls


def test_preflight_refuses_a_deprecated_thing_type(pool: tuple[DeviceCertificate, ...]) -> None:
    fake = FakeIoT(thing_types=["Old"], deprecated_types=["Old"])
    with pytest.raises(PreflightError, match="deprecated") as info:
        importer_for(fake, ImportOptions(thing_type="Old")).preflight()
    assert info.value.missing == ("thing_type:Old",)


def test_preflight_runs_in_a_dry_run_and_can_be_turned_off(
    fake: FakeIoT, pool: tuple[DeviceCertificate, ...]
) -> None:
    dry = FULL.model_copy(update={"dry_run": True})
    report = importer_for(fake, dry).import_all(pool[:10])
    assert (report.total, report.skipped, report.dry_run) == (10, 10, True)
    assert report.calls == {"iot.GetPolicy": 1, "iot.DescribeThingGroup": 1, "iot.DescribeThingType": 1}
    assert "10 certificates checked" in report.summary()

    off = ImportOptions(policies=("Nope",), preflight=False)
    report = importer_for(fake, off).import_all(pool[:2])
    assert report.failed == 2
    assert {f.failed_step for f in report.failures} == {"attach_policy"}


# -- report ------------------------------------------------------------------------------------


def test_the_report_is_json_and_round_trips(fake: FakeIoT, pool: tuple[DeviceCertificate, ...]) -> None:
    items: list[object] = [*pool[:5], 7]
    report = importer_for(fake).import_all(items)  # type: ignore[arg-type]
    data = json.loads(report.model_dump_json())
    assert data["total"] == 6
    assert data["failed"] == 1
    assert data["failures"][0]["status"] == "failed"
    assert data["failures"][0]["failed_step"] == "input"
    assert data["calls"]["iot.CreateThing"] == 5
    assert ImportReport.model_validate_json(report.model_dump_json()) == report
    assert report.duration_seconds >= 0
    assert report.rate_per_second >= 0
    assert report.started_at.tzinfo is not None


def test_the_report_refuses_totals_that_do_not_add_up() -> None:
    from datetime import datetime, timezone

    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="total 3"):
        ImportReport(
            total=3,
            imported=1,
            already_present=1,
            failed=0,
            skipped=0,
            started_at=datetime.now(timezone.utc),
            duration_seconds=0.0,
            rate_per_second=0.0,
        )


def test_duration_and_rate_use_the_injected_clock(fake: FakeIoT, pool: tuple[DeviceCertificate, ...]) -> None:
    ticks = iter([100.0, 104.0])
    importer = CertificateImporter(fake, options=FULL, clock=lambda: next(ticks))
    report = importer.import_all(pool[:8])
    assert report.duration_seconds == 4.0
    assert report.rate_per_second == 2.0


def test_an_exception_in_the_progress_callback_stops_the_run_and_propagates(
    fake: FakeIoT, pool: tuple[DeviceCertificate, ...]
) -> None:
    def progress(outcome: ImportOutcome) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        importer_for(fake).import_all(pool, progress=progress)
    assert len(fake.things) < len(pool)


def test_ctrl_c_while_a_retry_round_waits_lists_its_certificates_unfinished(
    pool: tuple[DeviceCertificate, ...],
) -> None:
    # every first registration is throttled; Ctrl-C arrives during the pause before the round
    seen: set[str] = set()

    def faults(op: str, subject: str) -> BaseException | None:
        if op == "iot.RegisterCertificateWithoutCA" and subject not in seen:
            seen.add(subject)
            return throttled(op)
        return None

    def interrupt(seconds: float) -> None:
        raise KeyboardInterrupt

    certs = pool[:12]
    importer = CertificateImporter(
        FakeIoT(faults=faults), options=ImportOptions(concurrency=2), sleep=interrupt
    )
    with pytest.raises(ImportInterrupted) as info:
        importer.import_all(certs)
    report = info.value.report
    assert report.total == 0  # nothing finished: every certificate waits for the round
    assert sorted(report.unfinished) == sorted(c.certificate_id for c in certs)


def test_an_empty_input_gives_an_empty_report(fake: FakeIoT) -> None:
    report = importer_for(fake).import_all([])
    assert (report.total, report.imported, report.failed, report.rate_per_second) == (0, 0, 0, 0.0)
    assert report.failures == []
    assert (report.rounds, report.retried) == (0, 0)
    # only the preflight reads were made
    assert report.calls == {"iot.GetPolicy": 1, "iot.DescribeThingGroup": 1, "iot.DescribeThingType": 1}


def test_a_manifest_read_lazily_is_imported_with_its_entry_indexes(
    fake: FakeIoT, pool: tuple[DeviceCertificate, ...]
) -> None:
    from thingpress_core.certificates.generate import generated_manifest_lines
    from thingpress_core.manifests import read_manifest

    lines = list(generated_manifest_lines(pool[:12]))
    lines[4] = "bm90IGEgY2VydGlmaWNhdGU="  # base64 of "not a certificate"
    data = ("\n".join(lines) + "\n").encode()
    reader = read_manifest(data, format="generated", on_error="skip", name="fleet.txt")
    outcomes: list[ImportOutcome] = []
    report = importer_for(fake).import_all(reader, progress=outcomes.append)
    assert (report.total, report.imported, report.failed) == (11, 11, 0)
    assert sorted(o.index for o in outcomes if o.index is not None) == [i for i in range(12) if i != 4]
    assert [s.index for s in reader.report.skipped] == [4]  # the reader accounts for the bad line
    assert {o.thing_name for o in outcomes} == {f"device-{i:06d}" for i in range(12) if i != 4}
