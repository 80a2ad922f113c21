"""import_certificate: the floor calls, idempotency, and every way one certificate can fail."""

from __future__ import annotations

import logging

import pytest
from fake_iot import GROUP, POLICY, TYPE, FakeIoT, generic_error, throttled, unavailable

from thingpress_core.certificates import DeviceCertificate, TrustStore, is_valid_thing_name, thing_name_for
from thingpress_core.certificates.generate import GeneratedCA, generate_ca, generate_device_certificates
from thingpress_core.errors import CircuitOpenError
from thingpress_core.importer import CertificateImporter, ImportOptions, OutcomeStatus
from thingpress_core.manifests import ManifestEntry

FULL = ImportOptions(policies=(POLICY,), thing_groups=(GROUP,), thing_type=TYPE)


def test_one_policy_one_group_and_a_type_cost_exactly_five_calls(
    fake: FakeIoT, pool: tuple[DeviceCertificate, ...]
) -> None:
    cert = pool[0]
    outcome = CertificateImporter(fake, options=FULL).import_certificate(cert)
    assert outcome.status is OutcomeStatus.IMPORTED
    assert outcome.calls == 5
    assert outcome.certificate_id == cert.certificate_id
    assert outcome.thing_name == "device-000000"
    assert outcome.failed_step is None
    assert outcome.error is None
    assert fake.stats().calls == {
        "iot.RegisterCertificateWithoutCA": 1,
        "iot.CreateThing": 1,
        "iot.AttachThingPrincipal": 1,
        "iot.AttachPolicy": 1,
        "iot.AddThingToThingGroup": 1,
    }
    thing = fake.things["device-000000"]
    assert thing.thing_type == TYPE
    assert thing.principals == [f"arn:aws:iot:us-east-1:123456789012:cert/{cert.certificate_id}"]
    assert thing.groups == [GROUP]
    assert fake.policy_targets[thing.principals[0]] == [POLICY]


def test_each_further_policy_or_group_adds_one_call(
    fake: FakeIoT, pool: tuple[DeviceCertificate, ...]
) -> None:
    options = ImportOptions(
        policies=(POLICY, "Extra1", "Extra2"), thing_groups=(GROUP, "G2"), thing_type=TYPE
    )
    outcome = CertificateImporter(fake, options=options).import_certificate(pool[1])
    assert outcome.calls == 8 == options.calls_per_certificate()
    assert fake.stats().calls["iot.AttachPolicy"] == 3
    assert fake.stats().calls["iot.AddThingToThingGroup"] == 2


def test_nothing_to_attach_costs_three_calls(fake: FakeIoT, pool: tuple[DeviceCertificate, ...]) -> None:
    outcome = CertificateImporter(fake, options=ImportOptions()).import_certificate(pool[2])
    assert outcome.status is OutcomeStatus.IMPORTED
    assert outcome.calls == 3
    assert fake.things["device-000002"].thing_type is None


def test_a_second_import_creates_nothing_and_reports_already_present(
    fake: FakeIoT, pool: tuple[DeviceCertificate, ...]
) -> None:
    importer = CertificateImporter(fake, options=FULL)
    first = importer.import_certificate(pool[3])
    second = importer.import_certificate(pool[3])
    assert first.status is OutcomeStatus.IMPORTED
    assert second.status is OutcomeStatus.ALREADY_PRESENT
    # the floor's 5 plus the ListPrincipalThings an "already registered" answer costs
    # (is the certificate on another thing?), and nothing else
    assert second.calls == 6
    assert fake.stats().calls["iot.ListPrincipalThings"] == 1
    assert fake.created_certificates == 1
    assert fake.created_things == 1
    thing = fake.things["device-000003"]
    assert len(thing.principals) == 1
    assert thing.groups == [GROUP]


def test_a_registered_certificate_is_already_present_and_its_wiring_is_completed(
    fake: FakeIoT, pool: tuple[DeviceCertificate, ...]
) -> None:
    # AWS cannot tell a repeated CreateThing from a new one, so the registration decides the
    # status; the calls still complete whatever an earlier, interrupted run left undone.
    fake.register_certificate(pool[4])
    outcome = CertificateImporter(fake, options=FULL).import_certificate(pool[4])
    assert outcome.status is OutcomeStatus.ALREADY_PRESENT
    assert fake.things["device-000004"].groups == [GROUP]


