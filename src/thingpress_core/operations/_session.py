"""What every operation does around its runner: the target, the ledger's run, the counters.

A `Session` resolves the target a ledger keys records by, begins the run in the ledger (kind
``verify``, ``activate``, ``deactivate`` or ``rollback``), snapshots the IoT service's
counters, and at the end records how the run ended and gives the fields every report shares.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from thingpress_core.errors import ConfigurationError
from thingpress_core.ledger import RunRecord, Target
from thingpress_core.operations._runner import Runner, int_map

if TYPE_CHECKING:
    from thingpress_core.ledger import Ledger, RunKind, RunStatus
    from thingpress_core.operations._protocol import FleetOperations

__all__ = ["Session", "iot_target", "parse_target", "resolve_target"]

_Counts = tuple[dict[str, int], dict[str, int], dict[str, int], dict[str, int]]


def iot_target(iot: object) -> Target | None:
    """The account, region and endpoint ``iot`` talks to, when it has a factory to say so
    (`IoTService` does; one STS call, cached, when no account id is set)."""
    factory = getattr(iot, "factory", None)
    if factory is None:
        return None
    return Target(
        account_id=factory.account_id(), region=factory.region, endpoint=factory.settings.endpoint_url
    )


def parse_target(key: str) -> Target:
    """The `Target` of a key (``account/region`` or ``account/region/endpoint``)."""
    account, _, rest = key.partition("/")
    region, _, endpoint = rest.partition("/")
    return Target(account_id=account, region=region, endpoint=endpoint or None)


def resolve_target(iot: object, target: Target | str | None) -> Target | None:
    """``target`` (a `Target` or its key), else the one ``iot`` talks to, else None."""
    if isinstance(target, Target):
        return target
    if target is not None:
        return parse_target(target)
    return iot_target(iot)


def _snapshot(iot: FleetOperations) -> _Counts:
    stats = iot.stats()
    return (
        dict(stats.calls),
        dict(stats.failures),
        int_map(getattr(stats, "retries", None)),
        int_map(getattr(stats, "refused", None)),
    )


def _delta(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    delta = {key: value - before.get(key, 0) for key, value in after.items()}
    return {key: value for key, value in sorted(delta.items()) if value > 0}


class Session:
    """One operation's run: its target and ledger run, its counters and its clock."""

    def __init__(
        self,
        iot: FleetOperations,
        *,
        ledger: Ledger | None,
        target: Target | None,
        kind: RunKind,
        options: dict[str, Any],
        of_run: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ledger is not None and target is None:
            raise ConfigurationError(
                "with a ledger and an IoT service that has no factory, pass target= "
                "(the account, region and endpoint the records belong to)",
                variable="target",
            )
        self.iot = iot
        self.ledger = ledger
        self.target = target
        self._kind: RunKind = kind
        self._options = options
        self._of_run = of_run
        self._clock = clock
        self.started_at = datetime.now(timezone.utc)
        self._start = clock()
        self._before = _snapshot(iot)
        self.run_id: str | None = None

    def begin(self) -> None:
        """Record the run in the ledger (when there is one)."""
        if self.ledger is None:
            return
        assert self.target is not None
        run = RunRecord.start(
            target=self.target.key, kind=self._kind, options=self._options, of_run=self._of_run
        )
        self.ledger.begin_run(run)
        self.run_id = run.run_id

    def end(self, status: RunStatus, counts: Mapping[str, int]) -> None:
        """Record how the run ended."""
        if self.ledger is not None and self.run_id is not None:
            self.ledger.end_run(
                self.run_id, status=status, counts=counts, ended_at=datetime.now(timezone.utc)
            )

    def report_fields(self, runner: Runner[Any], *, interrupted: bool) -> dict[str, Any]:
        """The fields every operation's report fills the same way."""
        after = _snapshot(self.iot)
        duration = max(self._clock() - self._start, 0.0)
        return {
            "total": runner.total,
            "changed": runner.changed,
            "unchanged": runner.unchanged,
            "failed": runner.failed,
            "failures": runner.failures,
            "calls": _delta(self._before[0], after[0]),
            "call_failures": _delta(self._before[1], after[1]),
            "call_retries": _delta(self._before[2], after[2]),
            "calls_refused": _delta(self._before[3], after[3]),
            "retried": runner.retried,
            "rounds": runner.rounds,
            "interrupted": interrupted,
            "unfinished": runner.unfinished,
            "run_id": self.run_id,
            "ledger": self.ledger.location if self.ledger is not None else None,
            "started_at": self.started_at,
            "duration_seconds": duration,
            "rate_per_second": runner.total / duration if duration > 0 else 0.0,
        }

    def drive(
        self, runner: Runner[Any], items: Iterable[object], counts: Callable[[], Mapping[str, int]]
    ) -> bool:
        """Run ``runner`` over ``items`` inside the ledger's run (`begin` first); True when
        interrupted. The run ends ``finished``, ``interrupted`` (Ctrl-C) or ``failed`` (any
        other error, which is raised again)."""
        try:
            runner.run(items)
        except KeyboardInterrupt:
            self.end("interrupted", counts())
            return True
        except BaseException:
            self.end("failed", counts())
            raise
        self.end("finished", counts())
        return False
