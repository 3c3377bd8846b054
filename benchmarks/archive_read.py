"""Reading a 60,000-row window of the predictions archive: DuckDB against pandas.

    python benchmarks/archive_read.py [--rows 60000] [--repeats 3]

The archive as Firehose (or the local stand-in) writes it: GZIP JSON lines, one object per
stream per 60-second buffer, under archive/<kind>/yyyy/MM/dd/HH/. The window is 5 minutes of
200 predictions/s (60,000 rows) and 1 % error records, with the objects of the minutes
around it that ``read_archive`` must also open and filter. Each engine reads the same window
through ``studperf_assets.lib.archive.read_archive`` from a folder and from S3 on a moto
server, alternating, best of ``--repeats``; wall and CPU seconds and the ratio come from the
same run. Figures go to benchmarks/results/archive_read.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "results" / "archive_read.json"
T0 = datetime(2026, 5, 1, 12, 58, tzinfo=UTC)  # the window crosses an hour
WINDOW = timedelta(minutes=5)
BUFFER = timedelta(seconds=60)


def prediction(i: int, at: datetime) -> bytes:
    """A prediction record as the Lambda writes it (service._prediction)."""
    from lambda_service.schema import FEATURE_NAMES

    body: dict[str, Any] = {
        "model_name": "studperf-grade-class",
        "model_version": "v20261127T130346Z-2cb339a3",
        "student_id": 1_000_000 + i,
        "request_id": f"r-{i}",
        "grade_class": i % 5,
        "grade": "ABCDF"[i % 5],
        "probabilities": {"A": 0.05, "B": 0.15, "C": 0.6, "D": 0.1, "F": 0.1},
        "student": {name: (i * 7 + n) % 5 for n, name in enumerate(FEATURE_NAMES)},
        "idempotency_key": f"shardId-000000000000:{i}",
        "predicted_at": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }
    return json.dumps(body, separators=(",", ":")).encode()


def error(i: int, at: datetime) -> bytes:
    body = {
        "reason": "Absences: 40 is over 29",
        "field": "Absences",
        "payload": '{"Absences": 40}',
        "payload_encoding": "utf-8",
        "payload_truncated": False,
        "idempotency_key": f"shardId-000000000000:e{i}",
        "partition_key": str(i),
        "model_version": "v20261127T130346Z-2cb339a3",
        "failed_at": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }
    return json.dumps(body, separators=(",", ":")).encode()


def build(archive: Any, rows: int) -> dict[str, int]:
    """Write the window (``rows`` predictions in it) and 2 minutes before, 1 after; returns
    how many rows of each kind are inside the window."""
    from studperf_assets.lib.archive import deterministic_name, encode_records, object_key

    rate = rows / WINDOW.total_seconds()
    start, end = T0 - timedelta(minutes=2), T0 + WINDOW + timedelta(minutes=1)
    inside = {"predictions": 0, "errors": 0}
    at, i = start, 0
    while at < end:
        chunk_end = min(at + BUFFER, end)
        n = round((chunk_end - at).total_seconds() * rate)
        times = [at + (chunk_end - at) * k / n for k in range(n)]
        objects = {
            "predictions": [prediction(i + k, t) for k, t in enumerate(times)],
            "errors": [error(i + k, t) for k, t in enumerate(times) if (i + k) % 100 == 0],
        }
        for kind, records in objects.items():
            inside[kind] += sum(
                T0 <= t < T0 + WINDOW
                for k, t in enumerate(times)
                if kind == "predictions" or (i + k) % 100 == 0
            )
            name = deterministic_name(kind, "shardId-000000000000", str(i), str(i + n))
            archive.put_bytes(
                object_key(kind, f"studperf-{kind}-archive", at, name), encode_records(records)
            )
        at, i = chunk_end, i + n
    return inside


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(archive: Any, expected: dict[str, int], repeats: int) -> dict[str, Any]:
    from studperf_assets.lib.archive import read_archive

    best: dict[str, dict[str, float]] = {}
    frames = {}
    for _ in range(repeats):
        for engine in ("duckdb", "pandas"):
            wall, used = time.perf_counter(), cpu()
            rows = read_archive(archive, T0, T0 + WINDOW, engine=engine)
            wall, used = time.perf_counter() - wall, cpu() - used
            got = {"predictions": len(rows.predictions), "errors": len(rows.errors)}
            assert got == expected, (engine, got, expected)
            frames[engine] = rows
            if engine not in best or wall < best[engine]["wall_s"]:
                best[engine] = {"wall_s": round(wall, 3), "cpu_s": round(used, 3)}
    import pandas as pd

    pd.testing.assert_frame_equal(
        frames["duckdb"].predictions, frames["pandas"].predictions, check_dtype=False
    )
    objects = sum(len(v) for v in frames["duckdb"].objects.values())
    return {
        **best,
        "objects_read": objects,
        "pandas_over_duckdb_wall": round(best["pandas"]["wall_s"] / best["duckdb"]["wall_s"], 2),
        "pandas_over_duckdb_cpu": round(best["pandas"]["cpu_s"] / best["duckdb"]["cpu_s"], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=60_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import boto3
    import duckdb

    from studperf_assets.lib.archive import FolderArchive, S3Archive
    from studperf_assets.local.moto import ensure_bucket, moto_server

    results: dict[str, Any] = {
        "rows": args.rows,
        "window_s": WINDOW.total_seconds(),
        "duckdb": duckdb.__version__,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    with tempfile.TemporaryDirectory() as folder:
        archive = FolderArchive(Path(folder))
        expected = build(archive, args.rows)
        size = sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())
        results["expected"] = expected
        results["archive_bytes"] = size
        results["folder"] = measure(archive, expected, args.repeats)
        print(f"folder: {json.dumps(results['folder'])}", flush=True)
    with moto_server():
        s3 = boto3.client("s3")
        ensure_bucket(s3, "studperf-bench")
        s3_archive = S3Archive(s3, "studperf-bench", "monitoring")
        build(s3_archive, args.rows)
        results["s3_moto"] = measure(s3_archive, expected, args.repeats)
        print(f"s3 (moto server): {json.dumps(results['s3_moto'])}", flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
