"""The three jobs (training, monitoring, the daily rollup), each with the executor that fits
its size.

All run in process: every step process of the multiprocess executor starts Python and
loads the code location again, and the heavy libraries each step needs (Evidently for a
report, scikit-learn and MLflow for training) on top. Measured under the daemon on the
project's 2-core machine (``benchmarks/live_loop.py``, which compares the executors unless
given ``--no-executors``; docs/benchmarks.md#the-live-loop-make-up), in process is faster
for both that were measured: the graphs are chains, so there is little to run in parallel.
"""

from typing import Any

from dagster import AssetSelection, define_asset_job, multi_or_in_process_executor

from studperf_assets.constants import (
    MONITORING_DAILY_JOB,
    MONITORING_JOB,
    TRAINING_GROUP,
    TRAINING_JOB,
)
from studperf_assets.partitions import monitoring_daily_partitions, monitoring_window_partitions

MAX_RUNTIME_TAG = "dagster/max_runtime"  # dagster._core.storage.tags.MAX_RUNTIME_SECONDS_TAG

# The executor can still be chosen per run (run config ``execution: {config: {multiprocess:
# {}}}``). In process is the default; a partitioned job ignores its default config when a
# run request brings its own, so the window sensor names it in its requests too.
IN_PROCESS: dict[str, Any] = {"execution": {"config": {"in_process": {}}}}
# Longest a run may last before the daemon's run monitoring cancels it (dagster.yaml): far
# over what either takes (a 200-row window 5-20 s, training 11-50 s, ~2x that under load;
# docs/benchmarks.md#the-live-loop-make-up), so only a hung run meets it; a hung run would
# otherwise hold one of the instance's 2 run slots for ever.
MONITORING_MAX_RUNTIME_SECONDS = 600
TRAINING_MAX_RUNTIME_SECONDS = 1800

training_job = define_asset_job(
    TRAINING_JOB,
    selection=AssetSelection.groups(TRAINING_GROUP) | AssetSelection.assets("reference_data"),
    description="Raw data to a promoted model bundle (and its reference data), with every check.",
    executor_def=multi_or_in_process_executor,
    config=IN_PROCESS,
    tags={MAX_RUNTIME_TAG: str(TRAINING_MAX_RUNTIME_SECONDS)},
)
monitoring_job = define_asset_job(
    MONITORING_JOB,
    selection=AssetSelection.assets("prediction_windows", "drift_report", "batch_metrics"),
    partitions_def=monitoring_window_partitions,
    description="One monitoring window: its archived predictions, labels, drift report, "
    "metrics and checks.",
    executor_def=multi_or_in_process_executor,
    config=IN_PROCESS,
    tags={MAX_RUNTIME_TAG: str(MONITORING_MAX_RUNTIME_SECONDS)},
)
monitoring_daily_job = define_asset_job(
    MONITORING_DAILY_JOB,
    selection=AssetSelection.assets("monitoring_daily"),
    partitions_def=monitoring_daily_partitions,
    description="One UTC day of monitoring windows rolled up into its daily_metrics row.",
    executor_def=multi_or_in_process_executor,
    config=IN_PROCESS,
    tags={MAX_RUNTIME_TAG: str(MONITORING_MAX_RUNTIME_SECONDS)},
)
JOBS = [training_job, monitoring_job, monitoring_daily_job]
