"""Serving benchmark: cold start, handler throughput, HTTP latency, and the reference
approach on the same bundle in the same run.

    python benchmarks/serving.py [--seconds 10] [--rate 200]

Trains a bundle into a temporary STUDPERF_HOME, publishes it to S3 on a local moto server,
then measures (figures also written to benchmarks/results/serving.json):

- cold start: a fresh process importing the Lambda handler, which fetches the bundle from
  S3, verifies it and loads it; against a process loading the skops pipeline with
  scikit-learn (what serving the source-of-truth model would cost);
- handler records/s for batches of 1, 100 and 500, with the output on moto Kinesis and
  with a no-op sink (compute alone), one core;
- the reference approach (a DataFrame per record, the pipeline called per record, every
  record logged) on the same bundle: the ratio;
- `studperf serve` p50/p99 under an open-loop load on loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "results" / "serving.json"

COLD_START = """
import time
started = time.perf_counter()
import lambda_service.handler as handler
assert handler.COLD_START.service is not None, handler.COLD_START.error
print(time.perf_counter() - started)
"""

COLD_START_SKLEARN = """
import time, tempfile
started = time.perf_counter()
import boto3
import pandas
from studperf_assets.lib.models import load_skops
bucket, key = {bucket!r}, {key!r}
path = tempfile.mktemp(suffix=".skops")
boto3.client("s3").download_file(bucket, key, path)
load_skops(path)
print(time.perf_counter() - started)
"""


def student(i: int) -> dict[str, Any]:
    return {
        "ParentalEducation": i % 5,
        "StudyTimeWeekly": (i * 7.3) % 20,
        "Absences": i % 30,
        "Tutoring": i % 2,
        "ParentalSupport": (i // 3) % 5,
        "Extracurricular": (i // 2) % 2,
        "Sports": (i // 5) % 2,
        "Music": (i // 7) % 2,
        "Volunteering": (i // 11) % 2,
        "Age": 16,
    }


def kinesis_batch(size: int, offset: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "kinesis": {
                "partitionKey": str(i),
                "sequenceNumber": str(offset + i),
                "data": base64.b64encode(
                    json.dumps({"student_id": offset + i, "student": student(offset + i)}).encode()
                ).decode(),
            },
            "eventID": f"shardId-000000000000:{offset + i}",
        }
        for i in range(size)
    ]


class NullSink:
    def put(self, stream: str, entries: Sequence[Any]) -> list[str]:
        return []


def run_quiet(code: str, env: dict[str, str]) -> float:
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return float(done.stdout.strip().splitlines()[-1])


def throughput(service: Any, size: int, total: int) -> float:
    batches = [kinesis_batch(size, offset=k * size) for k in range(max(1, total // size))]
    started = time.perf_counter()
    for batch in batches:
        outcome = service.handle_kinesis(batch)
        assert outcome.predictions == size, outcome
    return size * len(batches) / (time.perf_counter() - started)


def reference_throughput(pipeline: Any, total: int) -> float:
    """The reference Lambda: a DataFrame per record, predict per record, log every record."""
    import pandas as pd

    from lambda_service.schema import FEATURE_NAMES

    log = logging.getLogger("reference")
    records = kinesis_batch(total)
    started = time.perf_counter()
    for record in records:
        message = json.loads(base64.b64decode(record["kinesis"]["data"]))
        frame = pd.DataFrame([message["student"]])[list(FEATURE_NAMES)]
        label = int(pipeline.predict(frame.to_numpy())[0])
        result = {"student_id": message["student_id"], "grade_class": label}
        log.info("prediction %s", json.dumps(result))
    return total / (time.perf_counter() - started)


async def http_load(url: str, rate: float, seconds: float) -> list[float]:
    """Open-loop load: a request every 1/rate s regardless of answers; latencies in ms."""
    import httpx

    body = student(3)
    latencies: list[float] = []
    async with httpx.AsyncClient(
        base_url=url, timeout=5.0, limits=httpx.Limits(max_connections=64)
    ) as client:

        async def one() -> None:
            started = time.perf_counter()
            response = await client.post("/predict", json=body)
            response.raise_for_status()
            latencies.append((time.perf_counter() - started) * 1000)

        tasks = []
        begin = time.perf_counter()
        for k in range(int(rate * seconds)):
            delay = begin + k / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
    return latencies


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def train_bundle(env: dict[str, str]) -> Path:
    command = [sys.executable, "-m", "studperf_assets.cli", "train"]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    return Path(out.strip().splitlines()[-1])


def measure_cold_start(env: dict[str, str], version: str) -> dict[str, float]:
    lambda_env = {
        **env,
        "MODEL_BUNDLE_URI": f"s3://bench/models/bundles/{version}",
        "PREDICTIONS_STREAM_NAME": "bench-out",
        "ERRORS_STREAM_NAME": "bench-err",
    }
    cold = []
    for _ in range(5):
        lambda_env["MODEL_CACHE_DIR"] = tempfile.mkdtemp()  # a cold /tmp each time
        cold.append(run_quiet(COLD_START, lambda_env))
    skops_key = f"models/bundles/{version}/model.skops"
    sk = [
        run_quiet(COLD_START_SKLEARN.format(bucket="bench", key=skops_key), env) for _ in range(3)
    ]
    return {
        "lambda_median": round(statistics.median(cold), 3),
        "lambda_max": round(max(cold), 3),
        "sklearn_skops_median": round(statistics.median(sk), 3),
        "ratio_sklearn_over_lambda": round(statistics.median(sk) / statistics.median(cold), 2),
    }


def measure_handler(version: str, bundle: Path, cache: Path, records: int) -> dict[str, Any]:
    import boto3

    from lambda_service.model_provider import ModelProvider
    from lambda_service.service import PredictionService
    from lambda_service.streams import KinesisSink
    from studperf_assets.lib.models import load_skops

    provider = ModelProvider(f"s3://bench/models/bundles/{version}", cache, s3=boto3.client("s3"))
    sink = KinesisSink(boto3.client("kinesis"))
    on_moto = PredictionService(provider, sink, "bench-out", "bench-err")
    compute = PredictionService(provider, NullSink(), "out", "err")
    logging.getLogger("studperf").setLevel(logging.WARNING)
    rows = {}
    for size in (1, 100, 500):
        total = min(records, 2000) if size == 1 else records
        rows[str(size)] = {
            "noop_sink_records_per_s": round(throughput(compute, size, total)),
            "moto_kinesis_records_per_s": round(throughput(on_moto, size, min(total, 5000))),
        }
        print(f"batch {size}: {rows[str(size)]}")
    devnull = open(os.devnull, "w")  # noqa: SIM115 - the reference logs every record
    logging.basicConfig(stream=devnull, level=logging.INFO, force=True)
    reference = reference_throughput(load_skops(bundle / "model.skops"), 2000)
    logging.getLogger().setLevel(logging.WARNING)
    ratio = rows["500"]["noop_sink_records_per_s"] / reference
    print(f"reference: {reference:.0f} records/s; ratio {ratio:.1f}x")
    return {
        "handler": rows,
        "reference_records_per_s": round(reference),
        "ratio_compute_500_over_reference": round(ratio, 1),
    }


def measure_http(env: dict[str, str], bundle: Path, rate: float, seconds: float) -> dict[str, Any]:
    import httpx

    from studperf_assets.local.moto import free_port

    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "studperf_assets.cli",
            "serve",
            "--model",
            str(bundle),
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/health", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        asyncio.run(http_load(url, rate, 1.0))  # warm-up
        latencies = asyncio.run(http_load(url, rate, seconds))
    finally:
        server.terminate()
        server.wait(timeout=10)
    return {
        "rate_per_s": rate,
        "requests": len(latencies),
        "p50_ms": round(percentile(latencies, 0.50), 2),
        "p99_ms": round(percentile(latencies, 0.99), 2),
        "max_ms": round(max(latencies), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="HTTP load duration")
    parser.add_argument("--rate", type=float, default=200.0, help="HTTP requests per second")
    parser.add_argument("--records", type=int, default=20000, help="records per throughput case")
    args = parser.parse_args()

    import boto3

    from studperf_assets.local.moto import moto_server

    home = Path(tempfile.mkdtemp(prefix="studperf-serving-bench-"))
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "MLFLOW_TRACKING_URI")}
    env["STUDPERF_HOME"] = str(home)
    bundle = train_bundle(env)
    version = bundle.name
    figures: dict[str, Any] = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} cores, Python {sys.version.split()[0]}",
        "bundle": version,
    }
    with moto_server():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="bench")
        for path in bundle.iterdir():
            s3.upload_file(str(path), "bench", f"models/bundles/{version}/{path.name}")
        kinesis = boto3.client("kinesis")
        for name in ("bench-out", "bench-err"):
            kinesis.create_stream(StreamName=name, ShardCount=1)
        env.update({k: v for k, v in os.environ.items() if k.startswith("AWS_")})
        figures["cold_start_s"] = measure_cold_start(env, version)
        print("cold start:", figures["cold_start_s"])
        figures.update(measure_handler(version, bundle, home / "cache", args.records))
    figures["http"] = measure_http(env, bundle, args.rate, args.seconds)
    print("http:", figures["http"])
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
