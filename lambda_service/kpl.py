"""De-aggregation of Kinesis Producer Library (KPL) aggregated records.

A KPL producer packs many user records into one Kinesis record: the 4 magic bytes
``F3 89 9A C2``, a protobuf ``AggregatedRecord`` (1: partition key table, 2: explicit hash key
table, 3: records, each 1: partition_key_index, 2: explicit_hash_key_index, 3: data, 4: tags)
and the MD5 of that protobuf (awslabs/amazon-kinesis-producer, aggregation-format.md). Lambda
delivers such a record as it is; the consumer splits it.

Why not a library (per user record, best of 5, aggregates of 3 to 3,000 student messages, on
the project's shared 2-core machine):

- ``aws-kinesis-agg`` 1.2.3 (awslabs/kinesis-aggregation, AWS's own; 3-14 µs): when one user
  record points outside its tables it prints to stderr and drops the rest of the aggregate,
  and a protobuf that does not parse is passed on as if it were a plain record; importing it
  puts its own folder first on ``sys.path`` (its ``config_pb2`` becomes a top-level module);
  it imports ``six`` without declaring it. It is the reference encoder in the tests instead.
- ``protobuf`` (already in the image, under onnxruntime) with a descriptor built at run time
  (0.6-2.7 µs): importing it costs 45-60 ms, on the cold start or on the first aggregate; it
  materialises every user record before any limit can apply, and its errors do not say where
  a record is broken.

The format is three fields deep, so this module reads it itself (3.8-6.9 µs): the work is
linear in the record's size, no length read from the input is trusted before it is checked
against the bytes that are there, the count of user records is capped while scanning, and
nothing here raises on any input: a problem is described, per user record where the user
records can be told apart, else for the aggregate.
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

MAGIC = b"\xf3\x89\x9a\xc2"
DIGEST_BYTES = 16  # MD5
_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5
_ROOM = "user records, the most there is room for"


class UserRecord(NamedTuple):
    """One user record: ``data`` is its payload, or, when ``problem`` is set, the raw
    protobuf bytes of its entry (to keep in an error record)."""

    data: bytes
    partition_key: str | None  # None when the index is unusable or the key is not UTF-8
    problem: str | None = None


class Aggregate(NamedTuple):
    """The user records in order (their position is the KPL subsequence number), or, when
    ``problem`` is set, why the aggregate cannot be split at all (``records`` is empty)."""

    records: list[UserRecord]
    problem: str | None = None


class _Malformed(Exception):
    """The protobuf cannot be read past this point."""


def is_aggregate(data: bytes) -> bool:
    """Magic bytes and a matching MD5: anything else is a plain record, as KCL treats it."""
    return (
        data[:4] == MAGIC
        and len(data) >= len(MAGIC) + DIGEST_BYTES
        and hashlib.md5(memoryview(data)[4:-DIGEST_BYTES], usedforsecurity=False).digest()
        == data[-DIGEST_BYTES:]
    )


def deaggregate(data: bytes, max_records: int) -> Aggregate | None:
    """Split a KPL aggregated record; None if ``data`` is not one (``is_aggregate``).

    A protobuf whose top level cannot be read, no user records, or more than ``max_records``
    user records or partition keys (the most the caller has room for: the scan stops there)
    is a problem of the whole aggregate."""
    if not is_aggregate(data):
        return None
    end = len(data) - DIGEST_BYTES
    keys: list[bytes] = []
    hash_keys = 0
    entries: list[tuple[int, int]] = []
    try:
        pos = len(MAGIC)
        while pos < end:
            number, wire, pos = _tag(data, pos, end)
            if wire != _LENGTH:
                if number in (1, 2, 3):
                    raise _Malformed(f"field {number} is not length-delimited (wire type {wire})")
                pos = _skip(data, pos, end, wire)
                continue
            start, pos = _span(data, pos, end)
            if number == 1:
                keys.append(data[start:pos])
            elif number == 2:
                hash_keys += 1
            elif number == 3:
                entries.append((start, pos))
            if len(entries) > max_records or len(keys) > max_records:
                return Aggregate([], f"KPL aggregate of more than {max_records} {_ROOM}")
    except _Malformed as exc:
        return Aggregate([], f"KPL aggregate is not a valid protobuf: {exc}")
    if not entries:
        return Aggregate([], "KPL aggregate holds no user records")
    texts = [_text(key) for key in keys]
    return Aggregate(
        [_user_record(data, sub, s, e, texts, hash_keys) for sub, (s, e) in enumerate(entries)]
    )


def _user_record(
    data: bytes, sub: int, start: int, end: int, keys: list[str | None], hash_keys: int
) -> UserRecord:
    """User record ``sub`` from its entry, ``data[start:end]``."""
    try:
        key_index, hash_index, payload = _entry(data, start, end)
    except _Malformed as exc:
        return _bad(data, start, end, None, f"KPL user record {sub} is not a valid protobuf: {exc}")
    if key_index is None:
        return _bad(data, start, end, None, f"KPL user record {sub} has no partition_key_index")
    if key_index >= len(keys):
        problem = (
            f"KPL user record {sub}: partition_key_index {key_index} is outside its table "
            f"of {len(keys)} keys"
        )
        return _bad(data, start, end, None, problem)
    key = keys[key_index]
    if hash_index is not None and hash_index >= hash_keys:
        problem = (
            f"KPL user record {sub}: explicit_hash_key_index {hash_index} is outside its table "
            f"of {hash_keys} keys"
        )
        return _bad(data, start, end, key, problem)
    if payload is None:
        return _bad(data, start, end, key, f"KPL user record {sub} has no data")
    return UserRecord(payload, key)


def _entry(data: bytes, pos: int, end: int) -> tuple[int | None, int | None, bytes | None]:
    """(partition_key_index, explicit_hash_key_index, data) of a ``Record``; the last of a
    repeated field wins, as in protobuf."""
    key_index = hash_index = payload = None
    while pos < end:
        number, wire, pos = _tag(data, pos, end)
        if number in (1, 2) and wire == _VARINT:
            if pos < end and data[pos] < 0x80:  # the usual one-byte index, inline
                value, pos = data[pos], pos + 1
            else:
                value, pos = _varint(data, pos, end)
            if number == 1:
                key_index = value
            else:
                hash_index = value
        elif number == 3 and wire == _LENGTH:
            first, pos = _span(data, pos, end)
            payload = data[first:pos]
        elif number in (1, 2, 3):
            raise _Malformed(f"field {number} has wire type {wire}")
        else:  # tags (4; the KPL never sets them) and unknown fields
            pos = _skip(data, pos, end, wire)
    return key_index, hash_index, payload


def _bad(data: bytes, start: int, end: int, key: str | None, problem: str) -> UserRecord:
    return UserRecord(data[start:end], key, problem)


def _text(raw: bytes) -> str | None:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """A base-128 varint of at most 10 bytes (64 bits), and the position after it."""
    first, value, shift = pos, 0, 0
    while pos < end and shift < 70:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
    raise _Malformed(f"varint at byte {first} is cut short or longer than 10 bytes")


def _tag(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(field number, wire type, position after); ``pos < end``. Tags of fields 1-15 take
    one byte: read inline."""
    key = data[pos]
    if key < 0x80:
        pos += 1
    else:
        key, pos = _varint(data, pos, end)
    if key >> 3 == 0:
        raise _Malformed(f"field number 0 at byte {pos}")
    return key >> 3, key & 7, pos


def _span(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """(start, end) of a length-delimited field's bytes: the length is checked first."""
    at = pos
    length, pos = _varint(data, pos, end)
    if length > end - pos:
        raise _Malformed(f"a length of {length} at byte {at} runs past the end")
    return pos, pos + length


def _skip(data: bytes, pos: int, end: int, wire: int) -> int:
    if wire == _VARINT:
        return _varint(data, pos, end)[1]
    if wire == _LENGTH:
        return _span(data, pos, end)[1]
    size = {_FIXED64: 8, _FIXED32: 4}.get(wire)
    if size is None:  # 3 and 4 (groups) are deprecated and never in this format
        raise _Malformed(f"wire type {wire} at byte {pos}")
    if size > end - pos:
        raise _Malformed(f"a fixed field at byte {pos} runs past the end")
    return pos + size
