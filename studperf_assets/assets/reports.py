"""Drift reports: the Evidently report of a monitoring window, the checks that judge it, and
its row in the monitoring database.

``drift_report`` writes no SQL: the checks are evaluated from the report whether the
database answers or not, and ``batch_metrics`` writes the row in its own step, retried
(``RetryPolicy``) through a short outage; its error names the database, never a password.
"""

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    Backoff,
    Failure,
    MetadataValue,
    Output,
    RetryPolicy,
    asset,
    asset_check,
)

from studperf_assets.assets.monitoring import GROUP, load_reference, window_tag
from studperf_assets.constants import FAILED_CHECKS_TAG, VERDICT_TAG, WINDOW_SMALL_TAG
from studperf_assets.lib.drift_summary import DriftSummary
from studperf_assets.lib.loop_events import MONITORED, emit
from studperf_assets.lib.window_contents import WindowContents
from studperf_assets.lib.windows import is_window_key, window_start
from studperf_assets.partitions import monitoring_window_partitions
from studperf_assets.resources.metrics_db import MetricsDatabase, MonitoringDatabaseError
from studperf_assets.resources.model_store import ModelStore
from studperf_assets.resources.monitoring import AlertSender, MonitoringSettings
from studperf_assets.resources.object_store import ObjectStore
from studperf_assets.resources.training_settings import TrainingSettings


@asset(
    group_name=GROUP,
    partitions_def=monitoring_window_partitions,
    kinds={"evidently"},
)
def drift_report(
    context: AssetExecutionContext,
    prediction_windows: dict[str, pd.DataFrame],
    object_store: ObjectStore,
    model_store: ModelStore,
    monitoring_settings: MonitoringSettings,
    training_settings: TrainingSettings,
    alert_sender: AlertSender,  # only the Evidently UI's address, for the links
) -> Output[dict[str, Any]]:
    """Evidently data, prediction and target drift plus classification quality of one window,
    against the reference of the model version that served it (read from its bundle: a
    home or deployment that never built ``reference_data`` monitors all the same). Not a
    dependency of ``reference_data`` in the graph for that reason: a promotion re-records
    the champion's reference, and old windows, judged against their own model's, are not
    out of date.

    The key numbers go to Dagster metadata (plotted across partitions) and to the Evidently
    workspace (the dashboard, its snapshots bounded); the HTML pages to the object store only
    for a window that fails a drift or performance check (``check_outcomes``). The checks judge this
    report; the SQL row is ``batch_metrics``'s, so a database outage cannot hide drift."""
    from studperf_assets.lib import drift as drift_math

    window = WindowContents.from_frames(prediction_windows)
    serving = window.model_version
    reference = load_reference(model_store, serving, training_settings)

    key = context.partition_key
    settings = monitoring_settings
    info = drift_math.RunInfo(
        window=key,
        start=window_start(key) if is_window_key(key) else None,
        model_version=serving,
        run_id=context.run_id,
    )
    result = drift_math.drift_report(
        reference.frame, window, thresholds=thresholds_of(settings), info=info
    )
    summary = result.summary
    failing = sorted(name for name, ok in check_outcomes(summary, settings).items() if not ok)
    report_key, report_uri = "", ""
    stored: dict[str, str] = {}  # report -> its key in the monitoring store
    if failing:  # the HTML only for a window that fails a check: per-window bytes stay small
        report_key = f"reports/{key}/drift.html"
        report_uri = object_store.put_bytes(
            report_key, _html(result.drift), content_type="text/html"
        )
        stored["drift_report"] = report_key
        if result.quality is not None:
            quality_key = f"reports/{key}/quality.html"
            object_store.put_bytes(quality_key, _html(result.quality), content_type="text/html")
            stored["quality_report"] = quality_key
    model_version = serving
    _add_to_dashboard(monitoring_settings.evidently_workspace, key, result)
    links = _links(key, stored, object_store, monitoring_settings, alert_sender, result)
    numbers: dict[str, Any] = {
        "drift_share": round(summary.drift_share, 4),
        "prediction_drift": round(summary.prediction_drift, 4),
        "rows": summary.rows,
        "labelled_rows": summary.labelled_rows,
        **{f"drift_score/{c}": round(v, 4) for c, v in summary.feature_scores.items()},
        **{f"psi/{c}": v for c, v in summary.psi.items()},
        "rows_compared": summary.rows_compared,
    }
    if summary.f1_macro is not None:
        numbers["f1_macro"] = round(summary.f1_macro, 4)
    if summary.target_drift is not None:
        numbers["target_drift"] = round(summary.target_drift, 4)
    log_monitored(context.log.info, key, summary)
    return Output(
        {
            **summary.to_json(),
            "partition": key,
            "report_uri": report_uri,
            "report_key": report_key,
            "model_version": model_version,
        },
        metadata={
            **numbers,
            **links,
            "model_version": model_version,
            "reference": f"{reference.version} ({reference.source}, {len(reference.frame)} rows)",
        },
    )


