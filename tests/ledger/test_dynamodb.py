"""DynamoDBLedger on in-process moto: every protocol method, racing workers, refused tables,
and throttled writes that get through botocore's retries.

moto's in-process DynamoDB applies a request without a lock, so two threads could interleave
inside one UpdateItem, which real DynamoDB never does (each request is atomic per item). The
racing tests give each worker a client whose requests take one shared lock, standing for the
one server; the workers' own sequences of requests still interleave freely.
"""

from __future__ import annotations

import datetime as _dt
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from thingpress_core.errors import ConfigurationError, LedgerError, ThrottledError
from thingpress_core.ledger import SCHEMA_VERSION, DeviceRecord, RunRecord, StepMark
from thingpress_core.ledger._dynamodb import DynamoDBLedger
from thingpress_core.services import DynamoDBService

if TYPE_CHECKING:
    from thingpress_core.clients import ClientFactory
    from thingpress_core.ledger import Ledger

TABLE = "ledger"
T = "123456789012/us-east-1"
T2 = "123456789012/eu-west-1"
T0 = _dt.datetime(2026, 12, 1, 10, 0, tzinfo=_dt.timezone.utc)


def cert(n: int) -> str:
    return format(n, "064x")


def at(seconds: float) -> _dt.datetime:
    return T0 + _dt.timedelta(seconds=seconds)


def record(n: int, *, target: str = T, run_id: str = "run-1", name: str | None = None) -> DeviceRecord:
    return DeviceRecord.new(
        target=target, certificate_id=cert(n), run_id=run_id, thing_name=name or f"thing-{n}", at=at(0)
    )


def held(n: int, *, name: str, target: str = T) -> DeviceRecord:
    """A record that holds its thing (AWS confirmed the thing step)."""
    return record(n, target=target, name=name).with_step("thing", run_id="run-1", made=True, at=at(1))


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ledger(factory: ClientFactory, clock: Clock) -> DynamoDBLedger:
    return DynamoDBLedger(TABLE, factory=factory, create=True, clock=clock)


def calls(ledger: DynamoDBLedger) -> dict[str, int]:
    return dict(ledger.service.stats().calls)


def spent(ledger: DynamoDBLedger, before: dict[str, int]) -> dict[str, int]:
    after = calls(ledger)
    return {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}


# ------------------------------------------------------------------------ the table


def test_it_is_a_ledger(ledger: DynamoDBLedger) -> None:
    typed: Ledger = ledger
    assert typed.location == "dynamodb://ledger"
    assert repr(ledger) == "DynamoDBLedger('ledger')"


def test_create_table_is_on_demand_and_keyed_pk_sk(factory: ClientFactory) -> None:
    assert DynamoDBLedger.create_table(TABLE, factory=factory) is True
    assert DynamoDBLedger.create_table(TABLE, factory=factory) is False  # a ledger already
    table = factory.dynamodb().describe_table(TableName=TABLE)["Table"]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert {(k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]} == {
        ("pk", "HASH"),
        ("sk", "RANGE"),
    }
    meta = DynamoDBService(factory).get_item(TABLE, {"pk": "meta", "sk": "meta"})
    assert meta is not None
    assert meta["schema_version"] == SCHEMA_VERSION
    assert meta["format"] == "thingpress-ledger"


def test_opening_costs_one_describe_and_one_get(ledger: DynamoDBLedger, factory: ClientFactory) -> None:
    service = DynamoDBService(factory)
    DynamoDBLedger(TABLE, service=service)
    assert service.stats().calls == {"dynamodb.DescribeTable": 1, "dynamodb.GetItem": 1}


def test_a_missing_table_is_refused(factory: ClientFactory) -> None:
    with pytest.raises(
        ConfigurationError, match=r"no DynamoDB table 'nothing'.*ledger init dynamodb://nothing"
    ):
        DynamoDBLedger("nothing", factory=factory)


