"""``--quotas auto``, the worker count chosen from the rate limits and the ``--dry-run``
estimate (issue 18), through the CLI against the sandbox (moto). moto has no IoT Core quotas:
the account's answer is modelled by replacing `QuotaReader.read` (the reader itself is tested
on botocore's Stubber in tests/services/test_quotas.py); moto's own answer is the fallback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from thingpress_core.cli import app
from thingpress_core.sandbox import Sandbox
from thingpress_core.services import QUOTA_CODES

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "devices.txt"  # 25 certificates
RESOURCES = ["--policy", "DevicePolicy", "--thing-group", "Fleet", "--thing-type", "Sensor"]

runner = CliRunner()


@pytest.fixture
def fresh(sandbox: Sandbox) -> Sandbox:
    sandbox.reset()
    sandbox.create_resources(policies=["DevicePolicy"], thing_groups=["Fleet"], thing_type="Sensor")
    return sandbox


def _quota(operation: str, value: float) -> dict[str, Any]:
    code = QUOTA_CODES[operation]
    return {
        "ServiceCode": "iotcore",
        "QuotaCode": code,
        "QuotaName": f"{operation.split('.')[1]} API TPS",
        "Value": value,
        "Period": {"PeriodValue": 1, "PeriodUnit": "SECOND"},
    }


@pytest.fixture
def raised(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The account answers RegisterCertificateWithoutCA 100/s (raised), AttachPolicy 15/s, and
    no default for the rest: moto's Service Quotas server is taught the two listings."""
    from moto.servicequotas.responses import ServiceQuotasResponse

    asked: list[str] = []

    def applied(self: Any) -> str:
        asked.append(json.loads(self.body)["ServiceCode"])
        quotas = [_quota("iot.RegisterCertificateWithoutCA", 100.0), _quota("iot.AttachPolicy", 15.0)]
        return json.dumps({"Quotas": quotas})

    def defaults(self: Any) -> str:
        return json.dumps({"Quotas": []})

    monkeypatch.setattr(ServiceQuotasResponse, "list_service_quotas", applied, raising=False)
    monkeypatch.setattr(ServiceQuotasResponse, "list_aws_default_service_quotas", defaults)
    return asked


def _import(box: Sandbox, *args: str, env: dict[str, str] | None = None) -> Any:
    assert box.endpoint_url
    endpoint = ["--endpoint-url", box.endpoint_url, "--region", "us-east-1", "--no-ledger"]
    return runner.invoke(app, ["import", str(EXAMPLE), *RESOURCES, *endpoint, *args], env=env)


def test_quotas_auto_prints_what_it_found_and_sizes_the_workers(fresh: Sandbox, raised: list[str]) -> None:
    result = _import(fresh, "--quotas", "auto", "--dry-run")
    assert result.exit_code == 0, result.output
    assert raised == ["iotcore"]
    assert "IoT quotas read from the account: 2 of 5 operations found" in result.output
    assert "iot.RegisterCertificateWithoutCA 100/s (applied, L-4671C7C8, matched by code)" in result.output
    assert "iot.CreateThing 100/s (built-in default): not found in the account" in result.output
    # AttachPolicy binds at 15/s: 15 x 5 calls x 0.1 s x 1.5 headroom -> 12 workers
    assert "workers: 12 (AttachPolicy binds at 15/s" in result.output


def test_group_mode_with_raised_quotas_binds_at_100_a_second(fresh: Sandbox, raised: list[str]) -> None:
    result = _import(fresh, "--quotas", "auto", "--policy-via-group", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "binds at 100/s" in result.output
    # the estimate: 4 calls per certificate x 25, plus the preflight's 3 reads and the group's AttachPolicy
    assert "estimate for 25 certificate(s): 104 IoT calls (4 per certificate)" in result.output
    assert "iot.AttachPolicy: 1" in result.output
    assert "iot.RegisterCertificateWithoutCA: 25" in result.output
    assert "100.0 certificates/s" in result.output


def test_the_setting_turns_it_on(fresh: Sandbox, raised: list[str]) -> None:
    result = _import(fresh, "--dry-run", env={"THINGPRESS_RESILIENCE__QUOTAS": "auto"})
    assert result.exit_code == 0, result.output
    assert raised == ["iotcore"]
    assert "IoT quotas read from the account" in result.output


def test_builtin_quotas_read_nothing_and_the_estimate_uses_the_defaults(
    fresh: Sandbox, raised: list[str]
) -> None:
    result = _import(fresh, "--dry-run")
    assert result.exit_code == 0, result.output
    assert raised == []
    # RegisterCertificateWithoutCA at its default 10/s binds: 25 certificates in 2.5 s
    assert "RegisterCertificateWithoutCA binds at 10.0 certificates/s" in result.output
    assert "expected 2.5 s" in result.output
    assert "workers: 8 (RegisterCertificateWithoutCA binds at 10/s" in result.output


def test_a_given_concurrency_is_kept(fresh: Sandbox) -> None:
    result = _import(fresh, "--concurrency", "3", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "workers:" not in result.output
    assert "with 3 worker(s)" in result.output


def test_without_the_quotas_api_it_falls_back_with_one_warning_and_imports(fresh: Sandbox) -> None:
    result = _import(fresh, "--quotas", "auto")  # moto knows no ListServiceQuotas: an error
    assert result.exit_code == 0, result.output
    assert result.output.count("warning: IoT quotas: using the built-in defaults") == 1
    assert "workers: 8" in result.output


def test_a_bad_quotas_value_is_a_usage_error(fresh: Sandbox) -> None:
    result = _import(fresh, "--quotas", "sometimes")
    assert result.exit_code == 2
    assert "--quotas must be builtin or auto" in result.output
