"""Does the local consumer keep up? Records scored per second by ``KinesisPoller`` against
the offered rate, for batch sizes and shard counts, on moto server over HTTP.

    python benchmarks/consumer_throughput.py [--bundle DIR] [--drain 10000] \
        [--offered 30000 --rate 1000] [--sizes 100,1000,5000,10000] [--shards 1,2]

Everything runs as ``studperf stream`` runs it: moto server with its Kinesis made to scale
(``studperf_assets.local.moto``), the poller with one reader thread per shard, the real
``lambda_handler`` (its module's service, the bundle loaded from a folder) writing predictions
with PutRecords to a predictions stream of as many shards as the input.

- drain: ``--drain`` records are put first (as fast as moto takes them), then the poller
  reads them all: records scored per second, for each batch size and shard count.
- offered: ``--offered`` records are sent at ``--rate`` per second while the poller runs,
  for the baseline (batch size 100, the old default) and the new default (``--default``):
  records scored per second over the sending time and how long after the last record was
  sent the last one was scored (0 s: the consumer kept up).

The baseline is the 100-record batch of the same run. Trains a bundle unless ``--bundle``
names one. Writes benchmarks/results/consumer_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "results" / "consumer_throughput.json"
BASELINE = 100  # the old --batch-size default


def trained_bundle(home: Path) -> Path:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STUDPERF_", "MLFLOW_"))}
    env |= {"STUDPERF_HOME": str(home)}
    subprocess.run(
        [sys.executable, "-m", "studperf_assets.cli", "train"],
        env=env, cwd=REPO, capture_output=True, check=True,
    )  # fmt: skip
    return next((home / "model_store" / "bundles").iterdir())


def rows(count: int, seed: int) -> Any:
    from studperf_assets.lib.labels import REQUEST_ID
    from studperf_assets.local.traffic import training_generator

    frame = training_generator(seed).sample(count, None, first_id=1_000_000 + seed * count)
    frame.insert(0, REQUEST_ID, [f"bench-{int(i)}" for i in frame["StudentID"]])
    return frame


class Run:
    """One stream set-up: input, predictions and errors streams of ``shards`` shards."""

    def __init__(self, kinesis: Any, tag: str, shards: int, bundle: Path, cache: Path) -> None:
        from studperf_assets.local.lambda_runtime import init_handler
        from studperf_assets.local.moto import ensure_stream

        self.kinesis = kinesis
        self.names = {k: f"bench-{tag}-{k}" for k in ("in", "out", "err")}
        for name in self.names.values():
            ensure_stream(kinesis, name, shards)
        self.handler = init_handler(
            {
                "MODEL_BUNDLE_URI": str(bundle),
                "MODEL_CACHE_DIR": str(cache),
                "PREDICTIONS_STREAM_NAME": self.names["out"],
                "ERRORS_STREAM_NAME": self.names["err"],
                "AWS_ENDPOINT_URL": os.environ["AWS_ENDPOINT_URL"],
            }
        )
        self.handler.COLD_START.ready()

    def poller(self, batch_size: int) -> Any:
        from studperf_assets.local.poller import KinesisPoller

        return KinesisPoller(
            self.kinesis, self.names["in"], self.handler.lambda_handler, batch_size=batch_size
        )

    def scored(self) -> int:
        """Records on the predictions stream (every bench record is valid: one each)."""
        total = 0
        for shard in self.kinesis.list_shards(StreamName=self.names["out"])["Shards"]:
            iterator = self.kinesis.get_shard_iterator(
                StreamName=self.names["out"], ShardId=shard["ShardId"],
                ShardIteratorType="TRIM_HORIZON",
            )["ShardIterator"]  # fmt: skip
            while iterator:
                response = self.kinesis.get_records(ShardIterator=iterator, Limit=10_000)
                total += len(response["Records"])
                if not response["Records"]:
                    break
                iterator = response.get("NextShardIterator")
        return total


def drain(kinesis: Any, tag: str, shards: int, size: int, count: int, env: dict[str, Any]) -> dict:
    from studperf_assets.local.traffic import send

    run = Run(kinesis, tag, shards, env["bundle"], env["cache"])
    send(kinesis, run.names["in"], env["rows"][:count])
    poller = run.poller(size)
    started = time.perf_counter()
    stats = poller.run(max_records=count, poll_interval=0.05)
    seconds = time.perf_counter() - started
    scored = run.scored()
    assert stats.records == count and scored == count, (stats, scored)
    return {
        "shards": shards,
        "batch_size": size,
        "records": count,
        "batches": stats.batches,
        "seconds": round(seconds, 2),
        "records_per_s": round(count / seconds),
    }


def offered(
    kinesis: Any, tag: str, shards: int, size: int, count: int, rate: float, env: dict[str, Any]
) -> dict:
    from studperf_assets.local.traffic import send

    run = Run(kinesis, tag, shards, env["bundle"], env["cache"])
    poller = run.poller(size)
    result: dict[str, Any] = {}

    def consume() -> None:
        result["stats"] = poller.run(max_records=count, poll_interval=0.05)
        result["done"] = time.perf_counter()

    consumer = threading.Thread(target=consume)
    started = time.perf_counter()
    consumer.start()
    report = send(kinesis, run.names["in"], env["rows"][:count], rate=rate)
    sent_at = time.perf_counter()
    consumer.join()
    stats = result["stats"]
    scored = run.scored()
    assert stats.records == count and scored == count, (stats, scored)
    return {
        "shards": shards,
        "batch_size": size,
        "records": count,
        "offered_per_s": round(count / report.seconds),
        "scored_per_s": round(count / (result["done"] - started)),
        "last_scored_after_last_sent_s": round(max(0.0, result["done"] - sent_at), 2),
        "batches": stats.batches,
        "mean_batch": round(count / stats.batches),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bundle", type=Path, help="a bundle folder (default: train one)")
    parser.add_argument("--drain", type=int, default=10_000, help="records per drain run")
    parser.add_argument("--offered", type=int, default=30_000, help="records per offered run")
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--sizes", default="100,1000,5000,10000")
    parser.add_argument("--shards", default="1,2")
    parser.add_argument("--default", type=int, default=None, help="default: the poller's own")
    args = parser.parse_args()
    os.environ["LOG_LEVEL"] = "WARNING"  # the handler's line per batch would be the output
    logging.basicConfig(level=logging.WARNING)
    from studperf_assets.local.moto import moto_server
    from studperf_assets.local.poller import DEFAULT_BATCH_SIZE

    new_default = args.default or DEFAULT_BATCH_SIZE
    scratch = Path(tempfile.mkdtemp(prefix="studperf-consumer-"))
    bundle = args.bundle or trained_bundle(scratch / "home")
    sizes = [int(s) for s in args.sizes.split(",")]
    shard_counts = [int(s) for s in args.shards.split(",")]
    with moto_server():
        import boto3

        kinesis = boto3.client("kinesis")
        env = {
            "bundle": bundle,
            "cache": scratch / "cache",
            "rows": rows(max(args.drain, args.offered), seed=7),
        }
        drains = []
        for shards in shard_counts:
            for size in sizes:
                figure = drain(kinesis, f"d{shards}-{size}", shards, size, args.drain, env)
                drains.append(figure)
                print(json.dumps(figure), flush=True)
        offers = []
        if args.offered:
            for size in (BASELINE, new_default):
                shards = max(shard_counts)
                figure = offered(
                    kinesis, f"o{shards}-{size}", shards, size, args.offered, args.rate, env
                )
                offers.append(figure)
                print(json.dumps(figure), flush=True)

    def ratio(figures: list[dict], key: str, shards: int) -> float | None:
        by_size = {f["batch_size"]: f[key] for f in figures if f["shards"] == shards}
        if BASELINE in by_size and new_default in by_size:
            return round(by_size[new_default] / by_size[BASELINE], 2)
        return None

    results = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} cores, Python {sys.version.split()[0]}",
        "baseline_batch_size": BASELINE,
        "default_batch_size": new_default,
        "drain": drains,
        "drain_ratio_default_over_baseline": {
            str(s): ratio(drains, "records_per_s", s) for s in shard_counts
        },
        "offered": offers,
        "offered_ratio_default_over_baseline": ratio(offers, "scored_per_s", max(shard_counts)),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: v for k, v in results.items() if "ratio" in k}, indent=2))
    print(f"-> {RESULTS}")


if __name__ == "__main__":
    main()
