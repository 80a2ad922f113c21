"""The DynamoDB ledger: saves and reads per second against in-process moto.

1. ``saves/s``: N devices, each saved five times as the importer does (register, thing,
   principal, one policy, one group: one save per confirmed step), through `DynamoDBLedger`
   on moto, next to the same merges into a plain dict (the floor: no storage at all). moto
   is the bottleneck and that is expected; the figure says what one process can push.
2. ``device() reads/s``: one strongly consistent read per device, next to ``dict.get``.
3. ``save vs bare UpdateItem``: the same UpdateItem expressions sent by the boto3 client
   itself, so the ratio is the ledger's own cost (expression building, value encoding, the
   call path) over botocore + moto.
4. ``DynamoDB calls per device``: what the five saves and one read cost in requests.
"""

from __future__ import annotations

import datetime as _dt
import time
from typing import Any

from _harness import Result

BENCH = "ledger_dynamodb"
TARGET = "123456789012/us-east-1"
STEPS = ("register", "thing", "principal", "policy:device-policy", "group:fleet")


def _records(n: int, offset: int) -> list[list[Any]]:
    """For each of ``n`` devices, its record after each of the five steps."""
    from thingpress_core.ledger import DeviceRecord

    moment = _dt.datetime(2026, 12, 1, tzinfo=_dt.timezone.utc)
    out = []
    for i in range(n):
        rec = DeviceRecord.new(
            target=TARGET,
            certificate_id=format(offset + i, "064x"),
            run_id="bench",
            thing_name=f"dev-{offset + i}",
            at=moment,
        )
        chain = []
        for step in STEPS:
            rec = rec.with_step(step, run_id="bench", made=True, at=moment)
            chain.append(rec)
        out.append(chain)
    return out


class DictLedger:
    """The floor: the same merge (first mark of a step wins) into a dict, nothing stored."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], Any] = {}

    def save(self, record: Any) -> None:
        key = (record.target, record.certificate_id)
        old = self.items.get(key)
        if old is not None:
            steps = {**record.steps, **old.steps}
            record = record.model_copy(update={"steps": steps})
        self.items[key] = record

    def device(self, target: str, certificate_id: str) -> Any:
        return self.items.get((target, certificate_id))


def _rate(count: int, fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return count / (time.perf_counter() - start)


def run(quick: bool) -> list[Result]:
    from moto import mock_aws

    from thingpress_core.clients import ClientFactory
    from thingpress_core.ledger._dynamodb import DynamoDBLedger
    from thingpress_core.ledger._dynamodb_items import device_key, updates
    from thingpress_core.resilience import RateLimiter
    from thingpress_core.services import DynamoDBService
    from thingpress_core.services._dynamodb import to_item
    from thingpress_core.settings import ThingpressSettings

    n = 40 if quick else 300
    results: list[Result] = []
    with mock_aws():
        factory = ClientFactory(ThingpressSettings(region="us-east-1", account_id="123456789012"))
        service = DynamoDBService(factory, limiter=RateLimiter({}))
        ledger = DynamoDBLedger("bench-ledger", service=service, create=True)
        floor = DictLedger()
        warm = _records(3, 10**6)
        for chain in warm:
            for rec in chain:
                ledger.save(rec)
                floor.save(rec)

        # 1. saves per second
        chains = _records(n, 0)
        service.reset_stats()
        saves = n * len(STEPS)
        ledger_rate = _rate(saves, lambda: [ledger.save(r) for chain in chains for r in chain])
        stats = service.stats()
        floor_rate = _rate(saves, lambda: [floor.save(r) for chain in chains for r in chain])
        results.append(
            Result(
                benchmark=BENCH,
                name="DynamoDBLedger.save on moto",
                value=ledger_rate,
                unit="saves/s",
                baseline=floor_rate,
                baseline_name="the same merges into a dict",
                note=f"{n} devices x 5 steps; moto is the bottleneck",
            )
        )

        # 2. device() reads per second
        certs = [chain[-1].certificate_id for chain in chains]
        service.reset_stats()
        read_rate = _rate(n, lambda: [ledger.device(TARGET, c) for c in certs])
        reads = service.stats().calls.get("dynamodb.GetItem", 0)
        dict_rate = _rate(n, lambda: [floor.device(TARGET, c) for c in certs])
        results.append(
            Result(
                benchmark=BENCH,
                name="DynamoDBLedger.device on moto",
                value=read_rate,
                unit="reads/s",
                baseline=dict_rate,
                baseline_name="dict.get",
                note=f"{n} devices, one consistent GetItem each ({reads} calls)",
            )
        )

        # 3. the ledger's own cost over the bare client sending the same updates
        client = factory.dynamodb()
        bare_chains = _records(n, 2 * 10**6)
        ledger_chains = _records(n, 3 * 10**6)

        def bare() -> None:
            for chain in bare_chains:
                for rec in chain:
                    for update, names, values in updates(rec, ()):
                        client.update_item(
                            TableName="bench-ledger",
                            Key=to_item(device_key(rec.target, rec.certificate_id)),
                            UpdateExpression=update,
                            ExpressionAttributeNames=names,
                            ExpressionAttributeValues=to_item(values),
                            ReturnValues="UPDATED_OLD",
                        )

        bare_rate = _rate(saves, bare)
        again_rate = _rate(saves, lambda: [ledger.save(r) for chain in ledger_chains for r in chain])
        results.append(
            Result(
                benchmark=BENCH,
                name="DynamoDBLedger.save vs the bare UpdateItem",
                value=again_rate,
                unit="saves/s",
                baseline=bare_rate,
                baseline_name="boto3 update_item, same expressions",
                note="ratio < 1: the ledger's extra writes per new device and its own CPU",
            )
        )

        # 4. requests per device
        per_device = (sum(stats.calls.values()) + reads) / n
        results.append(
            Result(
                benchmark=BENCH,
                name="DynamoDB calls per device (5 saves + 1 read)",
                value=per_device,
                unit="calls",
                note=", ".join(f"{k.removeprefix('dynamodb.')}={v / n:g}" for k, v in stats.calls.items())
                + ", GetItem=1",
            )
        )
    return results


if __name__ == "__main__":
    for result in run(quick=False):
        print(result)