def thresholds_of(settings: MonitoringSettings) -> Any:
    """The Evidently tests' thresholds: the checks' own settings, one source for both."""
    from studperf_assets.lib.drift import Thresholds

    return Thresholds(
        numerical=settings.numerical_drift_score,
        categorical=settings.categorical_drift_score,
        prediction=settings.prediction_drift_score,
        share=settings.data_drift_share,
    )


def _links(
    key: str,
    stored: dict[str, str],
    object_store: ObjectStore,
    settings: MonitoringSettings,
    alert_sender: AlertSender,
    result: Any,
) -> dict[str, Any]:
    """Clickable links for the catalog, each one a laptop can open: the window's snapshots in
    the Evidently UI, and the stored HTML where the store has a web console (S3); a folder
    store's file:// path names the server's disk and is left out."""
    from studperf_assets.lib.alert_links import evidently_snapshot, is_web
    from studperf_assets.resources.evidently_workspace import (
        find_project_id,
        snapshot_id,
        snapshot_name,
    )

    links: dict[str, Any] = {}
    if is_web(alert_sender.evidently_url):
        project = find_project_id(settings.evidently_workspace)
        kinds = ["drift"] + (["quality"] if result.quality is not None else [])
        for kind in kinds:
            snapshot = str(snapshot_id(snapshot_name(key, kind)))
            url = evidently_snapshot(alert_sender.evidently_url, project, snapshot)
            links[f"evidently_{kind}"] = MetadataValue.url(url)
    for name, stored_key in stored.items():
        url = object_store.browse_url(stored_key)
        if is_web(url):
            links[name] = MetadataValue.url(url)
    return links


def log_monitored(log: Callable[[str], Any], key: str, summary: DriftSummary) -> None:
    """The ``monitored`` event of a batch (``lib.loop_events``)."""
    emit(
        log,
        MONITORED,
        window=key,
        drift_share=summary.drift_share,
        drifted_features=list(summary.drifted_features),
        prediction_drift=summary.prediction_drift,
        f1_macro=summary.f1_macro,
    )


def _html(snapshot: Any) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "report.html"
        snapshot.save_html(str(path))
        return path.read_bytes()


def _add_to_dashboard(workspace_path: str, key: str, result: Any) -> None:
    """One Evidently UI snapshot per report of the batch (``evidently ui --workspace …``)."""
    from studperf_assets.resources.evidently_workspace import add_snapshots, snapshot_name

    runs = [(snapshot_name(key, "drift"), result.drift)]
    if result.quality is not None:
        runs.append((snapshot_name(key, "quality"), result.quality))
    add_snapshots(workspace_path, runs)


def _batch_facts(report: dict[str, Any]) -> dict[str, Any]:
    """What an alert about this window says besides the check's own numbers."""
    return {  # the report's key in the monitoring store; never a server's file path
        "rows": report["rows"],
        "model_version": report["model_version"],
        "report_key": report.get("report_key", ""),
    }


def check_outcomes(summary: DriftSummary, settings: MonitoringSettings) -> dict[str, bool]:
    """Whether each check of the drift report passes: what the checks below report, and what
    decides whether the window keeps its HTML report."""
    judged = summary.f1_macro is not None and summary.labelled_rows >= settings.min_labelled_for_f1
    return {
        "data_drift": summary.drift_share < settings.data_drift_share,
        "prediction_drift": not summary.prediction_drifted,  # Evidently's verdict
        "performance": not judged or float(summary.f1_macro or 0.0) >= settings.f1_floor,
    }


def drifted_text(summary: DriftSummary) -> str:
    """The drifted features, highest score first, each with its score and threshold."""
    drifted = sorted(summary.drifted_features, key=lambda f: -summary.feature_scores[f])
    if not drifted:
        return "none"
    return ", ".join(
        f"{f} {summary.feature_scores[f]:.3f} > {summary.feature_thresholds.get(f, 0):.2f}"
        for f in drifted
    )


def feature_table(summary: DriftSummary) -> str:
    """Every feature's drift score, threshold and PSI as a Markdown table, highest first."""
    rows = ["| feature | score | threshold | PSI | drifted |", "| --- | --- | --- | --- | --- |"]
    for feature in sorted(summary.feature_scores, key=lambda f: -summary.feature_scores[f]):
        rows.append(
            f"| {feature} | {summary.feature_scores[feature]:.3f} "
            f"| {summary.feature_thresholds.get(feature, float('nan')):.2f} "
            f"| {summary.psi.get(feature, float('nan')):.3f} "
            f"| {'yes' if feature in summary.drifted_features else ''} |"
        )
    return "\n".join(rows)


def _summary(report: dict[str, Any]) -> DriftSummary:
    fields = DriftSummary.__dataclass_fields__
    return DriftSummary(**{k: v for k, v in report.items() if k in fields})