def test_a_table_keyed_otherwise_is_refused(factory: ClientFactory) -> None:
    factory.dynamodb().create_table(
        TableName="other",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    with pytest.raises(
        ConfigurationError, match=r"keyed by id \(S\); a ledger table is keyed by pk \(S\) and sk"
    ):
        DynamoDBLedger("other", factory=factory)
    with pytest.raises(ConfigurationError, match="keyed by id"):
        DynamoDBLedger.create_table("other", factory=factory)


def test_a_sort_key_of_another_type_is_refused(factory: ClientFactory) -> None:
    factory.dynamodb().create_table(
        TableName="numbers",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    with pytest.raises(ConfigurationError, match=r"keyed by pk \(S\) and sk \(N\)"):
        DynamoDBLedger("numbers", factory=factory)


def _pk_sk_table(factory: ClientFactory, name: str) -> None:
    factory.dynamodb().create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )


def test_an_empty_table_made_by_a_deployment_becomes_a_ledger(factory: ClientFactory) -> None:
    _pk_sk_table(factory, "deployed")
    ledger = DynamoDBLedger("deployed", factory=factory)
    ledger.save(record(1))
    assert DynamoDBLedger("deployed", factory=factory).device(T, cert(1)) is not None


def test_another_applications_pk_sk_table_is_refused(factory: ClientFactory) -> None:
    _pk_sk_table(factory, "theirs")
    DynamoDBService(factory).put_item("theirs", {"pk": "USER#1", "sk": "PROFILE"})
    with pytest.raises(ConfigurationError, match="holds items but no ledger meta item"):
        DynamoDBLedger("theirs", factory=factory)
    DynamoDBService(factory).put_item("theirs", {"pk": "meta", "sk": "meta", "format": "theirs"})
    with pytest.raises(ConfigurationError, match="not a thingpress-core ledger"):
        DynamoDBLedger("theirs", factory=factory)


def test_a_newer_schema_is_refused(ledger: DynamoDBLedger, factory: ClientFactory) -> None:
    ledger.service.update_item(
        TABLE,
        {"pk": "meta", "sk": "meta"},
        update="SET schema_version = :v",
        values={":v": SCHEMA_VERSION + 1},
    )
    with pytest.raises(ConfigurationError, match=f"schema version {SCHEMA_VERSION + 1}, written by a newer"):
        DynamoDBLedger(TABLE, factory=factory)


# ------------------------------------------------------------------------ runs


def run_record(run_id: str, *, target: str = T, started: float = 0, **fields: Any) -> RunRecord:
    return RunRecord(run_id=run_id, target=target, started_at=at(started), **fields)


def test_runs_begin_end_and_list_oldest_first(ledger: DynamoDBLedger) -> None:
    late = run_record("b-late", started=60, options={"policies": ["p"], "rate": 2.5}, input_name="reel.7z")
    early = run_record("z-early", started=0)
    other = run_record("c-other", target=T2, started=30, kind="rollback", of_run="z-early")
    for run in (late, early, other):
        ledger.begin_run(run)
    assert ledger.run("b-late") == late
    assert ledger.run("missing") is None
    assert [r.run_id for r in ledger.runs()] == ["z-early", "c-other", "b-late"]
    assert [r.run_id for r in ledger.runs(target=T)] == ["z-early", "b-late"]
    assert ledger.runs(target=T2) == [other]

    ledger.end_run("b-late", status="finished", counts={"imported": 3, "failed": 1}, ended_at=at(90))
    ended = ledger.run("b-late")
    assert ended == late.model_copy(
        update={"status": "finished", "counts": {"imported": 3, "failed": 1}, "ended_at": at(90)}
    )


def test_a_run_begun_again_is_replaced(ledger: DynamoDBLedger) -> None:
    ledger.begin_run(run_record("r", options={"a": 1}))
    ledger.end_run("r", status="interrupted", counts={"imported": 2}, ended_at=at(5))
    resumed = run_record("r", started=10, options={"a": 2})
    ledger.begin_run(resumed)
    assert ledger.run("r") == resumed


def test_ending_an_unknown_run_raises(ledger: DynamoDBLedger) -> None:
    with pytest.raises(LedgerError, match="has no run nope to end"):
        ledger.end_run("nope", status="failed", counts={}, ended_at=at(1))
    assert ledger.run("nope") is None  # the failed condition wrote nothing


# ------------------------------------------------------------------------ devices


def test_a_saved_record_reads_back_equal(ledger: DynamoDBLedger) -> None:
    rec = DeviceRecord.new(
        target=T,
        certificate_id=cert(7),
        run_id="run-1",
        thing_name="sensor-7",
        source="reel.7z",
        entry_index=0,
        vendor_id="V-7",
        at=at(0),
    )
    rec = rec.with_step(
        "register", run_id="run-1", made=True, at=at(1), certificate_arn="arn:c", certificate_status="ACTIVE"
    )
    rec = rec.with_step("thing", run_id="run-1", made=False, at=at(2), thing_type="sensor")
    rec = rec.with_step("policy:b", run_id="run-1", made=True, at=at(3))
    rec = rec.with_step("policy:a", run_id="run-1", made=True, at=at(4))
    ledger.save(rec)
    got = ledger.device(T, cert(7))
    assert got == rec
    assert got is not None
    assert list(got.steps) == ["register", "thing", "policy:b", "policy:a"]  # the order confirmed
    assert got.policies() == ("b", "a")


def test_device_reads_one_item(ledger: DynamoDBLedger) -> None:
    ledger.save(record(1))
    before = calls(ledger)
    assert ledger.device(T, cert(1)) is not None
    assert ledger.device(T, cert(2)) is None
    assert ledger.device(T2, cert(1)) is None  # another target
    assert ledger.device(T, cert(0xAB).upper()) is None
    assert ledger.device(T, cert(1).upper()) is not None  # any case
    assert spent(ledger, before) == {"dynamodb.GetItem": 5}
    assert ledger.device(T, "not-a-certificate-id") is None  # no call for what cannot be there
    assert spent(ledger, before) == {"dynamodb.GetItem": 5}


def test_saving_the_same_device_again_costs_one_update(ledger: DynamoDBLedger) -> None:
    rec = record(1).with_step("register", run_id="run-1", made=True, at=at(1))
    ledger.save(rec)  # first save: target, run index, the note naming the thing, record
    before = calls(ledger)
    rec = rec.with_step("thing", run_id="run-1", made=True, at=at(2))
    ledger.save(rec)  # the record now holds its thing: the name's claim, once
    assert spent(ledger, before) == {"dynamodb.PutItem": 1, "dynamodb.UpdateItem": 1}
    before = calls(ledger)
    ledger.save(rec.with_step("principal", run_id="run-1", made=True, at=at(3)))
    assert spent(ledger, before) == {"dynamodb.UpdateItem": 1}


def test_only_a_record_that_holds_its_thing_owns_the_name(ledger: DynamoDBLedger) -> None:
    named = record(1, name="shared").with_step("register", run_id="run-1", made=True, at=at(1))
    ledger.save(named)  # registered only (say, refused as a name collision): no owner
    assert ledger.thing_owner(T, "shared") is None
    holder = record(2, name="shared").with_step("thing", run_id="run-1", made=True, at=at(2))
    ledger.save(holder)
    assert ledger.thing_owner(T, "shared") == holder.certificate_id
    both = {named.certificate_id, holder.certificate_id}
    assert {r.certificate_id for r in ledger.find("shared")} == both
    ledger.save(holder.without_step("thing", run_id="run-2", at=at(3)), removed=("thing",))
    assert ledger.thing_owner(T, "shared") is None
    assert {r.certificate_id for r in ledger.find("shared")} == both


def test_a_step_mark_is_never_overwritten(ledger: DynamoDBLedger) -> None:
    first = record(1).with_step("register", run_id="run-1", made=True, at=at(1))
    ledger.save(first)
    again = record(1, run_id="run-2").with_step("register", run_id="run-2", made=False, at=at(9))
    ledger.save(again)
    got = ledger.device(T, cert(1))
    assert got is not None
    assert got.steps["register"] == StepMark(run_id="run-1", at=at(1), made=True)
    assert got.run_id == "run-2"  # the fields are the latest save's
    assert got.first_run_id == "run-1"
    assert got.created_at == at(0)


def test_a_save_without_a_step_keeps_it(ledger: DynamoDBLedger) -> None:
    ledger.save(record(1).with_step("register", run_id="run-1", made=True, at=at(1)))
    ledger.save(record(1).with_step("thing", run_id="run-1", made=True, at=at(2)))  # a stale copy
    got = ledger.device(T, cert(1))
    assert got is not None
    assert set(got.steps) == {"register", "thing"}


def test_removed_steps_go(ledger: DynamoDBLedger) -> None:
    rec = record(1).with_step("register", run_id="run-1", made=True, at=at(1))
    rec = rec.with_step("policy:p", run_id="run-1", made=True, at=at(2))
    ledger.save(rec)
    undone = rec.without_step("policy:p", run_id="rollback-1", at=at(3))
    ledger.save(undone, removed=["policy:p"])
    assert ledger.device(T, cert(1)) == undone
    with pytest.raises(ConfigurationError, match="both saved and removed"):
        ledger.save(rec, removed=["register"])


def test_none_keeps_known_fields_but_clears_the_last_error(ledger: DynamoDBLedger) -> None:
    rec = record(1).with_step("register", run_id="run-1", made=True, at=at(1), certificate_arn="arn:c")
    ledger.save(rec.with_error("thing", "iot.CreateThing failed: throttled", run_id="run-1", at=at(2)))
    failed = ledger.device(T, cert(1))
    assert failed is not None
    assert (failed.last_error_step, failed.last_error) == ("thing", "iot.CreateThing failed: throttled")
    ledger.save(
        rec.model_copy(update={"certificate_arn": None}).with_step("thing", run_id="run-1", made=True)
    )
    got = ledger.device(T, cert(1))
    assert got is not None
    assert got.certificate_arn == "arn:c"
    assert (got.last_error, got.last_error_step) == (None, None)


def test_many_steps_are_saved_in_several_updates(ledger: DynamoDBLedger) -> None:
    rec = record(1)
    for i in range(95):
        rec = rec.with_step(f"group:g{i:03}", run_id="run-1", made=True, at=at(i))
    before = calls(ledger)
    ledger.save(rec)
    assert spent(ledger, before)["dynamodb.UpdateItem"] == 3  # 40 + 40 + 15
    assert ledger.device(T, cert(1)) == rec


def test_devices_in_certificate_order_across_shards_and_targets(ledger: DynamoDBLedger) -> None:
    numbers = [0xF0 << 248, 5, 0xA1 << 248, 0x1F << 248, 3]
    for n in numbers:
        ledger.save(record(n))
    ledger.save(record(0xA1 << 248, target=T2))
    assert [r.certificate_id for r in ledger.devices(target=T)] == [cert(n) for n in sorted(numbers)]
    everything = [(r.certificate_id, r.target) for r in ledger.devices()]
    assert everything == sorted([(cert(n), T) for n in numbers] + [(cert(0xA1 << 248), T2)])
    assert list(ledger.devices(target="000000000000/nowhere")) == []


def test_devices_of_a_run(ledger: DynamoDBLedger) -> None:
    one = record(1).with_step("register", run_id="run-1", made=True, at=at(1))
    two = record(2).with_step("register", run_id="run-1", made=True, at=at(1))
    ledger.save(one)
    ledger.save(two)
    ledger.save(record(3, run_id="run-2").with_step("register", run_id="run-2", made=True, at=at(1)))
    ledger.save(one.with_step("thing", run_id="run-2", made=True, at=at(5)))
    ledger.save(record(4, target=T2).with_step("register", run_id="run-1", made=True, at=at(1)))
    ledger.save(record(5, run_id="run-1"))  # no step: not touched by run-1
    assert [(r.certificate_id, r.target) for r in ledger.devices(run_id="run-1")] == [
        (cert(1), T),
        (cert(2), T),
        (cert(4), T2),
    ]
    assert [r.certificate_id for r in ledger.devices(run_id="run-2")] == [cert(1), cert(3)]
    assert [r.certificate_id for r in ledger.devices(run_id="run-1", target=T2)] == [cert(4)]
    ledger.save(two.without_step("register", run_id="rollback"), removed=["register"])
    assert [r.certificate_id for r in ledger.devices(run_id="run-1", target=T)] == [cert(1)]
    assert list(ledger.devices(run_id="never")) == []


def test_devices_of_a_run_past_one_batch(ledger: DynamoDBLedger) -> None:
    for n in range(130):
        ledger.save(record(n).with_step("register", run_id="run-1", made=True, at=at(1)))
    before = calls(ledger)
    found = [r.certificate_id for r in ledger.devices(run_id="run-1")]
    assert found == [cert(n) for n in range(130)]
    assert spent(ledger, before) == {"dynamodb.Query": 1, "dynamodb.BatchGetItem": 2}


# ------------------------------------------------------------------------ things, find


def test_the_first_certificate_owns_a_thing_name(ledger: DynamoDBLedger) -> None:
    assert ledger.thing_owner(T, "shared") is None
    ledger.save(held(2, name="shared"))
    ledger.save(held(1, name="shared"))  # a lower id, but later: the first stays owner
    assert ledger.thing_owner(T, "shared") == cert(2)
    assert ledger.thing_owner(T2, "shared") is None
    assert ledger.thing_owner(T, "bad name!") is None
    assert [r.certificate_id for r in ledger.find("shared")] == [cert(1), cert(2)]


def test_a_renamed_device_gives_its_old_name_back(ledger: DynamoDBLedger) -> None:
    ledger.save(held(1, name="old"))
    ledger.save(held(1, name="new"))
    assert ledger.thing_owner(T, "old") is None
    assert ledger.thing_owner(T, "new") == cert(1)
    assert ledger.find("old") == []


def test_find_by_prefix_and_by_name(ledger: DynamoDBLedger) -> None:
    a = (0xABC1 << 240) | 1
    b = (0xABC2 << 240) | 2
    ledger.save(record(a, name="thing-a"))
    ledger.save(record(a, target=T2, name="thing-a"))
    ledger.save(record(b, name="thing-b"))
    assert [(r.certificate_id, r.target) for r in ledger.find("abc1")] == [(cert(a), T2), (cert(a), T)]
    assert [r.certificate_id for r in ledger.find("ABC2")] == [cert(b)]  # any case
    assert [r.certificate_id for r in ledger.find(cert(b))] == [cert(b)]
    assert ledger.find("abc") == []  # two certificates share it
    assert [r.certificate_id for r in ledger.find(" thing-b ")] == [cert(b)]
    assert ledger.find("thing-") == []  # a name is found whole, not by its prefix
    assert ledger.find("") == []
    assert ledger.find("nothing") == []


# ------------------------------------------------------------------------ leases


def test_a_lease_is_exclusive_until_released_or_expired(ledger: DynamoDBLedger, clock: Clock) -> None:
    assert ledger.claim(T, cert(1), owner="w1", seconds=30)
    assert not ledger.claim(T, cert(1), owner="w2", seconds=30)
    assert ledger.claim(T, cert(2), owner="w2", seconds=30)  # another device
    assert ledger.claim(T2, cert(1), owner="w2", seconds=30)  # another target
    assert ledger.claim(T, cert(1), owner="w1", seconds=30)  # renewed by its owner
    ledger.release(T, cert(1), owner="w2")  # not w2's to give back
    assert not ledger.claim(T, cert(1), owner="w2", seconds=30)
    ledger.release(T, cert(1), owner="w1")
    assert ledger.claim(T, cert(1), owner="w2", seconds=30)
    clock.now += 29.9
    assert not ledger.claim(T, cert(1), owner="w1", seconds=30)
    clock.now += 0.1
    assert ledger.claim(T, cert(1), owner="w1", seconds=30)  # w2's lease expired
    with pytest.raises(ConfigurationError, match="positive number of seconds"):
        ledger.claim(T, cert(1), owner="w1", seconds=0)


def test_close_and_context_manager(ledger: DynamoDBLedger) -> None:
    with ledger as same:
        same.save(record(1))
    ledger.close()
    assert ledger.device(T, cert(1)) is not None  # the table stays; nothing was held


# ------------------------------------------------------------------------ racing workers


class SerialClient:
    """A boto3 client whose requests are carried out one at a time (see the module docstring);
    ``log`` holds (method, parameters) in the order they were carried out."""

    def __init__(self, client: Any, lock: threading.Lock, log: list[tuple[str, dict[str, Any]]]) -> None:
        self._client = client
        self._lock = lock
        self._log = log

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if name == "meta" or not callable(attribute):
            return attribute

        def call(**params: Any) -> Any:
            with self._lock:
                self._log.append((name, params))
                return attribute(**params)

        return call


@pytest.fixture
def workers(aws: None) -> tuple[DynamoDBLedger, DynamoDBLedger, list[tuple[str, dict[str, Any]]]]:
    """Two ledgers on one table, each with its own factory and client, as on two machines."""
    from thingpress_core.clients import ClientFactory
    from thingpress_core.settings import ThingpressSettings

    lock = threading.Lock()
    log: list[tuple[str, dict[str, Any]]] = []
    settings = ThingpressSettings(region="us-east-1", account_id="123456789012")
    ledgers = []
    for _ in range(2):
        client = SerialClient(ClientFactory(settings).dynamodb(), lock, log)
        ledgers.append(
            DynamoDBLedger(TABLE, factory=ClientFactory(settings, clients={"dynamodb": client}), create=True)
        )
    return ledgers[0], ledgers[1], log


def race(*jobs: Callable[[], object]) -> list[object]:
    """Run ``jobs`` on threads released together; re-raise what any raised."""
    barrier = threading.Barrier(len(jobs))
    results: list[object] = [None] * len(jobs)
    errors: list[BaseException] = []

    def run(i: int, job: Callable[[], object]) -> None:
        try:
            barrier.wait()
            results[i] = job()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, job)) for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


