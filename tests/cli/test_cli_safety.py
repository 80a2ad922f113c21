"""Issue 11 through the command line: merged devices, names, expiry, logging, Ctrl-C."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
from typer.testing import CliRunner

from thingpress_core.certificates.generate import generate_ca, generate_device_certificates, issue_certificate
from thingpress_core.cli import app
from thingpress_core.sandbox import Sandbox

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


def test_two_certificates_with_one_cn_fail_the_second_and_exit_1(fresh: Sandbox, tmp_path: Path) -> None:
    ca = generate_ca("twins")
    first, _ = issue_certificate("same-name", issuer=ca)
    second, _ = issue_certificate("same-name", issuer=ca)
    bundle = tmp_path / "twins.pem"
    bundle.write_text(first.pem + second.pem)
    report = tmp_path / "report.json"
    result = runner.invoke(
        app,
        ["import", str(bundle), *RESOURCES, *_endpoint(fresh), "--concurrency", "1", "--report", str(report)],
    )
    assert result.exit_code == 1, result.output
    data = json.loads(report.read_text())
    assert (data["imported"], data["failed"]) == (1, 1)
    failure = data["failures"][0]
    assert failure["reason"] == "name_collision"
    assert failure["other_certificate_id"] == first.certificate_id
    things = fresh.things()
    assert [(t.name, t.certificate_ids) for t in things] == [("same-name", (first.certificate_id,))]


def test_a_certificate_already_on_a_device_is_not_put_on_a_second_thing(
    fresh: Sandbox, tmp_path: Path
) -> None:
    ca = generate_ca("espressif-like")
    cert, _ = issue_certificate("device-cn", issuer=ca)
    csv = tmp_path / "manifest.csv"
    body = cert.pem.replace("\n", "\r\n")
    csv.write_text(f'MAC,cn,cert\r\nA0B1C2D3E4F5,device-cn,"{body}"\r\n')
    pem = tmp_path / "one.pem"
    pem.write_text(cert.pem)
    assert runner.invoke(app, ["import", str(csv), *RESOURCES, *_endpoint(fresh)]).exit_code == 0
    result = runner.invoke(
        app, ["import", str(pem), *RESOURCES, *_endpoint(fresh), "--report", str(tmp_path / "r.json")]
    )
    assert result.exit_code == 1, result.output
    failure = json.loads((tmp_path / "r.json").read_text())["failures"][0]
    assert failure["reason"] == "certificate_on_other_thing"
    assert failure["other_things"] == ["A0B1C2D3E4F5"]
    assert [t.name for t in fresh.things()] == ["A0B1C2D3E4F5"]
    again = runner.invoke(app, ["import", str(pem), *RESOURCES, *_endpoint(fresh), "--allow-multiple-things"])
    assert again.exit_code == 0, again.output
    assert sorted(t.name for t in fresh.things()) == ["A0B1C2D3E4F5", "device-cn"]


@pytest.mark.filterwarnings("ignore:Attribute's length must be:UserWarning")
def test_names_a_reader_offers_are_mapped_and_thing_name_wins(fresh: Sandbox, tmp_path: Path) -> None:
    ca = generate_ca("names")
    cert, _ = issue_certificate("dev 1.lab/ü", issuer=ca)
    with warnings.catch_warnings():  # cryptography warns of a CN over 64 characters: we want one
        warnings.simplefilter("ignore", UserWarning)
        other, _ = issue_certificate("x" * 300, issuer=ca)
    bundle = tmp_path / "names.pem"
    bundle.write_text(cert.pem + other.pem)
    result = runner.invoke(app, ["import", str(bundle), *RESOURCES, *_endpoint(fresh)])
    assert result.exit_code == 0, result.output
    names = sorted(t.name for t in fresh.things())
    assert len(names) == 2
    assert all(len(n) <= 128 for n in names)
    assert any(n.startswith("dev_1_lab__-") for n in names)
    inspect = runner.invoke(app, ["inspect", str(bundle), "--json"])
    shown = sorted(json.loads(line)["thing_name"] for line in inspect.output.splitlines() if line.strip())
    assert shown == names  # inspect shows the names import uses
    by_id = runner.invoke(app, ["inspect", str(bundle), "--json", "--naming", "certificate_id"])
    ids = {json.loads(line)["thing_name"] for line in by_id.output.splitlines() if line.strip()}
    assert ids == {cert.certificate_id, other.certificate_id}


def test_expired_certificates_are_refused_flagged_and_allowed_on_request(
    fresh: Sandbox, tmp_path: Path
) -> None:
    ca = generate_ca("old")
    old, _ = issue_certificate(
        "old-device",
        issuer=ca,
        not_before=dt.datetime(2019, 1, 1, tzinfo=dt.timezone.utc),
        not_after=dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc),
    )
    (good,) = generate_device_certificates(1, ca=ca, cn_prefix="good-")
    bundle = tmp_path / "mixed.pem"
    bundle.write_text(old.pem + good.pem)
    inspect = runner.invoke(app, ["inspect", str(bundle), "--json"])
    rows = {
        json.loads(line)["common_name"]: json.loads(line)
        for line in inspect.output.splitlines()
        if line.startswith("{")
    }
    assert rows["old-device"]["validity"] == "expired"
    assert rows["good-000000"]["validity"] == "valid"
    report = tmp_path / "r.json"
    result = runner.invoke(
        app, ["import", str(bundle), *RESOURCES, *_endpoint(fresh), "--report", str(report)]
    )
    assert result.exit_code == 1
    failure = json.loads(report.read_text())["failures"][0]
    assert (failure["reason"], failure["failed_step"]) == ("expired", "verify")
    assert "2020-01-01" in failure["error"]
    allowed = runner.invoke(app, ["import", str(bundle), *RESOURCES, *_endpoint(fresh), "--allow-expired"])
    assert allowed.exit_code == 0, allowed.output


def _python() -> str:
    return os.environ.get("THINGPRESS_TEST_SUBPROCESS_PYTHON", sys.executable)


def test_verbose_output_never_carries_credentials_or_pem_bodies(tmp_path: Path) -> None:
    ca = generate_ca("verbose")
    certs = list(generate_device_certificates(3, ca=ca, cn_prefix="loud-"))
    bundle = tmp_path / "loud.pem"
    bundle.write_text("".join(c.pem for c in certs))
    marker_token = "MARKERSESSIONTOKEN0123456789abcdef"
    marker_key = "AKIAMARKER0123456789"
    env = {**os.environ, "AWS_SESSION_TOKEN": marker_token, "AWS_ACCESS_KEY_ID": marker_key}
    completed = subprocess.run(
        [_python(), "-m", "thingpress_core.cli", "import", str(bundle), "--sandbox", *RESOURCES, "-vv"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    output = completed.stdout + completed.stderr
    assert "DEBUG thingpress_core" in output  # -vv did turn our own debug logging on
    assert marker_token not in output
    assert marker_key not in output
    for cert in certs:
        assert cert.pem.splitlines()[1] not in output


def test_ctrl_c_writes_a_partial_report_and_exits_130(tmp_path: Path) -> None:
    ca = generate_ca("interrupted")
    certs = list(generate_device_certificates(120, ca=ca, cn_prefix="slow-"))
    bundle = tmp_path / "many.pem"
    bundle.write_text("".join(c.pem for c in certs))
    report = tmp_path / "partial.json"
    process = subprocess.Popen(
        [
            _python(),
            "-m",
            "thingpress_core.cli",
            "import",
            str(bundle),
            "--sandbox",
            *RESOURCES,
            "--report",
            str(report),
            "-v",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    # wait until the sandbox runs, then let the import get under way (AWS's 10 registrations/s)
    for line in process.stderr:
        if "sandbox:" in line:
            break
    time.sleep(3.0)
    process.send_signal(signal.SIGINT)
    _, rest = process.communicate(timeout=120)
    assert process.returncode == 130, rest[-2000:]
    data = json.loads(report.read_text())
    assert data["interrupted"] is True
    assert 0 < data["total"] < 120
    assert data["total"] == data["imported"] + data["already_present"] + data["failed"] + data["skipped"]
    assert data["total"] + len(data["unfinished"]) <= 120
    assert "Traceback" not in rest


# -- issue 13: what the command says about the manifest ----------------------------------------

MICROCHIP = Path(__file__).resolve().parents[1] / "data" / "manifests" / "microchip"


def test_a_manifest_without_certificates_puts_its_note_in_the_report(fresh: Sandbox, tmp_path: Path) -> None:
    # TMNGTLSS: ten verified entries, none carrying a certificate (payload version 2)
    report = tmp_path / "r.json"
    result = runner.invoke(
        app,
        [
            "import",
            str(MICROCHIP / "ECC608-TMNGTLSS-B.json"),
            "--verifier",
            str(MICROCHIP / "verifiers"),
            "--policy",
            "DevicePolicy",
            *_endpoint(fresh),
            "--report",
            str(report),
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(report.read_text())
    assert data["total"] == 0
    manifest = data["manifest"]
    assert (manifest["format"], manifest["entries"], manifest["certificates"]) == ("microchip", 10, 0)
    assert len(manifest["skipped"]) == 10
    assert {s["code"] for s in manifest["skipped"]} == {"no_certificate"}
    assert manifest["notes"]
    assert "no certificate" in manifest["notes"][0]
    assert "verifiers" in manifest["reader_options"]


def test_the_summary_names_the_detected_format_and_options_that_do_not_apply_are_flagged(
    fresh: Sandbox, tmp_path: Path
) -> None:
    ca = generate_ca("formats")
    (cert,) = generate_device_certificates(1, ca=ca, cn_prefix="fmt-")
    pem = tmp_path / "one.pem"
    pem.write_text(cert.pem)
    result = runner.invoke(app, ["import", str(pem), *RESOURCES, *_endpoint(fresh), "--cert-type", "E0E1"])
    assert result.exit_code == 0, result.output
    assert "--cert-type applies to Infineon archives" in result.output
    assert "(pem)" in result.output  # the summary's manifest row
    csv = tmp_path / "macs.csv"
    body = cert.pem.replace("\n", "\r\n")
    csv.write_text(f'MAC,cn,cert\r\nA0B1C2D3E4F5,fmt-000000,"{body}"\r\n')
    forced = runner.invoke(app, ["inspect", str(csv), "--format", "pem"])
    assert "--format pem was given, but" in forced.output
    assert "espressif" in forced.output


def test_help_uses_conventional_placeholders() -> None:
    result = runner.invoke(app, ["import", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "<bool>" not in result.output
    assert "<int>" not in result.output
    assert "FILE|DIR" in result.output  # --verifier and --trust-ca take a folder too
    assert "-v INFO, -vv DEBUG" in result.output


def test_sandbox_rate_fast_lifts_the_limits() -> None:
    python = os.environ.get("THINGPRESS_TEST_SUBPROCESS_PYTHON", sys.executable)
    example = Path(__file__).resolve().parents[2] / "examples" / "devices.txt"
    completed = subprocess.run(
        [
            python,
            "-m",
            "thingpress_core.cli",
            "import",
            str(example),
            "--sandbox",
            "--sandbox-rate",
            "fast",
            *RESOURCES,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "no rate limits" in completed.stderr
    assert "sandbox now holds 25 things" in completed.stdout
