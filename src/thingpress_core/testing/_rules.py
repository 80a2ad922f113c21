"""What a fault injector knows: its rules, the triggers that decide when they fire, and records.

A rule names the requests it matches (a service, and one operation or all) and what to do to
them; its trigger decides, request by request, whether it fires. `Injection` records one
fault that fired.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Literal

from thingpress_core.errors import ConfigurationError
from thingpress_core.resilience import DEFAULT_RATE_LIMITS

FaultKind = Literal[
    "throttle",
    "server_error",
    "connection_error",
    "error",
    "partial_batch_failure",
    "latency",
    "lost_response",
]
"""What an injection did. A quota rule records its throttles as ``throttle``."""

ConnectionErrorKind = Literal["endpoint", "closed", "read_timeout"]
"""``endpoint``: could not connect; ``closed``: the connection dropped; ``read_timeout``."""

QUOTA_PRESETS: Mapping[str, Mapping[str, float]] = MappingProxyType(
    {
        # The same table the rate limiter defaults to, so a client at its defaults meets it exactly.
        "aws-iot-defaults": DEFAULT_RATE_LIMITS,
    }
)
"""Named quota tables for `FaultInjector.quota`, ``service.Operation`` to requests per second.

``"aws-iot-defaults"``: the default AWS IoT Core control-plane quotas per account.
"""

BATCH_OPERATIONS = frozenset({"SendMessageBatch", "DeleteMessageBatch", "ChangeMessageVisibilityBatch"})


@dataclasses.dataclass(frozen=True)
class Injection:
    """One fault the injector caused.

    ``operation`` is the ``service.Operation`` key (``iot.CreateThing``), ``attempt`` the
    1-based number of that request among all the injector saw for the operation (botocore's
    retries included), ``detail`` a short description (``HTTP 400 ThrottlingException``,
    ``entries [0, 3] failed``, ``0.25 s``, ``HTTP 200 answer lost``), ``rule`` the label of
    the rule that fired (``throttle iot.CreateThing``).
    """

    operation: str
    kind: FaultKind
    attempt: int
    detail: str
    rule: str


class Trigger:
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


class TokenBucket:
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
class Rule:
    """One rule: which requests it matches, when it fires (``trigger``) and what it answers."""

    label: str
    kind: FaultKind
    service: str
    operation: str | None  # None: every operation of the service
    trigger: Trigger | TokenBucket
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
