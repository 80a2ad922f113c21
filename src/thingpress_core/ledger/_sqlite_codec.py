"""How the SQLite ledger stores a `DeviceRecord` in one row: compact JSON, decoded exactly.

The row's own columns hold the target (as a number), the certificate id (as 32 bytes) and
the thing name; the JSON holds the rest with one-letter keys and no null fields. A record is
written after every step of every device (a million devices make five million writes), so the
bytes matter: run ids are listed once and steps point into the list; the usual step keys are
small numbers; times in UTC are integer microseconds, the created time since the epoch and the
others relative to it; the ARN drops the certificate id it ends with, and the prefix too when
it is the one the target implies. A time that is not in UTC (naive, or another offset) is kept
as its ISO text, so every record decodes to one equal to what was saved.

Keys: ``r`` run ids (``r[0]`` is ``run_id``), ``f`` index of ``first_run_id`` (omitted when 0),
``c`` created, ``u`` updated, ``k`` steps as ``[key, run index, at, made]`` (``key`` a number
for the words in ``_STEP_CODES``; ``made`` omitted when true), ``A`` the ARN's prefix before
the certificate id (1: the target's own) or ``a`` the whole ARN, ``s`` status, ``y`` thing
type, ``o`` source, ``i`` entry index, ``v`` vendor id, ``e`` last error, ``x`` last error step,
``g`` the thing's configuration digest (billing group and attributes).
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
from typing import Any

from thingpress_core.ledger._models import DeviceRecord, StepMark

__all__ = ["decode_record", "encode_record", "step_run_ids"]

_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
_MICROSECOND = _dt.timedelta(microseconds=1)
_ZERO = _dt.timedelta(0)
_FIELDS = (
    ("s", "certificate_status"),
    ("y", "thing_type"),
    ("o", "source"),
    ("i", "entry_index"),
    ("v", "vendor_id"),
    ("e", "last_error"),
    ("x", "last_error_step"),
    ("g", "thing_config"),
)
_STEP_CODES = {"register": 0, "thing": 1, "principal": 2, "status": 3}  # never renumber: files hold them
_STEP_WORDS = {code: word for word, code in _STEP_CODES.items()}
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False).encode


def _micros(moment: _dt.datetime) -> int | None:
    """Microseconds since the epoch for a time in UTC; None for any other time."""
    if moment.utcoffset() != _ZERO:  # naive (None) or another offset: kept as text
        return None
    return (moment - _EPOCH) // _MICROSECOND


@functools.lru_cache(maxsize=64)
def _arn_prefix(target: str) -> str | None:
    """``arn:<partition>:iot:<region>:<account>:cert/`` for a target key ``<account>/<region>[/...]``:
    what nearly every certificate ARN in that target starts with. A guess that misses only
    costs bytes (the prefix is stored instead)."""
    parts = target.split("/")
    if len(parts) < 2:
        return None
    account, region = parts[0], parts[1]
    partition = (
        "aws-cn" if region.startswith("cn-") else "aws-us-gov" if region.startswith("us-gov-") else "aws"
    )
    return f"arn:{partition}:iot:{region}:{account}:cert/"


def encode_record(record: DeviceRecord) -> str:
    """The JSON of ``record`` without the columns its row holds (target, certificate id,
    thing name)."""
    runs = [record.run_id]

    def run_index(run_id: str) -> int:
        try:
            return runs.index(run_id)
        except ValueError:
            runs.append(run_id)
            return len(runs) - 1

    base = _micros(record.created_at)

    def moment(value: _dt.datetime) -> int | str:
        micros = _micros(value) if base is not None else None
        return value.isoformat() if micros is None or base is None else micros - base

    doc: dict[str, Any] = {"r": runs, "c": base if base is not None else record.created_at.isoformat()}
    first = run_index(record.first_run_id)
    if first:
        doc["f"] = first
    updated = moment(record.updated_at)
    if updated != 0:
        doc["u"] = updated
    if record.steps:
        steps: list[list[Any]] = []
        for key, mark in record.steps.items():
            step: list[Any] = [_STEP_CODES.get(key, key), run_index(mark.run_id), moment(mark.at)]
            if not mark.made:
                step.append(0)
            steps.append(step)
        doc["k"] = steps
    arn = record.certificate_arn
    if arn is not None:
        if arn.endswith(record.certificate_id):
            prefix = arn[: -len(record.certificate_id)]
            doc["A"] = 1 if prefix == _arn_prefix(record.target) else prefix
        else:
            doc["a"] = arn
    for short, name in _FIELDS:
        value = getattr(record, name)
        if value is not None:
            doc[short] = value
    return _dumps(doc)


def decode_record(target: str, certificate_id: str, thing_name: str | None, text: str) -> DeviceRecord:
    """The record a row holds. Raises ``ValueError`` (pydantic's or json's) when the JSON is
    not one `encode_record` wrote."""
    doc = json.loads(text)
    if not isinstance(doc, dict):
        raise ValueError("the record is not a JSON object")
    runs: list[str] = doc["r"]
    created = doc["c"]
    base = created if isinstance(created, int) else None

    def moment(value: int | str) -> _dt.datetime | str:
        if isinstance(value, int):
            if base is None:
                raise ValueError("a relative time in a record whose created time is text")
            return _EPOCH + (base + value) * _MICROSECOND
        return value  # ISO text: pydantic parses it

    fields: dict[str, Any] = {
        "target": target,
        "certificate_id": certificate_id,
        "thing_name": thing_name,
        "run_id": runs[0],
        "first_run_id": runs[doc.get("f", 0)],
        "created_at": moment(created) if base is None else _EPOCH + base * _MICROSECOND,
        "updated_at": moment(doc.get("u", 0)),
        "steps": {
            (_STEP_WORDS[step[0]] if isinstance(step[0], int) else step[0]): _mark(
                runs[step[1]], moment(step[2]), len(step) < 4
            )
            for step in doc.get("k", ())
        },
    }
    if "A" in doc:
        prefix = doc["A"]
        if not isinstance(prefix, str):  # 1: the target's own
            prefix = _arn_prefix(target)
            if prefix is None:
                raise ValueError("an ARN prefix implied by a target that implies none")
        fields["certificate_arn"] = prefix + certificate_id
    elif "a" in doc:
        fields["certificate_arn"] = doc["a"]
    for short, name in _FIELDS:
        if short in doc:
            fields[name] = doc[short]
    return DeviceRecord.model_validate(fields)


def _mark(run_id: object, at: _dt.datetime | str, made: bool) -> StepMark | dict[str, object]:
    """A step's mark: built directly when its parts are what the encoder writes (a run id
    text, a time in UTC), else left to pydantic to validate (and refuse) with the record."""
    if isinstance(run_id, str) and isinstance(at, _dt.datetime):
        return StepMark.model_construct(run_id=run_id, at=at, made=made)
    return {"run_id": run_id, "at": at, "made": made}


def step_run_ids(record: DeviceRecord) -> set[str]:
    """The runs whose marks the record's steps carry: the runs that touched the device."""
    return {mark.run_id for mark in record.steps.values()}
