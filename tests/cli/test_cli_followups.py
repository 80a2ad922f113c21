"""Reviewers' follow-ups at the command line: Ctrl-C before the import begins, the
--thing-name-prefix flag, and a ledger path in a folder that takes no new files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from thingpress_core.certificates.generate import generate_ca, generate_device_certificates
from thingpress_core.cli import app
from thingpress_core.importer import ImportReport
from thingpress_core.sandbox import Sandbox

runner = CliRunner()


def _python() -> str:
    return os.environ.get("THINGPRESS_TEST_SUBPROCESS_PYTHON", sys.executable)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ca = generate_ca("followups")
    path = tmp_path_factory.mktemp("followups") / "devices.pem"
    path.write_text("".join(c.pem for c in generate_device_certificates(3, ca=ca, cn_prefix="unit-")))
    return path


def _error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


# -- 1. Ctrl-C before the import begins -------------------------------------------------------

# Runs the command with one function replaced by a hold: it says READY on stderr, then waits
# for a signal. The test's SIGINT therefore lands inside that function, whenever it is sent.
_HELD = """
import importlib, signal, sys

module_name, _, attribute = sys.argv[1].partition(":")
owner = importlib.import_module(module_name)
*path, name = attribute.split(".")
for part in path:
    owner = getattr(owner, part)


def held(*args, **kwargs):
    sys.stderr.write("HELD-READY\\n")
    sys.stderr.flush()
    signal.pause()
    raise AssertionError("the hold ended without SIGINT")


setattr(owner, name, held)
sys.argv = ["thingpress-core", *sys.argv[2:]]
from thingpress_core.cli import main

