"""Training benchmark: `studperf train` against the reference approach, in one run.

Prints wall time, peak memory and test f1-macro of both, and their ratios; also times
`studperf predict` on all 2,392 rows (lean ONNX path) against loading the skops pipeline
and predicting with scikit-learn. Figures are written to benchmarks/results/training.json.

With ``--rows N`` it measures instead a training run on N rows (the bundled 2,392 plus rows
drawn by ``lib.simulation``'s generator, written as a CSV so the real read path is timed):
wall and CPU seconds, peak RSS and rows fitted, for this tree and for the code at
``--baseline`` (bounded by ``--baseline-timeout``; a run cut off reports the last step it
reached and the candidates it scored), and their ratios. Figures go to
benchmarks/results/training_rows.json.

    python benchmarks/training.py [--seeds 42 7 1234]
    python benchmarks/training.py --rows 1000000 [--baseline 1943bf5] [--baseline-timeout 600]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "results" / "training.json"
ROWS_RESULTS = REPO / "benchmarks" / "results" / "training_rows.json"

_CHILD = """
import json, resource, sys, time
t = time.perf_counter()
sys.path.insert(0, {repo!r})
from benchmarks.reference_training import run
out = run(seed={seed})
out["seconds"] = time.perf_counter() - t
out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""

_SKLEARN_PREDICT = """
import sys, time
t = time.perf_counter()
import pandas as pd
from studperf_assets.lib.data import feature_matrix
from studperf_assets.lib.models import load_skops
pipeline = load_skops({model!r})
frame = pd.read_csv({source!r})
pipeline.predict_proba(feature_matrix(frame))
print(time.perf_counter() - t)
"""


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MB) of the child, and its stdout."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return seconds, max(peak, before) / 1024, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 7, 1234])
    parser.add_argument("--rows", type=int, help="measure a training run on this many rows")
    parser.add_argument("--baseline", default="1943bf5", help="the code before the row cap")
    parser.add_argument("--baseline-timeout", type=float, default=600.0, help="seconds")
    args = parser.parse_args()
    if args.rows:
        from benchmarks.training_rows import compare

        rows_figures = compare(args.rows, args.baseline, args.baseline_timeout)
        ROWS_RESULTS.parent.mkdir(parents=True, exist_ok=True)
        ROWS_RESULTS.write_text(json.dumps(rows_figures, indent=2) + "\n")
        print(json.dumps(rows_figures, indent=2))
        return
    python = sys.executable
    home = Path(tempfile.mkdtemp(prefix="studperf-bench-"))
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "MLFLOW_TRACKING_URI")}
    env["STUDPERF_HOME"] = str(home)

    train_s, train_mb, out = timed([python, "-m", "studperf_assets.cli", "train"], env)
    bundle = Path(out.strip().splitlines()[-1])
    manifest = json.loads((bundle / "manifest.json").read_text())
    studperf = {
        "seconds": round(train_s, 2),
        "peak_rss_mb": round(train_mb, 1),
        "model_family": manifest["model_family"],
        "val_f1_macro": round(manifest["metrics"]["val"]["f1_macro"], 4),
        "test_f1_macro": round(manifest["metrics"]["test"]["f1_macro"], 4),
    }
    print(f"studperf train: {train_s:.1f}s, peak {train_mb:.0f} MB, {studperf}")

    reference = []
    for seed in args.seeds:
        code = _CHILD.format(repo=str(REPO), seed=seed)
        _, _, out = timed([python, "-c", code], env)
        row = json.loads(out.strip().splitlines()[-1])
        reference.append(row)
        print(f"reference (seed {seed}): {row}")
    ref_test = [r["test_f1_macro"] for r in reference]
    ref_seconds = [r["seconds"] for r in reference]

    source = str(REPO / "studperf_assets" / "data" / "Student_performance_data.csv")
    predictions = home / "predictions.csv"
    predict_s, _, _ = timed(
        [python, "-m", "studperf_assets.cli", "predict", "--model", str(bundle),
         "--input", source, "--output", str(predictions)],
        env,
    )  # fmt: skip
    code = _SKLEARN_PREDICT.format(model=str(bundle / "model.skops"), source=source)
    sklearn_s, _, _ = timed([python, "-c", code], env)

    figures: dict[str, Any] = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "studperf_train": studperf,
        "reference": {
            "runs": reference,
            "test_f1_macro_mean": round(sum(ref_test) / len(ref_test), 4),
            "test_f1_macro_min": round(min(ref_test), 4),
            "test_f1_macro_max": round(max(ref_test), 4),
            "seconds_mean": round(sum(ref_seconds) / len(ref_seconds), 2),
        },
        "ratios": {
            "test_f1_macro_gain": round(
                studperf["test_f1_macro"] - sum(ref_test) / len(ref_test), 4
            ),
            "train_time_vs_reference": round(train_s / (sum(ref_seconds) / len(ref_seconds)), 2),
        },
        "predict_all_rows": {
            "studperf_predict_seconds": round(predict_s, 2),
            "sklearn_skops_baseline_seconds": round(sklearn_s, 2),
            "ratio_baseline_over_studperf": round(sklearn_s / predict_s, 2),
        },
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