def test_two_workers_saving_one_device_lose_nothing(workers: Any) -> None:
    a, b, log = workers
    for n in range(12):
        a.save(record(n, run_id="run-a"))
        seen_a, seen_b = a.device(T, cert(n)), b.device(T, cert(n))  # both start from one copy
        mine = seen_a.with_step("register", run_id="run-a", made=True, at=at(1))
        mine = mine.with_step("policy:a", run_id="run-a", made=True, at=at(1))
        theirs = seen_b.with_step("register", run_id="run-b", made=False, at=at(2))
        theirs = theirs.with_step("group:b", run_id="run-b", made=True, at=at(2))
        del log[:]
        race(lambda m=mine: a.save(m), lambda t=theirs: b.save(t))
        got = a.device(T, cert(n))
        assert set(got.steps) == {"register", "policy:a", "group:b"}
        updates = [p for method, p in log if method == "update_item"]
        first_is_a = "step:policy:a" in updates[0]["ExpressionAttributeNames"].values()
        winner = mine if first_is_a else theirs
        assert got.steps["register"] == winner.steps["register"]  # the first run's mark, whole
        assert got.steps["policy:a"] == mine.steps["policy:a"]
        assert got.steps["group:b"] == theirs.steps["group:b"]
        assert {r.certificate_id for r in a.devices(run_id="run-b")} >= {cert(n)}


