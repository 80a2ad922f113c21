"""verify, activate, deactivate and rollback at the command line, against the sandbox."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from thingpress_core.certificates import DeviceCertificate
from thingpress_core.certificates.generate import generate_device_certificates
from thingpress_core.cli import app
from thingpress_core.sandbox import Sandbox

RESOURCES = ["--policy", "DevicePolicy", "--thing-group", "Fleet"]
runner = CliRunner()


@pytest.fixture
def fresh(sandbox: Sandbox) -> Sandbox:
    sandbox.reset()
    sandbox.create_resources(policies=["DevicePolicy"], thing_groups=["Fleet"])
    return sandbox


@pytest.fixture(scope="module")
def certs() -> list[DeviceCertificate]:
    return list(generate_device_certificates(8, cn_prefix="ops-"))


def _bundle(path: Path, certs: list[DeviceCertificate]) -> Path:
    path.write_text("".join(c.pem for c in certs))
    return path


def _endpoint(box: Sandbox) -> list[str]:
    assert box.endpoint_url
    return ["--endpoint-url", box.endpoint_url, "--region", "us-east-1"]


def _run(box: Sandbox, *args: str, report: Path | None = None) -> tuple[int, dict[str, Any], str]:
    extra = ["--report", str(report)] if report is not None else []
    result = runner.invoke(app, [*args, *_endpoint(box), *extra])
    data = json.loads(report.read_text()) if report is not None and report.exists() else {}
    return result.exit_code, data, result.output


def _arn(box: Sandbox, cert: DeviceCertificate) -> str:
    answer = box.factory.iot().describe_certificate(certificateId=cert.certificate_id)
    return str(answer["certificateDescription"]["certificateArn"])


def test_verify_finds_exactly_the_drift_made_by_hand(
    fresh: Sandbox, certs: list[DeviceCertificate], tmp_path: Path
) -> None:
    bundle = _bundle(tmp_path / "reel.pem", certs[:6])
    assert _run(fresh, "import", str(bundle), *RESOURCES)[0] == 0

    code, clean, output = _run(fresh, "verify", report=tmp_path / "clean.json")
    assert code == 0, output
    assert (clean["checked"], clean["drifted"], clean["in_sync"]) == (6, 0, 6)
    assert "options of run" in output  # the expectation came from the ledger's run

    iot = fresh.factory.iot()
    iot.detach_policy(policyName="DevicePolicy", target=_arn(fresh, certs[0]))
    iot.update_certificate(certificateId=certs[1].certificate_id, newStatus="INACTIVE")
    iot.remove_thing_from_thing_group(thingGroupName="Fleet", thingName=str(certs[2].common_name))
    iot.create_thing(thingName="spare")
    iot.attach_thing_principal(thingName="spare", principal=_arn(fresh, certs[3]))

    code, drift, output = _run(fresh, "verify", report=tmp_path / "drift.json")
    assert code == 1, output
    assert (drift["checked"], drift["drifted"], drift["in_sync"]) == (6, 4, 2)
    found = {d["certificate_id"]: sorted(p["code"] for p in d["problems"]) for d in drift["drifted_devices"]}
    assert found == {
        certs[0].certificate_id: ["policy_missing"],
        certs[1].certificate_id: ["certificate_status"],
        certs[2].certificate_id: ["group_missing"],
        certs[3].certificate_id: ["other_things"],
    }
    assert "drifted devices (4)" in output

    # the same from the manifest, with the options spelled out, then repaired
    code, by_file, _ = _run(
        fresh,
        "verify",
        str(bundle),
        *RESOURCES,
        "--status",
        "ACTIVE",
        "--no-ledger",
        report=tmp_path / "f.json",
    )
    assert (code, by_file["drifted"]) == (1, 4)
    code, repaired, output = _run(
        fresh, "verify", str(bundle), *RESOURCES, "--repair", "--no-ledger", report=tmp_path / "r.json"
    )
    assert code == 1, output  # the status and the second thing are for a person to decide
    assert repaired["changed"] == 2
    code, after, _ = _run(fresh, "verify", str(bundle), *RESOURCES, "--no-ledger", report=tmp_path / "a.json")
    left = {d["certificate_id"] for d in after["drifted_devices"]}
    assert left == {certs[3].certificate_id}  # no --status: the INACTIVE one is in sync with itself


def test_repair_needs_the_manifest(fresh: Sandbox) -> None:
    code, _, output = _run(fresh, "verify", "--repair")
    assert code == 2
    assert "--repair needs the manifest FILE" in output


def test_deactivate_then_activate_from_the_ledger_and_from_the_file(
    fresh: Sandbox, certs: list[DeviceCertificate], tmp_path: Path
) -> None:
    bundle = _bundle(tmp_path / "reel.pem", certs[:4])
    assert _run(fresh, "import", str(bundle), *RESOURCES)[0] == 0
    code, off, output = _run(fresh, "deactivate", report=tmp_path / "off.json")
    assert code == 0, output
    assert (off["total"], off["changed"], off["calls"]["iot.UpdateCertificate"]) == (4, 4, 4)
    statuses = {
        c.certificate_id: fresh.factory.iot().describe_certificate(certificateId=c.certificate_id)[
            "certificateDescription"
        ]["status"]
        for c in certs[:4]
    }
    assert set(statuses.values()) == {"INACTIVE"}

    code, again, _ = _run(fresh, "deactivate", report=tmp_path / "again.json")
    assert (code, again["unchanged"], again["calls"]) == (0, 4, {})  # the ledger knows: no call

    code, on, _ = _run(fresh, "activate", str(bundle), report=tmp_path / "on.json")
    assert (code, on["changed"]) == (0, 4)
    code, verified, _ = _run(fresh, "verify", "--status", "ACTIVE", report=tmp_path / "v.json")
    assert (code, verified["drifted"]) == (0, 0)


def test_rollback_undoes_the_last_run_only(
    fresh: Sandbox, certs: list[DeviceCertificate], tmp_path: Path
) -> None:
    first = _bundle(tmp_path / "first.pem", certs[:3])
    second = _bundle(tmp_path / "second.pem", certs[3:6])
    assert _run(fresh, "import", str(first), *RESOURCES)[0] == 0
    assert _run(fresh, "import", str(second), *RESOURCES)[0] == 0
    before = {t.name for t in fresh.things()}
    assert len(before) == 6

    code, _, output = _run(fresh, "rollback", "--last", "--dry-run")
    assert code == 0, output
    assert "rollback plan" in output
    assert {t.name for t in fresh.things()} == before  # nothing changed

    code, _, output = _run(fresh, "rollback", "--last")
    assert code == 2  # no terminal, no --yes
    assert "--yes" in output

    code, result, output = _run(fresh, "rollback", "--last", "--yes", report=tmp_path / "rb.json")
    assert code == 0, output
    assert (result["total"], result["changed"], result["failed"]) == (3, 3, 0)
    assert {t.name for t in fresh.things()} == {str(c.common_name) for c in certs[:3]}
    remaining = {c["certificateId"] for c in fresh.factory.iot().list_certificates()["certificates"]}
    assert remaining == {c.certificate_id for c in certs[:3]}
    iot = fresh.factory.iot()
    assert iot.get_policy(policyName="DevicePolicy")["policyName"] == "DevicePolicy"
    assert iot.describe_thing_group(thingGroupName="Fleet")["thingGroupName"] == "Fleet"

    # run again: nothing left to undo, no call
    code, again, _ = _run(fresh, "rollback", "--run", result["of_run"], "--yes", report=tmp_path / "rb2.json")
    assert code == 0
    assert again["calls"] == {}


def test_rollback_needs_a_run_and_a_ledger(fresh: Sandbox) -> None:
    code, _, output = _run(fresh, "rollback", "--yes")
    assert code == 2
    assert "--run ID or --last" in output
    code, _, output = _run(fresh, "rollback", "--last", "--yes")
    assert code == 2
    assert "no ledger" in output