def test_a_thing_with_another_type_is_updated_and_counts_as_imported(
    fake: FakeIoT, pool: tuple[DeviceCertificate, ...]
) -> None:
    CertificateImporter(fake, options=ImportOptions()).import_certificate(pool[5])
    before = fake.stats().calls
    outcome = CertificateImporter(fake, options=FULL).import_certificate(pool[5])
    assert outcome.status is OutcomeStatus.IMPORTED
    assert fake.things["device-000005"].thing_type == TYPE
    # the floor's 5, the ListPrincipalThings of a registered certificate, and after
    # CreateThing's conflict one DescribeThing (whose thing is it?) and one UpdateThing
    assert fake.stats().calls["iot.UpdateThing"] - before.get("iot.UpdateThing", 0) == 1
    assert fake.stats().calls["iot.DescribeThing"] - before.get("iot.DescribeThing", 0) == 1
    assert outcome.calls == 8


def test_per_call_options_override_the_importer_options(
    fake: FakeIoT, pool: tuple[DeviceCertificate, ...]
) -> None:
    importer = CertificateImporter(fake, options=ImportOptions())
    outcome = importer.import_certificate(pool[6], options=FULL)
    assert outcome.calls == 5


def test_status_is_passed_to_registration(fake: FakeIoT, pool: tuple[DeviceCertificate, ...]) -> None:
    CertificateImporter(fake, options=ImportOptions(status="INACTIVE")).import_certificate(pool[7])
    assert fake.certificates[pool[7].certificate_id] == "INACTIVE"


# -- naming ------------------------------------------------------------------------------------


def test_a_manifest_entry_brings_its_thing_name_and_index(
    fake: FakeIoT, pool: tuple[DeviceCertificate, ...]
) -> None:
    entry = ManifestEntry(thing_name="mac-0a1b2c3d4e5f", certificate=pool[8], index=41, source="m.csv")
    outcome = CertificateImporter(fake, options=FULL).import_certificate(entry)
    assert outcome.status is OutcomeStatus.IMPORTED
    assert outcome.thing_name == "mac-0a1b2c3d4e5f"
    assert outcome.index == 41
    assert "mac-0a1b2c3d4e5f" in fake.things


def test_a_manifest_entry_without_a_name_uses_the_strategy(
    fake: FakeIoT, pool: tuple[DeviceCertificate, ...]
) -> None:
    entry = ManifestEntry(thing_name=None, certificate=pool[9], index=0)
    outcome = CertificateImporter(fake, options=ImportOptions(naming="certificate_id")).import_certificate(
        entry
    )
    assert outcome.thing_name == pool[9].certificate_id


def test_prefix_and_callable_strategies(fake: FakeIoT, pool: tuple[DeviceCertificate, ...]) -> None:
    prefixed = CertificateImporter(fake, options=ImportOptions(thing_name_prefix="plant1-"))
    assert prefixed.import_certificate(pool[10]).thing_name == "plant1-device-000010"
    custom = CertificateImporter(fake, options=ImportOptions(naming=lambda c: f"dev-{c.serial_number[-6:]}"))
    assert custom.import_certificate(pool[11]).thing_name == f"dev-{pool[11].serial_number[-6:]}"


@pytest.mark.parametrize("name", ["bad name", "", "x" * 129, "slash/name", "dev.1 ü", "x" * 10_000])
def test_an_offered_name_that_is_not_valid_goes_through_the_same_mapping(
    fake: FakeIoT, pool: tuple[DeviceCertificate, ...], name: str
) -> None:
    # issue 11: readers hand raw CNs, MACs or uniqueIds; whatever the source, an invalid name
    # is mapped like thing_name_for maps a CN (an empty one falls back to the CN)
    entry = ManifestEntry(thing_name=name, certificate=pool[12], index=3)
    outcome = CertificateImporter(fake, options=FULL).import_certificate(entry)
    expected = thing_name_for(pool[12], offered=name)
    assert outcome.status is OutcomeStatus.IMPORTED
    assert outcome.thing_name == expected
    assert is_valid_thing_name(expected)
    assert (expected == pool[12].common_name) == (name == "")
    assert expected in fake.things


