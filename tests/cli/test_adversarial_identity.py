"""One device, one thing, attacked through the command line against a plain moto server.

Plain moto replaces a thing when CreateThing names an existing one with another configuration,
where AWS answers 409: the importer must keep two certificates of one run off one thing without
that answer. Each case checks AWS's state directly (every thing's principals, every
certificate's things) and that the report's counts add up.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from typer.testing import CliRunner

from thingpress_core.certificates import DeviceCertificate
from thingpress_core.certificates.generate import generate_ca, generate_device_certificates, issue_certificate
from thingpress_core.cli import app

runner = CliRunner()
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
    server.start()
    url = f"http://127.0.0.1:{server._port}"  # moto has no public accessor for it
    requests.post(f"{url}/moto-api/reset", timeout=10)  # moto's state is per process, not per server
    try:
        yield url
    finally:
        server.stop()


def _iot(endpoint: str) -> Any:
    return boto3.client(
        "iot",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def _import(endpoint: str, bundle: Path, report: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    where = ["--endpoint-url", endpoint, "--region", "us-east-1", "--no-ledger", "--report", str(report)]
    result = runner.invoke(app, ["import", str(bundle), *where, *extra], env=CREDENTIALS)
    data: dict[str, Any] = json.loads(report.read_text())
    return result.exit_code, data


def _state(endpoint: str) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Every thing's principals and every certificate's things, as AWS holds them."""
    iot = _iot(endpoint)
    things = [t["thingName"] for page in iot.get_paginator("list_things").paginate() for t in page["things"]]
    principals = {t: iot.list_thing_principals(thingName=t)["principals"] for t in things}
    certificates = [
        c["certificateArn"]
        for page in iot.get_paginator("list_certificates").paginate()
        for c in page["certificates"]
    ]
    on = {arn: iot.list_principal_things(principal=arn)["things"] for arn in certificates}
    return principals, on


def _one_to_one(endpoint: str) -> dict[str, list[str]]:
    principals, on = _state(endpoint)
    assert {t: p for t, p in principals.items() if len(p) > 1} == {}, "a thing holds two certificates"
    assert {c: t for c, t in on.items() if len(t) > 1} == {}, "a certificate is on two things"
    return principals


def _adds_up(data: dict[str, Any]) -> None:
    assert data["imported"] + data["already_present"] + data["failed"] + data["skipped"] == data["total"]


def _bundle(path: Path, certificates: list[DeviceCertificate]) -> Path:
    path.write_text("".join(c.pem for c in certificates))
    return path


@pytest.mark.parametrize("concurrency", ["1", "8"])
def test_three_certificates_with_one_cn_in_one_bundle_keep_one_thing(
    endpoint: str, tmp_path: Path, concurrency: str
) -> None:
    ca = generate_ca("adversarial twins")
    twins = [issue_certificate("same-name", issuer=ca)[0] for _ in range(3)]
    bundle = _bundle(tmp_path / "twins.pem", twins)
    code, data = _import(endpoint, bundle, tmp_path / "r.json", "--concurrency", concurrency)
    assert code == 1
    _adds_up(data)
    assert (data["total"], data["imported"], data["failed"]) == (3, 1, 2)
    assert {f["reason"] for f in data["failures"]} == {"name_collision"}
    assert {f["other_certificate_id"] for f in data["failures"]} == {twins[0].certificate_id}
    principals = _one_to_one(endpoint)
    assert list(principals) == ["same-name"]
    assert len(_iot(endpoint).list_certificates()["certificates"]) == 1  # the refused are not registered


def test_a_second_bundle_run_keeps_the_first_owner(endpoint: str, tmp_path: Path) -> None:
    ca = generate_ca("adversarial re-run")
    twins = [issue_certificate("plant-7", issuer=ca)[0] for _ in range(2)]
    bundle = _bundle(tmp_path / "twins.pem", twins)
    _import(endpoint, bundle, tmp_path / "first.json", "--concurrency", "8")
    code, data = _import(endpoint, bundle, tmp_path / "second.json", "--concurrency", "8")
    assert code == 1
    _adds_up(data)
    assert (data["already_present"], data["failed"]) == (1, 1)
    assert data["failures"][0]["reason"] == "name_collision"
    _one_to_one(endpoint)


def test_one_name_far_apart_in_a_bundle_is_refused_the_second_time(endpoint: str, tmp_path: Path) -> None:
    ca = generate_ca("adversarial far")
    first, _ = issue_certificate("far", issuer=ca)
    second, _ = issue_certificate("far", issuer=ca)
    filler = list(generate_device_certificates(20, ca=ca))
    bundle = _bundle(tmp_path / "far.pem", [first, *filler, second])
    code, data = _import(endpoint, bundle, tmp_path / "r.json", "--concurrency", "2")
    assert code == 1
    _adds_up(data)
    assert (data["imported"], data["failed"]) == (21, 1)
    failure = data["failures"][0]
    assert (failure["certificate_id"], failure["reason"]) == (second.certificate_id, "name_collision")
    assert len(_one_to_one(endpoint)) == 21


def test_cns_differing_in_mapped_characters_get_their_own_things(endpoint: str, tmp_path: Path) -> None:
    ca = generate_ca("adversarial names")
    names = ["a.b", "a_b", "a b", "Dev1", "dev1", "caf\u00e9", "cafe\u0301", "x" * 64]
    certificates = [issue_certificate(name, issuer=ca)[0] for name in names]
    bundle = _bundle(tmp_path / "names.pem", certificates)
    code, data = _import(endpoint, bundle, tmp_path / "r.json", "--concurrency", "8")
    assert code == 0
    _adds_up(data)
    assert data["imported"] == len(names)
    assert len(_one_to_one(endpoint)) == len(names)


def test_across_runs_without_a_ledger_the_earlier_thing_in_aws_wins(endpoint: str, tmp_path: Path) -> None:
    # Across runs only AWS knows the owner: its 409 on a CreateThing with another owner
    # attribute is the signal (no read on the common path). moto needs `aws_fidelity` for it.
    from thingpress_core.sandbox import aws_fidelity

    ca = generate_ca("adversarial cross-run")
    first, _ = issue_certificate("cross", issuer=ca)
    second, _ = issue_certificate("cross", issuer=ca)
    iot = _iot(endpoint)
    iot.create_thing(thingName="someone-elses")  # made outside thingpress-core, a device on it
    theirs = iot.create_keys_and_certificate(setAsActive=True)["certificateArn"]
    iot.attach_thing_principal(thingName="someone-elses", principal=theirs)
    intruder, _ = issue_certificate("someone-elses", issuer=ca)
    with aws_fidelity():
        _import(endpoint, _bundle(tmp_path / "first.pem", [first]), tmp_path / "first.json")
        code, data = _import(
            endpoint, _bundle(tmp_path / "second.pem", [second, intruder]), tmp_path / "second.json"
        )
    assert code == 1
    _adds_up(data)
    assert (data["imported"], data["failed"]) == (0, 2)
    assert {f["reason"] for f in data["failures"]} == {"name_collision"}
    principals = _one_to_one(endpoint)
    assert principals["someone-elses"] == [theirs]
