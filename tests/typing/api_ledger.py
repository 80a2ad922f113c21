"""Type-checked, never run: the public signatures of thingpress_core.ledger and DynamoDBService."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator

from thingpress_core.clients import ClientFactory
from thingpress_core.errors import LedgerBusyError, LedgerError, ThingpressError
from thingpress_core.ledger import (
    SCHEMA_VERSION,
    DeviceRecord,
    DynamoDBLedger,
    Ledger,
    RunRecord,
    SqliteLedger,
    StepMark,
    Target,
    export_devices,
    new_run_id,
    open_ledger,
    step_key,
)
from thingpress_core.services import DynamoDBService


def backends(factory: ClientFactory) -> None:
    sqlite: Ledger = SqliteLedger("fleet.db")
    dynamo: Ledger = DynamoDBLedger("fleet-ledger", factory=factory)
    read: Ledger = open_ledger("fleet.db", read_only=True)
    remote: Ledger = open_ledger("dynamodb://fleet-ledger", factory=factory)
    created: bool = DynamoDBLedger.create_table("fleet-ledger", service=DynamoDBService(factory))
    version: int = SCHEMA_VERSION
    del sqlite, dynamo, read, remote, created, version


def records(ledger: Ledger) -> None:
    with open_ledger("fleet.db") as opened:
        location: str = opened.location
        del location
    target = Target(account_id="123456789012", region="eu-west-1")
    key: str = target.key
    run = RunRecord.start(target=key, options={"policies": ["P"]}, input_name="reel.7z")
    ledger.begin_run(run)
    ledger.end_run(
        run.run_id, status="finished", counts={"imported": 1}, ended_at=dt.datetime.now(dt.timezone.utc)
    )
    found: RunRecord | None = ledger.run(new_run_id())
    record = DeviceRecord.new(target=key, certificate_id="0" * 64, run_id=run.run_id, thing_name="t")
    record = record.with_step(step_key("policy", "P"), run_id=run.run_id, made=True)
    mark: StepMark = record.steps["policy:P"]
    ledger.save(record, removed=("group:G",))
    again: DeviceRecord | None = ledger.device(key, record.certificate_id)
    owner: str | None = ledger.thing_owner(key, "t")
    every: Iterator[DeviceRecord] = ledger.devices(target=key, run_id=run.run_id)
    matches: list[DeviceRecord] = ledger.find("t")
    granted: bool = ledger.claim(key, record.certificate_id, owner="w", seconds=60.0)
    ledger.release(key, record.certificate_id, owner="w")
    lines: int = export_devices(ledger, io.StringIO(), format="csv", run_id=run.run_id)
    del found, mark, again, owner, every, matches, granted, lines


def errors(exc: LedgerBusyError) -> None:
    base: LedgerError = exc
    root: ThingpressError = base
    pid: int | None = exc.pid
    where: str = exc.location
    del root, pid, where
