"""The local AWS's Kinesis, made to scale: what a client reads is what unpatched moto gives,
and records older than the local retention are dropped."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.kinesis import models

from studperf_assets.local import moto_server

METHODS = ("put_record", "get_records", "get_min_sequence_number", "get_max_sequence_number")


@pytest.fixture
def original_moto(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """moto in process (never a server another test pointed AWS_ENDPOINT_URL at), its Shard
    as moto ships it before the test and after."""
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    saved = {name: getattr(models.Shard, name) for name in METHODS}
    yield saved
    for name, method in saved.items():
        setattr(models.Shard, name, method)
    models.Shard._studperf_scales = False  # type: ignore[attr-defined]


def reads(kinesis: Any) -> list[Any]:
    """Everything a consumer of this module's streams would see."""
    kinesis.create_stream(StreamName="s", ShardCount=2)
    seen: list[Any] = []
    for batch in range(5):
        entries = [{"Data": f"{batch}-{i}".encode(), "PartitionKey": f"k{i}"} for i in range(37)]
        seen.append(
            [
                r.get("SequenceNumber")
                for r in kinesis.put_records(StreamName="s", Records=entries)["Records"]
            ]
        )
    for shard in kinesis.list_shards(StreamName="s")["Shards"]:
        shard_id = shard["ShardId"]
        seen.append(shard["SequenceNumberRange"])
        for kind in ("TRIM_HORIZON", "LATEST"):
            iterator = kinesis.get_shard_iterator(
                StreamName="s", ShardId=shard_id, ShardIteratorType=kind
            )["ShardIterator"]
            for limit in (10, 10_000, 10):
                response = kinesis.get_records(ShardIterator=iterator, Limit=limit)
                seen.append(
                    ([(r["SequenceNumber"], r["Data"]) for r in response["Records"]],
                     response["MillisBehindLatest"] >= 0)
                )  # fmt: skip
                iterator = response["NextShardIterator"]
        first = seen[-3][0][0][0] if seen[-3][0] else "1"
        for kind in ("AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"):
            iterator = kinesis.get_shard_iterator(
                StreamName="s", ShardId=shard_id, ShardIteratorType=kind,
                StartingSequenceNumber=str(int(first) + 3),
            )["ShardIterator"]  # fmt: skip
            response = kinesis.get_records(ShardIterator=iterator, Limit=5)
            seen.append([(r["SequenceNumber"], r["Data"]) for r in response["Records"]])
    return seen


def test_a_client_reads_what_unpatched_moto_gives(original_moto: dict[str, Any]) -> None:
    with mock_aws():
        before = reads(boto3.client("kinesis", region_name="us-east-1"))
    moto_server.patch_kinesis()
    with mock_aws():
        after = reads(boto3.client("kinesis", region_name="us-east-1"))
    assert after == before and len(after) > 10


def test_records_older_than_the_local_retention_are_dropped(original_moto: dict[str, Any]) -> None:
    moto_server.patch_kinesis(retention_seconds=0.5)
    with mock_aws():
        kinesis = boto3.client("kinesis", region_name="us-east-1")
        kinesis.create_stream(StreamName="r", ShardCount=1)
        old: list[Any] = [{"Data": b"old", "PartitionKey": "p"}] * 500
        kinesis.put_records(StreamName="r", Records=old)
        time.sleep(0.6)
        new: list[Any] = [{"Data": b"new", "PartitionKey": "p"}] * 500  # the 1000th trims
        kinesis.put_records(StreamName="r", Records=new)
        iterator = kinesis.get_shard_iterator(
            StreamName="r", ShardId="shardId-000000000000", ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records = kinesis.get_records(ShardIterator=iterator, Limit=10_000)["Records"]
    assert [r["Data"] for r in records] == [b"new"] * 500
    assert records[0]["SequenceNumber"] == "501"  # numbering goes on after a trim
