"""`DynamoDBService`: items, conditional writes, queries and tables, on the one call path.

The facade speaks plain Python values: it turns them into DynamoDB's typed attribute values
(`to_attribute`) and back (`from_attribute`), so callers never see ``{"S": ...}``. A write's
failed condition is an answer, not an error: ``put_item``/``delete_item`` return False and
``update_item`` None (``ConditionalCheckFailedException`` maps to `ResourceConflictError`,
declared expected, so it counts as no failure of the breaker).

Rate limits: DynamoDB has no per-operation request quota like IoT's. An on-demand table
takes what its partitions take (a partition key serves up to 3,000 reads and 1,000 writes
per second before DynamoDB splits it), and a table is capped by its account's table-level
throughput quota, both answered with ``ThrottlingException`` or
``ProvisionedThroughputExceededException``, which botocore retries. So no ``dynamodb.*``
operation is in ``DEFAULT_RATE_LIMITS`` and none is limited by default; an operator can set
one (``THINGPRESS_RESILIENCE__RATE_LIMITS='{"dynamodb.UpdateItem": 500}'``). Each operation
still has its own circuit breaker (``dynamodb.UpdateItem``, ...).
"""

from __future__ import annotations

import math
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from thingpress_core.errors import (
    InvalidRequestError,
    ResourceConflictError,
    ResourceNotFoundError,
    ServiceUnavailableError,
    ThrottledError,
)
from thingpress_core.services._call import ServiceFacade

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from thingpress_core.clients import ClientFactory
    from thingpress_core.resilience import CircuitBreakerRegistry, RateLimiter
    from thingpress_core.settings import ThingpressSettings

__all__ = [
    "MAX_BATCH_GET",
    "DynamoDBService",
    "KeyAttribute",
    "ReturnValues",
    "TableDescription",
    "from_attribute",
    "to_attribute",
]

MAX_BATCH_GET = 100
"""BatchGetItem takes at most 100 keys per request."""

ReturnValues = Literal["NONE", "ALL_OLD", "UPDATED_OLD", "ALL_NEW", "UPDATED_NEW"]
KeyType = Literal["S", "N", "B"]

_TABLE_NAME = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")
_CONDITION_FAILED = "ConditionalCheckFailedException"
_INT = re.compile(r"^-?\d+$")
# DynamoDB numbers: up to 38 significant digits, magnitude from 1e-130 to below 1e126
_MAX_INT_DIGITS = 38


# ------------------------------------------------------------------------ values


