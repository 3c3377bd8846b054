"""What MLflow shows about a training: the run's name and trigger, and why a version won.

Pure (no MLflow, no Dagster): the tracking resource and the publishing assets write what these
functions return, so the MLflow UI tells the same story as Dagster and the alert e-mail: which
incident started a retraining, on which rows, and the champion check's numbers beside the
model version they decided.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

TRIGGER_TAG = "studperf/trigger"  # set by retraining_sensor: "<checks>@<window>"
INCIDENT_TAG = "studperf/incident"
NEW_LABELS_TAG = "studperf/new_labels"
# MLflow 3's experiment type; its UI before the sidebar's workflow switch (and Databricks)
# opens a "custom_model_development" experiment on its runs, not on the GenAI overview.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
# MLflow 3.17's UI decides the view by its workflow switch (stored per browser, GenAI by
# default); this query parameter sets it, so a link opens the training view.
WORKFLOW_QUERY = "workflowType=machine_learning"


def run_name(job_name: str, dagster_tags: Mapping[str, str]) -> str:
    """``retraining · <checks> · <window>`` for a run the retraining sensor started,
    ``training · manual`` for any other training run (the CLI, the UI, the demo)."""
    trigger = dagster_tags.get(TRIGGER_TAG)
    if trigger:
        checks, _, window = trigger.partition("@")
        return " · ".join(part for part in ("retraining", checks, window) if part)
    return "training · manual" if job_name == "training_job" else job_name


def run_tags(dagster_tags: Mapping[str, str]) -> dict[str, str]:
    """The MLflow tags naming what started the run (``studperf.trigger`` always)."""
    trigger = dagster_tags.get(TRIGGER_TAG)
    if not trigger:
        return {"studperf.trigger": "manual"}
    checks, _, window = trigger.partition("@")
    tags = {"studperf.trigger": "retraining", "studperf.trigger_checks": checks}
    if window:
        tags["studperf.trigger_window"] = window
    for source, target in (
        (INCIDENT_TAG, "studperf.incident"),
        (NEW_LABELS_TAG, "studperf.new_labels"),
    ):
        if dagster_tags.get(source):
            tags[target] = dagster_tags[source]
    return tags


def experiment_url(ui_url: str, experiment_id: str | None = None) -> str:
    """The MLflow UI's page of the experiment (or its list), in the model-training view."""
    page = f"experiments/{experiment_id}/runs" if experiment_id else "experiments"
    return f"{ui_url.rstrip('/')}/#/{page}?{WORKFLOW_QUERY}"


@dataclass(frozen=True)
class ChampionCheck:
    """The champion check's numbers: the candidate's test f1-macro against the champion's,
    re-scored on the candidate's own test split."""

    candidate: str  # bundle version
    candidate_f1: float
    champion: str | None  # bundle version, None for a first bundle
    champion_f1: float | None  # None for a first bundle (or an unreadable champion)
    tolerance: float
    passed: bool
    error: str | None = None

    def tags(self) -> dict[str, str]:
        """Model-version tags: the numbers, rounded as people read them, and the verdict."""
        tags = {
            "champion_check": "passed" if self.passed else "failed",
            "champion_check.candidate_test_f1_macro": f"{self.candidate_f1:.4f}",
            "champion_check.tolerance": f"{self.tolerance:g}",
            "champion_check.champion": self.champion or "none (first bundle)",
        }
        if self.champion_f1 is not None:
            tags["champion_check.champion_test_f1_macro"] = f"{self.champion_f1:.4f}"
        if self.error:
            tags["champion_check.error"] = self.error[:500]
        return tags

    def sentence(self) -> str:
        """One line saying why the version may or may not replace the champion."""
        if self.error:
            return (
                f"Champion check failed: the champion {self.champion} could not be scored "
                f"({self.error})."
            )
        if self.champion is None or self.champion_f1 is None:
            return (
                f"First bundle ({self.candidate}): no champion to beat; test f1-macro "
                f"{self.candidate_f1:.4f}."
            )
        gap = self.champion_f1 - self.candidate_f1
        if self.passed and gap <= 0:
            relation = "no worse: the tolerance is not needed"
        else:
            side = "within" if self.passed else "outside"
            word = "worse" if gap > 0 else "better"
            relation = f"{word} by {abs(gap):.4f}, {side} the tolerance of {self.tolerance:g}"
        return (
            f"Champion check {'passed' if self.passed else 'failed'}: candidate "
            f"{self.candidate} test f1-macro {self.candidate_f1:.4f} against the champion "
            f"{self.champion}'s {self.champion_f1:.4f}, re-scored on the same test split "
            f"({relation}). The f1-macro each model "
            "logged at its own training was on a different test split: compare these two."
        )


def trigger_text(dagster_tags: Mapping[str, str]) -> str:
    """What started a training, in words: ``manual``, or the retraining's checks, window
    and incident."""
    tags = run_tags(dagster_tags)
    if tags["studperf.trigger"] != "retraining":
        return "manual"
    text = f"retraining after {tags['studperf.trigger_checks']} failed"
    if "studperf.trigger_window" in tags:
        text += f" on window {tags['studperf.trigger_window']}"
    if "studperf.incident" in tags:
        text += f" (incident #{tags['studperf.incident']})"
    return text


def promotion_description(check_sentence: str, replaced: str | None, trigger: str) -> str:
    """The model version's description once it is the champion."""
    what = f"Promoted to champion, replacing {replaced}" if replaced else "Promoted to champion"
    return f"{what}; trigger: {trigger}. {check_sentence}".strip()
