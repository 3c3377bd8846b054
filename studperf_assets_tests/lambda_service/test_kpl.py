"""The KPL de-aggregator against AWS's own encoder (aws-kinesis-agg), and on hostile bytes."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lambda_service.kpl import MAGIC, UserRecord, deaggregate, is_aggregate
from studperf_assets_tests.kinesis_fakes import kpl_aggregate, kpl_frame, reference_messages

PARTITION_KEYS = st.text(min_size=1, max_size=256)
HASH_KEYS = st.none() | st.integers(0, 2**128 - 1).map(str)


@given(
    st.lists(
        st.tuples(PARTITION_KEYS, st.binary(max_size=3000), HASH_KEYS), min_size=1, max_size=60
    )
)
def test_round_trip_through_the_reference_encoder(
    records: list[tuple[str, bytes, str | None]],
) -> None:
    """Whatever AWS's encoder packs (shared and distinct keys, explicit hash keys, empty and
    binary data, any Unicode key) comes out as the same user records in the same order."""
    blob = kpl_aggregate([(k, d) for k, d, _ in records], [h for _, _, h in records])
    aggregate = deaggregate(blob, max_records=1000)
    assert aggregate is not None and aggregate.problem is None
    assert [(u.partition_key, u.data, u.problem) for u in aggregate.records] == [
        (k, d, None) for k, d, _ in records
    ]


def _message(**fields: Any) -> Any:
    messages = reference_messages()
    message = messages.AggregatedRecord()
    message.partition_key_table.extend(fields.pop("keys", ["k"]))
    message.explicit_hash_key_table.extend(fields.pop("hash_keys", []))
    for record in fields.pop("records"):
        message.records.add(**record)
    return message


def _user_records(message: Any) -> list[tuple[str | None, bytes, str | None]]:
    aggregate = deaggregate(kpl_frame(message.SerializePartialToString()), max_records=100)
    assert aggregate is not None and aggregate.problem is None
    return [(u.partition_key, u.data, u.problem) for u in aggregate.records]


def test_a_bad_user_record_is_told_apart_from_its_neighbours() -> None:
    """aws-kinesis-agg prints to stderr and drops every user record after such a one."""
    message = _message(
        keys=["a", "b"],
        hash_keys=["340282366920938463463374607431768211455"],
        records=[
            {"partition_key_index": 1, "data": b"first"},
            {"partition_key_index": 7, "data": b"bad key"},
            {"partition_key_index": 0, "explicit_hash_key_index": 3, "data": b"bad hash key"},
            {"partition_key_index": 0, "explicit_hash_key_index": 0, "data": b"last"},
        ],
    )
    first, bad_key, bad_hash_key, last = _user_records(message)
    assert first == ("b", b"first", None) and last == ("a", b"last", None)
    assert bad_key[0] is None and bad_key[2] is not None
    assert "user record 1: partition_key_index 7 is outside its table of 2 keys" in bad_key[2]
    assert bad_key[1] == message.records[1].SerializeToString()  # kept for the error record
    assert bad_hash_key[2] is not None and "explicit_hash_key_index 3" in bad_hash_key[2]


def test_user_records_missing_required_fields() -> None:
    message = _message(records=[{"data": b"no key"}, {"partition_key_index": 0}])
    (no_key, no_data) = _user_records(message)
    assert no_key[2] == "KPL user record 0 has no partition_key_index"
    assert no_data[2] == "KPL user record 1 has no data"


def test_unknown_fields_and_tags_are_skipped() -> None:
    message = _message(records=[{"partition_key_index": 0, "data": b"x"}])
    message.records[0].tags.add(key="team", value="ops")
    extra = b"\x28\x96\x01" + b"\x31" + b"\0" * 8 + b"\x3d" + b"\0" * 4  # fields 5, 6, 7
    body = message.SerializeToString() + extra
    aggregate = deaggregate(kpl_frame(body), max_records=10)
    assert aggregate is not None and aggregate.records == [UserRecord(b"x", "k")]


def test_not_an_aggregate() -> None:
    blob = kpl_aggregate([("k", b'{"student_id": 1}')])
    assert is_aggregate(blob)
    assert deaggregate(b'{"student_id": 1}', 10) is None
    assert deaggregate(blob[:-1] + bytes([blob[-1] ^ 1]), 10) is None  # MD5 mismatch
    assert deaggregate(MAGIC + b"\x0a", 10) is None  # too short for a digest


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"", "holds no user records"),
        (b"\x0a\x01k", "holds no user records"),
        (b"\x1a\x05\x08\x00", "a length of 5 at byte 5 runs past the end"),
        (b"\x1a", "varint at byte 5 is cut short"),
        (b"\x1a" + b"\xff" * 11, "varint at byte 5 is cut short or longer than 10 bytes"),
        (b"\x18\x01", "field 3 is not length-delimited"),
        (b"\x00\x01", "field number 0"),
        (b"\x0b\x0c", "wire type 3"),
        (b"\x29\x00\x00", "a fixed field at byte 5 runs past the end"),
        (b"\x1a\x00" * 11, "more than 10 user records"),
        (b"\x0a\x00" * 11, "more than 10 user records"),
    ],
)
def test_an_aggregate_that_cannot_be_split_is_one_problem(body: bytes, problem: str) -> None:
    aggregate = deaggregate(kpl_frame(body), max_records=10)
    assert aggregate is not None and aggregate.records == []
    assert aggregate.problem is not None and problem in aggregate.problem, aggregate.problem


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        (b"\x08", "varint at byte 10 is cut short"),
        (b"\x08\x00\x1a\x09abc", "a length of 9 at byte 12 runs past the end"),
        (b"\x0a\x00", "field 1 has wire type 2"),
        (b"\x1b", "wire type 3"),
    ],
)
def test_a_user_record_that_cannot_be_read_is_one_problem(entry: bytes, problem: str) -> None:
    good = b"\x08\x00\x1a\x01x"
    body = b"\x0a\x01k" + b"\x1a" + bytes([len(entry)]) + entry
    body += b"\x1a" + bytes([len(good)]) + good
    aggregate = deaggregate(kpl_frame(body), max_records=10)
    assert aggregate is not None and aggregate.problem is None
    bad, fine = aggregate.records
    assert bad.data == entry and bad.problem is not None and problem in bad.problem, bad.problem
    assert fine == UserRecord(b"x", "k")


def test_a_million_empty_user_records_stop_at_the_limit() -> None:
    """2 bytes each make 2 MB: the scan stops at the limit, nothing per record is kept."""
    aggregate = deaggregate(kpl_frame(b"\x1a\x00" * 1_000_000), max_records=50_000)
    assert aggregate is not None and aggregate.records == []
    assert aggregate.problem is not None
    assert aggregate.problem.startswith("KPL aggregate of more than 50000 user records")


def test_a_partition_key_that_is_not_utf8_is_no_key() -> None:
    body = b"\x0a\x02\xff\xfe" + b"\x1a\x05\x08\x00\x1a\x01x"
    aggregate = deaggregate(kpl_frame(body), max_records=10)
    assert aggregate is not None and aggregate.records == [UserRecord(b"x", None)]


@given(st.binary(max_size=400))
def test_any_bytes_after_the_magic_never_raise(body: bytes) -> None:
    aggregate = deaggregate(kpl_frame(body), max_records=50)
    assert aggregate is not None
    assert (aggregate.problem is None) == bool(aggregate.records)
    for user in aggregate.records:
        assert isinstance(user.data, bytes) and user.data in body


@given(
    st.lists(st.tuples(PARTITION_KEYS, st.binary(max_size=40)), min_size=1, max_size=8),
    st.data(),
)
def test_any_corruption_of_a_real_aggregate_never_raises(
    records: list[tuple[str, bytes]], data: st.DataObject
) -> None:
    """A flipped, cut or inserted byte inside an aggregate (MD5 recomputed, as a buggy
    producer would): described, never raised, and never more user records than bytes."""
    body = bytearray(kpl_aggregate(records)[4:-16])
    at = data.draw(st.integers(0, len(body)))
    action = data.draw(st.sampled_from(["flip", "cut", "insert"]))
    if action == "flip" and at < len(body):
        body[at] ^= data.draw(st.integers(1, 255))
    elif action == "cut":
        del body[at:]
    else:
        body[at:at] = data.draw(st.binary(min_size=1, max_size=4))
    aggregate = deaggregate(kpl_frame(bytes(body)), max_records=50)
    assert aggregate is not None
    assert aggregate.problem is not None or 1 <= len(aggregate.records) <= len(body) // 2
