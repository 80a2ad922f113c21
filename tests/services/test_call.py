"""The one call path: order, mapping, counting, logging."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from thingpress_core.errors import (
    AwsServiceError,
    CircuitOpenError,
    RateLimitTimeoutError,
    ResourceConflictError,
    ResourceNotFoundError,
    ServiceUnavailableError,
    ThrottledError,
)
from thingpress_core.resilience import CircuitBreakerRegistry, RateLimiter
from thingpress_core.services import CallStats, IoTService, S3Service, SQSService
from thingpress_core.services._path import CallCounter, CallPath


class FakeClientError(Exception):
    pass


def _path(limiter: Any = None, registry: Any = None) -> tuple[CallPath, CallCounter]:
    counter = CallCounter()
    path = CallPath(
        "iot",
        # `is None`, not `or`: an empty registry is falsy (it has a length).
        registry=CircuitBreakerRegistry() if registry is None else registry,
        limiter=RateLimiter({}) if limiter is None else limiter,
        counter=counter,
        logger=logging.getLogger("thingpress_core.services.iot"),
    )
    return path, counter


def _client_error(code: str, status: int) -> Exception:
    from botocore.exceptions import ClientError

    return ClientError(
        {
            "Error": {"Code": code, "Message": "m"},
            "ResponseMetadata": {"HTTPStatusCode": status, "RetryAttempts": 2},
        },
        "CreateThing",
    )


def test_success_is_counted_with_retries() -> None:
    path, counter = _path()

    def method(**kwargs: Any) -> dict[str, Any]:
        return {"echo": kwargs, "ResponseMetadata": {"RetryAttempts": 1}}

    assert path.call("CreateThing", method, {"thingName": "t"})["echo"] == {"thingName": "t"}
    assert counter.snapshot() == CallStats(calls={"iot.CreateThing": 1}, retries={"iot.CreateThing": 1})


def test_client_error_is_mapped_and_chained(caplog: pytest.LogCaptureFixture) -> None:
    path, counter = _path()
    original = _client_error("InternalFailureException", 500)

    def method(**_: Any) -> None:
        raise original

    caplog.set_level(logging.DEBUG, logger="thingpress_core")
    with pytest.raises(ServiceUnavailableError) as info:
        path.call("CreateThing", method, {}, thing_name="t1", certificate_id="c1")
    assert info.value.__cause__ is original
    assert (info.value.thing_name, info.value.certificate_id) == ("t1", "c1")
    stats = counter.snapshot()
    assert stats.failures == {"iot.CreateThing": 1}
    assert stats.retries == {"iot.CreateThing": 2}
    record = caplog.records[-1]
    assert record.levelno == logging.WARNING
    assert (record.operation, record.thing_name, record.certificate_id) == ("iot.CreateThing", "t1", "c1")  # type: ignore[attr-defined]


def test_expected_answer_is_debug_and_not_a_failure(caplog: pytest.LogCaptureFixture) -> None:
    path, counter = _path()

    def method(**_: Any) -> None:
        raise _client_error("ResourceAlreadyExistsException", 409)

    caplog.set_level(logging.DEBUG, logger="thingpress_core")
    with pytest.raises(ResourceConflictError):
        path.call("CreateThing", method, {}, expected=(ResourceConflictError,))
    assert counter.snapshot().failures == {}
    assert counter.snapshot().calls == {"iot.CreateThing": 1}
    assert caplog.records[-1].levelno == logging.DEBUG


def test_caller_mistake_is_info_and_neutral_for_the_breaker(caplog: pytest.LogCaptureFixture) -> None:
    registry = CircuitBreakerRegistry()
    path, counter = _path(registry=registry)

    def method(**_: Any) -> None:
        raise _client_error("ResourceNotFoundException", 404)

    caplog.set_level(logging.DEBUG, logger="thingpress_core")
    with pytest.raises(ResourceNotFoundError):
        path.call("DescribeThing", method, {})
    assert counter.snapshot().failures == {"iot.DescribeThing": 1}
    assert [r.levelno for r in caplog.records] == [logging.INFO]
    snap = registry.get("iot.DescribeThing").snapshot()
    assert (snap.failures, snap.successes, snap.ignored) == (0, 0, 1)


def test_throttle_slows_the_limiter_and_counts_for_the_breaker() -> None:
    registry = CircuitBreakerRegistry()
    limiter = RateLimiter({"iot.CreateThing": 100.0})
    path, counter = _path(limiter=limiter, registry=registry)

    def method(**_: Any) -> None:
        raise _client_error("ThrottlingException", 400)

    with pytest.raises(ThrottledError):
        path.call("CreateThing", method, {})
    assert limiter.rate("iot.CreateThing") == pytest.approx(70.0)
    assert registry.get("iot.CreateThing").snapshot().failures == 1
    assert counter.snapshot().failures == {"iot.CreateThing": 1}


def test_open_breaker_refuses_without_a_call() -> None:
    registry = CircuitBreakerRegistry()
    registry.get("iot.CreateThing").force_open()
    path, counter = _path(registry=registry)
    called: list[bool] = []
    with pytest.raises(CircuitOpenError):
        path.call("CreateThing", lambda **_: called.append(True), {})
    assert called == []
    assert counter.snapshot() == CallStats(refused={"iot.CreateThing": 1})


def test_botocore_error_is_mapped() -> None:
    from botocore.exceptions import EndpointConnectionError

    path, _ = _path()

    def method(**_: Any) -> None:
        raise EndpointConnectionError(endpoint_url="https://x")

    with pytest.raises(ServiceUnavailableError) as info:
        path.call("CreateThing", method, {})
    assert isinstance(info.value.__cause__, EndpointConnectionError)


def test_other_exceptions_pass_through_and_free_the_breaker() -> None:
    registry = CircuitBreakerRegistry()
    path, counter = _path(registry=registry)

    def method(**_: Any) -> None:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        path.call("CreateThing", method, {})
    assert counter.snapshot().failures == {"iot.CreateThing": 1}
    snap = registry.get("iot.CreateThing").snapshot()
    assert (snap.calls, snap.failures, snap.ignored) == (1, 0, 1)


def test_rate_limit_timeout_is_refused_without_a_call() -> None:
    class NoTokens:
        def acquire(self, name: str, timeout: float | None = None) -> float:
            raise RateLimitTimeoutError("no token", name=name, timeout=0)

    path, counter = _path(limiter=NoTokens())
    called: list[bool] = []
    with pytest.raises(RateLimitTimeoutError):
        path.call("CreateThing", lambda **_: called.append(True), {})
    assert called == []
    assert counter.snapshot() == CallStats(refused={"iot.CreateThing": 1})


def test_limiter_before_breaker_before_call() -> None:
    order: list[str] = []

    class Limiter:
        def acquire(self, name: str, timeout: float | None = None) -> float:
            order.append(f"limit {name}")
            return 0.0

        def record_success(self, name: str) -> None:
            order.append("limiter success")

        def record_throttle(self, name: str) -> None:
            order.append("limiter throttle")

    class Registry:
        def get(self, name: str) -> Any:
            order.append(f"breaker {name}")
            breaker = CircuitBreakerRegistry().get(name)
            return breaker

    path, _ = _path(limiter=Limiter(), registry=Registry())
    path.call("CreateThing", lambda **_: order.append("call"), {})
    assert order == ["limit iot.CreateThing", "breaker iot.CreateThing", "call", "limiter success"]


def test_stats_add() -> None:
    a = CallStats(calls={"iot.A": 1}, failures={"iot.A": 1})
    b = CallStats(calls={"iot.A": 2, "iot.B": 1})
    total = a + b
    assert total.calls == {"iot.A": 3, "iot.B": 1}
    assert (total.total_calls, total.total_failures) == (4, 1)


def test_facades_share_registry_and_limiter(factory: Any) -> None:
    iot = IoTService(factory)
    sqs = SQSService(iot.factory, registry=iot.registry, limiter=iot.limiter)
    s3 = S3Service(iot.factory, registry=iot.registry, limiter=iot.limiter)
    assert sqs.registry is iot.registry is s3.registry
    assert sqs.limiter is iot.limiter
    assert sqs.factory is iot.factory
    assert sqs.settings is iot.settings
    assert "calls=0" in repr(sqs)


def test_error_tree_root() -> None:
    assert issubclass(ServiceUnavailableError, AwsServiceError)
