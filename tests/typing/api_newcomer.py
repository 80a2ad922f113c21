"""Type-checked only (mypy --strict, pyright strict), never run: a newcomer's first program
with the facades (issue 13), with the ``types`` extra installed. Every type a user sees is
the precise one: ``factory.iot()`` is boto3-stubs' ``IoTClient``, the reader's items follow
``on_error``, and the circuit breaker keeps sync and async signatures."""

from __future__ import annotations

import asyncio
from pathlib import Path

from mypy_boto3_iot import IoTClient
from typing_extensions import assert_type

from thingpress_core import CertificateImporter, ClientFactory, ImportOptions, IoTService, ThingpressSettings
from thingpress_core.errors import ManifestError
from thingpress_core.importer import ImportOutcome, ImportReport, OutcomeStatus
from thingpress_core.manifests import ManifestEntry, ManifestFormat, ManifestReader, read_manifest
from thingpress_core.resilience import CircuitBreaker


def first_import(manifest: Path) -> ImportReport:
    settings = ThingpressSettings(region="eu-west-1")
    assert_type(settings.region, str | None)
    assert_type(settings.total_max_attempts, int)
    factory = ClientFactory(settings)
    assert_type(factory.iot(), IoTClient)
    assert_type(ClientFactory().iot(), IoTClient)
    things = factory.iot().list_things(maxResults=10)["things"]
    names: list[str] = [thing.get("thingName", "") for thing in things]
    assert_type(names, list[str])

    options = ImportOptions(policies=("DevicePolicy",), thing_groups=("Fleet",), thing_type="Sensor")
    assert_type(options.policies, tuple[str, ...])
    assert_type(options.thing_type, str | None)
    importer = CertificateImporter(IoTService(factory), options=options)

    reader = read_manifest(manifest)
    assert_type(reader, ManifestReader[ManifestEntry])
    assert_type(reader.format, ManifestFormat)
    assert_type(read_manifest(manifest, on_error="yield"), ManifestReader[ManifestEntry | ManifestError])

    def on_outcome(outcome: ImportOutcome) -> None:
        if outcome.status is OutcomeStatus.FAILED:
            print(outcome.certificate_id, outcome.reason)

    report = importer.import_all(reader, progress=on_outcome)
    assert_type(report.failed, int)
    return report


breaker = CircuitBreaker("iot.CreateThing")


@breaker
def create(name: str, *, attempts: int = 1) -> dict[str, str]:
    return {"thingName": name, "attempts": str(attempts)}


@breaker
async def create_async(name: str) -> int:
    await asyncio.sleep(0)
    return len(name)


def sync_calls() -> None:
    assert_type(create("a", attempts=2), dict[str, str])
    assert_type(breaker.call(create, "a"), dict[str, str])


async def async_calls() -> None:
    assert_type(await create_async("x"), int)
    assert_type(await breaker.call_async(create_async, "y"), int)