@asset_check(
    asset=drift_report,
    partitions_def=monitoring_window_partitions,
    description="Share of drifted features below the threshold.",
)
def data_drift(
    drift_report: dict[str, Any], monitoring_settings: MonitoringSettings
) -> AssetCheckResult:
    summary = _summary(drift_report)
    return AssetCheckResult(
        passed=check_outcomes(summary, monitoring_settings)["data_drift"],
        severity=monitoring_settings.drift_severity,
        metadata={
            "drift_share": round(summary.drift_share, 3),
            "threshold": monitoring_settings.data_drift_share,
            "drifted": MetadataValue.text(drifted_text(summary)),
            "features": MetadataValue.md(feature_table(summary)),
            "drifted_features": MetadataValue.json(summary.drifted_features),
            "feature_scores": MetadataValue.json(
                {k: round(v, 4) for k, v in summary.feature_scores.items()}
            ),
            "feature_thresholds": MetadataValue.json(summary.feature_thresholds),
            "feature_psi": MetadataValue.json(summary.psi),
            "rows_compared": summary.rows_compared,
            **_batch_facts(drift_report),
        },
    )


@asset_check(
    asset=drift_report,
    partitions_def=monitoring_window_partitions,
    description="Prediction distribution close to the reference's.",
)
def prediction_drift(
    drift_report: dict[str, Any], monitoring_settings: MonitoringSettings
) -> AssetCheckResult:
    summary = _summary(drift_report)
    return AssetCheckResult(
        passed=check_outcomes(summary, monitoring_settings)["prediction_drift"],
        severity=monitoring_settings.drift_severity,
        metadata={
            "prediction_drift": round(summary.prediction_drift, 3),
            "threshold": monitoring_settings.prediction_drift_score,
            "predicted": MetadataValue.text(
                ", ".join(f"{g} {n:,}" for g, n in summary.prediction_counts.items())
            ),
            **_batch_facts(drift_report),
        },
    )


@asset_check(
    asset=drift_report,
    partitions_def=monitoring_window_partitions,
    description="f1-macro above the floor once enough labels arrived.",
)
def performance(
    drift_report: dict[str, Any], monitoring_settings: MonitoringSettings
) -> AssetCheckResult:
    summary = _summary(drift_report)
    judged = (
        summary.f1_macro is not None
        and summary.labelled_rows >= monitoring_settings.min_labelled_for_f1
    )
    return AssetCheckResult(
        passed=check_outcomes(summary, monitoring_settings)["performance"],
        severity=monitoring_settings.performance_severity,
        metadata={
            "f1_macro": (
                round(float(summary.f1_macro), 4) if summary.f1_macro is not None else float("nan")
            ),
            "labelled_rows": summary.labelled_rows,
            "floor": monitoring_settings.f1_floor,
            "judged": judged,
            **_batch_facts(drift_report),
        },
    )


def verdict_tags(failing: list[str]) -> dict[str, str]:
    """The run tags that say, in Dagster's runs list, whether the window's drift and
    performance checks failed (the run itself succeeded: the window was monitored)."""
    if not failing:
        return {VERDICT_TAG: "passed"}
    return {VERDICT_TAG: "failed", FAILED_CHECKS_TAG: " ".join(failing)}


# 3, 6, 12 s: a database that is back within ~20 s loses nothing.
SQL_RETRIES = RetryPolicy(max_retries=3, delay=3, backoff=Backoff.EXPONENTIAL)


@asset(
    group_name=GROUP,
    partitions_def=monitoring_window_partitions,
    kinds={"sql"},
    retry_policy=SQL_RETRIES,
)
def batch_metrics(
    context: AssetExecutionContext,
    drift_report: dict[str, Any],
    metrics_database: MetricsDatabase,
    monitoring_settings: MonitoringSettings,
) -> Output[dict[str, Any]]:
    """The window's row in ``batch_metrics`` (SQLite or PostgreSQL), for SQL and Grafana."""
    key = context.partition_key
    small = window_tag(context, key, WINDOW_SMALL_TAG)  # None: not run by the window sensor
    row = {
        "model_version": drift_report["model_version"],
        **{k: drift_report[k] for k in METRIC_COLUMNS},
        **{k: drift_report.get(k) for k in ROLLUP_COLUMNS},  # for the daily rollup
        "small": None if small is None else small == "true",
        "report_uri": drift_report["report_uri"],
    }
    failing = sorted(
        name
        for name, ok in check_outcomes(_summary(drift_report), monitoring_settings).items()
        if not ok
    )
    # the runs list shows a run's tags: a drifted window's green run says it drifted; the
    # data checks' failures, tagged by prediction_windows earlier in this run, stay named
    run = context.instance.get_run_by_id(context.run_id)
    earlier = (run.tags.get(FAILED_CHECKS_TAG, "") if run else "").split()
    context.instance.add_run_tags(context.run_id, verdict_tags(sorted({*failing, *earlier})))
    try:
        metrics_database.record_batch(context.partition_key, row)
        metrics_database.record_status(context.partition_key, "monitored", context.run_id)
    except MonitoringDatabaseError as error:
        raise Failure(str(error)) from error
    return Output(row, metadata={"database": metrics_database.display_url})


METRIC_COLUMNS = (
    "rows",
    "labelled_rows",
    "drift_share",
    "prediction_drift",
    "target_drift",
    "f1_macro",
    "accuracy",
    "feature_scores",
)
ROLLUP_COLUMNS = ("prediction_counts", "confusion")
