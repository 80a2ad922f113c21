"""What a ledger holds: one record per device per target, one record per run.

A record says which steps AWS confirmed for a device, which run did each, and whether that
run made the resource (a registration that created the certificate, a CreateThing that made
the thing) or found it there. That is what makes a re-run cost nothing for done devices,
what answers "which certificate went to which thing", and what lets a rollback undo exactly
what one run made.
"""

from __future__ import annotations

import datetime as _dt
import secrets
from collections.abc import Iterable
from typing import Any, ClassVar, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "SCHEMA_VERSION",
    "DeviceRecord",
    "RunKind",
    "RunRecord",
    "RunStatus",
    "StepMark",
    "Target",
    "new_run_id",
    "step_key",
]

#: The schema this version writes. A ledger written by an older version is migrated when it
#: is opened; one written by a newer version is refused with a message saying so.
SCHEMA_VERSION: Final = 1

#: How a run stands: ``running`` (or ended without a word: killed), ``finished``,
#: ``interrupted`` (Ctrl-C), ``failed`` (an error stopped it), ``enqueued`` (the S3 trigger
#: handed its devices to the queue; the consumers record each device under its id).
RunStatus = Literal["running", "finished", "interrupted", "failed", "enqueued"]
RunKind = Literal["import", "rollback", "activate", "deactivate", "verify"]


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def _storable_text(value: str | None) -> str | None:
    """Text every backend can store and every export can write: a lone surrogate (a file name
    that is not UTF-8, a JSON manifest's ``"\\ud800"``) becomes its ``\\udXXX`` escape."""
    if value is None or value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def new_run_id(now: _dt.datetime | None = None) -> str:
    """A run id that sorts by start time: ``20261201T101500Z-3f9a1c``."""
    moment = (now or _now()).astimezone(_dt.timezone.utc)
    return f"{moment:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def step_key(step: str, name: str | None = None) -> str:
    """The key of one step in `DeviceRecord.steps`: ``register``, ``thing``, ``principal``,
    ``status``, ``policy:<name>``, ``group:<name>``."""
    return step if name is None else f"{step}:{name}"


class Target(BaseModel):
    """Where the work was done: an AWS account, a region, and the endpoint when not AWS's own.

    A ledger keys every device record by its target, so it never claims work done in another
    account, region or stand-in (a sandbox, a moto server).
    """

    model_config: ClassVar[ConfigDict] = ConfigDict(frozen=True, extra="forbid")

    account_id: str = Field(pattern=r"^\d{12}$")
    region: str = Field(min_length=1, max_length=64)
    endpoint: str | None = None

    @property
    def key(self) -> str:
        """``<account>/<region>`` for AWS itself, ``<account>/<region>/<endpoint>`` otherwise."""
        base = f"{self.account_id}/{self.region}"
        return f"{base}/{self.endpoint}" if self.endpoint else base

    def __str__(self) -> str:
        return self.key


class StepMark(BaseModel):
    """One confirmed step: which run did it, when, and whether it made the resource.

    ``made`` is True when this run's call created what the step is about (the certificate's
    registration, the thing) or attached it to a resource this run created; False when the
    resource was found there (registered before, a thing adopted), so a rollback of the run
    leaves it alone.
    """

    model_config: ClassVar[ConfigDict] = ConfigDict(frozen=True, extra="forbid")

    run_id: str
    at: _dt.datetime
    made: bool = True