def test_a_naming_strategy_given_explicitly_wins_over_the_manifest_name(
    fake: FakeIoT, pool: tuple[DeviceCertificate, ...]
) -> None:
    entry = ManifestEntry(thing_name="AA:BB:CC:DD:EE:FF", certificate=pool[13], index=0)
    by_id = CertificateImporter(fake, options=ImportOptions(naming="certificate_id"))
    assert by_id.import_certificate(entry).thing_name == pool[13].certificate_id
    prefixed = CertificateImporter(fake, options=ImportOptions(thing_name_prefix="plant1-"))
    assert prefixed.import_certificate(
        ManifestEntry(thing_name="mac 01", certificate=pool[14], index=1)
    ).thing_name == thing_name_for(pool[14], offered="mac 01", prefix="plant1-")


def test_a_naming_function_that_fails_fails_at_step_name_before_any_call(
    fake: FakeIoT, pool: tuple[DeviceCertificate, ...]
) -> None:
    importer = CertificateImporter(fake, options=ImportOptions(naming=lambda c: 42))  # type: ignore[arg-type,return-value]
    outcome = importer.import_certificate(pool[12])
    assert outcome.status is OutcomeStatus.FAILED
    assert outcome.failed_step == "name"
    assert outcome.error_type == "ConfigurationError"
    assert outcome.transient is False
    assert outcome.calls == 0
    assert pool[12].certificate_id in (outcome.error or "")
    assert fake.stats().calls == {}


def test_a_naming_function_that_raises_fails_at_step_name(
    fake: FakeIoT, pool: tuple[DeviceCertificate, ...]
) -> None:
    def broken(cert: DeviceCertificate) -> str:
        raise KeyError("no serial mapping")

    outcome = CertificateImporter(fake, options=ImportOptions(naming=broken)).import_certificate(pool[13])
    assert outcome.failed_step == "name"
    assert outcome.error_type == "KeyError"
    assert fake.stats().calls == {}


# -- trust -------------------------------------------------------------------------------------


def test_an_untrusted_certificate_fails_and_is_never_registered(
    fake: FakeIoT, pool: tuple[DeviceCertificate, ...]
) -> None:
    other_ca = generate_ca("someone else's CA")
    store = TrustStore.from_pem(other_ca.cert.pem)
    outcome = CertificateImporter(
        fake, options=FULL.model_copy(update={"trust_store": store})
    ).import_certificate(pool[14])
    assert outcome.status is OutcomeStatus.FAILED
    assert outcome.failed_step == "verify"
    assert outcome.error_type == "CertificateValidationError"
    assert outcome.transient is False
    assert "trust store" in (outcome.error or "")
    assert pool[14].certificate_id not in fake.certificates
    assert fake.stats().calls == {}


def test_a_trusted_certificate_is_imported(
    fake: FakeIoT, ca: GeneratedCA, pool: tuple[DeviceCertificate, ...]
) -> None:
    store = TrustStore.from_pem(ca.cert.pem)
    options = ImportOptions(policies=(POLICY,), thing_groups=(GROUP,), thing_type=TYPE, trust_store=store)
    outcome = CertificateImporter(fake, options=options).import_certificate(pool[15])
    assert outcome.status is OutcomeStatus.IMPORTED
    assert outcome.calls == 5


def test_an_intermediate_from_the_manifest_entry_completes_the_chain(fake: FakeIoT) -> None:
    root = generate_ca("root")
    intermediate = generate_ca("intermediate", issuer=root)
    cert = next(generate_device_certificates(1, ca=intermediate, cn_prefix="chained-"))
    options = ImportOptions(trust_store=TrustStore.from_pem(root.cert.pem))
    importer = CertificateImporter(fake, options=options)
    assert importer.import_certificate(cert).failed_step == "verify"
    entry = ManifestEntry(thing_name=None, certificate=cert, chain=(intermediate.cert,), index=0)
    assert importer.import_certificate(entry).status is OutcomeStatus.IMPORTED


# -- dry run -----------------------------------------------------------------------------------


def test_a_dry_run_names_and_verifies_but_sends_nothing(
    fake: FakeIoT, pool: tuple[DeviceCertificate, ...]
) -> None:
    importer = CertificateImporter(fake, options=FULL.model_copy(update={"dry_run": True}))
    outcome = importer.import_certificate(pool[16])
    assert outcome.status is OutcomeStatus.SKIPPED
    assert outcome.thing_name == "device-000016"
    assert outcome.calls == 0
    assert fake.stats().calls == {}


