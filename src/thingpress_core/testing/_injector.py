"""`FaultInjector`: the rules a test adds, and what happens to each request of an attached client."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal, cast

from thingpress_core.errors import ConfigurationError
from thingpress_core.testing import _patching
from thingpress_core.testing._engine import Engine
from thingpress_core.testing._rules import (
    BATCH_OPERATIONS,
    QUOTA_PRESETS,
    ConnectionErrorKind,
    FaultKind,
    Injection,
    Rule,
    TokenBucket,
    Trigger,
)

if TYPE_CHECKING:
    from types import TracebackType

    from botocore.awsrequest import AWSPreparedRequest
    from botocore.client import BaseClient

    from thingpress_core.clients import ClientFactory


class FaultInjector:
    """Inject AWS faults into boto3 clients, through botocore's real retry logic.

    Args:
        target: a boto3 client, a [`ClientFactory`][thingpress_core.clients.ClientFactory] (its cached
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
        self._engine = Engine(seed=seed, sleep=sleep)
        self._lock = self._engine.lock
        self._clock = clock
        self._fast_retries = fast_retries
        self._attached: dict[str, _patching.Hooks] = {}
        self._factory: ClientFactory | None = None
        self._detached = False
        if _patching.is_client(target):
            self._attach(target)
        elif hasattr(target, "client") and hasattr(target, "settings"):
            self._factory = cast("ClientFactory", target)
        elif isinstance(target, Iterable):
            for client in target:
                if not _patching.is_client(client):
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
            f"FaultInjector(services={sorted(self._attached)}, rules={len(self._engine.rules)}, "
            f"injections={len(self._engine.records)})"
        )

    def detach(self) -> None:
        """Unhook from every client and restore botocore's retry delays. Idempotent."""
        with self._lock:
            attached = list(self._attached.values())
            self._attached.clear()
            self._detached = True
        for hooks in attached:
            hooks.remove()

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
        if service != "sqs" or (op is not None and op not in BATCH_OPERATIONS):
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

    def lost_response(
        self,
        operation: str,
        *,
        kind: Literal["closed", "read_timeout"] = "closed",
        times: int | None = None,
        rate: float | None = None,
        after: int = 0,
    ) -> FaultInjector:
        """The request reaches the service, which acts on it, but its answer never arrives.

        As when a connection drops after the request was written: botocore gets a
        ``ConnectionClosedError`` (``kind="read_timeout"``: ``ReadTimeoutError``) and retries
        as its policy says, so the service sees the request again. A lost answer to
        ``RegisterCertificateWithoutCA`` is followed by a 409 ``ResourceAlreadyExistsException``
        with ``RetryAttempts`` 1; when no attempt is left the caller gets the connection error.
        The answer (its status is in the record) is thrown away whatever it was.
        """
        if kind not in ("closed", "read_timeout"):
            raise ConfigurationError(
                "kind must be 'closed' or 'read_timeout' (the request was sent)", variable="kind", value=kind
            )
        return self._rule("lost_response", operation, times, rate, after, connection=kind)

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
                Rule(
                    label=f"quota {name} {per_second:g}/s",
                    kind="throttle",
                    service=service,
                    operation=op,
                    trigger=TokenBucket(per_second, capacity, self._clock),
                    status=503 if service == "s3" else 400,
                    code="SlowDown" if service == "s3" else "ThrottlingException",
                    message="Rate exceeded (quota)",
                )
            )
        return self

    def clear(self) -> None:
        """Drop every rule (records stay); the injector stays attached."""
        with self._lock:
            self._engine.rules.clear()

    # -- what happened ---------------------------------------------------------------------

    @property
    def records(self) -> list[Injection]:
        """Every injection, in order (a copy)."""
        with self._lock:
            return list(self._engine.records)

    @property
    def counts(self) -> dict[str, int]:
        """Injections per ``service.Operation`` (latency included)."""
        with self._lock:
            out: dict[str, int] = {}
            for record in self._engine.records:
                out[record.operation] = out.get(record.operation, 0) + 1
            return out

    @property
    def attempts(self) -> dict[str, int]:
        """HTTP requests seen per ``service.Operation`` on attached clients, injected or not."""
        with self._lock:
            return dict(self._engine.attempts)

    @property
    def retry_delays(self) -> list[float]:
        """The backoff delays botocore chose and `fast_retries` skipped, in order."""
        with self._lock:
            return list(self._engine.retry_delays)

    def count(self, operation: str | None = None, *, kind: FaultKind | None = None) -> int:
        """How many injections match ``operation`` (``service.Operation``) and ``kind``."""
        with self._lock:
            return sum(
                1
                for r in self._engine.records
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
            Rule(
                label=label or f"{kind} {operation}",
                kind=kind,
                service=service,
                operation=op,
                trigger=self._trigger(times, rate, after),
                **fields,
            )
        )
        return self

    def _trigger(self, times: int | None, rate: float | None, after: int) -> Trigger:
        return Trigger(times=times, rate=rate, after=after, rng=self._engine.rng)

    def _add(self, rule: Rule) -> None:
        with self._lock:
            if self._detached:
                raise ConfigurationError("this FaultInjector is detached", variable="FaultInjector")
            self._engine.rules.append(rule)

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

    def _attach(self, client: Any) -> _patching.Hooks:
        model = client.meta.service_model
        service = str(model.service_name)
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
            return self._engine.before_send(
                client,
                service,
                op,
                request,
                event_name=event_name,
                protocol=protocol,
                query_compatible=query_compatible,
            )

        def after_call(parsed: dict[str, Any], model: Any = None, **_: Any) -> None:
            self._engine.after_call(service, getattr(model, "name", ""), parsed)

        hooks = _patching.hook(
            client,
            before_send=before_send,
            after_call=after_call,
            fast_retries=self._fast_retries,
            record_delay=self._engine.record_delay,
        )
        self._attached[service] = hooks
        return hooks
