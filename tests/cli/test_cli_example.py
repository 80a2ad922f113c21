"""``thingpress-core example PATH``: a sample manifest for the first run, without a clone."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from thingpress_core.certificates import DeviceCertificate
from thingpress_core.cli import app
from thingpress_core.manifests import read_manifest

runner = CliRunner()
RESOURCES = ["--policy", "DevicePolicy", "--thing-group", "Fleet", "--thing-type", "Sensor"]


def test_example_writes_a_generated_manifest_and_its_ca(tmp_path: Path) -> None:
    target = tmp_path / "devices.txt"
    result = runner.invoke(app, ["example", str(target), "--count", "4"])
    assert result.exit_code == 0, result.output
    ca_file = tmp_path / "devices-ca.pem"
    assert ca_file.is_file()
    assert "devices-ca.pem" in result.output
    entries = list(read_manifest(target))
    assert [entry.certificate.common_name for entry in entries] == [f"sensor-{i:06d}" for i in range(4)]
    ca = DeviceCertificate.from_pem(ca_file.read_text(encoding="ascii"), source=str(ca_file))
    assert {entry.certificate.x509().issuer for entry in entries} == {ca.x509().subject}
    assert "PRIVATE KEY" not in target.read_text(encoding="ascii") + ca_file.read_text(encoding="ascii")


def test_the_sample_imports_into_the_sandbox_as_the_command_suggests(tmp_path: Path) -> None:
    """The quickstart end to end: example, then the import line it prints (CA trusted)."""
    target = tmp_path / "devices.txt"
    assert runner.invoke(app, ["example", str(target), "-n", "3", "--cn-prefix", "demo-"]).exit_code == 0
    result = runner.invoke(
        app,
        [
            "import",
            str(target),
            "--sandbox",
            "--sandbox-rate",
            "fast",
            "--trust-ca",
            str(tmp_path / "devices-ca.pem"),
            *RESOURCES,
        ],
    )
    assert result.exit_code == 0, result.output
    assert "sandbox now holds 3 things and 3 certificates" in result.output


def test_an_existing_file_is_kept_unless_forced(tmp_path: Path) -> None:
    target = tmp_path / "devices.txt"
    target.write_text("mine\n", encoding="ascii")
    refused = runner.invoke(app, ["example", str(target)])
    assert refused.exit_code == 2
    assert "exists already" in refused.output
    assert "--force" in refused.output
    assert target.read_text(encoding="ascii") == "mine\n"
    assert not (tmp_path / "devices-ca.pem").exists()

    forced = runner.invoke(app, ["example", str(target), "--force", "-n", "2"])
    assert forced.exit_code == 0, forced.output
    assert len(target.read_text(encoding="ascii").splitlines()) == 2


def test_bad_count_and_folder_are_usage_errors(tmp_path: Path) -> None:
    tmp_path = tmp_path / "out"
    tmp_path.mkdir()
    for count in ("0", "10001"):
        result = runner.invoke(app, ["example", str(tmp_path / "d.txt"), "--count", count])
        assert result.exit_code == 2
        assert f"--count {count} is out of range" in result.output
    folder = runner.invoke(app, ["example", str(tmp_path)])
    assert folder.exit_code == 2
    assert "is a folder" in folder.output
    missing = runner.invoke(app, ["example", str(tmp_path / "no" / "d.txt")])
    assert missing.exit_code == 2
    assert "does not exist" in missing.output
    assert list(tmp_path.iterdir()) == []
