"""Ground truth at volume: 1,000,000 predictions and 1,000,000 labels in the store.

Set-up (not timed as a figure): 5,000 monitored batches of 200 predictions in the
prediction index; 1,000 label files of 1,000 labels each, ingested. Then a new batch of
200 predictions and a new label file for them, and, timed:

- a ``late_labels_sensor`` tick that sees the new file (target <= 2 s);
- the label read of that batch's monitoring run: ingest what is new, then look up the
  batch's labels (target <= 5 s);
- the baseline, in the same run: the approach this replaced, reading every label file
  ever written and joining by StudentID.

On the embedded default (SQLite) and, when it answers, PostgreSQL.
Usage: python benchmarks/labels.py [--files 1000] [--per-file 1000]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results" / "labels.json"
PG_URL = os.environ.get("STUDPERF_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
BATCH = 200


def label_frame(template: Any, ids: range) -> Any:
    """A label file's rows: the template's raw rows with fresh IDs and request IDs."""
    from studperf_assets.lib.labels import REQUEST_ID

    rows = template.iloc[: len(ids)].copy()
    rows["StudentID"] = [i + 1 for i in ids]  # StudentIDs start at 1
    rows.insert(0, REQUEST_ID, [f"r-{i}" for i in ids])
    return rows


def _batch(number: int) -> str:
    return f"batch-{number + 1:06d}"


def populate(truth: Any, files: int, per_file: int, template: Any) -> float:
    """Index files * per_file predictions in batches of 200, write and ingest the labels."""
    import sqlalchemy as sa

    from studperf_assets.lib.labels import write_labels
    from studperf_assets.resources.metrics_db import LABEL_JOINS

    started = time.perf_counter()
    total = files * per_file
    now = datetime.now(UTC)
    for batch in range(total // BATCH):
        ids = range(batch * BATCH, (batch + 1) * BATCH)
        truth.database.index_predictions(_batch(batch), [f"r-{i}" for i in ids])
    with truth.database.connect() as db:
        joins = [
            {"partition": _batch(b), "joined_at": now, "rows": BATCH, "labelled": BATCH}
            for b in range(total // BATCH)
        ]
        db.execute(sa.insert(LABEL_JOINS), joins)
    for n in range(files):
        frame = label_frame(template, range(n * per_file, (n + 1) * per_file))
        write_labels(truth.store, frame, datetime.now(UTC))
    intake = truth.ingest_new()
    assert intake.new_labels == total, intake.new_labels
    return time.perf_counter() - started


def old_read_every_file(store: Any) -> float:
    """The replaced approach: every label file read, concatenated, joined by StudentID."""
    import pandas as pd

    started = time.perf_counter()
    frames = [pd.read_parquet(io.BytesIO(store.get_bytes(k))) for k in store.list_keys("labels/")]
    labels = pd.concat(frames, ignore_index=True).drop_duplicates("StudentID", keep="last")
    assert len(labels) > 0
    return time.perf_counter() - started


def measure(truth: Any, files: int, per_file: int, template: Any) -> dict[str, Any]:
    from dagster import SensorResult, build_sensor_context

    from studperf_assets.lib.labels import write_labels
    from studperf_assets.sensors import build_sensors

    figures: dict[str, Any] = {"setup_s": round(populate(truth, files, per_file, template), 1)}
    (sensor,) = [s for s in build_sensors() if s.name == "late_labels_sensor"]
    resources = {"ground_truth": truth, "metrics_database": truth.database}
    cursor = None
    for _ in range(files):  # the steady state: the sensor has caught up with every file
        with build_sensor_context(cursor=cursor, resources=resources) as context:
            tick: Any = sensor(context)
        if not isinstance(tick, SensorResult):
            break
        cursor = tick.cursor
    total = files * per_file
    new_batch = _batch(total // BATCH)
    new_ids = range(total, total + BATCH)
    truth.database.index_predictions(new_batch, [f"r-{i}" for i in new_ids])
    truth.database.record_label_join(new_batch, datetime.now(UTC) - timedelta(seconds=5), BATCH, 0)
    write_labels(truth.store, label_frame(template, new_ids), datetime.now(UTC))
    started = time.perf_counter()
    with build_sensor_context(cursor=cursor, resources=resources) as context:
        tick = sensor(context)
    figures["sensor_tick_s"] = round(time.perf_counter() - started, 3)
    assert [r.partition_key for r in tick.run_requests] == [new_batch], tick.run_requests
    started = time.perf_counter()
    intake = truth.ingest_new()
    labels = truth.labels_of(f"r-{i}" for i in new_ids)
    figures["run_label_read_s"] = round(time.perf_counter() - started, 3)
    assert intake.new_labels == BATCH and len(labels) == BATCH
    figures["baseline_read_every_file_s"] = round(old_read_every_file(truth.store), 2)
    figures["baseline_over_run_label_read"] = round(
        figures["baseline_read_every_file_s"] / figures["run_label_read_s"], 1
    )
    return figures


def postgres_url() -> str | None:
    try:
        import psycopg2

        admin = psycopg2.connect(PG_URL, connect_timeout=3)
    except Exception:  # noqa: BLE001 - no server: the figure is skipped, and said so
        return None
    admin.autocommit = True
    name = f"studperf_bench_{uuid.uuid4().hex[:8]}"
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    admin.close()
    return f"{PG_URL.rsplit('/', 1)[0].replace('postgresql://', 'postgresql+psycopg2://')}/{name}"


def drop_database(url: str) -> None:
    """Drop a database ``postgres_url`` made (engines of this process disposed first)."""
    import psycopg2
    import sqlalchemy as sa

    sa.create_engine(url).dispose()
    name = url.rsplit("/", 1)[1]
    admin = psycopg2.connect(PG_URL, connect_timeout=3)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--per-file", type=int, default=1000)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from studperf_assets.local.traffic import training_generator
    from studperf_assets.resources.ground_truth import GroundTruth
    from studperf_assets.resources.metrics_db import MetricsDatabase
    from studperf_assets.resources.object_store import LocalObjectStore

    template = training_generator(seed=0).sample(args.per_file)
    databases = {"sqlite": None, "postgresql": postgres_url()}
    results: dict[str, Any] = {
        "predictions": args.files * args.per_file,
        "labels": args.files * args.per_file,
        "label_files": args.files,
        "machine": f"{os.cpu_count()} cores",
        "date": time.strftime("%Y-%m-%d"),
    }
    for name, url in databases.items():
        folder = Path(tempfile.mkdtemp(prefix=f"studperf-labels-{name}-"))
        if name == "postgresql" and url is None:
            print("postgresql: no server answered; skipped")
            continue
        truth = GroundTruth(
            store=LocalObjectStore(root=str(folder / "monitoring")),
            database=MetricsDatabase(url=url or f"sqlite:///{folder / 'monitoring.db'}"),
        )
        try:
            figures = measure(truth, args.files, args.per_file, template)
        finally:
            if name == "postgresql" and url is not None:
                drop_database(url)
        results[name] = figures
        print(
            f"{name}: sensor tick {figures['sensor_tick_s']}s (target <= 2 s); run label read "
            f"{figures['run_label_read_s']}s (target <= 5 s); reading every file as before: "
            f"{figures['baseline_read_every_file_s']}s "
            f"({figures['baseline_over_run_label_read']}x); "
            f"set-up {figures['setup_s']}s"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"-> {RESULTS}")


if __name__ == "__main__":
    main()
