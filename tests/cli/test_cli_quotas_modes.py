"""Issue 18 through the CLI against the sandbox (moto): --exclusive and --policy-via-group."""

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
RESOURCES = ["--policy", "DevicePolicy", "--thing-group", "Fleet", "--thing-type", "Sensor"]

runner = CliRunner()


@pytest.fixture
def fresh(sandbox: Sandbox) -> Sandbox:
    sandbox.reset()
    sandbox.create_resources(policies=["DevicePolicy"], thing_groups=["Fleet"], thing_type="Sensor")
    return sandbox


def _import(box: Sandbox, *args: str, report: Path | None = None, resources: list[str] = RESOURCES) -> Any:
    assert box.endpoint_url
    extra = ["--report", str(report)] if report is not None else []
    endpoint = ["--endpoint-url", box.endpoint_url, "--region", "us-east-1", "--no-ledger"]
    return runner.invoke(app, ["import", str(EXAMPLE), *resources, *endpoint, *args, *extra])


def test_exclusive_flag_imports_every_certificate(fresh: Sandbox, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    result = _import(fresh, "--exclusive", report=out)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["imported"] == 25
    assert report["calls"]["iot.AttachThingPrincipal"] == 25


def test_policy_via_group_makes_four_calls_per_certificate(fresh: Sandbox, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    result = _import(fresh, "--policy-via-group", report=out)
    assert result.exit_code == 0, result.output
    calls = json.loads(out.read_text())["calls"]
    assert calls["iot.AttachPolicy"] == 1  # once, to the group
    per_certificate = {k: v for k, v in calls.items() if not k.startswith(("iot.Get", "iot.Describe"))}
    per_certificate.pop("iot.AttachPolicy")
    assert sum(per_certificate.values()) == 4 * 25
    iot = fresh.factory.client("iot")
    group_arn = iot.describe_thing_group(thingGroupName="Fleet")["thingGroupArn"]
    assert [p["policyName"] for p in iot.list_attached_policies(target=group_arn)["policies"]] == [
        "DevicePolicy"
    ]


@pytest.mark.parametrize(
    "resources",
    [
        ["--policy", "DevicePolicy"],
        ["--policy", "DevicePolicy", "--thing-group", "Fleet", "--thing-group", "Other"],
        ["--thing-group", "Fleet"],
    ],
)
def test_policy_via_group_refuses_other_combinations(fresh: Sandbox, resources: list[str]) -> None:
    result = _import(fresh, "--policy-via-group", resources=resources)
    assert result.exit_code == 2
    assert "exactly one thing group" in result.output
    assert fresh.factory.client("iot").list_certificates()["certificates"] == []