class DeviceRecord(BaseModel):
    """One device (certificate) in one target, and every step AWS confirmed for it.

    ``steps`` maps a `step_key` to its `StepMark`. The other fields say what the steps are
    about (the ARN, the thing, its type, the status) and where the device came from (the
    manifest, its entry index, the vendor's id). ``thing_config`` is a short digest of what
    the thing was created with beyond its type (billing group, attributes:
    ``ImportOptions.thing_config``), None when nothing: a run that asks for others is not
    done.
    """

    model_config: ClassVar[ConfigDict] = ConfigDict(frozen=True, extra="forbid")

    target: str
    certificate_id: str = Field(pattern=r"^[0-9a-f]{64}$")
    thing_name: str | None = None
    certificate_arn: str | None = None
    certificate_status: str | None = None
    thing_type: str | None = None
    source: str | None = None
    entry_index: int | None = None
    vendor_id: str | None = None
    thing_config: str | None = None
    steps: dict[str, StepMark] = Field(default_factory=dict[str, StepMark])
    run_id: str
    first_run_id: str
    created_at: _dt.datetime
    updated_at: _dt.datetime
    last_error: str | None = None
    last_error_step: str | None = None

    @field_validator("source", "vendor_id", "last_error", "thing_name", mode="after")
    @classmethod
    def _storable(cls, value: str | None) -> str | None:
        return _storable_text(value)

    def done(self, key: str) -> bool:
        """Whether the step ``key`` was confirmed."""
        return key in self.steps

    def holds_thing(self) -> bool:
        """Whether this device holds its thing: AWS confirmed the thing (``thing``) or the
        certificate on it (``principal``) for this record. A record that only names a thing
        (registered, refused as a name collision, rolled back) does not hold it."""
        steps = self.steps
        return "thing" in steps or "principal" in steps

    def policies(self) -> tuple[str, ...]:
        """The policies confirmed attached to the certificate, in the order they were."""
        return tuple(k.split(":", 1)[1] for k in self.steps if k.startswith("policy:"))

    def groups(self) -> tuple[str, ...]:
        """The thing groups the thing was confirmed added to."""
        return tuple(k.split(":", 1)[1] for k in self.steps if k.startswith("group:"))

    def complete_for(
        self,
        *,
        thing_name: str,
        policies: Iterable[str],
        thing_groups: Iterable[str],
        thing_type: str | None,
        status: str,
        thing_config: str | None = None,
    ) -> bool:
        """True when every step these options ask for was confirmed (nothing left to do), the
        thing with this type and ``thing_config`` (billing group, attributes)."""
        wanted = ["register", "thing", "principal"]
        wanted += [step_key("policy", p) for p in policies]
        wanted += [step_key("group", g) for g in thing_groups]
        return (
            all(key in self.steps for key in wanted)
            and self.thing_name == thing_name
            and self.thing_type == thing_type
            and self.certificate_status == status
            and self.thing_config == thing_config
        )

    def with_step(
        self, key: str, *, run_id: str, made: bool, at: _dt.datetime | None = None, **fields: Any
    ) -> DeviceRecord:
        """A copy with step ``key`` confirmed by ``run_id`` (an earlier mark is kept) and
        ``fields`` set; the error of an earlier attempt is cleared."""
        moment = at or _now()
        steps = dict(self.steps)
        steps.setdefault(key, StepMark(run_id=run_id, at=moment, made=made))
        update: dict[str, Any] = {
            "steps": steps,
            "run_id": run_id,
            "updated_at": moment,
            "last_error": None,
            "last_error_step": None,
            **fields,
        }
        return self.model_copy(update=update)

    def without_step(
        self, key: str, *, run_id: str, at: _dt.datetime | None = None, **fields: Any
    ) -> DeviceRecord:
        """A copy with step ``key`` undone (a rollback) and ``fields`` set."""
        steps = {k: v for k, v in self.steps.items() if k != key}
        return self.model_copy(
            update={"steps": steps, "run_id": run_id, "updated_at": at or _now(), **fields}
        )

    def with_error(
        self, step: str, error: str, *, run_id: str, at: _dt.datetime | None = None
    ) -> DeviceRecord:
        """A copy that remembers the last error (one line, no certificate body)."""
        return self.model_copy(
            update={
                "last_error": _storable_text(error[:600]),
                "last_error_step": step,
                "run_id": run_id,
                "updated_at": at or _now(),
            }
        )

    @classmethod
    def new(
        cls,
        *,
        target: str,
        certificate_id: str,
        run_id: str,
        thing_name: str | None = None,
        source: str | None = None,
        entry_index: int | None = None,
        vendor_id: str | None = None,
        at: _dt.datetime | None = None,
    ) -> DeviceRecord:
        """The record of a device seen for the first time, with no step done."""
        moment = at or _now()
        return cls(
            target=target,
            certificate_id=certificate_id,
            thing_name=thing_name,
            source=source,
            entry_index=entry_index,
            vendor_id=vendor_id,
            run_id=run_id,
            first_run_id=run_id,
            created_at=moment,
            updated_at=moment,
        )


class RunRecord(BaseModel):
    """One run over a ledger: an import (or, later, a rollback or status change).

    ``options`` are what the run was asked to do (policies, groups, thing type, status,
    naming); ``input_name`` and ``input_digest`` (SHA-256 of the input file, when there is
    one) say what it read; ``counts`` are the report's counts when it ended.
    """

    model_config: ClassVar[ConfigDict] = ConfigDict(frozen=True, extra="forbid")

    run_id: str
    target: str
    kind: RunKind = "import"
    status: RunStatus = "running"
    started_at: _dt.datetime
    ended_at: _dt.datetime | None = None
    options: dict[str, Any] = Field(default_factory=dict[str, Any])
    input_name: str | None = None
    input_digest: str | None = None
    counts: dict[str, int] = Field(default_factory=dict[str, int])
    tool_version: str | None = None
    of_run: str | None = None  # the run a rollback undoes

    @field_validator("input_name", mode="after")
    @classmethod
    def _storable(cls, value: str | None) -> str | None:
        return _storable_text(value)

    @classmethod
    def start(
        cls,
        *,
        target: str,
        run_id: str | None = None,
        kind: RunKind = "import",
        options: dict[str, Any] | None = None,
        input_name: str | None = None,
        input_digest: str | None = None,
        of_run: str | None = None,
        at: _dt.datetime | None = None,
    ) -> RunRecord:
        """The record of a run that starts now (a new run id unless given), stamped with
        this version of thingpress-core."""
        from thingpress_core._version import version

        moment = at or _now()
        return cls(
            run_id=run_id or new_run_id(moment),
            target=target,
            kind=kind,
            started_at=moment,
            options=options or {},
            input_name=input_name,
            input_digest=input_digest,
            tool_version=version(),
            of_run=of_run,
        )
