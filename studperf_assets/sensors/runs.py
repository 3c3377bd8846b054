"""Finished runs as the alert and retraining sensors read them: what failed in each."""

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dagster import (
    AssetCheckEvaluation,
    DagsterEventType,
    DagsterRunStatus,
    RunsFilter,
    SensorEvaluationContext,
)
from dagster._core.storage.dagster_run import FINISHED_STATUSES

from studperf_assets.constants import (
    MONITORING_CHECKS,
    MONITORING_DAILY_JOB,
    MONITORING_JOB,
    PARTITION_TAG,
    TRAINING_JOB,
)
from studperf_assets.sensors.incidents import RunFailure, run_failure


@dataclass
class MonitoringRun:
    """A finished run of a watched job, and what went wrong in it: the monitoring checks
    that failed (monitoring runs), or where the run itself failed."""

    updated: float
    partition: str
    run_id: str
    failed: dict[str, dict[str, Any]]  # check name -> its metadata
    job: str = "monitoring_job"
    failure: RunFailure | None = None  # None: the run succeeded
    passed: set[str] = field(default_factory=set)  # checks judged and passed


# The daily rollup is watched too: a day that fails to roll up keeps its windows past
# retention (``window_retention``), so its failure must reach the on-call.
WATCHED_JOBS = (MONITORING_JOB, TRAINING_JOB, MONITORING_DAILY_JOB)
# Every way a run can finish without succeeding: the window it was for is not monitored.
NOT_SUCCEEDED = [s for s in FINISHED_STATUSES if s != DagsterRunStatus.SUCCESS]


def finished_runs(
    context: SensorEvaluationContext, after: float, jobs: tuple[str, ...] = WATCHED_JOBS
) -> Iterator[MonitoringRun]:
    """Runs of ``jobs`` finished after ``after`` (a timestamp), oldest first."""
    records = context.instance.get_run_records(
        filters=RunsFilter(
            statuses=[DagsterRunStatus.SUCCESS, *NOT_SUCCEEDED],
            updated_after=datetime.fromtimestamp(after, UTC),
        ),
        order_by="update_timestamp",
        ascending=True,
        limit=200,
    )
    for record in records:
        if record.dagster_run.job_name in jobs:
            yield _monitoring_run(context, record)


def runs_by_id(context: SensorEvaluationContext, run_ids: list[str]) -> list[MonitoringRun]:
    """The finished runs among ``run_ids`` (runs deleted since are left out), oldest first."""
    if not run_ids:
        return []
    records = context.instance.get_run_records(filters=RunsFilter(run_ids=run_ids))
    runs = [_monitoring_run(context, r) for r in records if r.dagster_run.is_finished]
    return sorted(runs, key=lambda run: run.updated)


def _monitoring_run(context: SensorEvaluationContext, record: Any) -> MonitoringRun:
    dagster_run = record.dagster_run
    failed = dagster_run.status in NOT_SUCCEEDED  # not monitored, whatever ended it
    run = MonitoringRun(
        updated=record.update_timestamp.timestamp(),
        partition=dagster_run.tags.get(PARTITION_TAG, ""),
        run_id=dagster_run.run_id,
        failed={},
        job=dagster_run.job_name,
        failure=run_failure(context.instance, dagster_run.run_id) if failed else None,
    )
    for entry in context.instance.all_logs(
        run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION
    ):
        evaluation = entry.dagster_event.event_specific_data if entry.dagster_event else None
        if not isinstance(evaluation, AssetCheckEvaluation):
            continue
        if evaluation.check_name not in MONITORING_CHECKS:
            continue
        metadata = {k: v.value for k, v in evaluation.metadata.items()}
        if not evaluation.passed:  # its severity as Dagster shows it, for the e-mail
            run.failed[evaluation.check_name] = {**metadata, "severity": evaluation.severity.value}
        elif metadata.get("judged") is not False:  # not judged is not a pass
            run.passed.add(evaluation.check_name)
    return run