def to_attribute(value: object) -> dict[str, Any]:
    """A Python value as a DynamoDB attribute value.

    ``None`` → NULL, ``bool`` → BOOL, ``int``/``float`` → N, ``str`` → S, ``bytes`` → B,
    a mapping with ``str`` keys → M, a list or tuple → L. Anything else (a set too: the
    ledger stores none) and a number DynamoDB cannot hold (NaN, infinity, more than 38
    digits) raise `InvalidRequestError`.
    """
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | float):
        return {"N": _number_text(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, bytes | bytearray):
        return {"B": bytes(value)}
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():  # pyright: ignore[reportUnknownVariableType]
            if not isinstance(key, str):
                raise _bad_value(f"a map key must be a str, not {type(key).__name__}")
            out[key] = to_attribute(item)
        return {"M": out}
    if isinstance(value, list | tuple):
        return {"L": [to_attribute(item) for item in value]}  # pyright: ignore[reportUnknownVariableType]
    raise _bad_value(f"a {type(value).__name__} cannot be stored in DynamoDB")


def _number_text(value: float) -> str:
    if isinstance(value, int):
        text = str(value)
        if len(text.lstrip("-")) > _MAX_INT_DIGITS:
            raise _bad_value(f"an integer of more than {_MAX_INT_DIGITS} digits cannot be stored")
        return text
    if not math.isfinite(value) or (value != 0.0 and not 1e-130 <= abs(value) < 1e126):
        raise _bad_value(f"the number {value!r} is outside what DynamoDB can store")
    return repr(value)


def from_attribute(attribute: Mapping[str, Any]) -> Any:
    """The Python value of a DynamoDB attribute value (the inverse of `to_attribute`).

    N becomes an ``int`` when it has no fraction or exponent, else a ``float``; SS, NS and
    BS become ``set``.
    """
    if len(attribute) != 1:
        raise _bad_value(f"an attribute value has one type, got {sorted(attribute)}")
    ((kind, raw),) = attribute.items()
    if kind == "S":
        return str(raw)
    if kind == "N":
        return _number(str(raw))
    if kind == "BOOL":
        return bool(raw)
    if kind == "NULL":
        return None
    if kind == "B":
        return bytes(raw)
    if kind == "M":
        return {str(k): from_attribute(v) for k, v in raw.items()}
    if kind == "L":
        return [from_attribute(v) for v in raw]
    if kind == "SS":
        return {str(v) for v in raw}
    if kind == "NS":
        return {_number(str(v)) for v in raw}
    if kind == "BS":
        return {bytes(v) for v in raw}
    raise _bad_value(f"unknown attribute type {kind!r}")


def _number(text: str) -> int | float:
    return int(text) if _INT.match(text) else float(text)


def to_item(values: Mapping[str, object]) -> dict[str, Any]:
    """A mapping of Python values as a DynamoDB item (or key, or expression values)."""
    return {name: to_attribute(value) for name, value in values.items()}


def from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """A DynamoDB item as a dict of Python values."""
    return {str(name): from_attribute(value) for name, value in item.items()}


def _bad_value(text: str) -> InvalidRequestError:
    return InvalidRequestError(text, service="dynamodb", operation="serialize", code="InvalidValue")


# ------------------------------------------------------------------------ results


class KeyAttribute(BaseModel):
    """One key attribute of a table or index: its name and type (``S``, ``N`` or ``B``)."""

    model_config: ClassVar[ConfigDict] = ConfigDict(frozen=True, extra="forbid")

    name: str
    type: str


class TableDescription(BaseModel):
    """What `DynamoDBService.describe_table` reads: status, keys and billing of a table."""

    model_config: ClassVar[ConfigDict] = ConfigDict(frozen=True, extra="forbid")

    name: str
    status: str
    arn: str | None = None
    partition_key: KeyAttribute
    sort_key: KeyAttribute | None = None
    billing_mode: str | None = None
    item_count: int | None = None
    indexes: tuple[str, ...] = ()

    @property
    def active(self) -> bool:
        return self.status == "ACTIVE"


def _describe(table: Mapping[str, Any]) -> TableDescription:
    types = {
        str(d["AttributeName"]): str(d["AttributeType"]) for d in table.get("AttributeDefinitions") or ()
    }
    keys = {str(k["KeyType"]): str(k["AttributeName"]) for k in table.get("KeySchema") or ()}
    hash_name = keys.get("HASH", "")
    range_name = keys.get("RANGE")
    billing = table.get("BillingModeSummary") or {}
    return TableDescription(
        name=str(table.get("TableName") or ""),
        status=str(table.get("TableStatus") or "UNKNOWN"),
        arn=table.get("TableArn") or None,
        partition_key=KeyAttribute(name=hash_name, type=types.get(hash_name, "?")),
        sort_key=KeyAttribute(name=range_name, type=types.get(range_name, "?")) if range_name else None,
        billing_mode=billing.get("BillingMode") or None,
        item_count=table.get("ItemCount"),
        indexes=tuple(
            str(i["IndexName"])
            for i in (
                *(table.get("GlobalSecondaryIndexes") or ()),
                *(table.get("LocalSecondaryIndexes") or ()),
            )
        ),
    )


# ------------------------------------------------------------------------ the facade


class DynamoDBService(ServiceFacade):
    """Typed DynamoDB facade on the one call path (keys ``dynamodb.GetItem``, ...).

    Args: as `IoTService`, plus ``sleep`` and ``clock`` (monotonic seconds) for the waits:
    a table becoming active, the backoff before asking again for keys BatchGetItem left
    unprocessed. Tests pass fakes. ``seed`` seeds the backoff jitter (None: unpredictable).
    """

    _service = "dynamodb"
    _logger_name = "thingpress_core.services.dynamodb"

    def __init__(
        self,
        factory: ClientFactory | None = None,
        *,
        settings: ThingpressSettings | None = None,
        registry: CircuitBreakerRegistry | None = None,
        limiter: RateLimiter | None = None,
        sleep: Callable[[float], object] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        seed: int | None = None,
    ) -> None:
        super().__init__(factory, settings=settings, registry=registry, limiter=limiter)
        self._sleep = sleep
        self._clock = clock
        self._random = random.Random(seed)

    def _ddb(self) -> DynamoDBClient:
        client: DynamoDBClient = self._service_client()
        return client

    # -------------------------------------------------------------------------- tables

    def create_table(
        self,
        table: str,
        *,
        partition_key: tuple[str, KeyType],
        sort_key: tuple[str, KeyType] | None = None,
    ) -> bool:
        """Create an on-demand (PAY_PER_REQUEST) table: one ``CreateTable`` call.

        Returns True when this call created it, False when a table of that name exists
        already (``ResourceInUseException``; its keys are not compared here: see
        `describe_table`). Does not wait: call `wait_until_active`.
        """
        _check_table(table, "CreateTable")
        keys = [{"AttributeName": partition_key[0], "KeyType": "HASH"}]
        definitions = [{"AttributeName": partition_key[0], "AttributeType": partition_key[1]}]
        if sort_key is not None:
            keys.append({"AttributeName": sort_key[0], "KeyType": "RANGE"})
            definitions.append({"AttributeName": sort_key[0], "AttributeType": sort_key[1]})
        params = {
            "TableName": table,
            "KeySchema": keys,
            "AttributeDefinitions": definitions,
            "BillingMode": "PAY_PER_REQUEST",
        }
        try:
            self._call_path().call(
                "CreateTable", self._ddb().create_table, params, expected=(ResourceConflictError,)
            )
        except ResourceConflictError:
            self._log.info("DynamoDB table %s exists already", table, extra=_extra("CreateTable"))
            return False
        self._log.info("created DynamoDB table %s (on demand)", table, extra=_extra("CreateTable"))
        return True

    def describe_table(self, table: str) -> TableDescription | None:
        """The table's status, keys and billing (one ``DescribeTable`` call); None if missing."""
        _check_table(table, "DescribeTable")
        try:
            response = self._call_path().call(
                "DescribeTable",
                self._ddb().describe_table,
                {"TableName": table},
                expected=(ResourceNotFoundError,),
            )
        except ResourceNotFoundError:
            return None
        return _describe(response.get("Table") or {})

    def wait_until_active(self, table: str, *, timeout: float = 300.0, poll: float = 2.0) -> TableDescription:
        """Ask `describe_table` every ``poll`` seconds until the table is ACTIVE.

        Raises `ResourceNotFoundError` when the table does not exist, and
        [`ServiceUnavailableError`][thingpress_core.errors.ServiceUnavailableError] (code
        ``TableNotActive``) when it is not active after ``timeout`` seconds.
        """
        deadline = self._clock() + timeout
        while True:
            found = self.describe_table(table)
            if found is None:
                raise ResourceNotFoundError(
                    f"DynamoDB table {table} does not exist",
                    service="dynamodb",
                    operation="DescribeTable",
                    code="ResourceNotFoundException",
                )
            if found.active:
                return found
            if self._clock() + poll > deadline:
                raise ServiceUnavailableError(
                    f"DynamoDB table {table} is {found.status}, not ACTIVE, after {timeout:g} s",
                    service="dynamodb",
                    operation="DescribeTable",
                    code="TableNotActive",
                )
            self._sleep(poll)

    # -------------------------------------------------------------------------- items

    def get_item(
        self,
        table: str,
        key: Mapping[str, object],
        *,
        consistent: bool = True,
        attributes: Sequence[str] | None = None,
    ) -> dict[str, Any] | None:
        """One item by its key (``GetItem``; strongly consistent unless told), or None.

        ``attributes`` limits what is read (a projection; names need no placeholders).
        """
        _check_table(table, "GetItem")
        params: dict[str, Any] = {"TableName": table, "Key": to_item(key), "ConsistentRead": consistent}
        if attributes:
            params.update(_projection(attributes))
        response = self._call_path().call("GetItem", self._ddb().get_item, params)
        item = response.get("Item")
        return from_item(item) if item else None

    def put_item(
        self,
        table: str,
        item: Mapping[str, object],
        *,
        condition: str | None = None,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, object] | None = None,
    ) -> bool:
        """Write a whole item (``PutItem``). False when ``condition`` did not hold."""
        _check_table(table, "PutItem")
        params: dict[str, Any] = {"TableName": table, "Item": to_item(item)}
        return (
            self._conditional("PutItem", self._ddb().put_item, params, condition, names, values) is not None
        )

    def update_item(
        self,
        table: str,
        key: Mapping[str, object],
        *,
        update: str,
        condition: str | None = None,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, object] | None = None,
        returns: ReturnValues = "NONE",
    ) -> dict[str, Any] | None:
        """Change an item in place (``UpdateItem``, atomic per item; creates it if absent).

        Returns None when ``condition`` did not hold, else the attributes ``returns`` asks
        for (``{}`` for NONE; with UPDATED_OLD, the old values of the attributes the update
        set or removed that existed before).
        """
        _check_table(table, "UpdateItem")
        params: dict[str, Any] = {
            "TableName": table,
            "Key": to_item(key),
            "UpdateExpression": update,
            "ReturnValues": returns,
        }
        response = self._conditional("UpdateItem", self._ddb().update_item, params, condition, names, values)
        if response is None:
            return None
        return from_item(response.get("Attributes") or {})

    def delete_item(
        self,
        table: str,
        key: Mapping[str, object],
        *,
        condition: str | None = None,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, object] | None = None,
    ) -> bool:
        """Delete an item (``DeleteItem``). False only when ``condition`` did not hold (an
        absent item with no condition is deleted already: True)."""
        _check_table(table, "DeleteItem")
        params: dict[str, Any] = {"TableName": table, "Key": to_item(key)}
        return (
            self._conditional("DeleteItem", self._ddb().delete_item, params, condition, names, values)
            is not None
        )

    def _conditional(
        self,
        operation: str,
        method: Callable[..., Any],
        params: dict[str, Any],
        condition: str | None,
        names: Mapping[str, str] | None,
        values: Mapping[str, object] | None,
    ) -> Mapping[str, Any] | None:
        if condition:
            params["ConditionExpression"] = condition
        _expressions(params, names, values)
        if not condition:
            result: Mapping[str, Any] = self._call_path().call(operation, method, params)
            return result
        try:
            result = self._call_path().call(operation, method, params, expected=(ResourceConflictError,))
        except ResourceConflictError as exc:
            if exc.code != _CONDITION_FAILED:
                raise
            return None
        return result

    # ------------------------------------------------------------------------ reading

    def query(
        self,
        table: str,
        *,
        key_condition: str,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, object] | None = None,
        filter: str | None = None,
        index: str | None = None,
        consistent: bool = True,
        forward: bool = True,
        page_size: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """The items of one partition in sort-key order (``Query``, one call per page).

        Lazy: a page (``page_size`` items, or 1 MB) is fetched when the previous one is used
        up. ``consistent`` reads are allowed on the table, not on a global index.
        """
        _check_table(table, "Query")
        if page_size is not None and page_size < 1:
            raise InvalidRequestError(
                f"page_size must be >= 1, got {page_size}", service="dynamodb", operation="Query"
            )
        params: dict[str, Any] = {
            "TableName": table,
            "KeyConditionExpression": key_condition,
            "ScanIndexForward": forward,
            "ConsistentRead": consistent and index is None,
        }
        if filter:
            params["FilterExpression"] = filter
        if index:
            params["IndexName"] = index
        if page_size:
            params["Limit"] = page_size
        _expressions(params, names, values)
        return self._pages("Query", self._ddb().query, params)

    def scan(
        self, table: str, *, page_size: int | None = None, consistent: bool = True
    ) -> Iterator[dict[str, Any]]:
        """Every item of the table (``Scan``, one call per page). Lazy, like `query`."""
        _check_table(table, "Scan")
        params: dict[str, Any] = {"TableName": table, "ConsistentRead": consistent}
        if page_size:
            params["Limit"] = page_size
        return self._pages("Scan", self._ddb().scan, params)

    def _pages(
        self, operation: str, method: Callable[..., Any], params: dict[str, Any]
    ) -> Iterator[dict[str, Any]]:
        path = self._call_path()
        while True:
            response = path.call(operation, method, params)
            for item in response.get("Items") or ():
                yield from_item(item)
            last = response.get("LastEvaluatedKey")
            if not last:
                return
            params = {**params, "ExclusiveStartKey": last}

    def batch_get(
        self,
        table: str,
        keys: Sequence[Mapping[str, object]],
        *,
        consistent: bool = True,
        max_attempts: int = 8,
        backoff_base: float = 0.05,
        backoff_cap: float = 2.0,
    ) -> list[dict[str, Any]]:
        """The items of ``keys`` that exist, in no particular order (``BatchGetItem``, 100
        keys per call).

        Keys DynamoDB leaves unprocessed (throttled partitions) are asked for again, up to
        ``max_attempts`` calls per 100 keys, sleeping ``uniform(0, min(backoff_cap,
        backoff_base × 2**n))`` before the n-th; still unprocessed after that raises
        `ThrottledError`.
        """
        _check_table(table, "BatchGetItem")
        found: list[dict[str, Any]] = []
        path = self._call_path()
        method = self._ddb().batch_get_item
        for start in range(0, len(keys), MAX_BATCH_GET):
            pending: list[dict[str, Any]] = [to_item(k) for k in keys[start : start + MAX_BATCH_GET]]
            for attempt in range(max_attempts):
                if attempt:
                    self._sleep(
                        self._random.uniform(0.0, min(backoff_cap, backoff_base * 2 ** (attempt - 1)))
                    )
                request = {table: {"Keys": pending, "ConsistentRead": consistent}}
                response = path.call("BatchGetItem", method, {"RequestItems": request})
                found.extend(from_item(item) for item in (response.get("Responses") or {}).get(table) or ())
                left: Mapping[str, Any] = (response.get("UnprocessedKeys") or {}).get(table) or {}
                pending = list(left.get("Keys") or ())
                if not pending:
                    break
            if pending:
                raise ThrottledError(
                    f"{len(pending)} keys of DynamoDB table {table} were still unprocessed after "
                    f"{max_attempts} BatchGetItem calls",
                    service="dynamodb",
                    operation="BatchGetItem",
                    code="UnprocessedKeys",
                )
        return found


def _projection(attributes: Sequence[str]) -> dict[str, Any]:
    names = {f"#p{i}": name for i, name in enumerate(attributes)}
    return {"ProjectionExpression": ", ".join(names), "ExpressionAttributeNames": names}


def _expressions(
    params: dict[str, Any], names: Mapping[str, str] | None, values: Mapping[str, object] | None
) -> None:
    if names:
        params["ExpressionAttributeNames"] = {**params.get("ExpressionAttributeNames", {}), **names}
    if values:
        params["ExpressionAttributeValues"] = to_item(values)


def _check_table(table: object, operation: str) -> None:
    if not isinstance(table, str) or not _TABLE_NAME.match(table):
        raise InvalidRequestError(
            f"{table!r} is not a DynamoDB table name (3 to 255 of A-Z a-z 0-9 _ . -)",
            service="dynamodb",
            operation=operation,
        )


def _extra(operation: str) -> dict[str, Any]:
    return {"operation": f"dynamodb.{operation}", "certificate_id": None, "thing_name": None}
