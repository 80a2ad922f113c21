"""The ledger at the command line: import's default ledger, --ledger, --no-ledger, --recheck,
and ``ledger init|runs|show|export``; foreign and busy ledgers end in one error line."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from thingpress_core.certificates import DeviceCertificate
from thingpress_core.certificates.generate import generate_device_certificates
from thingpress_core.cli import app
from thingpress_core.cli._ledger import DEFAULT_LEDGER
from thingpress_core.ledger import SqliteLedger
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
    return list(generate_device_certificates(6, cn_prefix="cli-ledger-"))


@pytest.fixture
def bundle(tmp_path: Path, certs: list[DeviceCertificate]) -> Path:
    path = tmp_path / "reel.pem"
    path.write_text("".join(c.pem for c in certs))
    return path


def _endpoint(box: Sandbox) -> list[str]:
    assert box.endpoint_url
    return ["--endpoint-url", box.endpoint_url, "--region", "us-east-1"]


def _import(box: Sandbox, bundle: Path, *extra: str) -> tuple[int, dict[str, object], str]:
    report = bundle.with_name(f"report-{len(list(bundle.parent.glob('report-*')))}.json")
    result = runner.invoke(
        app, ["import", str(bundle), *RESOURCES, *_endpoint(box), "--report", str(report), *extra]
    )
    data = json.loads(report.read_text()) if report.exists() else {}
    return result.exit_code, data, result.output


def test_import_keeps_a_ledger_in_the_working_directory_and_a_rerun_costs_nothing(
    fresh: Sandbox, bundle: Path, certs: list[DeviceCertificate]
) -> None:
    code, first, output = _import(fresh, bundle)
    assert code == 0, output
    assert first["imported"] == 6
    assert Path(DEFAULT_LEDGER).is_file()
    assert DEFAULT_LEDGER in output
    assert first["ledger"] == DEFAULT_LEDGER
    assert first["run_id"] in output

    code, second, output = _import(fresh, bundle)
    assert code == 0, output
    assert (second["already_present"], second["imported"]) == (6, 0)
    assert second["calls"] == {}  # every device answered by the ledger: no AWS call, not even STS

    with SqliteLedger(DEFAULT_LEDGER, read_only=True) as ledger:
        runs = ledger.runs()
        assert [r.status for r in runs] == ["finished", "finished"]
        assert runs[0].input_name == str(bundle)
        assert runs[0].input_digest == "sha256:" + hashlib.sha256(bundle.read_bytes()).hexdigest()
        assert sorted(r.certificate_id for r in ledger.devices()) == sorted(c.certificate_id for c in certs)


def test_recheck_asks_aws_again_and_repairs(
    fresh: Sandbox, bundle: Path, certs: list[DeviceCertificate]
) -> None:
    assert _import(fresh, bundle)[0] == 0
    iot = fresh.factory.iot()
    arn = iot.describe_certificate(certificateId=certs[0].certificate_id)["certificateDescription"][
        "certificateArn"
    ]
    iot.detach_policy(policyName="DevicePolicy", target=arn)  # someone changed AWS by hand

    code, trusting, _ = _import(fresh, bundle)
    assert (code, trusting["calls"]) == (0, {})  # the ledger does not know

    code, rechecked, output = _import(fresh, bundle, "--recheck")
    assert code == 0, output
    assert rechecked["calls"]["iot.RegisterCertificateWithoutCA"] == 6
    policies = iot.list_attached_policies(target=arn)["policies"]
    assert [p["policyName"] for p in policies] == ["DevicePolicy"]


def test_no_ledger_writes_no_file(fresh: Sandbox, bundle: Path) -> None:
    code, report, output = _import(fresh, bundle, "--no-ledger")
    assert code == 0, output
    assert report["ledger"] is None
    assert not Path(DEFAULT_LEDGER).exists()
    assert "ledger" in output
    assert "none" in output


def test_ledger_and_no_ledger_exclude_each_other(fresh: Sandbox, bundle: Path) -> None:
    code, _, output = _import(fresh, bundle, "--no-ledger", "--ledger", "x.db")
    assert code == 2
    assert "--ledger and --no-ledger" in output


def test_sandbox_runs_leave_no_ledger_behind(bundle: Path) -> None:
    result = runner.invoke(app, ["import", str(bundle), "--sandbox", "--sandbox-rate", "fast", *RESOURCES])
    assert result.exit_code == 0, result.output
    assert list(Path().iterdir()) == []


@pytest.mark.parametrize(
    "content",
    [
        b"device,certificate\nA,B\n",
        b"\x89PNG\r\n\x1a\n" + bytes(range(256)),
        b"SQLite format 3\x00" + bytes(84),
    ],
    ids=["csv", "png", "broken-sqlite"],
)
def test_a_foreign_file_given_as_ledger_is_refused_untouched(
    fresh: Sandbox, bundle: Path, tmp_path: Path, content: bytes
) -> None:
    foreign = tmp_path / "notes.db"
    foreign.write_bytes(content)
    before = sorted(p.name for p in tmp_path.iterdir())
    code, _, output = _import(fresh, bundle, "--ledger", str(foreign))
    assert code == 2
    lines = [line for line in output.splitlines() if line.strip()]
    assert lines[-1].startswith("error:")
    assert "notes.db" in output
    assert foreign.read_bytes() == content
    assert fresh.counts()["certificates"] == 0  # nothing sent
    for command in (["runs"], ["export"], ["show", "x"]):
        result = runner.invoke(app, ["ledger", command[0], str(foreign), *command[1:]])
        assert result.exit_code == 2, result.output
        assert result.output.startswith("error:")
    assert foreign.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("report-")) == before


def test_a_ledger_another_writer_holds_is_refused(fresh: Sandbox, bundle: Path) -> None:
    with SqliteLedger("held.db"):
        code, _, output = _import(fresh, bundle, "--ledger", "held.db")
    assert code == 2
    assert "held.db" in output
    assert "already open" in output or "in use" in output
    assert fresh.counts()["certificates"] == 0


def test_runs_show_and_export(fresh: Sandbox, bundle: Path, certs: list[DeviceCertificate]) -> None:
    code, report, _ = _import(fresh, bundle)
    assert code == 0
    run_id = str(report["run_id"])

    runs = runner.invoke(app, ["ledger", "runs", DEFAULT_LEDGER, "--json"])
    assert runs.exit_code == 0, runs.output
    (line,) = runs.output.splitlines()
    run = json.loads(line)
    assert (run["run_id"], run["status"], run["counts"]["imported"]) == (run_id, "finished", 6)

    table = runner.invoke(app, ["ledger", "runs", DEFAULT_LEDGER])
    assert table.exit_code == 0
    assert "1 run(s)" in table.output

    wanted = certs[3]
    shown = runner.invoke(app, ["ledger", "show", DEFAULT_LEDGER, wanted.certificate_id[:12], "--json"])
    assert shown.exit_code == 0, shown.output
    record = json.loads(shown.output)
    assert (record["certificate_id"], record["thing_name"]) == (wanted.certificate_id, wanted.common_name)
    assert set(record["steps"]) == {"register", "thing", "principal", "policy:DevicePolicy", "group:Fleet"}
    by_thing = runner.invoke(app, ["ledger", "show", DEFAULT_LEDGER, str(wanted.common_name)])
    assert by_thing.exit_code == 0
    assert wanted.certificate_id in by_thing.output
    missing = runner.invoke(app, ["ledger", "show", DEFAULT_LEDGER, "no-such-thing"])
    assert missing.exit_code == 1

    # to a file: click before 8.2 mixes the summary on stderr into the runner's stdout
    audit = Path("audit.csv")
    exported = runner.invoke(
        app, ["ledger", "export", DEFAULT_LEDGER, "--format", "csv", "--run", run_id, "-o", str(audit)]
    )
    assert exported.exit_code == 0, exported.output
    rows = list(csv.DictReader(io.StringIO(audit.read_text(encoding="utf-8"))))
    assert sorted(r["certificate_id"] for r in rows) == sorted(c.certificate_id for c in certs)
    assert {r["thing_name"] for r in rows} == {c.common_name for c in certs}
    assert all(r["last_run_id"] == run_id for r in rows)

    out = Path("audit.jsonl")
    to_file = runner.invoke(app, ["ledger", "export", DEFAULT_LEDGER, "-o", str(out)])
    assert to_file.exit_code == 0
    assert len(out.read_text().splitlines()) == 6

    unknown = runner.invoke(app, ["ledger", "export", DEFAULT_LEDGER, "--run", "nope"])
    assert unknown.exit_code == 2
    assert "no run 'nope'" in unknown.output


def test_reading_commands_on_a_missing_ledger_fail_and_create_nothing() -> None:
    result = runner.invoke(app, ["ledger", "runs", "absent.db"])
    assert result.exit_code == 2
    assert "absent.db does not exist" in result.output
    assert not Path("absent.db").exists()


def test_init_creates_sqlite_and_dynamodb_ledgers(fresh: Sandbox) -> None:
    made = runner.invoke(app, ["ledger", "init", "fleet.db"])
    assert made.exit_code == 0, made.output
    assert "created" in made.output
    with SqliteLedger("fleet.db", read_only=True) as ledger:
        assert ledger.runs() == []
    again = runner.invoke(app, ["ledger", "init", "fleet.db"])
    assert "already exists" in again.output

    table = runner.invoke(app, ["ledger", "init", "dynamodb://fleet-ledger", *_endpoint(fresh)])
    assert table.exit_code == 0, table.output
    assert "created" in table.output
    described = fresh.factory.dynamodb().describe_table(TableName="fleet-ledger")["Table"]
    assert described["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    runs = runner.invoke(app, ["ledger", "runs", "dynamodb://fleet-ledger", *_endpoint(fresh)])
    assert runs.exit_code == 0, runs.output
    assert "0 run(s)" in runs.output


def test_import_into_a_dynamodb_ledger(fresh: Sandbox, bundle: Path) -> None:
    assert runner.invoke(app, ["ledger", "init", "dynamodb://cli-ledger", *_endpoint(fresh)]).exit_code == 0
    code, first, output = _import(fresh, bundle, "--ledger", "dynamodb://cli-ledger")
    assert code == 0, output
    assert first["ledger"] == "dynamodb://cli-ledger"
    code, second, _ = _import(fresh, bundle, "--ledger", "dynamodb://cli-ledger")
    assert (code, second["already_present"]) == (0, 6)
    assert not any(name.startswith("iot.") for name in second["calls"])
    assert not Path(DEFAULT_LEDGER).exists()
