"""Run the training job in process on the Dagster instance, and summarise the outcome."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

from dagster import AssetKey, DagsterInstance, Definitions, ExecuteInProcessResult

from studperf_assets.resources.tracking import end_leftover_runs


@dataclass
class TrainingOutcome:
    success: bool
    run_id: str
    bundle: dict[str, Any] | None = None
    production: dict[str, Any] | None = None
    checks: dict[str, bool] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    @property
    def bundle_uri(self) -> str:
        return str(self.bundle["uri"]) if self.bundle else ""

    def summary_lines(self) -> list[str]:
        lines = [f"dagster run {self.run_id}"]
        for name, passed in sorted(self.checks.items()):
            lines.append(f"  check {name}: {'passed' if passed else 'FAILED'}")
        if self.bundle:
            lines.append(
                f"bundle {self.bundle['version']} ({self.bundle['model_family']}): "
                f"val f1-macro {self.bundle['val_f1_macro']:.4f}, "
                f"test f1-macro {self.bundle['test_f1_macro']:.4f}"
            )
        if self.production:
            lines.append(f"production -> {self.production['version']}")
        elif self.bundle:
            lines.append("production pointer unchanged (a blocking check did not pass)")
        return lines


def outcome_of(result: ExecuteInProcessResult) -> TrainingOutcome:
    outcome = TrainingOutcome(success=result.success, run_id=result.run_id)
    for evaluation in result.get_asset_check_evaluations():
        outcome.checks[evaluation.check_name] = evaluation.passed
        if not evaluation.passed:
            outcome.failures.append(f"check {evaluation.check_name} failed")
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    if AssetKey("model_bundle") in materialized:
        outcome.bundle = result.output_for_node("model_bundle")
    if AssetKey("production_model") in materialized:
        outcome.production = result.output_for_node("production_model")
    for event in result.all_events:
        if event.is_step_failure and event.step_key:
            outcome.failures.append(f"step {event.step_key} failed: {_failure_message(event)}")
        elif event.is_failure and not event.step_key:
            outcome.failures.append(f"run failed: {event.message}")
    outcome.success = result.success and outcome.production is not None
    return outcome


def _failure_message(event: Any) -> str:
    """The root cause's message (Dagster wraps user errors in its own)."""
    data = event.step_failure_data
    error = data.error if data else None
    while error is not None and error.cause is not None:
        error = error.cause
    return str(error.message).strip() if error else "unknown error"


def quiet(log_level: str = "WARNING") -> dict[str, Any]:
    """Run config for Dagster's console logger at a given level."""
    return {"loggers": {"console": {"config": {"log_level": log_level}}}}


def run_training(
    *,
    definitions: Definitions,
    source: str = "",
    instance: DagsterInstance | None = None,
    log_level: str = "INFO",
    tags: dict[str, str] | None = None,
) -> TrainingOutcome:
    """Materialize the whole training graph of ``definitions`` (built for a deployment by
    ``make_definitions``) on ``instance`` (default: ``DagsterInstance.get()``); the outcome
    says what was published. ``source`` overrides the deployment's training data; ``tags``
    are the Dagster run's (the retraining sensor's trigger, in tests)."""
    job = definitions.resolve_job_def("training_job")
    run_config: dict[str, Any] = {
        **quiet(log_level),
        "ops": {"raw_student_data": {"config": {"source": source}}},
    }
    with DagsterInstance.get() if instance is None else nullcontext(instance) as active:
        result = job.execute_in_process(
            run_config=run_config, instance=active, raise_on_error=False, tags=tags
        )
    end_leftover_runs()  # a run that failed before model_bundle leaves its MLflow run open
    return outcome_of(result)
