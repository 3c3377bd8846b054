"""A training run on many rows, this tree against a baseline revision (``training.py --rows``).

The rows are the bundled 2,392 plus students drawn by ``lib.simulation``'s generator
(fitted on the reference split's train rows), written as a CSV so the real read path is
timed. Each run is a fresh process (``run_training`` on an ephemeral Dagster instance, the
same call ``studperf train --data`` makes); its own wall and CPU seconds and peak RSS are
read with ``os.wait4``. A run past its timeout is killed and reports how far it got: the
last step that logged and the candidates it had scored. A learning curve (test f1-macro of
one candidate per family by rows fitted) shows where more rows stop paying.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

CHILD = """
import json, sys
from pathlib import Path
from dagster import AssetKey, DagsterInstance
from studperf_assets.definitions import make_definitions
from studperf_assets.deployment import Deployment
from studperf_assets.local.training_run import run_training
home, source = Path(sys.argv[1]), sys.argv[2]
instance = DagsterInstance.ephemeral()
outcome = run_training(source=source, instance=instance,
                       definitions=make_definitions(Deployment(home=home)))
def metadata(key):
    event = instance.get_latest_materialization_event(AssetKey(key))
    if event is None:
        return {}
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}
raw = metadata("raw_student_data")
started, step_seconds = {}, {}
for entry in instance.all_logs(outcome.run_id):
    kind = entry.dagster_event_type.value if entry.dagster_event_type else ""
    if kind == "STEP_START":
        started[entry.step_key] = entry.timestamp
    elif kind == "STEP_SUCCESS" and entry.step_key in started:
        step_seconds[entry.step_key] = round(entry.timestamp - started[entry.step_key], 1)
print(json.dumps({
    "step_seconds": step_seconds,
    "success": outcome.success, "failures": outcome.failures, "bundle": outcome.bundle,
    "raw_rows": raw.get("rows"), "rows_offered": raw.get("rows_offered"),
    "rows_dropped": raw.get("rows_dropped_total"),
    "train_rows": metadata("data_splits").get("train_rows"),
}, default=str))
"""
# "... - dagster - INFO - training_job - <run id> - <step> - <message>"
LOG_LINE = re.compile(r" - dagster - \w+ - training_job - [0-9a-f-]+ - (\w+) - (.*)$")


def write_rows(rows: int, path: Path) -> None:
    import pandas as pd

    from studperf_assets.lib import data
    from studperf_assets.lib.simulation import StudentGenerator

    raw = data.parse_raw_csv(data.bundled_dataset_path().read_bytes())
    train = data.reference_split(data.select_features(raw))["train"]
    drawn = StudentGenerator(raw.loc[train.index], seed=0).sample(max(rows - len(raw), 0))
    pd.concat([raw, drawn], ignore_index=True).head(rows).to_csv(path, index=False)


def extract_tree(revision: str, target: Path) -> Path:
    """``studperf_assets`` and ``lambda_service`` as they were at ``revision``."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", revision, "studperf_assets", "lambda_service"],
        cwd=REPO, capture_output=True, check=True,
    ).stdout  # fmt: skip
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    return target


def progress(log: str) -> dict[str, Any]:
    """How far a run got, from its Dagster log: the last step that logged, candidates scored."""
    steps = [m.groups() for m in map(LOG_LINE.search, log.splitlines()) if m]
    return {
        "last_step_logged": steps[-1][0] if steps else None,
        "candidates_scored": sum(1 for _, message in steps if "cv f1-macro" in message),
        "log_tail": [message[:160] for _, message in steps[-3:]],
    }