def test_two_workers_racing_for_one_lease(workers: Any) -> None:
    a, b, _ = workers
    for n in range(12):
        device = cert(n)
        won = race(
            lambda c=device: a.claim(T, c, owner="a", seconds=60),
            lambda c=device: b.claim(T, c, owner="b", seconds=60),
        )
        assert sorted(won) == [False, True]
        holder, other = (a, b) if won[0] else (b, a)
        holder_name, other_name = ("a", "b") if won[0] else ("b", "a")
        assert not other.claim(T, cert(n), owner=other_name, seconds=60)
        holder.release(T, cert(n), owner=holder_name)
        assert other.claim(T, cert(n), owner=other_name, seconds=60)


def test_two_workers_claiming_one_thing_name(workers: Any) -> None:
    a, b, _ = workers
    for n in range(12):
        name = f"contested-{n}"
        mine, theirs = held(2 * n, name=name), held(2 * n + 1, name=name)
        race(lambda m=mine: a.save(m), lambda t=theirs: b.save(t))
        owner = a.thing_owner(T, name)
        assert owner in {cert(2 * n), cert(2 * n + 1)}
        assert b.thing_owner(T, name) == owner
        assert {r.certificate_id for r in a.find(name)} == {cert(2 * n), cert(2 * n + 1)}


