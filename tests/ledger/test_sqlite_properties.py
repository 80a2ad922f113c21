"""Property tests: any DeviceRecord survives the compact codec and a save, exactly."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from thingpress_core.ledger import DeviceRecord, SqliteLedger, StepMark
from thingpress_core.ledger._sqlite_codec import decode_record, encode_record

ZONES: st.SearchStrategy[_dt.tzinfo] = st.sampled_from(
    [
        _dt.timezone.utc,
        _dt.timezone(_dt.timedelta(hours=5, minutes=30)),
        _dt.timezone(_dt.timedelta(hours=-8)),
    ]
)
EARLIEST, LATEST = _dt.datetime(1900, 1, 1), _dt.datetime(2200, 1, 1)
MOMENTS = st.one_of(  # naive, or at any offset
    st.datetimes(EARLIEST, LATEST), st.datetimes(EARLIEST, LATEST, timezones=ZONES)
)
UTC_MOMENTS = st.datetimes(
    min_value=_dt.datetime(1900, 1, 1),
    max_value=_dt.datetime(2200, 1, 1),
    timezones=st.just(_dt.timezone.utc),
)
TEXT = st.text(max_size=40)
TARGETS = st.one_of(
    st.sampled_from(
        ["123456789012/us-east-1", "123456789012/cn-north-1", "210987654321/eu-west-1/http://x:5"]
    ),
    st.text(min_size=1, max_size=30),
)
STEP_KEYS = st.one_of(
    st.sampled_from(["register", "thing", "principal", "status", "policy:P", "group:G"]), TEXT
)


@st.composite
def records(draw: st.DrawFn) -> DeviceRecord:
    target = draw(TARGETS)
    cid = draw(st.text(alphabet="0123456789abcdef", min_size=64, max_size=64))
    runs = draw(st.lists(TEXT, min_size=1, max_size=4))
    moments = st.one_of(UTC_MOMENTS, MOMENTS)  # mostly the usual UTC, sometimes anything
    arn = draw(
        st.one_of(
            st.none(),
            TEXT,
            st.just(f"arn:aws:iot:us-east-1:123456789012:cert/{cid}"),
            TEXT.map(lambda prefix: prefix + cid),
        )
    )
    steps = draw(
        st.dictionaries(
            STEP_KEYS,
            st.builds(StepMark, run_id=st.sampled_from(runs), at=moments, made=st.booleans()),
            max_size=7,
        )
    )
    return DeviceRecord(
        target=target,
        certificate_id=cid,
        thing_name=draw(st.none() | TEXT),
        certificate_arn=arn,
        certificate_status=draw(st.none() | st.sampled_from(["ACTIVE", "INACTIVE"]) | TEXT),
        thing_type=draw(st.none() | TEXT),
        source=draw(st.none() | TEXT),
        entry_index=draw(st.none() | st.integers()),
        vendor_id=draw(st.none() | TEXT),
        steps=steps,
        run_id=draw(st.sampled_from(runs)),
        first_run_id=draw(st.sampled_from(runs)),
        created_at=draw(moments),
        updated_at=draw(moments),
        last_error=draw(st.none() | TEXT),
        last_error_step=draw(st.none() | TEXT),
    )


def _same(a: DeviceRecord, b: DeviceRecord) -> bool:
    """Equal, and with the same step order and the same offsets (== alone compares instants)."""
    offsets = [(m.at.utcoffset(), m.at.tzinfo is None) for m in a.steps.values()]
    return (
        a == b
        and list(a.steps) == list(b.steps)
        and offsets == [(m.at.utcoffset(), m.at.tzinfo is None) for m in b.steps.values()]
        and a.created_at.utcoffset() == b.created_at.utcoffset()
        and a.updated_at.utcoffset() == b.updated_at.utcoffset()
    )


@given(records())
@settings(max_examples=400)
def test_the_codec_decodes_what_it_encoded(record: DeviceRecord) -> None:
    text = encode_record(record)
    assert _same(decode_record(record.target, record.certificate_id, record.thing_name, text), record)


def test_any_record_saved_reads_back_equal(tmp_path: Path) -> None:
    with SqliteLedger(tmp_path / "property.ledger") as ledger:

        @given(records())
        @settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
        def check(record: DeviceRecord) -> None:
            ledger.save(record)
            saved = ledger.device(record.target, record.certificate_id)
            assert saved is not None
            assert _same(saved, record)
            assert record in ledger.find(record.certificate_id)
            for run_id in {mark.run_id for mark in record.steps.values()}:
                assert record in ledger.devices(run_id=run_id, target=record.target)

        check()