def test_a_dry_run_shows_the_mapped_name(fake: FakeIoT, pool: tuple[DeviceCertificate, ...]) -> None:
    importer = CertificateImporter(fake, options=ImportOptions(dry_run=True))
    entry = ManifestEntry(thing_name="no spaces please", certificate=pool[16], index=0)
    outcome = importer.import_certificate(entry)
    assert outcome.status is OutcomeStatus.SKIPPED
    assert outcome.thing_name == thing_name_for(pool[16], offered="no spaces please")
    assert outcome.thing_name is not None
    assert outcome.thing_name.startswith("no_spaces_please-")


def test_a_dry_run_without_preflight_needs_no_iot_service(pool: tuple[DeviceCertificate, ...]) -> None:
    importer = CertificateImporter(options=ImportOptions(dry_run=True, preflight=False))
    report = importer.import_all(pool[:3])
    assert report.skipped == 3
    assert report.calls == {}
    assert importer._iot is None  # no IoTService (and so no boto3 client) was ever made


# -- input that is not a certificate ----------------------------------------------------------


@pytest.mark.parametrize("item", [b"-----BEGIN CERTIFICATE-----", "device.pem", None, 42])
def test_a_non_certificate_is_reported_failed_not_raised(fake: FakeIoT, item: object) -> None:
    outcome = CertificateImporter(fake, options=FULL).import_certificate(item)  # type: ignore[arg-type]
    assert outcome.status is OutcomeStatus.FAILED
    assert outcome.failed_step == "input"
    assert outcome.certificate_id is None
    assert type(item).__name__ in (outcome.error or "")
    assert fake.stats().calls == {}


# -- AWS failures at each step -----------------------------------------------------------------

STEPS = [
    ("iot.RegisterCertificateWithoutCA", "register", 1),
    ("iot.CreateThing", "thing", 2),
    ("iot.AttachThingPrincipal", "attach_principal", 3),
    ("iot.AttachPolicy", "attach_policy", 4),
    ("iot.AddThingToThingGroup", "add_to_group", 5),
]


@pytest.mark.parametrize(("operation", "step", "calls"), STEPS)
def test_a_throttled_step_is_a_transient_failure_naming_the_step(
    pool: tuple[DeviceCertificate, ...], operation: str, step: str, calls: int
) -> None:
    fake = FakeIoT(
        policies=[POLICY],
        thing_groups=[GROUP],
        thing_types=[TYPE],
        faults=lambda op, _: throttled(op) if op == operation else None,
    )
    outcome = CertificateImporter(fake, options=FULL).import_certificate(pool[17])
    assert outcome.status is OutcomeStatus.FAILED
    assert outcome.failed_step == step
    assert outcome.error_type == "ThrottledError"
    assert outcome.transient is True
    assert outcome.calls == calls
    assert outcome.certificate_id is not None
    assert outcome.certificate_id in (outcome.error or "")
    assert operation in (outcome.error or "")


def test_a_5xx_is_transient_and_a_generic_error_is_not(pool: tuple[DeviceCertificate, ...]) -> None:
    fake = FakeIoT(
        policies=[POLICY], faults=lambda op, _: unavailable(op) if op == "iot.AttachPolicy" else None
    )
    outcome = CertificateImporter(fake, options=ImportOptions(policies=(POLICY,))).import_certificate(
        pool[18]
    )
    assert (outcome.failed_step, outcome.transient) == ("attach_policy", True)
    assert f"policy {POLICY!r}" in (outcome.error or "")

    fake = FakeIoT(faults=lambda op, _: generic_error(op) if op == "iot.CreateThing" else None)
    outcome = CertificateImporter(fake, options=ImportOptions()).import_certificate(pool[18])
    assert (outcome.failed_step, outcome.transient, outcome.error_type) == ("thing", False, "AwsServiceError")


