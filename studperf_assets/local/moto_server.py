"""moto's server, the local stand-in for AWS, with its Kinesis shards made to scale.

moto 5 keeps a shard's records in a dict and walks all of them on every PutRecords entry (to
find the last sequence number) and on every GetRecords call (to find where to start), so
the cost of a record grows with the records before it: at 100,000 records a PutRecords of
500 took 0.78 s (measured; ``benchmarks/stream_records.py``), and traffic of 1,000 records
a second stalls within minutes. It also keeps every record forever. Here, before moto's own
``main`` runs, a shard finds its last sequence number in O(1) and where to read from by
bisection, and drops records older than its retention (``STUDPERF_LOCAL_KINESIS_RETENTION``
seconds, 900 by default: the local stack archives every prediction, so nothing downstream
reads a stream further back; Kinesis itself keeps 24 hours). What a client sees is moto's
behaviour otherwise: the same sequence numbers, iterators, errors and shapes.

Run as ``python -m studperf_assets.local.moto_server [moto.server arguments]``.
"""

from __future__ import annotations

import bisect
import os
import sys
import threading
import time
from typing import Any

RETENTION_VARIABLE = "STUDPERF_LOCAL_KINESIS_RETENTION"
DEFAULT_RETENTION_SECONDS = 900.0


def patch_kinesis(retention_seconds: float = DEFAULT_RETENTION_SECONDS) -> None:
    """Replace moto's per-shard record bookkeeping with one that scales (idempotent)."""
    from moto.kinesis import models

    shard_class: Any = models.Shard
    if getattr(shard_class, "_studperf_scales", False):
        return
    record_class: Any = models.Record
    # moto's server answers each request in a thread: writers to one shard (two consumers'
    # readers writing predictions) must not draw the same sequence number, nor a read meet
    # records a trim is deleting.
    lock = threading.Lock()

    def keys(shard: Any) -> list[int]:
        """Sequence numbers in order; rebuilt if moto replaced the dict (splits, merges)."""
        cached = shard.__dict__.get("_keys")
        if cached is None or len(cached) != len(shard.records):
            cached = list(shard.records)
            shard.__dict__["_keys"] = cached
        return cached

    def trim(shard: Any) -> None:
        records, order = shard.records, keys(shard)
        cutoff = time.time() - retention_seconds
        drop = 0
        while drop < len(order) and records[order[drop]].created_at < cutoff:
            drop += 1
        if drop:
            for sequence in order[:drop]:
                del records[sequence]
            del order[:drop]

    def put_record(self: Any, partition_key: str, data: str, explicit_hash_key: str) -> str:
        with lock:
            return _put_record(self, partition_key, data, explicit_hash_key)

    def _put_record(self: Any, partition_key: str, data: str, explicit_hash_key: str) -> str:
        order = keys(self)
        sequence = (order[-1] if order else self.__dict__.get("_last", 0)) + 1
        self.records[sequence] = record_class(partition_key, data, sequence, explicit_hash_key)
        order.append(sequence)
        self.__dict__["_last"] = sequence
        if sequence % 1000 == 0:
            trim(self)
        return str(sequence)

    def get_records(
        self: Any, last_sequence_id: str, limit: int | None
    ) -> tuple[list[Any], int, int]:
        with lock:
            return _get_records(self, last_sequence_id, limit)

    def _get_records(
        self: Any, last_sequence_id: str, limit: int | None
    ) -> tuple[list[Any], int, int]:
        order = keys(self)
        last = int(last_sequence_id)
        start = bisect.bisect_right(order, last)
        stop = len(order) if limit is None else min(len(order), start + limit)
        results = [self.records[sequence] for sequence in order[start:stop]]
        if not results:
            return [], last, 0
        behind = self.records[order[-1]].created_at - results[-1].created_at
        return results, results[-1].sequence_number, int(behind * 1000)

    def get_min_sequence_number(self: Any) -> int:
        order = keys(self)
        return order[0] if order else 0

    def get_max_sequence_number(self: Any) -> int:
        order = keys(self)
        return order[-1] if order else self.__dict__.get("_last", 0)

    shard_class.put_record = put_record
    shard_class.get_records = get_records
    shard_class.get_min_sequence_number = get_min_sequence_number
    shard_class.get_max_sequence_number = get_max_sequence_number
    shard_class._studperf_scales = True


def main(argv: list[str] | None = None) -> None:
    retention = float(os.environ.get(RETENTION_VARIABLE, DEFAULT_RETENTION_SECONDS))
    patch_kinesis(retention)
    from moto.server import main as moto_main

    moto_main(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
