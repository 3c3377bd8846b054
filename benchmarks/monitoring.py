"""Monitoring benchmark: drift report time by window size, sampling error, the bytes a
window's value keeps (sampled against every row), and the whole
per-window path (Lambda, archive, window sensor, report, metrics, checks) end to end.

    python benchmarks/monitoring.py [--skip-full-million]

Figures go to benchmarks/results/monitoring.json. Batches come from the simulator (fitted
on the training split); half of each batch is drifted (absences +8, study time x0.5) so
the scores are not all near zero.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "results" / "monitoring.json"
warnings.filterwarnings("ignore")


def batch(generator: Any, rows: int) -> pd.DataFrame:
    from studperf_assets.lib import data
    from studperf_assets.lib.simulation import Drift

    half = rows // 2
    frame = pd.concat(
        [
            generator.sample(half),
            generator.sample(rows - half, Drift(absences_added=8, study_time_factor=0.5)),
        ],
        ignore_index=True,
    )
    return frame.assign(prediction=data.grade_from_gpa(frame["GPA"]), target=frame["GradeClass"])


def timed_report(
    reference: pd.DataFrame, current: pd.DataFrame, sample_rows: int
) -> tuple[float, Any]:
    from studperf_assets.lib.drift import drift_report

    started = time.perf_counter()
    result = drift_report(reference, current, sample_rows=sample_rows)
    return time.perf_counter() - started, result.summary


def stored_bytes(current: pd.DataFrame, sample_rows: int) -> int:
    """Bytes of a window's asset value as the IO manager writes it (Parquet frames)."""
    import io

    from studperf_assets.lib.window_contents import WindowContents

    total = 0
    for frame in WindowContents.of(current, sample_rows, seed=0).to_frames().values():
        buffer = io.BytesIO()
        frame.to_parquet(buffer)
        total += len(buffer.getvalue())
    return total


def end_to_end(rows: int) -> dict[str, float]:
    """Train, stream ``rows`` predictions through ``lambda_handler`` on moto, archive them
    with the Firehose stand-in, close one window with the sensor and materialize it: the
    per-window path, timed."""
    import boto3
    from dagster import SensorResult, build_sensor_context, instance_for_test

    from studperf_assets.definitions import make_definitions
    from studperf_assets.deployment import Deployment
    from studperf_assets.local.firehose import FirehoseStandIn
    from studperf_assets.local.firehose import run as run_archive
    from studperf_assets.local.lambda_runtime import init_handler
    from studperf_assets.local.moto import ensure_stream, moto_server
    from studperf_assets.local.poller import Checkpoints, KinesisPoller
    from studperf_assets.local.traffic import simulate, training_generator
    from studperf_assets.local.training_run import run_training

    home = Path(tempfile.mkdtemp(prefix="studperf-monitoring-bench-"))
    with moto_server():
        kinesis = boto3.client("kinesis")
        for name in ("bench-in", "bench-predictions", "bench-errors"):
            ensure_stream(kinesis, name)
        deployment = Deployment(
            home=home,
            predictions_stream="bench-predictions",
            monitoring={  # one window of everything sent, closed at once (as the demo's)
                "window_seconds": 1,
                "min_window_rows": rows,
                "window_settle_seconds": 0,
            },
        )
        definitions = make_definitions(deployment)
        resources = dict(definitions.resources or {})
        with instance_for_test() as instance:
            assert run_training(instance=instance, definitions=definitions).success
            simulate(
                kinesis, "bench-in", resources["object_store"], training_generator(seed=5), rows
            )
            handler = init_handler(
                {
                    **os.environ,
                    "MODEL_BUNDLE_URI": str(home / "model_store"),
                    "MODEL_CACHE_DIR": str(home / "cache"),
                    "PREDICTIONS_STREAM_NAME": "bench-predictions",
                    "ERRORS_STREAM_NAME": "bench-errors",
                }
            )
            KinesisPoller(kinesis, "bench-in", handler.lambda_handler, batch_size=500).run(
                until_idle=1, poll_interval=0
            )
            archivers = [
                FirehoseStandIn(
                    kinesis,
                    f"bench-{kind}",
                    kind,
                    resources["object_store"].archive(),
                    Checkpoints(home / "archive" / f"{kind}.json"),
                )
                for kind in ("predictions", "errors")
            ]
            run_archive(archivers, until_idle=1, poll_interval=0, sleep=lambda _s: None)
            time.sleep(1.1)  # the one-second window is over
            started = time.perf_counter()
            with build_sensor_context(instance=instance, resources=resources) as context:
                result = definitions.resolve_sensor_def("prediction_window_sensor")(context)
            assert isinstance(result, SensorResult) and result.run_requests
            requests = list(result.run_requests)
            sensor_s = time.perf_counter() - started
            for request in requests:
                instance.add_dynamic_partitions("monitoring_windows", [str(request.partition_key)])
            started = time.perf_counter()
            for request in requests:
                run = definitions.resolve_job_def("monitoring_job").execute_in_process(
                    run_config=request.run_config,
                    partition_key=request.partition_key,
                    instance=instance,
                    tags=request.tags,
                )
                assert run.success
            run_s = time.perf_counter() - started
    return {
        "rows": rows,
        "windows": len(requests),
        "sensor_seconds": round(sensor_s, 2),
        "monitoring_run_seconds": round(run_s, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--skip-full-million", action="store_true", help="do not run 1M rows unsampled"
    )
    args = parser.parse_args()
    from studperf_assets.lib.drift_summary import DEFAULT_SAMPLE_ROWS
    from studperf_assets.local.traffic import training_generator

    generator = training_generator(seed=3)
    from studperf_assets.lib import data

    raw = data.parse_raw_csv(data.bundled_dataset_path().read_bytes())
    splits = data.reference_split(data.select_features(raw))
    reference = pd.concat([splits["val"], splits["test"]])
    reference = reference.assign(prediction=reference["GradeClass"], target=reference["GradeClass"])
    figures: dict[str, Any] = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} cores, Python {sys.version.split()[0]}",
        "reference_rows": len(reference),
        "sample_rows": DEFAULT_SAMPLE_ROWS,
        "reports": {},
    }
    for rows in (2_000, 60_000, 1_000_000):
        current = batch(generator, rows)
        seconds, summary = timed_report(reference, current, DEFAULT_SAMPLE_ROWS)
        entry: dict[str, Any] = {
            "seconds": round(seconds, 2),
            "rows_compared": summary.rows_compared,
            "stored_bytes": stored_bytes(current, DEFAULT_SAMPLE_ROWS),
        }
        if rows > DEFAULT_SAMPLE_ROWS and (rows < 1_000_000 or not args.skip_full_million):
            full_seconds, full = timed_report(reference, current, rows)
            errors = {
                c: abs(summary.feature_scores[c] - full.feature_scores[c])
                for c in full.feature_scores
            }
            entry.update(
                unsampled_seconds=round(full_seconds, 2),
                sampling_speedup=round(full_seconds / seconds, 1),
                max_score_error=round(max(errors.values()), 4),
                prediction_drift_error=round(
                    abs(summary.prediction_drift - full.prediction_drift), 4
                ),
                f1_error=round(abs((summary.f1_macro or 0) - (full.f1_macro or 0)), 4),
                same_drifted_features=summary.drifted_features == full.drifted_features,
                unsampled_stored_bytes=stored_bytes(current, rows),
            )
        figures["reports"][str(rows)] = entry
        print(f"{rows} rows: {entry}")
    figures["end_to_end"] = end_to_end(2_000)
    print("end to end:", figures["end_to_end"])
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