# ------------------------------------------------------------------------ throttling


@pytest.fixture
def fast_factory(aws: None) -> ClientFactory:
    from thingpress_core.clients import ClientFactory
    from thingpress_core.settings import ThingpressSettings

    return ClientFactory(
        ThingpressSettings(region="us-east-1", account_id="123456789012", total_max_attempts=3)
    )


def test_throttled_writes_get_through_botocore_retries(fast_factory: ClientFactory) -> None:
    from thingpress_core.testing import FaultInjector

    ledger = DynamoDBLedger(TABLE, factory=fast_factory, create=True)
    rec = record(1).with_step("register", run_id="run-1", made=True, at=at(1))
    with FaultInjector(fast_factory, seed=1, fast_retries=True) as faults:
        faults.throttle("dynamodb.UpdateItem", times=2, code="ProvisionedThroughputExceededException")
        faults.throttle("dynamodb.PutItem", times=1)
        faults.throttle("dynamodb.GetItem", times=2, code="ThrottlingException")
        ledger.save(rec)
        assert ledger.device(T, cert(1)) == rec
    assert faults.count("dynamodb.UpdateItem") == 2
    stats = ledger.service.stats()
    assert stats.retries["dynamodb.UpdateItem"] == 2
    assert stats.retries["dynamodb.PutItem"] == 1
    assert stats.retries["dynamodb.GetItem"] == 2
    assert stats.failures == {}


def test_throttling_past_the_retries_raises_and_counts(fast_factory: ClientFactory) -> None:
    from thingpress_core.testing import FaultInjector

    ledger = DynamoDBLedger(TABLE, factory=fast_factory, create=True)
    with FaultInjector(fast_factory, seed=1, fast_retries=True) as faults:
        faults.throttle("dynamodb.UpdateItem", times=3)
        with pytest.raises(ThrottledError) as caught:
            ledger.save(record(1).with_step("register", run_id="run-1", made=True, at=at(1)))
    assert caught.value.operation == "UpdateItem"
    assert ledger.service.stats().failures == {"dynamodb.UpdateItem": 1}
    assert ledger.service.registry.get("dynamodb.UpdateItem").snapshot().failures == 1
    assert ledger.device(T, cert(1)) is None  # no half record; the next save writes it whole
