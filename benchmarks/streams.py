"""Read back what a Kinesis stream holds (moto locally), for benchmarks and tests.

Here, not in the test package, because benchmarks must not depend on the tests (the tests
import it from here); not in ``studperf_assets``, because no command needs it."""

from __future__ import annotations

import json
from typing import Any


def read_stream(client: Any, name: str) -> list[dict[str, Any]]:
    """Every record of every shard of stream ``name``, from its start, as JSON."""
    bodies = []
    for shard in client.list_shards(StreamName=name)["Shards"]:
        iterator = client.get_shard_iterator(
            StreamName=name, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            response = client.get_records(ShardIterator=iterator, Limit=1000)
            bodies += [json.loads(r["Data"]) for r in response["Records"]]
            if not response["Records"]:
                break
            iterator = response.get("NextShardIterator")
    return bodies
