"""Issue 16 options in the importer (the fake IoT account): billing group, attributes, status,
registration with a CA; their ledger marks and their call counts."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from fake_iot import GROUP, POLICY, TYPE, FakeIoT
from memory_ledger import MemoryLedger

from thingpress_core.certificates import DeviceCertificate
from thingpress_core.certificates.generate import GeneratedCA, generate_ca, generate_device_certificates
from thingpress_core.errors import ConfigurationError, PreflightError
from thingpress_core.importer import (
    OWNER_ATTRIBUTE,
    VENDOR_ID_ATTRIBUTE,
    CertificateImporter,
    ImportItem,
    ImportOptions,
    ImportReport,
    OutcomeStatus,
)
from thingpress_core.ledger import Target
from thingpress_core.manifests import ManifestEntry

TARGET = Target(account_id="123456789012", region="us-east-1")
BASE = {
    "policies": (POLICY,),
    "thing_groups": (GROUP,),
    "thing_type": TYPE,
    "retry_pause": 0.0,
}


def _fake(ca: DeviceCertificate | None = None, ca_status: str = "ACTIVE") -> FakeIoT:
    return FakeIoT(
        policies=[POLICY],
        thing_groups=[GROUP],
        thing_types=[TYPE],
        billing_groups=["B1", "B2"],
        ca_certificates={ca.certificate_id: ca_status} if ca is not None else None,
    )


def _options(**changes: object) -> ImportOptions:
    return ImportOptions.model_validate({**BASE, **changes})


def _run(
    fake: FakeIoT, options: ImportOptions, items: Iterable[ImportItem], ledger: MemoryLedger | None = None
) -> ImportReport:
    importer = CertificateImporter(fake, options=options, ledger=ledger, target=TARGET, sleep=lambda _: None)
    return importer.import_all(items)


# -- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attributes", "named"),
    [
        ({"a b": "1"}, "'a b'"),
        ({"": "1"}, "''"),
        ({"k" * 129: "1"}, "k" * 129),
        ({"ok": "v" * 801}, "'ok'"),
        ({"ok": "semi;colon"}, "'ok'"),
        ({OWNER_ATTRIBUTE: "x"}, OWNER_ATTRIBUTE),
        ({VENDOR_ID_ATTRIBUTE: "x"}, VENDOR_ID_ATTRIBUTE),
    ],
)
def test_bad_attributes_raise_configuration_error_naming_them(attributes: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        ImportOptions(thing_type=TYPE, attributes=attributes)
    assert named in str(caught.value)


def test_aws_patterns_accept_their_whole_alphabet() -> None:
    name, value = "a-zA-Z0-9_.,@/:#-", "v_.,@/:#=[]-" + "x" * 700
    assert ImportOptions(thing_type=TYPE, attributes={name: value, "k" * 128: ""}).attributes[name] == value


def test_attribute_count_counts_the_importers_own() -> None:
    # without a thing type: 3, of which thingpress_certificate_id and vendor_id are the importer's
    assert ImportOptions(attributes={"a": "1"}).attributes == {"a": "1"}
    with pytest.raises(ConfigurationError, match="at most 3 attributes"):
        ImportOptions(attributes={"a": "1", "b": "2"})
    assert len(ImportOptions(attributes={"a": "1", "b": "2"}, manifest_attributes=False).attributes) == 2
    # with one: 50
    many = {f"a{i}": "1" for i in range(48)}
    assert len(ImportOptions(thing_type=TYPE, attributes=many).attributes) == 48
    with pytest.raises(ConfigurationError, match="at most 50 attributes"):
        ImportOptions(thing_type=TYPE, attributes={**many, "one_more": "1"})


def test_bad_billing_group_name_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="billing_group"):
        ImportOptions(billing_group="no spaces")


def test_ca_certificate_must_be_a_ca(ca: GeneratedCA, pool: tuple[DeviceCertificate, ...]) -> None:
    assert ImportOptions(ca_certificate=ca.cert.pem).ca_certificate == ca.cert
    with pytest.raises(ConfigurationError, match="not a CA certificate"):
        ImportOptions(ca_certificate=pool[0])


# -- billing group and attributes -----------------------------------------------------------


def test_everything_on_costs_the_floor(ca: GeneratedCA, pool: tuple[DeviceCertificate, ...]) -> None:
    fake = _fake(ca.cert)
    options = _options(
        billing_group="B1",
        attributes={"site": "plant-7"},
        status="INACTIVE",
        ca_certificate=ca.cert,
    )
    entries = [
        ManifestEntry(thing_name=f"dev-{i}", certificate=c, vendor_id=f"AA:BB:{i:02X}", index=i)
        for i, c in enumerate(pool[:10])
    ]
    report = _run(fake, options, entries)
    assert report.imported == 10
    floor = {k: v for k, v in report.calls.items() if not k.startswith(("iot.Get", "iot.Describe"))}
    assert floor == {
        "iot.RegisterCertificate": 10,
        "iot.CreateThing": 10,
        "iot.AttachThingPrincipal": 10,
        "iot.AttachPolicy": 10,
        "iot.AddThingToThingGroup": 10,
    }
    assert report.calls["iot.DescribeBillingGroup"] == report.calls["iot.DescribeCACertificate"] == 1
    thing = fake.things["dev-3"]
    assert thing.billing_group == "B1"
    assert thing.attributes == {
        OWNER_ATTRIBUTE: pool[3].certificate_id,
        "site": "plant-7",
        VENDOR_ID_ATTRIBUTE: "AA:BB:03",
    }
    assert fake.certificates[pool[3].certificate_id] == "INACTIVE"
    assert fake.issuers[pool[3].certificate_id] == ca.cert.certificate_id


def test_no_manifest_attributes_leaves_the_vendor_id_out(pool: tuple[DeviceCertificate, ...]) -> None:
    fake = _fake()
    entry = ManifestEntry(thing_name="dev", certificate=pool[0], vendor_id="AA:BB", index=0)
    _run(fake, _options(manifest_attributes=False), [entry])
    assert fake.things["dev"].attributes == {OWNER_ATTRIBUTE: pool[0].certificate_id}


def test_a_vendor_id_aws_would_refuse_fails_that_device_before_its_thing(
    pool: tuple[DeviceCertificate, ...],
) -> None:
    fake = _fake()
    entry = ManifestEntry(thing_name="dev", certificate=pool[0], vendor_id="AA BB", index=0)
    report = _run(fake, _options(), [entry])
    (failed,) = report.failures
    assert (failed.failed_step, failed.reason) == ("thing", "invalid_attribute")
    assert "no-manifest-attributes" in (failed.error or "")
    assert "iot.CreateThing" not in report.calls


def test_a_rerun_with_another_billing_group_or_attributes_is_not_done(
    pool: tuple[DeviceCertificate, ...],
) -> None:
    fake, ledger = _fake(), MemoryLedger()
    first = _options(billing_group="B1", attributes={"site": "a"})
    assert _run(fake, first, pool[:3], ledger).imported == 3
    again = _run(fake, first, pool[:3], ledger)
    assert (again.already_present, again.calls) == (3, {})  # same options: done, no call

    moved = _options(billing_group="B2", attributes={"site": "b"})
    report = _run(fake, moved, pool[:3], ledger)
    assert report.imported == 3  # the things changed: news this run made
    # CreateThing conflicts (another configuration), the thing is read and brought in line;
    # nothing else is asked again
    assert report.calls["iot.CreateThing"] == 3
    assert report.calls["iot.DescribeThing"] == 3
    assert report.calls["iot.UpdateThing"] == 3
    assert report.calls["iot.AddThingToBillingGroup"] == 3
    assert "iot.RegisterCertificateWithoutCA" not in report.calls
    assert "iot.AttachThingPrincipal" not in report.calls
    name = pool[0].common_name or ""
    assert fake.things[name].billing_group == "B2"
    assert fake.things[name].attributes["site"] == "b"
    settled = _run(fake, moved, pool[:3], ledger)
    assert (settled.already_present, settled.calls) == (3, {})


def test_a_thing_made_elsewhere_is_adopted_with_the_billing_group(
    pool: tuple[DeviceCertificate, ...],
) -> None:
    fake = _fake()
    name = pool[0].common_name or ""
    fake.create_thing(name, thing_type=TYPE, attributes={"site": "old"})
    options = _options(billing_group="B1", attributes={"site": "new"})
    report = _run(fake, options, pool[:1])
    assert report.failed == 0
    thing = fake.things[name]
    assert (thing.billing_group, thing.attributes["site"]) == ("B1", "new")
    assert thing.attributes[OWNER_ATTRIBUTE] == pool[0].certificate_id


def test_preflight_names_a_missing_billing_group_and_ca(
    ca: GeneratedCA, pool: tuple[DeviceCertificate, ...]
) -> None:
    fake = _fake()
    options = _options(billing_group="Nope", ca_certificate=ca.cert)
    with pytest.raises(PreflightError) as caught:
        _run(fake, options, pool[:2])
    assert set(caught.value.missing) == {"billing_group:Nope", f"ca_certificate:{ca.cert.certificate_id}"}
    assert fake.created_certificates == 0


def test_preflight_refuses_an_inactive_ca(ca: GeneratedCA, pool: tuple[DeviceCertificate, ...]) -> None:
    fake = _fake(ca.cert, ca_status="INACTIVE")
    with pytest.raises(PreflightError, match="INACTIVE in AWS IoT, not ACTIVE"):
        _run(fake, _options(ca_certificate=ca.cert), pool[:2])
    assert fake.created_certificates == 0


def test_certificates_of_another_ca_fail_before_any_call(ca: GeneratedCA) -> None:
    other = generate_ca("another CA")
    strangers = generate_device_certificates(3, ca=other)
    fake = _fake(ca.cert)
    report = _run(fake, _options(ca_certificate=ca.cert), strangers)
    assert report.failed == 3
    assert {f.failed_step for f in report.failures} == {"verify"}
    assert "against the CA certificate" in (report.failures[0].error or "")
    assert fake.created_certificates == 0


# -- status -----------------------------------------------------------------------------------


def test_status_difference_is_noted_without_a_ledger_only_with_recheck(
    pool: tuple[DeviceCertificate, ...],
) -> None:
    fake = _fake()
    _run(fake, _options(status="INACTIVE"), pool[:2])
    plain = _run(fake, _options(), pool[:2])
    assert plain.noted == 0  # no ledger, no recheck: the status AWS holds is not read
    assert "iot.DescribeCertificate" not in plain.calls
    rechecked = _run(fake, _options(recheck=True), pool[:2])
    assert rechecked.noted == 2
    note = rechecked.notes[0]
    assert note.status is OutcomeStatus.ALREADY_PRESENT
    assert note.certificate_status == "INACTIVE"
    assert "set to the one asked" in (note.note or "")
    assert rechecked.calls["iot.UpdateCertificate"] == 2
    assert set(fake.certificates.values()) == {"ACTIVE"}
    again = _run(fake, _options(recheck=True), pool[:2])
    assert (again.noted, again.calls.get("iot.UpdateCertificate")) == (0, None)


def test_a_revoked_certificate_is_reported_not_changed(pool: tuple[DeviceCertificate, ...]) -> None:
    fake = _fake()
    _run(fake, _options(), pool[:1])
    fake.certificates[pool[0].certificate_id] = "REVOKED"
    report = _run(fake, _options(recheck=True), pool[:1])
    assert report.notes[0].certificate_status == "REVOKED"
    assert "iot.UpdateCertificate" not in report.calls
    assert fake.certificates[pool[0].certificate_id] == "REVOKED"


def test_run_record_keeps_the_new_options(ca: GeneratedCA, pool: tuple[DeviceCertificate, ...]) -> None:
    fake, ledger = _fake(ca.cert), MemoryLedger()
    options = _options(billing_group="B1", attributes={"site": "a"}, ca_certificate=ca.cert)
    report = _run(fake, options, pool[:1], ledger)
    run = ledger.run(report.run_id or "")
    assert run is not None
    assert run.options["billing_group"] == "B1"
    assert run.options["attributes"] == {"site": "a"}
    assert run.options["ca_certificate_id"] == ca.cert.certificate_id
    record = ledger.device(TARGET.key, pool[0].certificate_id)
    assert record is not None
    assert record.thing_config is not None
    assert record.thing_config == options.thing_config()
