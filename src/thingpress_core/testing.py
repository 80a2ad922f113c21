"""Fault injection for boto3 clients: throttling, 5xx, dropped connections, partial batches.

`FaultInjector` hooks a handler onto a client's ``before-send`` event (registered first, so it
runs before moto or the real HTTP send). The handler either lets the request through, or
answers it with a forged HTTP response / raises a connection error. Everything after that is
botocore's own machinery: response parsing, error classification and the retry loop. So a
throttle injected twice on a client configured for three attempts succeeds on the third, and
one injected five times surfaces as a `~thingpress_core.errors.ThrottledError` from the
facades, exactly as it would against AWS.

Use it in your own tests::

    with FaultInjector(factory, seed=7, fast_retries=True) as faults:
        faults.throttle("iot.RegisterCertificateWithoutCA", times=2)
        faults.server_error("iot.CreateThing", rate=0.1)
        ...
    assert faults.count("iot.RegisterCertificateWithoutCA") == 2

Triggers (per rule): ``times=N`` fires on the next N matching requests, ``rate=p`` fires on
each with probability ``p`` from a generator seeded by ``seed``, neither fires on every
request; ``after=K`` lets the first K matching requests through first. `FaultInjector.quota`
throttles by token bucket, e.g. at the default AWS IoT quotas (preset ``"aws-iot-defaults"``)
times a scale factor. Every request counted here is one HTTP attempt: botocore's retries are
attempts too.

This module imports botocore only when an injector is attached; it is meant for tests and is
not imported by ``import thingpress_core``.
"""

from __future__ import annotations

import dataclasses
import json
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, cast

from thingpress_core.errors import ConfigurationError
from thingpress_core.resilience.settings import DEFAULT_RATE_LIMITS

if TYPE_CHECKING:
    from types import TracebackType

    from botocore.awsrequest import AWSPreparedRequest, AWSResponse
    from botocore.client import BaseClient

    from thingpress_core.clients import ClientFactory

__all__ = [
    "QUOTA_PRESETS",
    "ConnectionErrorKind",
    "FaultInjector",
    "FaultKind",
    "Injection",
]

FaultKind = Literal[
    "throttle", "server_error", "connection_error", "error", "partial_batch_failure", "latency"
]
"""What an injection did. A quota rule records its throttles as ``throttle``."""

ConnectionErrorKind = Literal["endpoint", "closed", "read_timeout"]
"""``endpoint``: could not connect; ``closed``: the connection dropped; ``read_timeout``."""

QUOTA_PRESETS: Mapping[str, Mapping[str, float]] = MappingProxyType(
    {
        # The default AWS IoT Core control-plane quotas, requests per second per account: the
        # same table the rate limiter defaults to, so a client at its defaults meets it exactly.
        "aws-iot-defaults": DEFAULT_RATE_LIMITS,
    }
)

_BATCH_OPERATIONS = frozenset({"SendMessageBatch", "DeleteMessageBatch", "ChangeMessageVisibilityBatch"})


@dataclasses.dataclass(frozen=True)
class Injection:
    """One fault the injector caused.

    ``operation`` is the ``service.Operation`` key (``iot.CreateThing``), ``attempt`` the
    1-based number of that request among all the injector saw for the operation (botocore's
    retries included), ``detail`` a short description (``HTTP 400 ThrottlingException``,
    ``entries [0, 3] failed``, ``0.25 s``), ``rule`` the label of the rule that fired
    (``throttle iot.CreateThing``).
    """

    operation: str
    kind: FaultKind
    attempt: int
    detail: str
    rule: str


class _Trigger:
    """Decides, request by request, whether a rule fires. Called under the injector's lock."""

    def __init__(
        self,
        *,
        times: int | None,
        rate: float | None,
        after: int,
        rng: random.Random,
    ) -> None:
        if times is not None and times < 0:
            raise ConfigurationError("times must be >= 0", variable="times", value=times)
        if rate is not None and not 0.0 <= rate <= 1.0:
            raise ConfigurationError("rate must be between 0 and 1", variable="rate", value=rate)
        if after < 0:
            raise ConfigurationError("after must be >= 0", variable="after", value=after)
        self._remaining = times
        self._rate = rate
        self._skip = after
        self._rng = rng

    def fires(self) -> bool:
        if self._skip > 0:
            self._skip -= 1
            return False
        if self._remaining is not None and self._remaining <= 0:
            return False
        if self._rate is not None and self._rng.random() >= self._rate:
            return False
        if self._remaining is not None:
            self._remaining -= 1
        return True