def test_a_missing_group_is_a_permanent_failure(fake: FakeIoT, pool: tuple[DeviceCertificate, ...]) -> None:
    options = ImportOptions(thing_groups=("NoSuchGroup",))
    outcome = CertificateImporter(fake, options=options).import_certificate(pool[19])
    assert outcome.failed_step == "add_to_group"
    assert outcome.error_type == "ResourceNotFoundError"
    assert outcome.transient is False
    assert "'NoSuchGroup'" in (outcome.error or "")


def test_an_open_circuit_is_transient_and_makes_no_call(pool: tuple[DeviceCertificate, ...]) -> None:
    def refuse(op: str, _: str) -> BaseException | None:
        if op == "iot.CreateThing":
            return CircuitOpenError("circuit iot.CreateThing is open", name=op, retry_after=7.0)
        return None

    fake = FakeIoT(faults=refuse)
    outcome = CertificateImporter(fake, options=ImportOptions()).import_certificate(pool[20])
    assert (outcome.failed_step, outcome.transient, outcome.error_type) == ("thing", True, "CircuitOpenError")
    assert outcome.calls == 1  # the refused CreateThing never reached AWS


def test_an_unexpected_exception_in_the_service_is_an_outcome(pool: tuple[DeviceCertificate, ...]) -> None:
    fake = FakeIoT(faults=lambda op, _: RuntimeError("bug") if op == "iot.AttachThingPrincipal" else None)
    outcome = CertificateImporter(fake, options=ImportOptions()).import_certificate(pool[21])
    assert (outcome.status, outcome.failed_step, outcome.error_type) == (
        OutcomeStatus.FAILED,
        "attach_principal",
        "RuntimeError",
    )


def test_failures_are_logged_with_ids_and_never_with_the_pem(
    pool: tuple[DeviceCertificate, ...], caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeIoT(faults=lambda op, _: generic_error(op) if op == "iot.CreateThing" else None)
    with caplog.at_level(logging.DEBUG, logger="thingpress_core.importer"):
        CertificateImporter(fake, options=ImportOptions()).import_certificate(pool[22])
    records = [r for r in caplog.records if r.name == "thingpress_core.importer"]
    assert records, "expected a log line for the failure"
    record = records[-1]
    assert record.levelno == logging.WARNING
    assert record.certificate_id == pool[22].certificate_id  # type: ignore[attr-defined]
    assert record.thing_name == "device-000022"  # type: ignore[attr-defined]
    assert record.operation == "iot.CreateThing"  # type: ignore[attr-defined]
    body = pool[22].pem.splitlines()[1]
    assert all(body not in r.getMessage() for r in caplog.records)


def test_no_log_line_of_a_whole_run_carries_a_certificate_body(
    ca: GeneratedCA, caplog: pytest.LogCaptureFixture
) -> None:
    # Every kind of log line: successes (DEBUG), a retry (INFO), failures at several steps
    # (WARNING), the summary (INFO); the message and every extra field are searched.
    certs = list(generate_device_certificates(6, ca=ca, cn_prefix="logged-"))
    throttled_once: set[str] = set()

    def faults(op: str, subject: str) -> BaseException | None:
        if op == "iot.CreateThing" and subject == "logged-000001" and subject not in throttled_once:
            throttled_once.add(subject)
            return throttled(op)
        if op == "iot.AttachThingPrincipal" and subject == "logged-000002":
            return generic_error(op)
        return None

    items: list[object] = [
        *certs[:3],
        ManifestEntry(thing_name="bad name", certificate=certs[3], index=3),
        certs[4].pem.encode(),  # not a certificate object: its bytes must not be echoed
        certs[5],
    ]
    fake = FakeIoT(faults=faults)
    importer = CertificateImporter(fake, options=ImportOptions(retry_pause=0.0), sleep=lambda _: None)
    with caplog.at_level(logging.DEBUG, logger="thingpress_core"):
        report = importer.import_all(items)  # type: ignore[arg-type]
    # the "bad name" entry is mapped to a valid name and imported (issue 11)
    assert (report.imported, report.failed, report.retried) == (4, 2, 1)
    levels = {r.levelno for r in caplog.records}
    assert {logging.DEBUG, logging.INFO, logging.WARNING} <= levels
    secrets = [line for c in certs for line in c.pem.splitlines()[1:-1]]
    for record in caplog.records:
        texts = [record.getMessage(), *(str(v) for v in vars(record).values())]
        assert not any(secret in text for secret in secrets for text in texts), record.getMessage()
