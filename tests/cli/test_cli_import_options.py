"""The import options of issue 16 end to end through the CLI against the sandbox (moto):
billing group, attributes, status, registration with a CA, and an S3 object as FILE."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from thingpress_core.cli import app
from thingpress_core.sandbox import Sandbox

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "devices.txt"
EXAMPLE_CA = ROOT / "examples" / "example-ca.pem"
RESOURCES = ["--policy", "DevicePolicy", "--thing-group", "Fleet", "--thing-type", "Sensor"]

runner = CliRunner()


@pytest.fixture
def fresh(sandbox: Sandbox) -> Sandbox:
    sandbox.reset()
    sandbox.create_resources(policies=["DevicePolicy"], thing_groups=["Fleet"], thing_type="Sensor")
    return sandbox


def _endpoint(box: Sandbox) -> list[str]:
    assert box.endpoint_url
    return ["--endpoint-url", box.endpoint_url, "--region", "us-east-1"]


def _import(box: Sandbox, *args: str, source: str = str(EXAMPLE), report: Path | None = None) -> Any:
    extra = ["--report", str(report)] if report is not None else []
    return runner.invoke(app, ["import", source, *RESOURCES, *_endpoint(box), *args, *extra])


def _iot(box: Sandbox) -> Any:
    return box.factory.client("iot")


def test_billing_group_membership_at_the_floor(fresh: Sandbox, tmp_path: Path) -> None:
    _iot(fresh).create_billing_group(billingGroupName="Fleet-Billing")
    out = tmp_path / "report.json"
    result = _import(fresh, "--billing-group", "Fleet-Billing", report=out)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["imported"] == 25
    # preflight 4 reads (policy, group, type, billing group), then the floor: 5 per certificate
    floor = {k: v for k, v in report["calls"].items() if not k.startswith(("iot.Get", "iot.Describe"))}
    assert sum(floor.values()) == 5 * 25
    assert report["calls"]["iot.DescribeBillingGroup"] == 1
    members = _iot(fresh).list_things_in_billing_group(billingGroupName="Fleet-Billing")["things"]
    assert len(members) == 25
    assert _iot(fresh).describe_thing(thingName="sensor-000007")["billingGroupName"] == "Fleet-Billing"


def test_missing_billing_group_stops_before_any_certificate(fresh: Sandbox) -> None:
    result = _import(fresh, "--billing-group", "Nowhere")
    assert result.exit_code == 2, result.output
    assert "billing group 'Nowhere' does not exist" in " ".join(result.output.split())
    assert fresh.counts()["certificates"] == 0


def test_attributes_reach_every_thing(fresh: Sandbox) -> None:
    result = _import(fresh, "--attribute", "site=plant-7", "--attribute", "batch=2026#12")
    assert result.exit_code == 0, result.output
    attributes = _iot(fresh).describe_thing(thingName="sensor-000003")["attributes"]
    assert attributes["site"] == "plant-7"
    assert attributes["batch"] == "2026#12"
    assert "thingpress_certificate_id" in attributes


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--attribute", "bad name=1"], "'bad name'"),
        (["--attribute", "ok=a value with spaces"], "'ok'"),
        (["--attribute", "novalue"], "KEY=VALUE"),
        (["--attribute", "thingpress_certificate_id=x"], "thingpress_certificate_id"),
        (["--attribute", "vendor_id=x"], "vendor_id"),
        (["--attribute", "k" * 129 + "=1"], "k" * 129),
    ],
)
def test_invalid_attributes_are_usage_errors_before_any_call(
    fresh: Sandbox, args: list[str], named: str
) -> None:
    result = _import(fresh, *args)
    assert result.exit_code == 2, result.output
    assert named in "".join(result.output.split()) or named in result.output
    assert fresh.counts() == {"things": 0, "certificates": 0}


def test_too_many_attributes_without_a_thing_type_is_a_usage_error(fresh: Sandbox) -> None:
    args = ["--policy", "DevicePolicy", "--attribute", "a=1", "--attribute", "b=2", *_endpoint(fresh)]
    result = runner.invoke(app, ["import", str(EXAMPLE), *args])
    assert result.exit_code == 2, result.output
    assert "at most 3 attributes" in " ".join(result.output.split())
    # the same two fit once the manifest's vendor_id is left out
    result = runner.invoke(app, ["import", str(EXAMPLE), *args, "--no-manifest-attributes"])
    assert result.exit_code == 0, result.output


def test_status_inactive_then_recheck_sets_active(fresh: Sandbox, tmp_path: Path) -> None:
    result = _import(fresh, "--status", "INACTIVE")
    assert result.exit_code == 0, result.output
    iot = _iot(fresh)
    certificates = iot.list_certificates()["certificates"]
    assert {c["status"] for c in certificates} == {"INACTIVE"}

    # the ledger knows the status it set: a re-run asking ACTIVE reports it, changes nothing
    out = tmp_path / "again.json"
    result = _import(fresh, report=out)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["noted"] == 25
    assert report["notes"][0]["certificate_status"] == "INACTIVE"
    assert "iot.UpdateCertificate" not in report["calls"]
    assert {c["status"] for c in iot.list_certificates()["certificates"]} == {"INACTIVE"}

    out = tmp_path / "recheck.json"
    result = _import(fresh, "--recheck", report=out)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["calls"]["iot.UpdateCertificate"] == 25
    assert {c["status"] for c in iot.list_certificates()["certificates"]} == {"ACTIVE"}

    out = tmp_path / "settled.json"
    result = _import(fresh, report=out)
    report = json.loads(out.read_text())
    assert (report["already_present"], report["noted"], report["calls"]) == (25, 0, {})


def test_status_must_be_active_or_inactive(fresh: Sandbox) -> None:
    result = _import(fresh, "--status", "REVOKED")
    assert result.exit_code == 2, result.output


def test_registration_with_a_ca_records_the_ca_on_each_certificate(fresh: Sandbox, tmp_path: Path) -> None:
    iot = _iot(fresh)
    # moto matches caCertificatePem to a registered CA by its exact text (AWS by the certificate):
    # register the PEM text the importer sends, which is the same certificate
    from thingpress_core.certificates import load_certificate

    ca_pem = load_certificate(EXAMPLE_CA.read_bytes()).pem
    ca_id = iot.register_ca_certificate(caCertificate=ca_pem, setAsActive=True)["certificateId"]
    out = tmp_path / "report.json"
    result = _import(fresh, "--ca-certificate", str(EXAMPLE_CA), report=out)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["calls"]["iot.RegisterCertificate"] == 25
    assert report["calls"]["iot.DescribeCACertificate"] == 1
    assert "iot.RegisterCertificateWithoutCA" not in report["calls"]
    # every certificate is AWS's record of one issued by that CA (its caCertificateId; moto's
    # DescribeCertificate leaves that field out, ListCertificatesByCA filters on it)
    by_ca = {c["certificateId"] for c in iot.list_certificates_by_ca(caCertificateId=ca_id)["certificates"]}
    assert by_ca == {c["certificateId"] for c in iot.list_certificates()["certificates"]}
    assert len(by_ca) == 25


def test_a_ca_not_registered_stops_before_any_certificate(fresh: Sandbox) -> None:
    result = _import(fresh, "--ca-certificate", str(EXAMPLE_CA))
    assert result.exit_code == 2, result.output
    assert "is not registered in the account" in " ".join(result.output.split())
    assert fresh.counts()["certificates"] == 0


def test_an_inactive_ca_stops_before_any_certificate(fresh: Sandbox) -> None:
    _iot(fresh).register_ca_certificate(caCertificate=EXAMPLE_CA.read_text(), setAsActive=False)
    result = _import(fresh, "--ca-certificate", str(EXAMPLE_CA))
    assert result.exit_code == 2, result.output
    assert "not ACTIVE" in " ".join(result.output.split())


def test_a_device_certificate_as_ca_is_a_usage_error(fresh: Sandbox, tmp_path: Path) -> None:
    import base64

    leaf = tmp_path / "leaf.pem"
    leaf.write_bytes(base64.b64decode(EXAMPLE.read_text().splitlines()[0]))
    result = _import(fresh, "--ca-certificate", str(leaf))
    assert result.exit_code == 2, result.output
    assert "not a CA certificate" in " ".join(result.output.split())


def _bucket(box: Sandbox) -> Any:
    s3 = box.factory.client("s3")
    s3.create_bucket(Bucket="manifests")
    s3.put_object(Bucket="manifests", Key="fleet/devices.txt", Body=EXAMPLE.read_bytes())
    return s3


def test_import_from_an_s3_object_matches_a_local_import(fresh: Sandbox, tmp_path: Path) -> None:
    _bucket(fresh)
    out = tmp_path / "report.json"
    result = _import(fresh, source="s3://manifests/fleet/devices.txt", report=out)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert (report["total"], report["imported"], report["failed"]) == (25, 25, 0)
    assert report["manifest"]["format"] == "generated"
    assert fresh.counts() == {"things": 25, "certificates": 25}
    assert "s3://manifests/fleet/devices.txt" in " ".join(result.output.split())
    # the same object again: the ledger (keyed by the content's digest too) finds it all done
    result = _import(fresh, source="s3://manifests/fleet/devices.txt", report=out)
    assert json.loads(out.read_text())["already_present"] == 25


def test_inspect_reads_an_s3_object(fresh: Sandbox) -> None:
    _bucket(fresh)
    result = runner.invoke(app, ["inspect", "s3://manifests/fleet/devices.txt", "--json", *_endpoint(fresh)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert len(rows) == 25
    assert rows[0]["thing_name"] == "sensor-000000"


@pytest.mark.parametrize("source", ["s3://manifests/fleet/missing.txt", "s3://manifests", "s3:///key"])
def test_a_missing_or_malformed_s3_location_is_a_usage_error(fresh: Sandbox, source: str) -> None:
    _bucket(fresh)
    result = _import(fresh, source=source)
    assert result.exit_code == 2, result.output
    assert fresh.counts()["certificates"] == 0
