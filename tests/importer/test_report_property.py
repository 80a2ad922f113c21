"""Property: whatever mix of outcomes a run sees, the report adds up and names every failure."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass

from fake_iot import ARN_PREFIX, GROUP, POLICY, TYPE, FakeIoT, generic_error, throttled, unavailable
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from thingpress_core.certificates import DeviceCertificate
from thingpress_core.errors import CertificateParseError
from thingpress_core.importer import CertificateImporter, ImportOptions, ImportOutcome, OutcomeStatus
from thingpress_core.manifests import ManifestEntry

OPS = [
    "iot.RegisterCertificateWithoutCA",
    "iot.CreateThing",
    "iot.AttachThingPrincipal",
    "iot.AttachPolicy",
    "iot.AddThingToThingGroup",
]


@dataclass(frozen=True)
class Plan:
    kind: str  # "ok", "transient", "permanent", "bad_name", "not_a_cert", "parse_error", "present"
    op: str = ""
    times: int = 0


plans = st.one_of(
    st.just(Plan("ok")),
    st.just(Plan("present")),
    st.builds(Plan, st.just("transient"), st.sampled_from(OPS), st.integers(1, 5)),
    st.builds(Plan, st.just("permanent"), st.sampled_from(OPS)),
    st.just(Plan("bad_name")),
    st.just(Plan("not_a_cert")),
    st.just(Plan("parse_error")),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    mix=st.lists(plans, max_size=40),
    rounds=st.integers(0, 3),
    concurrency=st.integers(1, 4),
    dry_run=st.booleans(),
    duplicates=st.lists(st.integers(0, 39), max_size=5),
)
def test_the_report_always_adds_up(
    pool: tuple[DeviceCertificate, ...],
    mix: list[Plan],
    rounds: int,
    concurrency: int,
    dry_run: bool,
    duplicates: list[int],
) -> None:
    owner: dict[str, int] = {}
    for i in range(len(mix)):
        cert = pool[i]
        owner[cert.certificate_id] = owner[ARN_PREFIX + cert.certificate_id] = owner[f"device-{i:06d}"] = i
    failures_left = {i: plan.times for i, plan in enumerate(mix) if plan.kind == "transient"}
    lock = threading.Lock()

    def faults(op: str, subject: str) -> BaseException | None:
        i = owner.get(subject)
        if i is None:
            return None
        plan = mix[i]
        if plan.op != op:
            return None
        if plan.kind == "permanent":
            return generic_error(op)
        with lock:
            if failures_left[i] > 0:
                failures_left[i] -= 1
                return throttled(op) if failures_left[i] % 2 else unavailable(op)
        return None

    fake = FakeIoT(policies=[POLICY], thing_groups=[GROUP], thing_types=[TYPE], faults=faults)
    items: list[object] = []
    for i, plan in enumerate(mix):
        cert = pool[i]
        if plan.kind == "present":
            fake.register_certificate(cert)
            fake.ensure_thing(f"device-{i:06d}", thing_type=TYPE)
        if plan.kind == "bad_name":
            items.append(ManifestEntry(thing_name=f"bad name {i}", certificate=cert, index=i))
        elif plan.kind == "not_a_cert":
            items.append({"index": i})
        elif plan.kind == "parse_error":
            items.append(CertificateParseError(f"entry {i + 1}: not PEM", index=i))
        else:
            items.append(cert)
    dup_positions = [d for d in duplicates if d < len(mix) and mix[d].kind in {"ok", "present"}]
    items.extend(pool[d] for d in dup_positions)

    options = ImportOptions(
        policies=(POLICY,),
        thing_groups=(GROUP,),
        thing_type=TYPE,
        concurrency=concurrency,
        transient_rounds=rounds,
        dry_run=dry_run,
    )
    outcomes: list[ImportOutcome] = []
    importer = CertificateImporter(fake, options=options, sleep=lambda _: None)
    report = importer.import_all(items, progress=outcomes.append)  # type: ignore[arg-type]

    # The invariant, and one outcome per item.
    assert report.total == len(items) == len(outcomes)
    assert report.total == report.imported + report.already_present + report.failed + report.skipped
    counted = Counter(o.status for o in outcomes)
    assert counted[OutcomeStatus.FAILED] == report.failed == len(report.failures)
    assert counted[OutcomeStatus.IMPORTED] == report.imported
    assert all(f.error and f.failed_step and f.error_type for f in report.failures)

    # Which items fail is predictable from the plan.
    def fails(plan: Plan) -> bool:
        # a name that is not valid is mapped, never refused (issue 11)
        if plan.kind in {"not_a_cert", "parse_error"}:
            return True
        aws_fails = plan.kind == "permanent" or (plan.kind == "transient" and plan.times > rounds)
        return aws_fails and not dry_run

    expected_failed = {i for i, plan in enumerate(mix) if fails(plan)}
    assert {f.index for f in report.failures} == expected_failed
    if dry_run:
        assert report.skipped == len(items) - len(expected_failed)
        assert fake.created_certificates == sum(p.kind == "present" for p in mix)
    else:
        assert report.skipped == 0
        expected_present = {i for i, p in enumerate(mix) if p.kind == "present"}
        got_present = {o.index for o in outcomes if o.status is OutcomeStatus.ALREADY_PRESENT}
        assert expected_present <= got_present
        assert got_present - expected_present <= set(range(len(mix), len(items)))  # only duplicates
        assert report.failed + report.imported + len(expected_present) + len(dup_positions) == report.total
        for o in outcomes:
            if o.status is not OutcomeStatus.FAILED:
                assert o.calls >= 5
        assert report.calls.get("iot.RegisterCertificateWithoutCA", 0) >= len(mix) - len(
            [p for p in mix if p.kind in {"bad_name", "not_a_cert", "parse_error"}]
        )
