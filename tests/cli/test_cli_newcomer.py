"""More of a newcomer's mistakes, through the real command in a subprocess: each ends as one
``error:`` line and exit code 2 with no request sent, or, for a pipe closed by ``head``,
quietly with 141; never a traceback, never exit 1 (which means "some certificates failed").
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from thingpress_core.cli import app

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "devices.txt"
RESOURCES = ["--policy", "DevicePolicy", "--thing-group", "Fleet", "--thing-type", "Sensor"]
FAKE_KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def _environment(env: dict[str, str] | None, keys: bool) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "THINGPRESS_"))}
    environment.update({"AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"})
    # no instance metadata lookup: a machine without credentials answers at once
    environment["AWS_EC2_METADATA_DISABLED"] = "true"
    if keys:
        environment.update(FAKE_KEYS)
    environment.update(env or {})
    return environment


def _run(
    *args: str, env: dict[str, str] | None = None, keys: bool = True
) -> subprocess.CompletedProcess[str]:
    python = os.environ.get("THINGPRESS_TEST_SUBPROCESS_PYTHON", sys.executable)
    return subprocess.run(
        [python, "-m", "thingpress_core.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,  # a FIFO read would hang: the timeout fails the test instead
        check=False,
        env=_environment(env, keys),
    )


def _one_error_line(completed: subprocess.CompletedProcess[str]) -> str:
    assert completed.returncode == 2, completed.stdout + completed.stderr
    assert "Traceback" not in completed.stderr + completed.stdout
    lines = [line for line in completed.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, completed.stderr
    assert not any(line.startswith(("Usage:", "Try ", "Error:")) for line in lines), completed.stderr
    return errors[0]


# -- click's own usage errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["import", str(EXAMPLE), "--concurrency", "0"], "--concurrency"),
        (["import", str(EXAMPLE), "--concurrency", "-1"], "--concurrency"),
        (["enqueue", str(EXAMPLE)], "--queue-url"),
        (["inspect"], "FILE"),
        (["imprt", str(EXAMPLE)], "imprt"),
        (["import", str(EXAMPLE), "--trust-ca", "no-such-ca.pem"], "--trust-ca"),
    ],
)
def test_a_usage_error_click_catches_is_one_line(args: list[str], named: str) -> None:
    line = _one_error_line(_run(*args))
    assert named in line
    assert "--help" in line  # where to read more


# -- inputs that are not plain readable files ----------------------------------------------------


@pytest.mark.parametrize("command", ["inspect", "import", "enqueue", "verify", "activate"])
def test_a_fifo_as_file_is_refused_not_read_forever(tmp_path: Path, command: str) -> None:
    fifo = tmp_path / "devices.fifo"
    os.mkfifo(fifo)
    extra = {"enqueue": ["--queue-url", "http://127.0.0.1:9/q"], "verify": ["--no-ledger"]}
    line = _one_error_line(_run(command, str(fifo), *extra.get(command, []), "--region", "eu-west-1"))
    assert str(fifo) in line
    assert "not a regular file" in line


@pytest.mark.parametrize("command", ["inspect", "enqueue"])
def test_a_folder_or_a_missing_file_is_named_in_one_line(tmp_path: Path, command: str) -> None:
    extra = ["--queue-url", "http://127.0.0.1:9/q"] if command == "enqueue" else []
    assert "is a folder" in _one_error_line(_run(command, str(tmp_path), *extra))
    missing = tmp_path / "nothing.txt"
    assert f"{missing} does not exist" in _one_error_line(_run(command, str(missing), *extra))


@pytest.mark.skipif(not Path("/proc/self/mem").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("command", ["inspect", "enqueue"])
def test_a_file_the_system_refuses_to_read_is_named(command: str) -> None:
    # /proc/self/mem exists and is a regular file, but reading it at offset 0 fails (EIO):
    # as root, this is the unreadable file chmod 000 cannot make
    extra = ["--queue-url", "http://127.0.0.1:9/q"] if command == "enqueue" else []
    line = _one_error_line(_run(command, "/proc/self/mem", *extra))
    assert "/proc/self/mem cannot be read" in line


# -- output paths the system refuses ------------------------------------------------------------


@pytest.mark.skipif(not Path("/proc/version").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("option", ["--report", "--ledger"])
def test_an_output_path_that_cannot_be_created_is_refused_before_any_call(
    option: str, stand_in: tuple[str, list[str]]
) -> None:
    # os.access says "writable" to root for /proc; only a real attempt tells
    endpoint, requests = stand_in
    line = _one_error_line(
        _run(
            "import",
            str(EXAMPLE),
            *RESOURCES,
            "--region",
            "eu-west-1",
            "--endpoint-url",
            endpoint,
            option,
            "/proc/thingpress-output",
        )
    )
    assert f"{option} /proc/thingpress-output cannot be written" in line
    assert requests == []


def test_a_report_probe_leaves_no_file_behind(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    _one_error_line(_run("import", str(EXAMPLE), "--report", str(report), "--status", "on"))
    assert not report.exists()


# -- the account --------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["import", "enqueue", "verify"])
def test_no_credentials_is_named_before_any_call(command: str, stand_in: tuple[str, list[str]]) -> None:
    endpoint, requests = stand_in
    extra = {
        "import": RESOURCES,
        "enqueue": ["--queue-url", f"{endpoint}/123456789012/q"],
        "verify": ["--no-ledger"],
    }[command]
    completed = _run(
        command, str(EXAMPLE), *extra, "--region", "eu-west-1", "--endpoint-url", endpoint, keys=False
    )
    line = _one_error_line(completed)
    assert "no AWS credentials found" in line
    assert "AWS_ACCESS_KEY_ID" in line
    assert "--profile" in line
    assert requests == []


def test_no_region_names_the_flag_once() -> None:
    line = _one_error_line(_run("import", str(EXAMPLE), *RESOURCES, "--endpoint-url", "http://127.0.0.1:9"))
    assert line.count("--region") == 1, line


def test_aws_region_is_honoured_as_the_message_says(stand_in: tuple[str, list[str]]) -> None:
    endpoint, requests = stand_in
    completed = _run(
        "import",
        str(EXAMPLE),
        *RESOURCES,
        "--no-ledger",
        "--endpoint-url",
        endpoint,
        env={"AWS_REGION": "eu-west-1", "THINGPRESS_ACCOUNT_ID": "123456789012"},
    )
    assert "no AWS region" not in completed.stderr
    assert requests  # the region resolved, so the pre-flight reached the stand-in
    assert "Traceback" not in completed.stderr


def test_a_missing_resource_is_one_line_without_a_progress_bar() -> None:
    from thingpress_core.sandbox import Sandbox

    with Sandbox() as box:
        box.create_resources(policies=["DevicePolicy"], thing_groups=["Fleet"], thing_type=None)
        completed = _run(
            "import",
            str(EXAMPLE),
            "--policy",
            "DevicePolicy",
            "--thing-group",
            "Fleet",
            "--thing-type",
            "NoSuchType",
            "--no-ledger",
            "--region",
            "us-east-1",
            "--endpoint-url",
            box.endpoint_url,
        )
    line = _one_error_line(completed)
    assert "thing type 'NoSuchType' does not exist" in line
    assert "DevicePolicy" not in line  # only what is missing is named
    assert "importing" not in completed.stderr  # the bar of a run that never began is gone


# -- pipes --------------------------------------------------------------------------------------


def test_output_piped_into_head_ends_quietly(tmp_path: Path) -> None:
    manifest = tmp_path / "devices.txt"
    made = _run("example", str(manifest), "--count", "300")
    assert made.returncode == 0, made.stderr
    python = os.environ.get("THINGPRESS_TEST_SUBPROCESS_PYTHON", sys.executable)
    reader = subprocess.Popen(
        [python, "-m", "thingpress_core.cli", "inspect", str(manifest), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_environment(None, keys=True),
    )
    assert reader.stdout is not None
    assert reader.stdout.readline().startswith(b"{")  # what `head -1` reads ...
    reader.stdout.close()  # ... before it goes away
    _, stderr = reader.communicate(timeout=60)
    assert reader.returncode == 141, stderr  # 128 + SIGPIPE, as a shell reports it; not 1
    assert b"Traceback" not in stderr
    assert b"Exception ignored" not in stderr
    assert stderr.strip() == b""


# -- help ---------------------------------------------------------------------------------------

_COMMANDS = [
    [],
    ["inspect"],
    ["import"],
    ["enqueue"],
    ["verify"],
    ["activate"],
    ["deactivate"],
    ["rollback"],
    ["example"],
    ["ledger"],
    ["ledger", "init"],
    ["ledger", "runs"],
    ["ledger", "show"],
    ["ledger", "export"],
]


@pytest.mark.parametrize("command", _COMMANDS, ids=lambda c: " ".join(c) or "top")
def test_help_uses_conventional_metavars_and_no_python_keywords(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    text = result.output
    usage = text.splitlines()[0]
    assert "{" not in usage, usage
    assert "[[" not in usage, usage
    for typed in ("<str>", "<file>", "<path>", "<bool>", "<int>"):
        assert typed not in text, (typed, text)
    for keyword in ("verifiers=", "format=", "on_error=", "cert_type="):
        assert keyword not in text


def test_help_says_how_v_counts_and_that_verifier_takes_a_folder() -> None:
    text = CliRunner().invoke(app, ["import", "--help"]).output
    assert "-v INFO, -vv DEBUG" in text
    assert "--verifier FILE|DIR" in text
    assert "folder" in text
    assert "Usage: thingpress-core import [OPTIONS] FILE" in text
    verify = CliRunner().invoke(app, ["verify", "--help"]).output
    assert "Usage: thingpress-core verify [OPTIONS] [FILE]" in verify


# -- option values the library refuses: named as flags, without the library's keywords ----------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--thing-group", ""], "--thing-group: names must be 1 to 128 characters"),
        (["--attribute", "k=v v"], "--attribute: attribute 'k'"),
        (["--attribute", "a=1", "--attribute", "b=2", "--attribute", "c=3"], "--no-manifest-attributes"),
        (["--policy-via-group"], "--policy-via-group needs exactly one thing group"),
        ([arg for i in range(11) for arg in ("--policy", f"p{i}")], "--policy: "),
        (["--trust-ca", str(ROOT / "README.md")], "--trust-ca "),
        (["--ca-certificate", str(EXAMPLE)], "--ca-certificate "),
        (["--ledger", "s3://bucket/ledger.db"], "a ledger is a file path or dynamodb://TABLE"),
    ],
)
def test_an_option_value_the_library_refuses_is_named_as_its_flag(args: list[str], expected: str) -> None:
    where = ["--region", "eu-west-1", "--endpoint-url", "http://127.0.0.1:9"]
    line = _one_error_line(_run("import", str(EXAMPLE), *where, *args))
    assert expected in line
    for keyword in (
        "ImportOptions",
        "thing_groups=",
        "attributes=",
        "policy_target=",
        "manifest_attributes=",
    ):
        assert keyword not in line


# -- credentials that exist but cannot be loaded ------------------------------------------------


def _profile_config(tmp_path: Path, body: str) -> dict[str, str]:
    config = tmp_path / "aws-config"
    config.write_text(body)
    return {"AWS_CONFIG_FILE": str(config), "HOME": str(tmp_path)}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # a credential_process that fails
        ("[profile fleet]\nregion = eu-west-1\ncredential_process = /bin/false\n", "fix them"),
        # an SSO profile nobody signed in to: the SSO token cache is empty
        (
            "[profile fleet]\nregion = eu-west-1\nsso_session = corp\nsso_account_id = 123456789012\n"
            "sso_role_name = Admin\n[sso-session corp]\nsso_start_url = https://corp.awsapps.com/start\n"
            "sso_region = eu-west-1\n",
            "aws sso login",
        ),
    ],
    ids=["credential-process", "sso-not-signed-in"],
)
def test_credentials_that_cannot_be_loaded_are_one_line_before_any_call(
    tmp_path: Path, body: str, expected: str, stand_in: tuple[str, list[str]]
) -> None:
    endpoint, requests = stand_in
    completed = _run(
        "import",
        str(EXAMPLE),
        "--profile",
        "fleet",
        "--no-ledger",
        "--endpoint-url",
        endpoint,
        env=_profile_config(tmp_path, body),
        keys=False,
    )
    line = _one_error_line(completed)
    assert "the AWS credentials cannot be loaded" in line
    assert expected in line
    assert "--profile" in line
    assert "Traceback" not in completed.stderr  # botocore's logged refresh tracebacks too
    assert requests == []  # before: every certificate failed, one by one, with exit 1


def test_an_unknown_aws_profile_variable_is_named() -> None:
    line = _one_error_line(
        _run("import", str(EXAMPLE), "--region", "eu-west-1", env={"AWS_PROFILE": "nosuch"})
    )
    assert "'nosuch'" in line
    assert "None" not in line


def test_a_manifest_over_the_size_limit_says_what_to_do(tmp_path: Path) -> None:
    huge = tmp_path / "huge.pem"
    with huge.open("wb") as out:  # sparse: no disk used
        out.truncate(300 << 20)
    line = _one_error_line(_run("inspect", str(huge)))
    assert "256 MiB" in line
    assert "split it" in line
    assert "max_bytes" not in line  # a keyword the command has no flag for


def test_rollback_with_both_run_and_last_says_so(tmp_path: Path) -> None:
    line = _one_error_line(_run("rollback", "--run", "r1", "--last", "--ledger", str(tmp_path / "l.db")))
    assert "--run and --last exclude each other" in line


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        (["--endpoint-url", "localhost:4566"], {}, "--endpoint-url 'localhost:4566'"),
        (["--region", "EU-WEST-1"], {}, "--region 'EU-WEST-1'"),
        ([], {"AWS_REGION": "mars"}, "AWS_REGION='mars'"),
        ([], {"THINGPRESS_REGION": "mars"}, "THINGPRESS_REGION='mars'"),
    ],
)
def test_a_bad_setting_is_named_where_the_user_gave_it(
    args: list[str], env: dict[str, str], named: str
) -> None:
    line = _one_error_line(_run("import", str(EXAMPLE), *args, env=env))
    assert named in line
    assert "Value error" not in line  # pydantic's wording, not ours


def test_a_bad_entry_is_logged_once_not_once_per_pass(tmp_path: Path) -> None:
    broken = tmp_path / "broken.txt"
    broken.write_text(EXAMPLE.read_text().splitlines()[0][:200] + "\n")
    completed = _run("import", str(broken), "--dry-run", "--no-ledger", "--region", "eu-west-1")
    assert "Traceback" not in completed.stderr
    assert completed.stderr.count("manifest entry skipped") <= 1, completed.stderr
