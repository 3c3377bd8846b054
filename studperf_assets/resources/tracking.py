"""MLflow through dagster-mlflow: one parent run per Dagster run.

Wraps ``dagster_mlflow``'s resource only to create the experiment with an artifact
location under STUDPERF_HOME (MLflow would otherwise write ``./mlruns`` wherever the
process happens to start).
"""

from __future__ import annotations

from typing import Any

import mlflow
from dagster import InitResourceContext, resource
from dagster_mlflow.resources import CONFIG_SCHEMA, MlFlow


def end_leftover_runs() -> None:
    """An MLflow run still active when a Dagster run starts belongs to an earlier Dagster
    run in this process that never reached ``model_bundle`` (it failed): close it as
    FAILED, in its own backend, before switching to this run's."""
    while mlflow.active_run() is not None:
        mlflow.end_run(status="FAILED")


def ensure_experiment(tracking_uri: str | None, name: str, artifact_location: str) -> None:
    if tracking_uri:
        # Both, explicitly: the registry URI is global state that otherwise outlives runs.
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(tracking_uri)
    if mlflow.get_experiment_by_name(name) is None:
        # An MLflow server decides where artifacts go; only a local backend is told.
        mlflow.create_experiment(name, artifact_location=artifact_location or None)


class LazyMlFlow:
    """dagster-mlflow's ``MlFlow``, started on first use.

    Dagster initialises every resource in the run process too (outside any step) once a
    multiprocess run ends; an eager ``MlFlow`` would resume, and leave RUNNING, the MLflow
    run that ``model_bundle`` had just finished.
    """

    def __init__(self, context: InitResourceContext) -> None:
        self._context = context
        self._mlflow: MlFlow | None = None

    def __getattr__(self, name: str) -> Any:
        if self._mlflow is None:
            config = self._context.resource_config
            end_leftover_runs()
            ensure_experiment(
                config.get("mlflow_tracking_uri"),
                config["experiment_name"],
                config["artifact_location"],
            )
            self._mlflow = MlFlow(self._context)
        return getattr(self._mlflow, name)


@resource(
    config_schema={**CONFIG_SCHEMA, "artifact_location": str},
    description="dagster-mlflow tracking, with the experiment's artifact location set.",
)
def mlflow_tracking(context: InitResourceContext) -> Any:
    return LazyMlFlow(context)