main()
"""

_PHASES = {
    "sandbox start": ("thingpress_core.sandbox:Sandbox.__enter__", []),
    "manifest open": ("thingpress_core.manifests:read_manifest", []),
    # without a ledger the pre-flight runs before the run, on the command's own thread
    "pre-flight": ("thingpress_core.importer:CertificateImporter.preflight", ["--no-ledger"]),
}


@pytest.mark.parametrize("phase", list(_PHASES))
def test_ctrl_c_before_the_import_says_so_and_writes_an_empty_interrupted_report(
    phase: str, bundle: Path, tmp_path: Path
) -> None:
    target, extra = _PHASES[phase]
    report = tmp_path / "r.json"
    command = [_python(), "-c", _HELD, target, "import", str(bundle), "--sandbox", "--report", str(report)]
    process = subprocess.Popen(
        [*command, "--policy", "DevicePolicy", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    assert process.stderr is not None
    before = []
    for line in process.stderr:  # until the process is held in the phase
        before.append(line)
        if line.startswith("HELD-READY"):
            break
    assert before, "the command said nothing"
    assert before[-1].startswith("HELD-READY"), "".join(before)[-2000:]
    process.send_signal(signal.SIGINT)
    _, rest = process.communicate(timeout=120)
    assert process.returncode == 130, rest[-2000:]
    assert "Traceback" not in rest
    said = [line for line in rest.splitlines() if "interrupted" in line]
    assert said == ["interrupted before the import began: no certificate was sent"], rest[-2000:]
    data = json.loads(report.read_text())
    assert (data["interrupted"], data["total"], data["unfinished"], data["calls"]) == (True, 0, [], {})
    manifest = data.pop("manifest")
    ImportReport.model_validate(data)  # the shape of every import's report
    assert manifest["reader_options"] == {"on_bad_entry": "auto"}
    if phase == "manifest open":  # the file was never read
        assert (manifest["format"], manifest["certificates"], manifest["complete"]) == (None, 0, False)
    else:  # the counting pass had read it whole
        assert (manifest["format"], manifest["certificates"], manifest["complete"]) == ("pem", 3, True)


def test_ctrl_c_before_the_import_without_report_writes_no_file(bundle: Path, tmp_path: Path) -> None:
    target = "thingpress_core.sandbox:Sandbox.__enter__"
    work = tmp_path / "run"
    work.mkdir()
    process = subprocess.Popen(
        [_python(), "-c", _HELD, target, "import", str(bundle), "--sandbox"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=work,
    )
    assert process.stderr is not None
    for line in process.stderr:
        if line.startswith("HELD-READY"):
            break
    process.send_signal(signal.SIGINT)
    _, rest = process.communicate(timeout=120)
    assert process.returncode == 130, rest[-2000:]
    assert "report written" not in rest
    assert "interrupted before the import began" in rest
    assert list(work.iterdir()) == []


# -- 2. --thing-name-prefix ---------------------------------------------------------------------


@pytest.fixture
def fresh(sandbox: Sandbox) -> Sandbox:
    sandbox.reset()
    sandbox.create_resources(policies=["DevicePolicy"], thing_groups=[], thing_type=None)
    return sandbox


def _endpoint(box: Sandbox) -> list[str]:
    assert box.endpoint_url
    return ["--endpoint-url", box.endpoint_url, "--region", "us-east-1"]


def test_import_puts_the_prefix_on_every_thing_and_verify_finds_them(fresh: Sandbox, bundle: Path) -> None:
    common = [str(bundle), "--policy", "DevicePolicy", *_endpoint(fresh), "--no-ledger"]
    result = runner.invoke(app, ["import", *common, "--thing-name-prefix", "lab:7_"])
    assert result.exit_code == 0, result.output
    names = sorted(thing.name for thing in fresh.things(limit=10))
    assert names == ["lab:7_unit-000000", "lab:7_unit-000001", "lab:7_unit-000002"]
    found = runner.invoke(app, ["verify", *common, "--thing-name-prefix", "lab:7_"])
    assert found.exit_code == 0, found.output
    # without the prefix, verify looks for other things, and finds them missing
    unprefixed = runner.invoke(app, ["verify", *common])
    assert unprefixed.exit_code == 1, unprefixed.output


def test_inspect_shows_the_prefixed_name_import_would_use(bundle: Path) -> None:
    result = runner.invoke(app, ["inspect", str(bundle), "--json", "--thing-name-prefix", "lab-"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [row["thing_name"] for row in rows] == ["lab-unit-000000", "lab-unit-000001", "lab-unit-000002"]


@pytest.mark.parametrize("bad", ["lab prefix", "lab/", "", "x" * 111])
@pytest.mark.parametrize("command", ["import", "inspect", "verify", "enqueue"])
def test_a_bad_prefix_is_one_error_line_naming_the_flag(
    command: str, bad: str, fresh: Sandbox, bundle: Path
) -> None:
    args = [command, str(bundle), "--thing-name-prefix", bad]
    if command in ("import", "verify"):
        args += [*_endpoint(fresh), "--no-ledger", "--policy", "DevicePolicy"]
    if command == "enqueue":
        args += [*_endpoint(fresh), "--queue-url", "https://sqs.us-east-1.amazonaws.com/123456789012/q"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = _error_lines(result.output)
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: --thing-name-prefix must be 1 to 110 characters")
    assert repr(bad)[:40] in lines[0]
    assert fresh.counts()["things"] == 0


def test_a_prefix_at_the_limit_is_taken(bundle: Path) -> None:
    prefix = "p" * 110
    result = runner.invoke(app, ["inspect", str(bundle), "--json", "--thing-name-prefix", prefix])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert all(row["thing_name"].startswith(prefix) and len(row["thing_name"]) <= 128 for row in rows)


# -- 3. a ledger in a folder that takes no new files ------------------------------------------

needs_proc = pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")


@needs_proc
def test_ledger_init_in_proc_says_the_file_cannot_be_created_there() -> None:
    result = runner.invoke(app, ["ledger", "init", "/proc/thingpress-x.db"])
    assert result.exit_code == 2, result.output
    (line,) = _error_lines(result.output)
    assert "no file can be created in /proc" in line
    assert "/proc does not exist" not in line


@needs_proc
def test_import_with_a_ledger_in_proc_says_the_file_cannot_be_created_there(
    fresh: Sandbox, bundle: Path
) -> None:
    args = ["import", str(bundle), "--policy", "DevicePolicy", *_endpoint(fresh)]
    result = runner.invoke(app, [*args, "--ledger", "/proc/thingpress-x.db"])
    assert result.exit_code == 2, result.output
    (line,) = _error_lines(result.output)
    assert line.startswith("error: --ledger /proc/thingpress-x.db cannot be written")
    assert "no file can be created in /proc" in line
    assert fresh.counts()["certificates"] == 0


def test_a_report_in_a_missing_folder_still_says_the_folder_is_missing(tmp_path: Path, bundle: Path) -> None:
    report = tmp_path / "nowhere" / "r.json"
    result = runner.invoke(app, ["import", str(bundle), "--sandbox", "--report", str(report)])
    assert result.exit_code == 2, result.output
    (line,) = _error_lines(result.output)
    assert f"the folder {report.parent} does not exist" in line
