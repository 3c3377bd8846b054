"""MLflow through dagster-mlflow: one parent run per Dagster run.

Wraps ``dagster_mlflow``'s resource for two reasons: to create the experiment with an
artifact location under STUDPERF_HOME (MLflow would otherwise write ``./mlruns`` wherever
the process happens to start), and to import MLflow only when a step first uses it
(loading the code location must not pay for MLflow).
"""

from __future__ import annotations

from typing import Any

from dagster import Field, InitResourceContext, Noneable, Permissive, StringSource, resource

from studperf_assets.lib.mlflow_story import (
    EXPERIMENT_KIND,
    EXPERIMENT_KIND_TAG,
    run_name,
    run_tags,
)

# The keys dagster-mlflow's MlFlow reads, declared here so that this module does not
# import dagster_mlflow (and with it MLflow). StringSource accepts {"env": NAME}: a
# tracking URI holding a password is then read at run time and never shown in the UI.
CONFIG_SCHEMA = {
    "experiment_name": Field(StringSource, description="MLflow experiment name."),
    "mlflow_tracking_uri": Field(
        Noneable(StringSource), default_value=None, is_required=False,
        description="MLflow tracking URI (a database URL or http(s)://).",
    ),
    "parent_run_id": Field(Noneable(str), default_value=None, is_required=False),
    "mlflow_run_id": Field(Noneable(str), default_value=None, is_required=False),
    "env": Field(Permissive(), is_required=False),
    "env_to_tag": Field(Noneable(list), default_value=None, is_required=False),
    "extra_tags": Field(Permissive(), is_required=False),
    "artifact_location": Field(
        str, default_value="", is_required=False,
        description="Artifact root for a new experiment (local backends only).",
    ),
}  # fmt: skip


def end_leftover_runs() -> None:
    """An MLflow run still active when a Dagster run starts belongs to an earlier Dagster
    run in this process that never reached ``model_bundle`` (it failed): close it as
    FAILED, in its own backend, before switching to this run's."""
    import sys

    if "mlflow" not in sys.modules:  # nothing can be active if MLflow was never imported
        return
    import mlflow

    while mlflow.active_run() is not None:
        mlflow.end_run(status="FAILED")


def ensure_experiment(tracking_uri: str | None, name: str, artifact_location: str) -> None:
    """The experiment, created if missing, typed as model training (MLflow 3's UI would
    otherwise open it on the GenAI overview)."""
    import mlflow

    if tracking_uri:
        # Both, explicitly: the registry URI is global state that otherwise outlives runs.
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(tracking_uri)
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is None:
        # An MLflow server decides where artifacts go; only a local backend is told.
        mlflow.create_experiment(
            name,
            artifact_location=artifact_location or None,
            tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND},
        )
    elif experiment.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:  # made before the tag
        mlflow.MlflowClient().set_experiment_tag(
            experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND
        )


class LazyMlFlow:
    """dagster-mlflow's ``MlFlow``, started on first use.

    Dagster initialises every resource in the run process too (outside any step) once a
    multiprocess run ends; an eager ``MlFlow`` would resume, and leave RUNNING, the MLflow
    run that ``model_bundle`` had just finished.
    """

    def __init__(self, context: InitResourceContext) -> None:
        self._context = context
        self._mlflow: Any = None

    @property
    def tracking_uri(self) -> str | None:
        """The resolved tracking URI (an ``env`` reference is read at run time)."""
        return self._context.resource_config.get("mlflow_tracking_uri")

    def __getattr__(self, name: str) -> Any:
        if self._mlflow is None:
            from dagster_mlflow.resources import MlFlow

            config = self._context.resource_config
            end_leftover_runs()
            ensure_experiment(
                config.get("mlflow_tracking_uri"),
                config["experiment_name"],
                config.get("artifact_location", ""),
            )
            self._mlflow = MlFlow(self._context)
            self._name_the_run()
        return getattr(self._mlflow, name)

    def _name_the_run(self) -> None:
        """Name the MLflow run for what started it (dagster-mlflow names every run after
        its job) and tag the trigger; the ``dagster_run_id`` tag, by which later steps
        find the run again, is left as it is."""
        import mlflow

        run = self._context.dagster_run
        tags = dict(run.tags) if run is not None else {}
        job = run.job_name if run is not None else ""
        mlflow.set_tags({"mlflow.runName": run_name(job, tags), **run_tags(tags)})


@resource(
    config_schema=CONFIG_SCHEMA,
    description="dagster-mlflow tracking, with the experiment's artifact location set.",
)
def mlflow_tracking(context: InitResourceContext) -> Any:
    return LazyMlFlow(context)
