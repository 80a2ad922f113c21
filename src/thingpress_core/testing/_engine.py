"""What happens to each request of an attached client: the first rule that fires decides.

`Engine` holds one injector's rules and everything they did (records, attempts, retry
delays). Its ``before_send`` runs as a botocore ``before-send`` handler, first, for every
HTTP attempt: it counts the attempt, then lets the request through, answers it with a forged
response, raises a connection error, or lets the service act and loses the answer.
"""

from __future__ import annotations

import dataclasses
import random
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

from thingpress_core.testing import _patching, _responses
from thingpress_core.testing._rules import Injection, Rule

if TYPE_CHECKING:
    from botocore.awsrequest import AWSPreparedRequest, AWSResponse


@dataclasses.dataclass(frozen=True)
class _LoseAnswer:
    """The decision to let a request through and lose its answer (a ``lost_response`` rule)."""

    rule: Rule
    attempt: int


class Engine:
    """One injector's rules, applied request by request, and the records of what they did.

    ``lock`` guards every list and dict here; ``rng`` drives ``rate=`` triggers and
    partial-failure choices, so one seed reproduces a whole run.
    """

    def __init__(self, *, seed: int, sleep: Callable[[float], object]) -> None:
        self.lock = threading.Lock()
        self.rng = random.Random(seed)
        self.rules: list[Rule] = []
        self.records: list[Injection] = []
        self.attempts: dict[str, int] = {}
        self.retry_delays: list[float] = []
        self._sleep = sleep
        # Per thread: SQS entries to report as failed after the call, and whether we are
        # relaying a request ourselves (botocore sends and retries on the calling thread).
        self._pending = threading.local()

    def record_delay(self, delay: float) -> None:
        with self.lock:
            self.retry_delays.append(delay)

    # -- botocore events -------------------------------------------------------------------

    def before_send(
        self,
        client: Any,
        service: str,
        op: str,
        request: AWSPreparedRequest,
        *,
        event_name: str,
        protocol: str,
        query_compatible: bool,
    ) -> AWSResponse | None:
        if getattr(self._pending, "relaying", False):
            return None  # the request whose answer we are about to lose, on its way to the service
        decision = self._decide(service, op, request, protocol, query_compatible)
        if isinstance(decision, _LoseAnswer):
            self._lose_answer(client, f"{service}.{op}", decision, request, event_name)
        return decision

    def after_call(self, service: str, op: str, parsed: dict[str, Any]) -> None:
        pending: dict[tuple[str, str], list[dict[str, Any]]] = getattr(self._pending, "failed", {})
        extra = pending.pop((service, op), None)
        if extra:
            parsed.setdefault("Failed", []).extend(extra)

    # -- deciding --------------------------------------------------------------------------

    def _decide(
        self,
        service: str,
        op: str,
        request: AWSPreparedRequest,
        protocol: str,
        query_compatible: bool,
    ) -> AWSResponse | _LoseAnswer | None:
        """Count the request and apply the first rule that fires (latency rules add up)."""
        key = f"{service}.{op}"
        fired: list[tuple[Rule, int]] = []
        with self.lock:
            attempt = self.attempts.get(key, 0) + 1
            self.attempts[key] = attempt
            for rule in self.rules:
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
                _responses.raise_connection_error(rule.connection, request.url)
            if rule.kind == "partial_batch_failure":
                return _responses.answered(request, self._partial_failure(key, op, rule, number, request))
            if rule.kind == "lost_response":
                return _LoseAnswer(rule, number)
            self._record(key, rule, number, f"HTTP {rule.status} {rule.code}")
            return _responses.answered(
                request, _responses.error_response(request.url, protocol, query_compatible, rule)
            )
        return None

    def _lose_answer(
        self, client: Any, key: str, decision: _LoseAnswer, request: AWSPreparedRequest, event_name: str
    ) -> NoReturn:
        """Let the service act on ``request``, then drop its answer as a broken connection would.

        The request is sent from here (moto's handler or the client's HTTP session answers
        it), the answer is read and thrown away, and botocore gets the connection error it
        would get had the connection dropped after the send. So its retry policy, attempt
        limit and retry quota decide what follows, and other ``needs-retry`` handlers see a
        connection error, as for a real lost answer.
        """
        self._pending.relaying = True
        try:
            response = _patching.relay(client, request, event_name)
        finally:
            self._pending.relaying = False
        self._record(key, decision.rule, decision.attempt, f"HTTP {response.status_code} answer lost")
        _responses.raise_connection_error(decision.rule.connection, request.url)

    def _record(self, key: str, rule: Rule, attempt: int, detail: str) -> None:
        with self.lock:
            self.records.append(
                Injection(operation=key, kind=rule.kind, attempt=attempt, detail=detail, rule=rule.label)
            )

    def _partial_failure(
        self, key: str, op: str, rule: Rule, attempt: int, request: AWSPreparedRequest
    ) -> AWSResponse | None:
        """Fail the chosen entries: rewrite the request to the others, or answer if none is left."""
        payload, entries = _responses.batch_entries(request)
        with self.lock:
            if rule.entry_rate is not None:
                chosen = [i for i in range(len(entries)) if self.rng.random() < rule.entry_rate]
            else:
                chosen = [i for i in rule.entries or () if i < len(entries)]
        if not chosen:
            return None
        failed = _responses.failed_entries(entries, chosen, rule)
        self._record(key, rule, attempt, f"entries {chosen} failed with {rule.code}")
        failing = set(chosen)
        keep = [e for i, e in enumerate(entries) if i not in failing]
        if not keep:
            return _responses.all_failed_response(request.url, failed)
        _responses.keep_entries(request, payload, keep)
        if not hasattr(self._pending, "failed"):
            self._pending.failed = {}
        self._pending.failed[("sqs", op)] = failed
        return None