def run(root: Path, source: Path, timeout: float, scratch: Path) -> dict[str, Any]:
    """One training run in a fresh process whose code comes from ``root``."""
    ours = ("STUDPERF_", "MLFLOW_", "DAGSTER_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    env["PYTHONPATH"] = str(root)  # ahead of the editable install
    scratch.mkdir(parents=True)
    out, err = (scratch / "stdout").open("w+"), (scratch / "stderr").open("w+")
    command = [sys.executable, "-c", CHILD, str(scratch / "home"), str(source)]
    started = time.perf_counter()
    child = subprocess.Popen(command, env=env, cwd=root, stdout=out, stderr=err)
    status, usage, timed_out = 0, None, False
    while usage is None:
        pid, status, rusage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            usage = rusage
        elif time.perf_counter() - started > timeout:
            child.send_signal(signal.SIGKILL)
            _, status, usage = os.wait4(child.pid, 0)
            timed_out = True
        else:
            time.sleep(0.2)
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    seconds = time.perf_counter() - started
    out.seek(0)
    err.seek(0)
    stdout, stderr = out.read(), err.read()
    out.close()
    err.close()
    figures: dict[str, Any] = {
        "wall_seconds": round(seconds, 1),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "timed_out": timed_out,
        "exit_code": child.returncode,
    }
    lines = stdout.strip().splitlines()
    if lines and not timed_out:
        result = json.loads(lines[-1])
        figures.update(
            success=result["success"],
            failures=result["failures"][:3],
            rows_read=sum((result["rows_offered"] or {"all": result["raw_rows"]}).values()),
            rows_after_cap=result["raw_rows"],
            rows_dropped=result["rows_dropped"],
            rows_fitted=result["train_rows"],
            model_family=(result["bundle"] or {}).get("model_family"),
            test_f1_macro=(result["bundle"] or {}).get("test_f1_macro"),
            step_seconds=result["step_seconds"],
        )
    else:
        figures.update(rows_fitted=None, **progress(stderr))
    return figures


def learning_curve(
    source: Path, sizes: tuple[int, ...] = (2_000, 10_000, 50_000, 200_000)
) -> dict[str, Any]:
    """Test f1-macro of one candidate of each family by the rows it is fitted on, on 100,000
    drawn students it never saw: where more rows stop paying (``max_training_rows``)."""
    import pandas as pd

    from studperf_assets.lib import data, models

    specs = (
        models.CandidateSpec("gpa_ordinal", {"degree": 2, "interaction_only": False}),
        models.CandidateSpec("logistic_regression", {"C": 10.0, "class_weight": None}),
        models.CandidateSpec(
            "hist_gradient_boosting",
            {"learning_rate": 0.1, "max_depth": 3, "max_iter": 200, "l2_regularization": 0.0},
        ),
    )
    drawn = pd.read_csv(source).iloc[2392:].sample(frac=1.0, random_state=1)
    test, pool = drawn.iloc[:100_000], drawn.iloc[100_000:]
    X_test, y_test = data.feature_matrix(test), test[data.TARGET].to_numpy()
    curve: dict[str, Any] = {}
    for size in (s for s in sizes if s <= len(pool)):
        train = pool.iloc[:size]
        X, y, gpa = data.feature_matrix(train), train[data.TARGET].to_numpy(), train[data.GPA]
        scaler = models.make_scaler().fit(X)
        row: dict[str, float] = {}
        for spec in specs:
            started = time.perf_counter()
            with models.native_threads(1):
                model = models.fit_candidate(spec, scaler.transform(X), y, gpa.to_numpy())
                predicted = model.predict(scaler.transform(X_test))
            f1 = models.classification_metrics(y_test, predicted)["f1_macro"]
            row[f"{spec.family}_test_f1_macro"] = round(f1, 4)
            row[f"{spec.family}_fit_seconds"] = round(time.perf_counter() - started, 2)
        curve[str(size)] = row
        print(f"learning curve, {size:,} rows: {row}")
    return curve


def compare(rows: int, baseline: str, baseline_timeout: float) -> dict[str, Any]:
    scratch = Path(tempfile.mkdtemp(prefix="studperf-rows-"))
    try:
        source = scratch / f"students-{rows}.csv"
        write_rows(rows, source)
        print(f"{rows:,} rows written to {source} ({source.stat().st_size / 1e6:.0f} MB)")
        old = extract_tree(baseline, scratch / "baseline")
        before = run(old, source, baseline_timeout, scratch / "run-baseline")
        print(f"before ({baseline}): {before}")
        after = run(REPO, source, 3 * 3600, scratch / "run-current")
        print(f"after: {after}")
        curve = learning_curve(source)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} cores, Python {sys.version.split()[0]}",
        "rows": rows,
        "baseline_revision": baseline,
        "baseline_timeout_s": baseline_timeout,
        "before": before,
        "after": after,
        # a baseline cut off by its timeout makes these lower bounds
        "before_over_after": {
            key: round(before[key] / after[key], 2)
            for key in ("wall_seconds", "cpu_seconds", "peak_rss_mb")
            if after[key]
        },
        "learning_curve": curve,
    }
