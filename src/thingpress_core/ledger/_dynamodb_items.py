"""How the DynamoDB ledger lays out its one table: the keys, and records to items and back.

One table keyed by ``pk`` (string, partition key) and ``sk`` (string, sort key), no index:

====================  ====================================  ===============================
item                  pk                                    sk
====================  ====================================  ===============================
meta                  ``meta``                              ``meta``
device record         ``dev#<target>#<first hex digit>``    ``<certificate id>``
thing name claim      ``thing#<target>``                    ``<thing name>``
lease                 ``lease#<target>``                    ``<certificate id>``
run                   ``run``                               ``<run id>``
run → device index    ``touch#<run id>``                    ``<certificate id>#<target>``
target                ``target``                            ``<target>``
====================  ====================================  ===============================

A target's device records are spread over 16 partition keys by the first hex digit of the
certificate id, so one fleet's writes have 16 partitions' worth of throughput, and a listing
in certificate-id order is 16 ``Query`` calls in digit order. Each step mark of a device is
its own attribute (``step:<key>``, a map of run id, time and ``made``), so a save can add it
with ``if_not_exists`` in one atomic ``UpdateItem``; a map of steps could not (DynamoDB will
not set a path inside a map that may not exist in the same expression that creates it).
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final

from thingpress_core.ledger._models import DeviceRecord, RunRecord, StepMark

FORMAT: Final = "thingpress-ledger"
SHARDS: Final = "0123456789abcdef"
STEP: Final = "step:"
_STEPS_PER_UPDATE: Final = 40  # an update expression is at most 4 KB
# fields a save sets when known and never clears: None in a record means "not known here"
_KEPT: Final = ("thing_name", "certificate_arn", "certificate_status", "thing_type", "source")
_KEPT_TOO: Final = ("entry_index", "vendor_id", "thing_config")
_CLEARED: Final = ("last_error", "last_error_step")  # None clears them (a later success)
_RANK = {"register": 0, "thing": 1, "principal": 2, "status": 3, "policy": 4, "group": 5}


def device_pk(target: str, shard: str) -> str:
    return f"dev#{target}#{shard}"


def device_key(target: str, cert: str) -> dict[str, str]:
    return {"pk": device_pk(target, cert[0]), "sk": cert}


def thing_key(target: str, name: str) -> dict[str, str]:
    return {"pk": f"thing#{target}", "sk": name}


def lease_key(target: str, cert: str) -> dict[str, str]:
    return {"pk": f"lease#{target}", "sk": cert}


def run_key(run_id: str) -> dict[str, str]:
    return {"pk": "run", "sk": run_id}


def touch_key(run_id: str, target: str, cert: str) -> dict[str, str]:
    return {"pk": f"touch#{run_id}", "sk": f"{cert}#{target}"}


def split_touch(sk: str) -> tuple[str, str]:
    return sk[:64], sk[65:]


def utc(moment: _dt.datetime) -> _dt.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=_dt.timezone.utc)


def run_attributes(run: RunRecord) -> dict[str, object]:
    dumped = run.model_dump(mode="json")
    attributes: dict[str, object] = {
        "run_id": run.run_id,
        "target": run.target,
        "run_kind": run.kind,
        "status": run.status,
        "started_at": run.started_at.isoformat(),
        "options": json.dumps(dumped["options"], sort_keys=True),
        "counts": dict(run.counts),
    }
    for name in ("ended_at", "input_name", "input_digest", "tool_version", "of_run"):
        if dumped[name] is not None:
            attributes[name] = dumped[name]
    return attributes


class _Expression:
    """Placeholders for the names and values of one update expression."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.values: dict[str, object] = {}

    def name(self, attribute: str) -> str:
        placeholder = f"#a{len(self.names)}"
        self.names[placeholder] = attribute
        return placeholder

    def value(self, value: object) -> str:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = value
        return placeholder


def updates(
    record: DeviceRecord, removed: Iterable[str]
) -> Iterator[tuple[str, dict[str, str], dict[str, object]]]:
    """The update expressions that merge ``record`` into its item: the fields, the removed
    steps and the first 40 steps in one, further steps 40 to an expression."""
    steps = list(record.steps.items())
    first = True
    while first or steps:
        x = _Expression()
        sets = [f"{x.name('updated_at')} = {x.value(record.updated_at.isoformat())}"]
        removes: list[str] = []
        if first:
            fields: dict[str, object] = {
                "item": "device",
                "target": record.target,
                "certificate_id": record.certificate_id,
                "run_id": record.run_id,
            }
            for f in (*_KEPT, *_KEPT_TOO, *_CLEARED):
                if getattr(record, f) is not None:
                    fields[f] = getattr(record, f)
                elif f in _CLEARED:
                    removes.append(x.name(f))
            sets += [f"{x.name(f)} = {x.value(v)}" for f, v in fields.items()]
            for f, v in (
                ("first_run_id", record.first_run_id),
                ("created_at", record.created_at.isoformat()),
            ):
                n = x.name(f)
                sets.append(f"{n} = if_not_exists({n}, {x.value(v)})")
            removes += [x.name(STEP + key) for key in removed]
        for key, mark in steps[:_STEPS_PER_UPDATE]:
            n = x.name(STEP + key)
            mark_value = {"run_id": mark.run_id, "at": mark.at.isoformat(), "made": mark.made}
            sets.append(f"{n} = if_not_exists({n}, {x.value(mark_value)})")
        steps = steps[_STEPS_PER_UPDATE:]
        update = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        yield update, x.names, x.values
        first = False


def run_from_item(item: Mapping[str, Any]) -> RunRecord:
    """The run an item holds. Raises KeyError, ValueError (pydantic's too) on a bad item."""
    return RunRecord(
        run_id=item["run_id"],
        target=item["target"],
        kind=item["run_kind"],
        status=item["status"],
        started_at=item["started_at"],
        ended_at=item.get("ended_at"),
        options=json.loads(item.get("options") or "{}"),
        input_name=item.get("input_name"),
        input_digest=item.get("input_digest"),
        counts=item.get("counts") or {},
        tool_version=item.get("tool_version"),
        of_run=item.get("of_run"),
    )


def record_from_item(item: Mapping[str, Any]) -> DeviceRecord:
    """The device record an item holds, its steps in the order they were confirmed.

    Raises KeyError, TypeError or ValueError (pydantic's too) on a bad item.
    """
    steps = sorted(
        (
            (k[len(STEP) :], StepMark(run_id=v["run_id"], at=v["at"], made=v["made"]))
            for k, v in item.items()
            if k.startswith(STEP)
        ),
        key=lambda s: (utc(s[1].at), _RANK.get(s[0].split(":", 1)[0], 9), s[0]),
    )
    return DeviceRecord(
        target=item["target"],
        certificate_id=item["certificate_id"],
        **{name: item.get(name) for name in (*_KEPT, *_KEPT_TOO, *_CLEARED)},
        steps=dict(steps),
        run_id=item["run_id"],
        first_run_id=item["first_run_id"],
        created_at=item["created_at"],
        updated_at=item["updated_at"],
    )