class _TokenBucket:
    """A quota: ``rate`` tokens per second, at most ``capacity`` stored; no token = throttle."""

    def __init__(self, rate: float, capacity: float, clock: Callable[[], float]) -> None:
        self._rate = rate
        self._capacity = capacity
        self._tokens = capacity
        self._clock = clock
        self._last = clock()

    def fires(self) -> bool:
        now = self._clock()
        self._tokens = min(self._capacity, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return False
        return True


@dataclasses.dataclass
class _Rule:
    label: str
    kind: FaultKind
    service: str
    operation: str | None  # None: every operation of the service
    trigger: _Trigger | _TokenBucket
    status: int = 400
    code: str = ""
    message: str = ""
    fields: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    connection: ConnectionErrorKind = "endpoint"
    seconds: float = 0.0
    entries: tuple[int, ...] | None = None
    entry_rate: float | None = None
    sender_fault: bool = False

    def matches(self, service: str, operation: str) -> bool:
        return self.service == service and (self.operation is None or self.operation == operation)


class _RawBody:
    """The minimal urllib3-like body botocore reads from an `AWSResponse`."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._read = False

    def stream(self, **_: Any) -> Iterator[bytes]:
        if not self._read:
            self._read = True
            yield self._data

    def read(self, amt: int | None = None) -> bytes:
        if self._read:
            return b""
        self._read = True
        return self._data

    def close(self) -> None:
        self._read = True


@dataclasses.dataclass
class _Attached:
    client: Any
    event: str
    handler: Callable[..., Any]
    after_call: Callable[..., Any]
    undo_retry: Callable[[], None] | None = None


class FaultInjector:
    """Inject AWS faults into boto3 clients, through botocore's real retry logic.

    Args:
        target: a boto3 client, a `~thingpress_core.clients.ClientFactory` (its cached
            clients are used, so facades built on the same factory see the faults) or several
            clients.
        seed: seeds the generator behind ``rate=`` triggers and partial-failure choices, so a
            test is reproducible.
        sleep: what a ``latency`` fault calls (pass a fake to keep tests instant).
        clock: the time source of `quota` buckets (monotonic seconds).
        fast_retries: make botocore's retry backoff return 0 seconds on the attached clients
            (the retry decisions, attempt limits and retry quota stay botocore's own). The
            delays botocore chose are kept in `retry_delays`. Works with the ``standard`` and
            ``legacy`` retry modes; ``adaptive`` mode additionally paces requests with its own
            client-side rate limiter, which this does not touch.

    Use as a context manager, or call `detach` when done. Rules match operations as
    ``"service.Operation"`` (``"iot.CreateThing"``), ``"service.*"`` for every operation, or
    a bare ``"Operation"`` when only one service is attached.
    """

    def __init__(
        self,
        target: BaseClient | ClientFactory | Iterable[BaseClient],
        *,
        seed: int = 0,
        sleep: Callable[[float], object] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        fast_retries: bool = False,
    ) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._sleep = sleep
        self._clock = clock
        self._fast_retries = fast_retries
        self._rules: list[_Rule] = []
        self._records: list[Injection] = []
        self._attempts: dict[str, int] = {}
        self._retry_delays: list[float] = []
        self._attached: dict[str, _Attached] = {}
        self._pending = threading.local()
        self._factory: ClientFactory | None = None
        self._detached = False
        if _is_client(target):
            self._attach(target)
        elif hasattr(target, "client") and hasattr(target, "settings"):
            self._factory = cast("ClientFactory", target)
        elif isinstance(target, Iterable):
            for client in target:
                if not _is_client(client):
                    raise ConfigurationError(
                        f"FaultInjector needs boto3 clients or a ClientFactory, got {type(client).__name__}",
                        variable="target",
                        value=client,
                    )
                self._attach(client)
        else:
            raise ConfigurationError(
                f"FaultInjector needs a boto3 client or a ClientFactory, got {type(target).__name__}",
                variable="target",
                value=target,
            )

    # -- context manager -------------------------------------------------------------------

    def __enter__(self) -> FaultInjector:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.detach()

    def __repr__(self) -> str:
        return (
            f"FaultInjector(services={sorted(self._attached)}, rules={len(self._rules)}, "
            f"injections={len(self._records)})"
        )

    def detach(self) -> None:
        """Unhook from every client and restore botocore's retry delays. Idempotent."""
        with self._lock:
            attached = list(self._attached.values())
            self._attached.clear()
            self._detached = True
        for item in attached:
            events = item.client.meta.events
            events.unregister(item.event, item.handler)
            events.unregister(f"after-call.{item.event.split('.', 1)[1]}", item.after_call)
            if item.undo_retry is not None:
                item.undo_retry()

    # -- rules -----------------------------------------------------------------------------

    def throttle(
        self,
        operation: str,
        *,
        times: int | None = None,
        rate: float | None = None,
        after: int = 0,
        code: str | None = None,
        status: int | None = None,
    ) -> FaultInjector:
        """Answer with the service's throttling error.

        Defaults: ``ThrottlingException`` with HTTP 400 (IoT and SQS), ``SlowDown`` with HTTP 503
        (S3). Returns the injector, so rules chain.
        """
        service, _ = self._resolve(operation)
        default_code, default_status = ("SlowDown", 503) if service == "s3" else ("ThrottlingException", 400)
        return self._rule(
            "throttle",
            operation,
            times,
            rate,
            after,
            status=status if status is not None else default_status,
            code=code or default_code,
            message="Rate exceeded",
        )

    def server_error(
        self,
        operation: str,
        *,
        status: int = 500,
        code: str | None = None,
        times: int | None = None,
        rate: float | None = None,
        after: int = 0,
    ) -> FaultInjector:
        """Answer with an HTTP 5xx (``InternalFailureException`` for IoT, ``InternalError`` else)."""
        if not 500 <= status <= 599:
            raise ConfigurationError("status must be a 5xx code", variable="status", value=status)
        service, _ = self._resolve(operation)
        default_code = "InternalFailureException" if service == "iot" else "InternalError"
        return self._rule(
            "server_error",
            operation,
            times,
            rate,
            after,
            status=status,
            code=code or default_code,
            message="Internal failure (injected)",
        )

    def connection_error(
        self,
        operation: str,
        *,
        kind: ConnectionErrorKind = "endpoint",
        times: int | None = None,
        rate: float | None = None,
        after: int = 0,
    ) -> FaultInjector:
        """Raise a botocore connection error instead of sending the request.

        ``endpoint`` raises ``EndpointConnectionError``, ``closed`` ``ConnectionClosedError``,
        ``read_timeout`` ``ReadTimeoutError``; botocore retries all three.
        """
        return self._rule(
            "connection_error",
            operation,
            times,
            rate,
            after,
            connection=kind,
        )

    def error(
        self,
        operation: str,
        *,
        code: str,
        status: int = 400,
        message: str = "",
        fields: Mapping[str, Any] | None = None,
        times: int | None = None,
        rate: float | None = None,
        after: int = 0,
    ) -> FaultInjector:
        """Answer with any error, e.g. a 409 ``ResourceAlreadyExistsException`` on CreateThing.

        ``fields`` are extra top-level members of the error body (IoT's ``resourceId`` and
        ``resourceArn``); botocore parses modeled ones into ``error.response``.
        """
        return self._rule(
            "error",
            operation,
            times,
            rate,
            after,
            label=f"error {code} {operation}",
            status=status,
            code=code,
            message=message or f"{code} (injected)",
            fields=dict(fields or {}),
        )

    def partial_batch_failure(
        self,
        operation: str = "sqs.SendMessageBatch",
        *,
        entries: Iterable[int] | None = None,
        entry_rate: float | None = None,
        code: str = "InternalError",
        message: str = "",
        sender_fault: bool = False,
        times: int | None = None,
        rate: float | None = None,
        after: int = 0,
    ) -> FaultInjector:
        """Fail some entries of an SQS batch request inside an HTTP 200 answer.

        ``entries`` are 0-based positions in the request's ``Entries`` (default: the first),
        or ``entry_rate`` fails each entry with that probability. The other entries really
        reach the service (moto), so what the test reads back from the queue is the truth;
        the request body is rewritten, so use this against moto or a test endpoint only.
        """
        service, op = self._resolve(operation)
        if service != "sqs" or (op is not None and op not in _BATCH_OPERATIONS):
            raise ConfigurationError(
                f"partial_batch_failure applies to SQS batch operations, not {operation!r}",
                variable="operation",
                value=operation,
            )
        protocol = str(self._attached[service].client.meta.service_model.protocol)
        if protocol != "json":
            raise ConfigurationError(
                f"partial_batch_failure needs SQS's JSON protocol; this botocore speaks {protocol!r}",
                variable="operation",
                value=operation,
            )
        if entry_rate is not None and not 0.0 <= entry_rate <= 1.0:
            raise ConfigurationError(
                "entry_rate must be between 0 and 1", variable="entry_rate", value=entry_rate
            )
        positions = None if entries is None else tuple(sorted(set(entries)))
        if positions is None and entry_rate is None:
            positions = (0,)
        return self._rule(
            "partial_batch_failure",
            operation,
            times,
            rate,
            after,
            code=code,
            message=message or f"{code} (injected)",
            entries=positions,
            entry_rate=entry_rate,
            sender_fault=sender_fault,
        )

    def latency(
        self,
        operation: str,
        seconds: float,
        *,
        times: int | None = None,
        rate: float | None = None,
        after: int = 0,
    ) -> FaultInjector:
        """Call ``sleep(seconds)`` before the request goes on (other rules still apply)."""
        if seconds < 0:
            raise ConfigurationError("seconds must be >= 0", variable="seconds", value=seconds)
        return self._rule(
            "latency",
            operation,
            times,
            rate,
            after,
            seconds=seconds,
        )

    def quota(
        self,
        rates: Mapping[str, float] | str = "aws-iot-defaults",
        *,
        scale: float = 1.0,
        burst: float | None = None,
    ) -> FaultInjector:
        """Throttle each operation above a request rate, like an account quota.

        ``rates`` maps ``service.Operation`` to requests per second, or names a preset of
        `QUOTA_PRESETS` (``"aws-iot-defaults"``). ``scale`` multiplies every rate (e.g. 0.1
        to feel the quotas with a tenth of the load). Each operation gets a token bucket of
        ``burst`` tokens (default: one second's worth, at least 1) refilled by ``clock``.
        """
        if isinstance(rates, str):
            if rates not in QUOTA_PRESETS:
                raise ConfigurationError(
                    f"unknown quota preset {rates!r}; expected one of {sorted(QUOTA_PRESETS)}",
                    variable="rates",
                    value=rates,
                )
            table = QUOTA_PRESETS[rates]
        else:
            table = rates
        if scale <= 0:
            raise ConfigurationError("scale must be > 0", variable="scale", value=scale)
        for name, rate in table.items():
            service, op = self._resolve(name)
            per_second = rate * scale
            if per_second <= 0:
                raise ConfigurationError(f"rate for {name} must be > 0", variable="rates", value=rate)
            capacity = burst if burst is not None else max(1.0, per_second)
            self._add(
                _Rule(
                    label=f"quota {name} {per_second:g}/s",
                    kind="throttle",
                    service=service,
                    operation=op,
                    trigger=_TokenBucket(per_second, capacity, self._clock),
                    status=503 if service == "s3" else 400,
                    code="SlowDown" if service == "s3" else "ThrottlingException",
                    message="Rate exceeded (quota)",
                )
            )
        return self

    def clear(self) -> None:
        """Drop every rule (records stay); the injector stays attached."""
        with self._lock:
            self._rules.clear()

    # -- what happened ---------------------------------------------------------------------

    @property
    def records(self) -> list[Injection]:
        """Every injection, in order (a copy)."""
        with self._lock:
            return list(self._records)

    @property
    def counts(self) -> dict[str, int]:
        """Injections per ``service.Operation`` (latency included)."""
        with self._lock:
            out: dict[str, int] = {}
            for record in self._records:
                out[record.operation] = out.get(record.operation, 0) + 1
            return out

    @property
    def attempts(self) -> dict[str, int]:
        """HTTP requests seen per ``service.Operation`` on attached clients, injected or not."""
        with self._lock:
            return dict(self._attempts)

    @property
    def retry_delays(self) -> list[float]:
        """The backoff delays botocore chose and `fast_retries` skipped, in order."""
        with self._lock:
            return list(self._retry_delays)

    def count(self, operation: str | None = None, *, kind: FaultKind | None = None) -> int:
        """How many injections match ``operation`` (``service.Operation``) and ``kind``."""
        with self._lock:
            return sum(
                1
                for r in self._records
                if (operation is None or r.operation == operation) and (kind is None or r.kind == kind)
            )

    # -- internals -------------------------------------------------------------------------

    def _rule(
        self,
        kind: FaultKind,
        operation: str,
        times: int | None,
        rate: float | None,
        after: int,
        *,
        label: str | None = None,
        **fields: Any,
    ) -> FaultInjector:
        """Add one rule for ``operation`` (``service.Operation``) and return the injector."""
        service, op = self._resolve(operation)
        self._add(
            _Rule(
                label=label or f"{kind} {operation}",
                kind=kind,
                service=service,
                operation=op,
                trigger=self._trigger(times, rate, after),
                **fields,
            )
        )
        return self

    def _trigger(self, times: int | None, rate: float | None, after: int) -> _Trigger:
        return _Trigger(times=times, rate=rate, after=after, rng=self._rng)

    def _add(self, rule: _Rule) -> None:
        with self._lock:
            if self._detached:
                raise ConfigurationError("this FaultInjector is detached", variable="FaultInjector")
            self._rules.append(rule)

    def _resolve(self, operation: str) -> tuple[str, str | None]:
        if self._detached:
            raise ConfigurationError("this FaultInjector is detached", variable="FaultInjector")
        if "." in operation:
            service, _, op = operation.partition(".")
        elif len(self._attached) == 1 and self._factory is None:
            service, op = next(iter(self._attached)), operation
        else:
            raise ConfigurationError(
                f"name the service in {operation!r}, e.g. 'iot.{operation}'",
                variable="operation",
                value=operation,
            )
        attached = self._attached.get(service)
        if attached is None:
            if self._factory is None:
                raise ConfigurationError(
                    f"no {service!r} client is attached to this FaultInjector (operation {operation!r})",
                    variable="operation",
                    value=operation,
                )
            attached = self._attach(self._factory.client(cast(Any, service)))
        if op in ("*", ""):
            return service, None
        names = attached.client.meta.service_model.operation_names
        if op not in names:
            raise ConfigurationError(
                f"{service} has no operation {op!r} (operation names are CamelCase, e.g. {names[0]!r})",
                variable="operation",
                value=operation,
            )
        return service, op

    def _attach(self, client: Any) -> _Attached:
        model = client.meta.service_model
        service = str(model.service_name)
        event_service = model.service_id.hyphenize()
        existing = self._attached.get(service)
        if existing is not None:
            if existing.client is not client:
                raise ConfigurationError(
                    f"a different {service!r} client is already attached to this FaultInjector",
                    variable="target",
                )
            return existing
        protocol = str(model.protocol)
        query_compatible = "awsQueryCompatible" in model.metadata

        def before_send(request: AWSPreparedRequest, event_name: str = "", **_: Any) -> Any:
            op = event_name.rsplit(".", 1)[-1]
            return self._on_request(service, op, request, protocol, query_compatible)

        def after_call(parsed: dict[str, Any], model: Any = None, **_: Any) -> None:
            op = getattr(model, "name", "")
            pending: dict[tuple[str, str], list[dict[str, Any]]] = getattr(self._pending, "failed", {})
            extra = pending.pop((service, op), None)
            if extra:
                parsed.setdefault("Failed", []).extend(extra)

        event = f"before-send.{event_service}"
        item = _Attached(client=client, event=event, handler=before_send, after_call=after_call)
        client.meta.events.register_first(event, before_send)
        client.meta.events.register(f"after-call.{event_service}", after_call)
        if self._fast_retries:
            item.undo_retry = _no_retry_delay(client, self._record_delay)
        self._attached[service] = item
        return item

    def _record_delay(self, delay: float) -> None:
        with self._lock:
            self._retry_delays.append(delay)

    def _on_request(
        self,
        service: str,
        op: str,
        request: AWSPreparedRequest,
        protocol: str,
        query_compatible: bool,
    ) -> AWSResponse | None:
        key = f"{service}.{op}"
        fired: list[tuple[_Rule, int]] = []
        with self._lock:
            attempt = self._attempts.get(key, 0) + 1
            self._attempts[key] = attempt
            for rule in self._rules:
                if rule.matches(service, op) and rule.trigger.fires():
                    fired.append((rule, attempt))
                    if rule.kind != "latency":
                        break  # one answer per request; latency rules before it still apply
        if hasattr(self._pending, "failed"):
            self._pending.failed.pop((service, op), None)
        for rule, number in fired:
            if rule.kind == "latency":
                self._record(key, rule, number, f"{rule.seconds:g} s")
                self._sleep(rule.seconds)
                continue
            if rule.kind == "connection_error":
                self._record(key, rule, number, rule.connection)
                _raise_connection_error(rule.connection, request.url)
            if rule.kind == "partial_batch_failure":
                return _answered(request, self._partial_failure(key, op, rule, number, request))
            self._record(key, rule, number, f"HTTP {rule.status} {rule.code}")
            return _answered(request, _error_response(request.url, protocol, query_compatible, rule))
        return None

    def _record(self, key: str, rule: _Rule, attempt: int, detail: str) -> None:
        with self._lock:
            self._records.append(
                Injection(operation=key, kind=rule.kind, attempt=attempt, detail=detail, rule=rule.label)
            )

    def _partial_failure(
        self, key: str, op: str, rule: _Rule, attempt: int, request: AWSPreparedRequest
    ) -> AWSResponse | None:
        body = request.body
        raw = body if isinstance(body, bytes | bytearray | str) else b""
        payload = json.loads(raw or b"{}")
        entries: list[dict[str, Any]] = list(payload.get("Entries") or [])
        with self._lock:
            if rule.entry_rate is not None:
                chosen = [i for i in range(len(entries)) if self._rng.random() < rule.entry_rate]
            else:
                chosen = [i for i in rule.entries or () if i < len(entries)]
        if not chosen:
            return None
        failed = [
            {
                "Id": entries[i]["Id"],
                "SenderFault": rule.sender_fault,
                "Code": rule.code,
                "Message": rule.message,
            }
            for i in chosen
        ]
        self._record(key, rule, attempt, f"entries {chosen} failed with {rule.code}")
        failing = set(chosen)
        keep = [e for i, e in enumerate(entries) if i not in failing]
        if not keep:
            data = json.dumps({"Successful": [], "Failed": failed}).encode()
            return _make_response(
                request.url,
                200,
                {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": str(uuid.uuid4())},
                data,
            )
        payload["Entries"] = keep
        new_body = json.dumps(payload).encode()
        request.body = new_body
        request.headers["Content-Length"] = str(len(new_body))
        if not hasattr(self._pending, "failed"):
            self._pending.failed = {}
        self._pending.failed[("sqs", op)] = failed
        return None


_NOWHERE = "https://fault-injected.thingpress.invalid/"


def _answered(request: AWSPreparedRequest, response: AWSResponse | None) -> AWSResponse | None:
    """Keep later ``before-send`` handlers from acting on a request we answered.

    botocore calls every ``before-send`` handler and then uses the first answer, so moto's
    handler (registered on the broader ``before-send``) would still execute the operation,
    with side effects, after we answered it. Pointing this attempt's request (botocore builds
    a new one per attempt) at a host no mock claims makes moto pass it by.
    """
    if response is not None:
        request.url = _NOWHERE
    return response


def _is_client(obj: object) -> bool:
    meta = getattr(obj, "meta", None)
    return meta is not None and hasattr(meta, "events") and hasattr(meta, "service_model")


def _make_response(url: str, status: int, headers: Mapping[str, str], body: bytes) -> AWSResponse:
    from botocore.awsrequest import AWSResponse
    from botocore.compat import HTTPHeaders

    http_headers = HTTPHeaders()
    for name, value in headers.items():
        http_headers[name] = value
    http_headers["Content-Length"] = str(len(body))
    return AWSResponse(url, status, http_headers, _RawBody(body))


def _error_response(url: str, protocol: str, query_compatible: bool, rule: _Rule) -> AWSResponse:
    request_id = str(uuid.uuid4())
    code, message = rule.code, rule.message
    if protocol == "rest-json":
        headers = {
            "x-amzn-ErrorType": f"{code}:",
            "Content-Type": "application/json",
            "x-amzn-RequestId": request_id,
        }
        body = json.dumps({"message": message, **rule.fields}).encode()
    elif protocol == "json":
        headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": request_id}
        if query_compatible:
            headers["x-amzn-query-error"] = f"{code};{'Receiver' if rule.status >= 500 else 'Sender'}"
        body = json.dumps({"__type": code, "message": message, **rule.fields}).encode()
    elif protocol == "rest-xml":
        headers = {"Content-Type": "application/xml", "x-amz-request-id": request_id}
        body = (
            f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{_xml(code)}</Code>"
            f"<Message>{_xml(message)}</Message><RequestId>{request_id}</RequestId></Error>"
        ).encode()
    else:  # query, ec2
        headers = {"Content-Type": "text/xml"}
        body = (
            f"<ErrorResponse><Error><Type>{'Receiver' if rule.status >= 500 else 'Sender'}</Type>"
            f"<Code>{_xml(code)}</Code><Message>{_xml(message)}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()
    return _make_response(url, rule.status, headers, body)


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _raise_connection_error(kind: ConnectionErrorKind, url: str) -> None:
    from botocore import exceptions

    if kind == "closed":
        raise exceptions.ConnectionClosedError(endpoint_url=url)
    if kind == "read_timeout":
        raise exceptions.ReadTimeoutError(endpoint_url=url)
    raise exceptions.EndpointConnectionError(endpoint_url=url)


class _NoDelayPolicy:
    """Wraps botocore's standard RetryPolicy: same decisions, zero backoff."""

    def __init__(self, policy: Any, record: Callable[[float], None]) -> None:
        self._policy = policy
        self._record = record

    def should_retry(self, context: Any) -> bool:
        return bool(self._policy.should_retry(context))

    def compute_retry_delay(self, context: Any) -> float:
        self._record(float(self._policy.compute_retry_delay(context)))
        return 0.0


def _no_retry_delay(client: Any, record: Callable[[float], None]) -> Callable[[], None]:
    """Zero botocore's retry backoff for this one client; returns the undo function.

    botocore registers its retry handler on ``needs-retry.<service>`` under the unique id
    ``retry-config-<service>``. In standard mode that is ``RetryHandler.needs_retry`` whose
    policy computes the delay; in legacy mode the handler's ``_action`` does. Only that
    client's handler object is changed.
    """
    event_service = client.meta.service_model.service_id.hyphenize()
    emitter = client.meta.events
    inner = getattr(emitter, "_emitter", emitter)
    entry = getattr(inner, "_unique_id_handlers", {}).get(f"retry-config-{event_service}")
    handler = entry.get("handler") if isinstance(entry, dict) else None
    owner = getattr(handler, "__self__", handler)
    if owner is not None and hasattr(owner, "_retry_policy"):
        original_policy = owner._retry_policy
        owner._retry_policy = _NoDelayPolicy(original_policy, record)

        def undo_standard() -> None:
            owner._retry_policy = original_policy

        return undo_standard
    if owner is not None and hasattr(owner, "_action"):
        original_action = owner._action

        def no_delay(**kwargs: Any) -> float:
            record(float(original_action(**kwargs)))
            return 0.0

        owner._action = no_delay

        def undo_legacy() -> None:
            owner._action = original_action

        return undo_legacy
    raise ConfigurationError(
        "fast_retries: this botocore version does not expose the retry handler of the "
        f"{event_service} client; patch botocore.endpoint.time.sleep in your test instead",
        variable="fast_retries",
    )
