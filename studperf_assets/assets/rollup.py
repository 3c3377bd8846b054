"""The daily rollup: one UTC day of monitoring windows summarised (``lib.daily_rollup``)
into a row of ``daily_metrics`` and the partition's metadata. Old window partitions are
deleted after retention only once their day has that row (``sensors.window_retention``).

It reads the monitoring database, not the windows' asset values, and names no upstream
asset: a window partition may be deleted, and its day still holds what it said.
"""

from datetime import date
from typing import Any

from dagster import AssetExecutionContext, Failure, MetadataValue, Output, asset

from studperf_assets.assets.monitoring import GROUP
from studperf_assets.assets.reports import SQL_RETRIES
from studperf_assets.lib.daily_rollup import day_of, summarise_day
from studperf_assets.partitions import monitoring_daily_partitions, monitoring_window_partitions
from studperf_assets.resources.metrics_db import MetricsDatabase, MonitoringDatabaseError


@asset(
    group_name=GROUP,
    partitions_def=monitoring_daily_partitions,
    kinds={"sql"},
    retry_policy=SQL_RETRIES,
)
def monitoring_daily(
    context: AssetExecutionContext, metrics_database: MetricsDatabase
) -> Output[dict[str, Any]]:
    """One UTC day of monitoring windows: windows monitored, predictions, labelled rows,
    small windows, drift share (mean and max over windows), windows failing each group of
    checks, prediction class shares (weighted by rows), and f1-macro and accuracy over the
    day's labelled rows. Written to ``daily_metrics`` (one row per day, replaced when the
    day is materialized again, e.g. after late labels)."""
    day = date.fromisoformat(context.partition_key)
    try:
        windows = metrics_database.day_windows(day)
        summary = summarise_day(day, windows, metrics_database.day_verdicts(day))
        metrics_database.record_day(summary.to_row())
    except MonitoringDatabaseError as error:
        raise Failure(str(error)) from error
    monitored = {str(w["partition"]) for w in windows}
    partitions = context.instance.get_dynamic_partitions(str(monitoring_window_partitions.name))
    waiting = sorted(k for k in partitions if day_of(k) == day and k not in monitored)
    if waiting:  # closed but not monitored yet, or failed: a later run of the day adds them
        context.log.warning(
            f"{day}: {len(waiting)} windows have no metrics yet ({waiting[0]} ..); "
            "materialize the day again once they are monitored"
        )
    row = summary.to_row()
    numbers = {
        k: v
        for k, v in row.items()
        if k not in ("day", "failing_windows", "prediction_shares") and v is not None
    }
    return Output(
        {**row, "day": day.isoformat()},
        metadata={
            **numbers,
            "failing_windows": MetadataValue.json(summary.failing_windows),
            "prediction_shares": MetadataValue.json(summary.prediction_shares),
            "windows_without_metrics": len(waiting),
            "database": metrics_database.display_url,
        },
    )
