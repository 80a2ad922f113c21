"""A re-run over a finished ledger costs no AWS call; ``recheck`` asks AWS again and repairs.

The bounded twin of ``benchmarks/bench_ledger_import.py`` figure 1: a manifest FILE read by
the real reader, the real `IoTService` on moto, a `SqliteLedger` on disk. No timing here.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

from tests.ledger._sqlite_support import cert, imported

from thingpress_core.certificates import DeviceCertificate
from thingpress_core.certificates.generate import (
    generate_ca,
    generate_device_certificates,
    generated_manifest_lines,
)
from thingpress_core.clients import ClientFactory
from thingpress_core.importer import CertificateImporter, ImportOptions, ImportReport, OutcomeStatus
from thingpress_core.ledger import SqliteLedger, Target
from thingpress_core.manifests import read_manifest
from thingpress_core.resilience import DEFAULT_RATE_LIMITS, CircuitBreakerSettings, ResilienceSettings
from thingpress_core.services import IoTService
from thingpress_core.settings import ThingpressSettings

DEVICES = 300
POLICY, GROUP, TYPE = "DevicePolicy", "Fleet", "Sensor"
# One worker: moto in-process is not thread-safe (concurrent AttachPolicy calls can fail with
# "OrderedDict mutated during iteration"); the ledger, not concurrency, is under test here.
OPTIONS = ImportOptions(policies=(POLICY,), thing_groups=(GROUP,), thing_type=TYPE, concurrency=1)
TARGET = Target(account_id="123456789012", region="us-east-1")


def _settings() -> ThingpressSettings:
    """moto needs no pacing: no rate limits, breakers off, two botocore attempts."""
    resilience = ResilienceSettings(
        rate_limits=dict.fromkeys(DEFAULT_RATE_LIMITS, math.inf),
        breaker_defaults=CircuitBreakerSettings(enabled=False),
    )
    return ThingpressSettings(
        region=TARGET.region, account_id=TARGET.account_id, total_max_attempts=2, resilience=resilience
    )


def _create_resources(factory: ClientFactory) -> None:
    iot = factory.iot()
    document = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}],
    }
    iot.create_policy(policyName=POLICY, policyDocument=json.dumps(document))
    iot.create_thing_group(thingGroupName=GROUP)
    iot.create_thing_type(thingTypeName=TYPE)


def _manifest(directory: Path, count: int) -> Path:
    path = directory / "fleet.txt"
    certs = generate_device_certificates(count, ca=generate_ca(), cn_prefix="rerun-")
    path.write_text("".join(line + "\n" for line in generated_manifest_lines(certs)))
    return path


def _sent(factory: ClientFactory) -> Counter[str]:
    """Every request the IoT client hands to the wire (moto here), counted or not by the service."""
    sent: Counter[str] = Counter()

    def count(event_name: str = "", **_: Any) -> None:
        sent[event_name.rsplit(".", 1)[-1]] += 1

    factory.iot().meta.events.register("before-send.iot", count)
    return sent


def _import(
    service: IoTService, ledger: SqliteLedger, manifest: Path, options: ImportOptions
) -> ImportReport:
    importer = CertificateImporter(service, options=options, ledger=ledger, target=TARGET)
    return importer.import_all(read_manifest(manifest), input_name=manifest.name)


def test_a_rerun_over_a_finished_ledger_costs_no_call_and_recheck_repairs(aws: None, tmp_path: Path) -> None:
    settings = _settings()
    factory = ClientFactory(settings)
    _create_resources(factory)
    service = IoTService(factory, settings=settings)
    manifest = _manifest(tmp_path, DEVICES)
    sent = _sent(factory)

    with SqliteLedger(tmp_path / "ledger.db") as ledger:
        first = _import(service, ledger, manifest, OPTIONS)
        assert (first.imported, first.failed, first.total) == (DEVICES, 0, DEVICES), [
            (f.failed_step, f.reason, f.error) for f in first.failures
        ]
        assert first.calls["iot.RegisterCertificateWithoutCA"] == DEVICES

        sent.clear()
        outcomes: list[OutcomeStatus] = []
        importer = CertificateImporter(service, options=OPTIONS, ledger=ledger, target=TARGET)
        again = importer.import_all(
            read_manifest(manifest), input_name=manifest.name, progress=lambda o: outcomes.append(o.status)
        )
        assert again.calls == {}  # not even the preflight: it waits for a device that needs AWS
        assert sent == Counter()
        assert outcomes == [OutcomeStatus.ALREADY_PRESENT] * DEVICES
        assert (again.already_present, again.total, again.failed) == (DEVICES, DEVICES, 0)
        assert again.run_id is not None
        run = ledger.run(again.run_id)
        assert run is not None
        assert (run.status, run.counts["already_present"]) == ("finished", DEVICES)

        # someone detaches the policy from one certificate by hand: the ledger cannot know
        victim = next(iter(read_manifest(manifest))).certificate
        arn = f"arn:aws:iot:{TARGET.region}:{TARGET.account_id}:cert/{victim.certificate_id}"
        iot = factory.iot()
        iot.detach_policy(policyName=POLICY, target=arn)
        assert not iot.list_attached_policies(target=arn)["policies"]

        sent.clear()
        rechecked = _import(service, ledger, manifest, OPTIONS.model_copy(update={"recheck": True}))
        assert (rechecked.failed, rechecked.total) == (0, DEVICES), rechecked.summary()
        assert rechecked.calls["iot.AttachPolicy"] == DEVICES  # every device is asked again
        assert rechecked.calls["iot.RegisterCertificateWithoutCA"] == DEVICES
        assert sum(sent.values()) >= sum(rechecked.calls.values())
        attached = iot.list_attached_policies(target=arn)["policies"]
        assert [p["policyName"] for p in attached] == [POLICY]

        # and a plain run after the recheck is free again
        sent.clear()
        last = _import(service, ledger, manifest, OPTIONS)
        assert (last.calls, sent, last.already_present) == ({}, Counter(), DEVICES)


def test_the_one_read_before_a_device_answers_what_device_and_thing_owner_answer(tmp_path: Path) -> None:
    """`SqliteLedger.lookup`, the importer's read per device, against the two reads it replaces."""
    with SqliteLedger(tmp_path / "lookup.db") as ledger:
        done = imported(1)
        ledger.save(done)
        assert done.thing_name is not None
        target = done.target
        cases = [
            (done.certificate_id, done.thing_name),  # a device and its own thing
            (cert(2), done.thing_name),  # an unknown device asking for a name another holds
            (done.certificate_id, "another-thing"),  # a known device, a name nobody holds
            (cert(3), "nobody"),  # nothing known
            ("not-a-certificate-id", done.thing_name),  # an id no record can have
        ]
        for certificate_id, name in cases:
            expected = (ledger.device(target, certificate_id), ledger.thing_owner(target, name))
            assert ledger.lookup(target, certificate_id, name) == expected
        assert ledger.lookup("999999999999/eu-west-1", done.certificate_id, done.thing_name) == (None, None)


def _same_name_pair() -> tuple[DeviceCertificate, DeviceCertificate]:
    """Two certificates with one common name (so one thing name), the lower id first."""
    ca = generate_ca()
    first = next(generate_device_certificates(1, ca=ca, cn_prefix="twin-"))
    second = next(generate_device_certificates(1, ca=ca, cn_prefix="twin-"))
    low, high = sorted((first, second), key=lambda c: c.certificate_id)
    return low, high


def test_a_rerun_after_a_refused_name_collision_still_finds_the_owner_done(aws: None, tmp_path: Path) -> None:
    settings = _settings()
    factory = ClientFactory(settings)
    _create_resources(factory)
    service = IoTService(factory, settings=settings)
    low, high = _same_name_pair()
    options = ImportOptions(preflight=False)
    with SqliteLedger(tmp_path / "ledger.db") as ledger:
        importer = CertificateImporter(service, options=options, ledger=ledger, target=TARGET)
        first = importer.import_all([high, low])  # the higher id takes the name first
        assert (first.imported, [f.reason for f in first.failures]) == (1, ["name_collision"])
        again = importer.import_all([high])
        assert again.already_present == 1, again.failures
