"""The prediction index's bytes per prediction: hashed (``prediction_ids``, migration 0006)
against the layout it replaced (window key and request ID per prediction, from the same run),
on SQLite and PostgreSQL.

    python benchmarks/prediction_index.py [--windows 20] [--per-window 30000]

Request IDs are UUIDs (36 characters, what most producers send); window keys are the
stack's (``2026-12-01T10:00:00Z``). Figures go to benchmarks/results/prediction_index.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results" / "prediction_index.json"
sys.path.insert(0, str(REPO))

OLD = sa.MetaData()
OLD_INDEX = sa.Table(  # prediction_index as migrations 0001-0005 made it
    "prediction_index",
    OLD,
    sa.Column("partition", sa.String(200), primary_key=True),
    sa.Column("request_id", sa.String(128), primary_key=True),
    sa.Index("ix_prediction_index_request_id", "request_id"),
)


def windows(count: int, per_window: int) -> list[tuple[str, list[str]]]:
    return [
        (f"2026-12-01T10:{n:02d}:00Z", [str(uuid.uuid4()) for _ in range(per_window)])
        for n in range(count)
    ]


def size(engine: sa.Engine, tables: list[str], path: Path | None) -> int:
    if path is not None:  # SQLite: the file, checkpointed
        with engine.begin() as db:
            db.execute(sa.text("PRAGMA wal_checkpoint(TRUNCATE)"))
        return path.stat().st_size
    with engine.connect() as db:
        return sum(
            int(db.execute(sa.text(f"SELECT pg_total_relation_size('{t}')")).scalar_one())
            for t in tables
        )


def measure(url: str, path: Path | None, data: list[tuple[str, list[str]]]) -> dict[str, Any]:
    from studperf_assets.resources.metrics_db import MetricsDatabase

    database = MetricsDatabase(url=url)
    database.label_count()  # migrated
    engine = sa.create_engine(url)
    tables = ["indexed_windows", "prediction_ids"]
    empty = size(engine, tables, path)
    started = time.perf_counter()
    for key, ids in data:
        database.index_predictions(key, ids)
    hashed_s = time.perf_counter() - started
    hashed = size(engine, tables, path) - empty
    OLD.create_all(engine)
    before = size(engine, ["prediction_index"], path)
    started = time.perf_counter()
    with engine.begin() as db:
        for key, ids in data:
            db.execute(sa.insert(OLD_INDEX), [{"partition": key, "request_id": r} for r in ids])
    old_s = time.perf_counter() - started
    old = size(engine, ["prediction_index"], path) - (before if path is not None else 0)
    predictions = sum(len(ids) for _, ids in data)
    return {
        "hashed_bytes_per_prediction": round(hashed / predictions, 1),
        "old_bytes_per_prediction": round(old / predictions, 1),
        "old_over_hashed": round(old / hashed, 1),
        "hashed_write_s": round(hashed_s, 2),
        "old_write_s": round(old_s, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--windows", type=int, default=20)
    parser.add_argument("--per-window", type=int, default=30_000)
    args = parser.parse_args()
    from benchmarks.labels import drop_database, postgres_url

    data = windows(args.windows, args.per_window)
    results: dict[str, Any] = {
        "predictions": args.windows * args.per_window,
        "machine": f"{os.cpu_count()} cores",
        "date": time.strftime("%Y-%m-%d"),
    }
    path = Path(tempfile.mkdtemp(prefix="studperf-index-")) / "monitoring.db"
    results["sqlite"] = measure(f"sqlite:///{path}", path, data)
    print("sqlite:", results["sqlite"])
    url = postgres_url()
    if url is None:
        print("postgresql: no server answered; skipped")
    else:
        try:
            results["postgresql"] = measure(url, None, data)
        finally:
            drop_database(url)
        print("postgresql:", results["postgresql"])
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
