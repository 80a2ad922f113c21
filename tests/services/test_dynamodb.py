"""DynamoDBService: the value codec, tables, conditional writes, queries and batch reads."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from thingpress_core.errors import (
    InvalidRequestError,
    ResourceNotFoundError,
    ServiceUnavailableError,
    ThrottledError,
)
from thingpress_core.services import DynamoDBService, KeyAttribute
from thingpress_core.services._dynamodb import from_attribute, from_item, to_attribute, to_item

if TYPE_CHECKING:
    from botocore.stub import Stubber

    from thingpress_core.clients import ClientFactory
    from thingpress_core.testing import FaultInjector

TABLE = "items"


@pytest.fixture
def ddb(fast_factory: ClientFactory) -> DynamoDBService:
    from thingpress_core.resilience import RateLimiter

    return DynamoDBService(fast_factory, limiter=RateLimiter({}))


@pytest.fixture
def table(ddb: DynamoDBService) -> str:
    assert ddb.create_table(TABLE, partition_key=("pk", "S"), sort_key=("sk", "S"))
    return TABLE


# ------------------------------------------------------------------------ values

values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**37), max_value=10**37)
    | st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: f == 0 or 1e-130 <= abs(f) < 1e126)
    | st.text()
    | st.binary(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@given(values)
def test_values_round_trip(value: object) -> None:
    back = from_attribute(to_attribute(value))
    assert back == value
    assert type(back) is type(value)  # an int stays an int, a float a float, a bool a bool


def test_attribute_types() -> None:
    assert to_item({"s": "x", "n": 3, "f": 0.5, "b": True, "z": None, "raw": b"\x00"}) == {
        "s": {"S": "x"},
        "n": {"N": "3"},
        "f": {"N": "0.5"},
        "b": {"BOOL": True},
        "z": {"NULL": True},
        "raw": {"B": b"\x00"},
    }
    assert to_attribute({"m": [1, "a"]}) == {"M": {"m": {"L": [{"N": "1"}, {"S": "a"}]}}}
    assert from_item({"n": {"N": "1E+3"}, "i": {"N": "-12"}}) == {"n": 1000.0, "i": -12}
    assert from_attribute({"SS": ["a", "b"]}) == {"a", "b"}
    assert from_attribute({"NS": ["1", "2.5"]}) == {1, 2.5}
    assert from_attribute({"BS": [b"x"]}) == {b"x"}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (math.nan, "outside what DynamoDB can store"),
        (math.inf, "outside what DynamoDB can store"),
        (1e200, "outside what DynamoDB can store"),
        (10**40, "more than 38 digits"),
        ({1: "x"}, "map key must be a str"),
        ({"a"}, "a set cannot be stored"),
        (object(), "object cannot be stored"),
    ],
)
def test_values_dynamodb_cannot_hold_are_refused(value: object, message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        to_attribute(value)


def test_a_malformed_attribute_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match="one type"):
        from_attribute({"S": "a", "N": "1"})
    with pytest.raises(InvalidRequestError, match="unknown attribute type 'X'"):
        from_attribute({"X": 1})


# ------------------------------------------------------------------------ tables


def test_the_factory_hands_out_one_dynamodb_client(fast_factory: ClientFactory) -> None:
    client = fast_factory.dynamodb()
    assert client is fast_factory.client("dynamodb")
    assert client.meta.service_model.service_name == "dynamodb"


def test_create_and_describe_a_table(ddb: DynamoDBService) -> None:
    assert ddb.describe_table(TABLE) is None
    assert ddb.create_table(TABLE, partition_key=("pk", "S"), sort_key=("sk", "N")) is True
    assert ddb.create_table(TABLE, partition_key=("pk", "S")) is False  # exists: an answer
    found = ddb.describe_table(TABLE)
    assert found is not None
    assert found.active
    assert found.partition_key == KeyAttribute(name="pk", type="S")
    assert found.sort_key == KeyAttribute(name="sk", type="N")
    assert found.billing_mode == "PAY_PER_REQUEST"
    assert ddb.wait_until_active(TABLE).name == TABLE
    assert ddb.stats().failures == {}
    assert ddb.registry.get("dynamodb.CreateTable").snapshot().failures == 0


def test_a_bad_table_name_is_refused_before_any_call(ddb: DynamoDBService) -> None:
    with pytest.raises(InvalidRequestError, match=r"'a/b' is not a DynamoDB table name"):
        ddb.get_item("a/b", {"pk": "x"})
    assert ddb.stats().total_calls == 0


def test_waiting_for_a_missing_table_raises(ddb: DynamoDBService) -> None:
    with pytest.raises(ResourceNotFoundError, match="table nothing does not exist"):
        ddb.wait_until_active("nothing")


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _stubbed(aws: None, **kwargs: Any) -> tuple[DynamoDBService, Stubber]:
    import boto3
    from botocore.stub import Stubber

    from thingpress_core.clients import ClientFactory
    from thingpress_core.resilience import RateLimiter

    client = boto3.client("dynamodb", region_name="us-east-1")
    factory = ClientFactory(clients={"dynamodb": client})
    return DynamoDBService(factory, limiter=RateLimiter({}), **kwargs), Stubber(client)


def _table(status: str) -> dict[str, Any]:
    return {
        "Table": {
            "TableName": TABLE,
            "TableStatus": status,
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
        }
    }


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


def test_waiting_until_a_new_table_is_active(aws: None, fake_time: FakeTime) -> None:
    ddb, stubber = _stubbed(aws, sleep=fake_time.sleep, clock=lambda: fake_time.now)
    for status in ("CREATING", "CREATING", "ACTIVE"):
        stubber.add_response("describe_table", _table(status), {"TableName": TABLE})
    with stubber:
        assert ddb.wait_until_active(TABLE, poll=2.0).active
    assert fake_time.sleeps == [2.0, 2.0]


def test_waiting_gives_up_after_the_timeout(aws: None, fake_time: FakeTime) -> None:
    ddb, stubber = _stubbed(aws, sleep=fake_time.sleep, clock=lambda: fake_time.now)
    for _ in range(4):
        stubber.add_response("describe_table", _table("CREATING"), {"TableName": TABLE})
    with (
        stubber,
        pytest.raises(ServiceUnavailableError, match="is CREATING, not ACTIVE, after 5 s") as caught,
    ):
        ddb.wait_until_active(TABLE, timeout=5.0, poll=2.0)
    assert caught.value.code == "TableNotActive"
    assert fake_time.sleeps == [2.0, 2.0]


# ------------------------------------------------------------------------ items


def test_items_and_conditions(ddb: DynamoDBService, table: str) -> None:
    key = {"pk": "a", "sk": "1"}
    absent = "attribute_not_exists(pk)"
    assert ddb.put_item(table, {**key, "n": 1, "tags": ["x"]}, condition=absent) is True
    assert ddb.put_item(table, {**key, "n": 2}, condition=absent) is False  # the first stays
    assert ddb.get_item(table, key) == {**key, "n": 1, "tags": ["x"]}
    assert ddb.get_item(table, key, attributes=["n"]) == {"n": 1}
    assert ddb.get_item(table, {"pk": "a", "sk": "2"}) is None

    old = ddb.update_item(
        table, key, update="SET #n = #n + :one", names={"#n": "n"}, values={":one": 1}, returns="UPDATED_OLD"
    )
    assert old == {"n": 1}
    assert (
        ddb.update_item(table, key, update="SET n = :v", condition="n = :old", values={":v": 9, ":old": 1})
        is None
    )
    assert ddb.update_item(table, key, update="SET n = :v", values={":v": 5}) == {}
    assert ddb.delete_item(table, key, condition="n = :v", values={":v": 4}) is False
    assert ddb.delete_item(table, key, condition="n = :v", values={":v": 5}) is True
    assert ddb.delete_item(table, key) is True  # gone already: nothing to refuse
    # failed conditions are answers: no failure counted, no breaker moved
    assert ddb.stats().failures == {}
    for name in ("dynamodb.PutItem", "dynamodb.UpdateItem", "dynamodb.DeleteItem"):
        assert ddb.registry.get(name).snapshot().failures == 0


def test_a_bad_expression_raises_invalid_request(ddb: DynamoDBService, table: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        ddb.update_item(table, {"pk": "a", "sk": "1"}, update="SET pk = :v", values={":v": "b"})  # a key
    assert caught.value.code == "ValidationException"
    assert caught.value.name == "dynamodb.UpdateItem"


def test_a_missing_table_raises_not_found(ddb: DynamoDBService) -> None:
    with pytest.raises(ResourceNotFoundError):
        ddb.get_item("nothing", {"pk": "a"})


# ------------------------------------------------------------------------ reading


@pytest.fixture
def filled(ddb: DynamoDBService, table: str) -> str:
    for i in range(5):
        ddb.put_item(table, {"pk": "p", "sk": f"k{i}", "odd": i % 2 == 1})
    ddb.put_item(table, {"pk": "q", "sk": "k0"})
    return table


def test_query_pages_lazily_in_sort_key_order(ddb: DynamoDBService, filled: str) -> None:
    ddb.reset_stats()
    items = ddb.query(filled, key_condition="pk = :p", values={":p": "p"}, page_size=2)
    assert ddb.stats().total_calls == 0  # nothing until the first item is asked for
    assert [i["sk"] for i in items] == ["k0", "k1", "k2", "k3", "k4"]
    assert ddb.stats().calls == {"dynamodb.Query": 3}
    backwards = ddb.query(filled, key_condition="pk = :p", values={":p": "p"}, forward=False)
    assert [i["sk"] for i in backwards][:2] == ["k4", "k3"]
    odd = ddb.query(
        filled,
        key_condition="pk = :p AND begins_with(sk, :k)",
        filter="odd = :t",
        values={":p": "p", ":k": "k", ":t": True},
    )
    assert [i["sk"] for i in odd] == ["k1", "k3"]
    with pytest.raises(InvalidRequestError, match="page_size"):
        ddb.query(filled, key_condition="pk = :p", values={":p": "p"}, page_size=0)


def test_scan_reads_every_item(ddb: DynamoDBService, filled: str) -> None:
    assert sorted((i["pk"], i["sk"]) for i in ddb.scan(filled, page_size=4)) == [
        ("p", "k0"),
        ("p", "k1"),
        ("p", "k2"),
        ("p", "k3"),
        ("p", "k4"),
        ("q", "k0"),
    ]


def test_batch_get_asks_100_keys_at_a_time(ddb: DynamoDBService, table: str) -> None:
    for i in range(0, 150, 2):
        ddb.put_item(table, {"pk": "p", "sk": f"{i:03}"})
    ddb.reset_stats()
    found = ddb.batch_get(table, [{"pk": "p", "sk": f"{i:03}"} for i in range(150)])
    assert sorted(i["sk"] for i in found) == [f"{i:03}" for i in range(0, 150, 2)]
    assert ddb.stats().calls == {"dynamodb.BatchGetItem": 2}


def _batch(
    keys: list[str], found: list[str], unprocessed: list[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    request = {"RequestItems": {TABLE: {"Keys": [{"pk": {"S": k}} for k in keys], "ConsistentRead": True}}}
    response: dict[str, Any] = {"Responses": {TABLE: [{"pk": {"S": k}} for k in found]}}
    if unprocessed:
        response["UnprocessedKeys"] = {TABLE: {"Keys": [{"pk": {"S": k}} for k in unprocessed]}}
    return response, request


def test_batch_get_asks_again_for_unprocessed_keys(aws: None, fake_time: FakeTime) -> None:
    ddb, stubber = _stubbed(aws, sleep=fake_time.sleep, seed=1)
    stubber.add_response("batch_get_item", *_batch(["a", "b", "c"], ["a"], ["b", "c"]))
    stubber.add_response("batch_get_item", *_batch(["b", "c"], ["c"], ["b"]))
    stubber.add_response("batch_get_item", *_batch(["b"], ["b"], []))
    with stubber:
        found = ddb.batch_get(TABLE, [{"pk": k} for k in "abc"])
    assert sorted(i["pk"] for i in found) == ["a", "b", "c"]
    assert len(fake_time.sleeps) == 2
    assert 0 <= fake_time.sleeps[0] <= 0.05
    assert 0 <= fake_time.sleeps[1] <= 0.1


def test_batch_get_gives_up_on_keys_left_unprocessed(aws: None, fake_time: FakeTime) -> None:
    ddb, stubber = _stubbed(aws, sleep=fake_time.sleep, seed=1)
    for _ in range(3):
        stubber.add_response("batch_get_item", *_batch(["a"], [], ["a"]))
    with (
        stubber,
        pytest.raises(ThrottledError, match="1 keys of DynamoDB table items were still unprocessed"),
    ):
        ddb.batch_get(TABLE, [{"pk": "a"}], max_attempts=3)


# ------------------------------------------------------------------------ faults


def test_throttled_calls_get_through_botocore_retries(
    ddb: DynamoDBService, table: str, faults: FaultInjector
) -> None:
    faults.throttle("dynamodb.Query", times=2, code="ProvisionedThroughputExceededException")
    faults.server_error("dynamodb.PutItem", times=1)
    ddb.put_item(table, {"pk": "p", "sk": "1"})
    assert list(ddb.query(table, key_condition="pk = :p", values={":p": "p"})) == [{"pk": "p", "sk": "1"}]
    stats = ddb.stats()
    assert stats.retries == {"dynamodb.PutItem": 1, "dynamodb.Query": 2}
    assert stats.failures == {}
    assert faults.count("dynamodb.Query", kind="throttle") == 2


def test_throttling_past_the_retries_is_a_throttled_error(
    ddb: DynamoDBService, table: str, faults: FaultInjector
) -> None:
    faults.throttle("dynamodb.GetItem", times=3)
    with pytest.raises(ThrottledError) as caught:
        ddb.get_item(table, {"pk": "p", "sk": "1"})
    assert caught.value.code == "ThrottlingException"
    assert ddb.stats().failures == {"dynamodb.GetItem": 1}
    assert ddb.registry.get("dynamodb.GetItem").snapshot().failures == 1
