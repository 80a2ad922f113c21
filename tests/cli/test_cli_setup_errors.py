"""Issue 13: a newcomer's setup mistakes end in one ``error:`` line and exit 2, before any AWS call.

Each case runs the real command in a subprocess, with an HTTP listener standing in for AWS
that counts the requests it gets: none may arrive.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "devices.txt"
RESOURCES = ["--policy", "DevicePolicy", "--thing-group", "Fleet", "--thing-type", "Sensor"]


def _run(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    python = os.environ.get("THINGPRESS_TEST_SUBPROCESS_PYTHON", sys.executable)
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "THINGPRESS_"))}
    environment.update({"AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"})
    environment.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"})
    environment.update(env or {})
    return subprocess.run(
        [python, "-m", "thingpress_core.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=environment,
        cwd=cwd,
    )


def _one_error_line(completed: subprocess.CompletedProcess[str]) -> str:
    assert completed.returncode == 2, completed.stdout + completed.stderr
    assert "Traceback" not in completed.stderr + completed.stdout
    lines = [line for line in completed.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, completed.stderr
    return errors[0]


@pytest.mark.parametrize("command", ["import", "enqueue"])
def test_no_region_names_the_flag(command: str, stand_in: tuple[str, list[str]]) -> None:
    endpoint, requests = stand_in
    extra = ["--queue-url", f"{endpoint}/123456789012/q"] if command == "enqueue" else RESOURCES
    line = _one_error_line(_run(command, str(EXAMPLE), *extra, "--endpoint-url", endpoint))
    assert "--region" in line
    assert "AWS_REGION" in line
    assert requests == []


def test_an_unknown_profile_names_the_flag(stand_in: tuple[str, list[str]]) -> None:
    endpoint, requests = stand_in
    line = _one_error_line(
        _run(
            "import",
            str(EXAMPLE),
            *RESOURCES,
            "--region",
            "eu-west-1",
            "--profile",
            "nosuch",
            "--endpoint-url",
            endpoint,
        )
    )
    assert "nosuch" in line
    assert "--profile" in line
    assert requests == []


@pytest.mark.parametrize("sandbox", [False, True])
def test_an_invalid_environment_value_names_the_variable(
    sandbox: bool, stand_in: tuple[str, list[str]]
) -> None:
    endpoint, requests = stand_in
    where = ["--sandbox"] if sandbox else ["--region", "eu-west-1", "--endpoint-url", endpoint]
    completed = _run("import", str(EXAMPLE), *RESOURCES, *where, env={"THINGPRESS_READ_TIMEOUT": "soon"})
    line = _one_error_line(completed)
    assert "THINGPRESS_READ_TIMEOUT" in line
    assert "Exception ignored" not in completed.stderr
    assert requests == []


def test_a_report_in_a_missing_folder_is_refused_before_the_import(
    tmp_path: Path, stand_in: tuple[str, list[str]]
) -> None:
    endpoint, requests = stand_in
    target = tmp_path / "no" / "such" / "report.json"
    line = _one_error_line(
        _run(
            "import",
            str(EXAMPLE),
            *RESOURCES,
            "--region",
            "eu-west-1",
            "--endpoint-url",
            endpoint,
            "--report",
            str(target),
        )
    )
    assert "--report" in line
    assert "does not exist" in line
    assert requests == []  # the import never started


def test_a_missing_extra_says_which_to_install(tmp_path: Path, stand_in: tuple[str, list[str]]) -> None:
    endpoint, requests = stand_in
    # py7zr "not installed": a package of that name that cannot be imported, first on the path
    fake = tmp_path / "no-py7zr" / "py7zr"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named py7zr')\n")
    archive = tmp_path / "reel.7z"
    archive.write_bytes(_small_archive())
    completed = _run(
        "import",
        str(archive),
        "--policy",
        "P",
        "--region",
        "eu-west-1",
        "--endpoint-url",
        endpoint,
        env={"PYTHONPATH": str(fake.parent)},
    )
    line = _one_error_line(completed)
    assert "pip install 'thingpress-core[manifests]'" in line
    assert requests == []


def _small_archive() -> bytes:
    """A real, tiny 7z archive (made with py7zr here, where it is installed)."""
    import py7zr

    buffer = io.BytesIO()
    with py7zr.SevenZipFile(buffer, "w") as archive:
        archive.writestr(b"hello", "readme.txt")
    return buffer.getvalue()


def test_an_unknown_format_value_names_the_flag(stand_in: tuple[str, list[str]]) -> None:
    endpoint, requests = stand_in
    line = _one_error_line(
        _run("import", str(EXAMPLE), "--format", "xml", "--region", "eu-west-1", "--endpoint-url", endpoint)
    )
    assert "xml" in line
    assert "--format" in line
    assert requests == []


def test_a_signed_manifest_without_verifiers_names_the_flag(stand_in: tuple[str, list[str]]) -> None:
    _, requests = stand_in
    manifest = ROOT / "tests" / "data" / "manifests" / "microchip" / "ECC608C-TNGTLSU-B.json"
    line = _one_error_line(_run("inspect", str(manifest)))
    assert "--verifier" in line
    assert "verifiers=" not in line
    assert requests == []


def test_an_empty_file_is_the_same_answer_whatever_its_name(tmp_path: Path) -> None:
    answers = set()
    for name in ("empty.pem", "empty.json", "empty.csv", "empty.txt", "empty.7z", "empty"):
        path = tmp_path / name
        path.write_bytes(b"")
        line = _one_error_line(_run("inspect", str(path)))
        assert name in line
        answers.add(line.replace(str(path), "FILE"))
    assert len(answers) == 1, answers
