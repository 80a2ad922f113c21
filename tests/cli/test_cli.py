from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from thingpress_core.certificates.generate import (
    generate_ca,
    generate_device_certificates,
    generated_manifest_lines,
)
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
    return sandbox


def _endpoint(box: Sandbox) -> list[str]:
    assert box.endpoint_url
    return ["--endpoint-url", box.endpoint_url, "--region", "us-east-1"]


def test_inspect_prints_every_certificate() -> None:
    result = runner.invoke(app, ["inspect", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    assert "25 certificate(s)" in result.output
    assert "sensor-000000" in result.output
    assert "sensor-000024" in result.output


def test_inspect_json_gives_ids_that_match_the_der() -> None:
    result = runner.invoke(app, ["inspect", str(EXAMPLE), "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines() if line.strip()]
    assert len(rows) == 25
    import hashlib

    from thingpress_core.certificates import load_certificate

    first_pem = base64.b64decode(EXAMPLE.read_text().splitlines()[0])
    expected = hashlib.sha256(load_certificate(first_pem).der).hexdigest()
    assert rows[0]["certificate_id"] == expected
    assert rows[0]["thing_name"] == "sensor-000000"


def test_import_then_reimport_creates_nothing_the_second_time(fresh: Sandbox, tmp_path: Path) -> None:
    fresh.create_resources(policies=["DevicePolicy"], thing_groups=["Fleet"], thing_type="Sensor")
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    result = runner.invoke(
        app, ["import", str(EXAMPLE), *RESOURCES, *_endpoint(fresh), "--report", str(first)]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(first.read_text())
    assert (report["total"], report["imported"], report["failed"]) == (25, 25, 0)
    assert fresh.counts() == {"things": 25, "certificates": 25}

    result = runner.invoke(
        app, ["import", str(EXAMPLE), *RESOURCES, *_endpoint(fresh), "--report", str(second)]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(second.read_text())
    assert (report["imported"], report["already_present"]) == (0, 25)
    assert fresh.counts() == {"things": 25, "certificates": 25}
    thing = next(t for t in fresh.things() if t.name == "sensor-000003")
    assert thing.thing_type == "Sensor"
    assert thing.policies == ("DevicePolicy",)
    assert thing.thing_groups == ("Fleet",)
    assert len(thing.certificate_ids) == 1


def test_missing_resources_stop_before_any_certificate(fresh: Sandbox) -> None:
    fresh.create_resources(policies=["DevicePolicy"])
    result = runner.invoke(app, ["import", str(EXAMPLE), *RESOURCES, *_endpoint(fresh)])
    assert result.exit_code == 2, result.output
    assert "Fleet" in result.output
    assert "Sensor" in result.output
    assert fresh.counts() == {"things": 0, "certificates": 0}


def test_corrupt_entries_fail_with_reasons_and_exit_1(fresh: Sandbox, tmp_path: Path) -> None:
    fresh.create_resources(policies=["DevicePolicy"], thing_groups=["Fleet"], thing_type="Sensor")
    lines = list(generated_manifest_lines(generate_device_certificates(100, cn_prefix="unit-")))
    for bad in (10, 50, 90):
        lines[bad] = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nnot a certificate\n").decode()
    manifest = tmp_path / "fleet.txt"
    manifest.write_text("\n".join(lines) + "\n")
    report_path = tmp_path / "report.json"
    result = runner.invoke(
        app,
        [
            "import",
            str(manifest),
            "--format",
            "generated",
            *RESOURCES,
            *_endpoint(fresh),
            "--report",
            str(report_path),
        ],
    )
    assert result.exit_code == 1, result.output
    report = json.loads(report_path.read_text())
    assert (report["total"], report["imported"], report["failed"]) == (100, 97, 3)
    assert len(report["failures"]) == 3
    assert all(f["error"] for f in report["failures"])
    assert fresh.counts()["things"] == 97


def test_untrusted_certificates_are_never_registered(fresh: Sandbox, tmp_path: Path) -> None:
    fresh.create_resources(policies=["DevicePolicy"], thing_groups=["Fleet"], thing_type="Sensor")
    other_ca = tmp_path / "other-ca.pem"
    other_ca.write_text(generate_ca("Some other CA").cert.pem)
    result = runner.invoke(
        app, ["import", str(EXAMPLE), *RESOURCES, *_endpoint(fresh), "--trust-ca", str(other_ca)]
    )
    assert result.exit_code == 1, result.output
    assert fresh.counts() == {"things": 0, "certificates": 0}


def test_trusted_ca_lets_them_in(fresh: Sandbox) -> None:
    fresh.create_resources(policies=["DevicePolicy"], thing_groups=["Fleet"], thing_type="Sensor")
    result = runner.invoke(
        app, ["import", str(EXAMPLE), *RESOURCES, *_endpoint(fresh), "--trust-ca", str(EXAMPLE_CA)]
    )
    assert result.exit_code == 0, result.output
    assert fresh.counts()["certificates"] == 25


def test_dry_run_makes_no_change(fresh: Sandbox) -> None:
    fresh.create_resources(policies=["DevicePolicy"], thing_groups=["Fleet"], thing_type="Sensor")
    result = runner.invoke(app, ["import", str(EXAMPLE), *RESOURCES, *_endpoint(fresh), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert fresh.counts() == {"things": 0, "certificates": 0}


def test_sandbox_and_endpoint_exclude_each_other() -> None:
    result = runner.invoke(app, ["import", str(EXAMPLE), "--sandbox", "--endpoint-url", "http://127.0.0.1:1"])
    assert result.exit_code == 2
    assert "exclude" in result.output


def test_unreadable_file_is_a_usage_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\x01 this is no manifest")
    result = runner.invoke(app, ["import", str(junk), "--sandbox"])
    assert result.exit_code == 2
    assert "junk.bin" in result.output


def test_sandbox_command_in_a_real_subprocess() -> None:
    python = os.environ.get("THINGPRESS_TEST_SUBPROCESS_PYTHON", sys.executable)
    completed = subprocess.run(
        [python, "-m", "thingpress_core.cli", "import", str(EXAMPLE), "--sandbox", *RESOURCES],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "import summary" in completed.stdout
    assert "sandbox now holds 25 things and 25 certificates" in completed.stdout
    assert "-----BEGIN CERTIFICATE-----" not in completed.stdout + completed.stderr


def test_enqueue_sends_one_message_per_certificate(fresh: Sandbox) -> None:
    sqs = fresh.factory.sqs()
    url = sqs.create_queue(QueueName="imports")["QueueUrl"]
    result = runner.invoke(
        app, ["enqueue", str(EXAMPLE), "--queue-url", url, "--policy", "DevicePolicy", *_endpoint(fresh)]
    )
    assert result.exit_code == 0, result.output
    assert "sent 25 of 25" in result.output
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    assert attributes["Attributes"]["ApproximateNumberOfMessages"] == "25"
    body = json.loads(sqs.receive_message(QueueUrl=url)["Messages"][0]["Body"])
    assert body["policies"] == ["DevicePolicy"]
    assert body["thing_name"].startswith("sensor-")


def test_enqueue_to_a_missing_queue_fails_cleanly(fresh: Sandbox) -> None:
    assert fresh.endpoint_url
    missing = f"{fresh.endpoint_url}/123456789012/no-such-queue"
    result = runner.invoke(app, ["enqueue", str(EXAMPLE), "--queue-url", missing, *_endpoint(fresh)])
    assert result.exit_code in (1, 2), result.output
    assert "Traceback" not in result.output
