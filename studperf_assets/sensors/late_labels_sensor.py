"""late_labels_sensor: re-runs the batches that joined their labels before late labels came,
and the windows whose metrics could not be written (the monitoring database was down)."""

import json
from datetime import UTC, datetime, timedelta

from dagster import RunRequest, RunsFilter, SensorEvaluationContext, SensorResult, SkipReason

from studperf_assets.constants import MONITORING_JOB, PARTITION_TAG
from studperf_assets.resources.ground_truth import GroundTruth
from studperf_assets.resources.metrics_db import MetricsDatabase, MonitoringDatabaseError
from studperf_assets.resources.monitoring_schema import ANY_VERSION, stored_key, stored_version

MAX_LABEL_FILES_PER_TICK = 200
JOIN_CLOCK_SLACK = timedelta(seconds=2)  # a join this close to an ingestion may have missed it
# Label files are re-listed this far back: a run that stamped a file earlier than one the
# sensor has seen may commit later (clocks of two processes, a slow transaction).
HANDLED_SLACK = timedelta(minutes=2)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC) + HANDLED_SLACK
# A window whose run failed writing its metrics (the monitoring database down) is re-run,
# at most this many times; its incident stays open after that.
METRICS_STEP = "batch_metrics"
RETRY_TAG = "studperf/metrics_retry"
MAX_METRICS_RETRIES = 3


def late_labels_sensor(
    context: SensorEvaluationContext,
    ground_truth: GroundTruth,
    metrics_database: MetricsDatabase,
) -> SensorResult | SkipReason:
    """When labels arrive for predictions in batches that joined their labels before those
    arrived, re-run those batches, so their quality and the performance check catch up.

    Looks at two things each tick: the label files that runs ingested since the last tick
    (from the monitoring database's ledger, by the time they were handled: our clock, not a
    writer's), and the files under ``labels/`` that no run has ingested yet. Their
    predictions are found through the prediction index. A batch is re-run only if it joined
    its labels before the file was ingested (or the file is not ingested yet): not a batch
    whose first run is still on its way, and not one that already saw the file.

    Also re-runs a window whose last run failed at ``batch_metrics`` (its status, recorded
    by the alert sensor once the database is back, says so), at most
    ``MAX_METRICS_RETRIES`` times (the retry number is in the run key): an outage of the
    monitoring database does not lose a window for good."""
    try:
        return _rerun_for_late_labels(context, ground_truth, metrics_database)
    except MonitoringDatabaseError as error:
        return SkipReason(f"{error}; label files wait for the next tick")


def _rerun_for_late_labels(
    context: SensorEvaluationContext, ground_truth: GroundTruth, metrics_database: MetricsDatabase
) -> SensorResult | SkipReason:
    state = json.loads(context.cursor) if context.cursor else {}
    now = datetime.now(UTC)
    # a first tick looks at the whole ledger, a page per tick
    after = datetime.fromisoformat(state["after"]) if "after" in state else EPOCH
    # a file version seen: [stored key, version]; a cursor from before versions holds keys
    seen = {_seen(entry) for entry in state.get("seen", [])}
    reruns: dict[str, str] = {}  # partition -> the label file (run key) it has not seen
    handled = [
        (key, version, status, at)
        for key, version, status, at in metrics_database.label_files_handled_since(
            after - HANDLED_SLACK
        )
        if (key, version) not in seen
    ][:MAX_LABEL_FILES_PER_TICK]
    for key, version, status, handled_at in handled:
        if status == "ingested":
            ids = metrics_database.request_ids_labelled_by(key)
            _missed(metrics_database, ids, handled_at, _file_key(key, version), reruns)
    unseen = ground_truth.unseen_versions(now)[:MAX_LABEL_FILES_PER_TICK]
    for key, version in unseen:  # the run that reads it will ingest it
        file_key = _file_key(stored_key(key), stored_version(version))
        _missed(metrics_database, ground_truth.request_ids_in(key), None, file_key, reruns)
    newest = max([after, *(at for _, _, _, at in handled)])
    recent = metrics_database.label_files_handled_since(newest - HANDLED_SLACK)
    cursor = {
        "after": newest.isoformat(),
        "seen": sorted(
            [k, v]
            for k, v in (seen | {(k, v) for k, v, _, _ in handled})
            & {(k, v) for k, v, _, _ in recent}
        ),
    }
    requests = [
        RunRequest(run_key=f"{partition}@{file_key}", partition_key=partition)
        for partition, file_key in sorted(reruns.items())
    ]
    retries = _metrics_retries(context, metrics_database, exclude=set(reruns))
    summary = (
        f"{len(handled)} label files ingested since the last look, {len(unseen)} not ingested "
        f"yet; re-running {len(requests)} batches"
    )
    if retries:
        summary += f", and {len(retries)} whose metrics were not written"
    requests += retries
    context.log.info(summary)
    skip = None if requests else SkipReason(summary)  # the daemon shows why, not "empty result"
    return SensorResult(run_requests=requests, cursor=json.dumps(cursor), skip_reason=skip)


def _seen(entry: str | list[str]) -> tuple[str, str]:
    if isinstance(entry, str):  # a cursor from before file versions: a key
        return entry, ANY_VERSION
    return entry[0], entry[1]


def _file_key(stored: str, version: str) -> str:
    """A label file version in a run key: a file rewritten under its key re-runs the batches
    again (the daemon launches a run key once); a ledger row from before versions keeps the
    key alone, as it was."""
    return stored if version == ANY_VERSION else f"{stored}@{version}"


def _missed(
    database: MetricsDatabase,
    request_ids: set[str],
    handled_at: datetime | None,
    key: str,
    reruns: dict[str, str],
) -> None:
    """Add the batches holding ``request_ids`` that joined their labels before the file
    was handled (``None``: not handled yet) and still lack some."""
    for partition, join in database.label_joins(database.partitions_for(request_ids)).items():
        complete = join["labelled"] >= join["rows"]
        missed = handled_at is None or join["joined_at"] <= handled_at + JOIN_CLOCK_SLACK
        if not complete and missed:
            reruns[partition] = max(key, reruns.get(partition, ""))


def _metrics_retries(
    context: SensorEvaluationContext, database: MetricsDatabase, exclude: set[str]
) -> list[RunRequest]:
    """A run for each window whose latest run failed writing its metrics and was recorded
    so (no newer run is on its way), unless it was re-run ``MAX_METRICS_RETRIES`` times."""
    requests = []
    for partition, row in sorted(database.statuses().items()):
        if row["status"] != "failed" or row["step"] != METRICS_STEP or partition in exclude:
            continue
        runs = context.instance.get_run_records(  # newest first
            filters=RunsFilter(job_name=MONITORING_JOB, tags={PARTITION_TAG: partition})
        )
        if not runs or runs[0].dagster_run.run_id != row["run_id"]:
            continue  # a newer run is queued or running, or its failure is not recorded yet
        done = sum(RETRY_TAG in r.dagster_run.tags for r in runs)
        if done >= MAX_METRICS_RETRIES:
            context.log.warning(f"{partition}: metrics not written after {done} re-runs")
            continue
        requests.append(
            RunRequest(
                run_key=f"{partition}@metrics-retry-{done + 1}",
                partition_key=partition,
                tags={RETRY_TAG: str(done + 1)},
            )
        )
    return requests
