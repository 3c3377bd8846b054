"""An incident's e-mail as the on-call reads it: how severe, what the platform is already
doing (the retraining run, found in a real Dagster instance), what to check, and links that
open from a laptop (the Dagster run, the Evidently report, the MLflow model version)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from dagster import AssetMaterialization, DagsterInstance, DagsterRunStatus, instance_for_test
from dagster._core.test_utils import create_run_for_test

from studperf_assets.constants import INCIDENT_TAG, MONITORING_CHECKS, TRAINING_JOB
from studperf_assets.lib.alert_email import CHECK_RUNBOOK, INCIDENT_RUNBOOK
from studperf_assets.lib.incidents import (
    CHECKS_FAILED,
    RUN_FAILED,
    RUN_STUCK,
    SENSOR_FAILING,
    Incident,
    check_incident_details,
)
from studperf_assets.resources.monitoring import AlertSender, MonitoringSettings
from studperf_assets.sensors.incidents import alert_context, notice_for
from studperf_assets.sensors.runs import WATCHED_JOBS

WINDOW = "2026-12-01T10:03:00Z"


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    with instance_for_test() as test_instance:
        yield test_instance


def drift_incident(incident_id: int = 7, severity: str = "WARN") -> Incident:
    """A drift incident over two failing windows, as ``settle_check_incidents`` keeps it."""
    failed = {
        "data_drift": {
            "drift_share": 0.444,
            "threshold": 0.2,
            "drifted_features": ["Absences", "StudyTimeWeekly"],
            "feature_scores": {"Absences": 0.88, "StudyTimeWeekly": 0.41, "Age": 0.01},
            "feature_thresholds": {"Absences": 0.2, "StudyTimeWeekly": 0.2, "Age": 0.15},
            "model_version": "v20261201T090000Z-ab12cd34",
            "report_key": f"reports/{WINDOW}/drift.html",
            "severity": severity,
        },
        "prediction_drift": {"prediction_drift": 0.31, "threshold": 0.15, "severity": "WARN"},
    }
    windows = [("2026-12-01T10:02:00Z", "run-a", failed), (WINDOW, "run-b", failed)]
    return Incident(
        id=incident_id,
        key="checks:drift",
        kind=CHECKS_FAILED,
        status="open",
        title="drift incident: data_drift, prediction_drift failed on 2026-12-01T10:02:00Z",
        opened_at=datetime(2026, 12, 1, 10, 3, 20, tzinfo=UTC),
        last_seen_at=datetime(2026, 12, 1, 10, 4, 20, tzinfo=UTC),
        occurrences=2,
        first_partition="2026-12-01T10:02:00Z",
        last_partition=WINDOW,
        details=check_incident_details("drift", windows),
    )


SENDER = AlertSender(
    dagster_url="http://dagster.test:3000/",
    evidently_url="http://evidently.test:8085",
    mlflow_url="http://mlflow.test:5000",
)


def folder_share(key: str) -> str:
    return f"file:///srv/studperf/monitoring/{key}"  # what a folder store shares: the server's disk


def links_of(text: str) -> dict[str, str]:
    block = text.split("\nLinks\n")[1]
    return dict(line.strip().split(": ", 1) for line in block.splitlines() if line.strip())


def test_before_retraining_starts_the_email_says_what_it_waits_for_and_where_it_will_be(
    instance: DagsterInstance, tmp_path: Path
) -> None:
    settings = MonitoringSettings(
        evidently_workspace=str(tmp_path / "none"),
        min_new_labels_for_retraining=200,
        retraining_cooldown_seconds=3600,
    )
    alert = alert_context(SENDER, instance, settings, folder_share)
    email = notice_for(drift_incident(), "opened", alert)
    text = email.text()
    assert text.startswith(f"New incident: {drift_incident().title}.\nSeverity: WARN\n")
    assert "since: 2026-12-01T10:03:20+00:00 (incident opened)" in text
    assert (
        "retraining not started yet: retraining_sensor starts training_job for this incident "
        "once 200 newly labelled rows are in, at most one per 60 min"
    ) in text
    assert "3 passing windows in a row resolve this" in text
    links = links_of(text)
    assert links["Retraining runs for this incident"] == (
        "http://dagster.test:3000/runs?q%5B%5D=tag%3Astudperf%2Fincident%3D7"
    )
    assert links["Dagster run of the last failing window"] == "http://dagster.test:3000/runs/run-b"
    # no project in the workspace yet: the Evidently UI's project list, no report link
    assert links["Evidently dashboard"] == "http://evidently.test:8085/"
    # no model_bundle materialization names the version: the registered model's page
    assert (
        links["MLflow model that served it"]
        == "http://mlflow.test:5000/#/models/studperf-grade-class"
    )
    assert "file://" not in text and "file://" not in email.html()  # the server's disk
    resolved = notice_for(drift_incident(), "resolved", alert).text()
    assert "no retraining was started for this incident" in resolved
    assert "not started yet" not in resolved and "Retraining runs" not in resolved


def test_once_retraining_started_the_email_links_its_run(
    instance: DagsterInstance, tmp_path: Path
) -> None:
    other = create_run_for_test(instance, TRAINING_JOB, tags={INCIDENT_TAG: "6"})
    run = create_run_for_test(
        instance, TRAINING_JOB, status=DagsterRunStatus.STARTED, tags={INCIDENT_TAG: "7"}
    )
    alert = alert_context(SENDER, instance, MonitoringSettings(evidently_workspace=""))
    text = notice_for(drift_incident(), "reminder", alert).text()
    started = re.search(
        r"retraining started (\S+) for this incident: training_job run (\w+), (\w+)", text
    )
    assert started is not None, text
    assert (started[2], started[3]) == (run.run_id[:8], "started")
    assert datetime.fromisoformat(started[1]) <= datetime.now(UTC)
    links = links_of(text)
    assert links["Retraining run"] == f"http://dagster.test:3000/runs/{run.run_id}"
    assert other.run_id not in text  # another incident's retraining
    assert "Retraining runs for this incident" not in links


def test_links_name_the_windows_evidently_report_and_the_mlflow_version(
    instance: DagsterInstance, tmp_path: Path
) -> None:
    from studperf_assets.resources.evidently_workspace import (
        project_id,
        snapshot_id,
        snapshot_name,
    )

    workspace = str(tmp_path / "evidently")
    project = str(project_id(workspace))
    instance.report_runless_asset_event(
        AssetMaterialization(
            "model_bundle",
            metadata={
                "version": "v20261130T080000Z-00000000",
                "mlflow_model": "models:/studperf-grade-class/2",
            },
        )
    )
    instance.report_runless_asset_event(
        AssetMaterialization(
            "model_bundle",
            metadata={
                "version": "v20261201T090000Z-ab12cd34",
                "mlflow_model": "models:/studperf-grade-class/3",
            },
        )
    )
    alert = alert_context(SENDER, instance, MonitoringSettings(evidently_workspace=workspace))
    email = notice_for(drift_incident(), "opened", alert)
    links = links_of(email.text())
    report = str(snapshot_id(snapshot_name(WINDOW, "drift")))
    assert links[f"Evidently drift report of {WINDOW}"] == (
        f"http://evidently.test:8085/projects/{project}/reports/{report}"
    )
    assert links["Evidently dashboard"] == f"http://evidently.test:8085/projects/{project}"
    assert links["MLflow model that served it"] == (
        "http://mlflow.test:5000/#/models/studperf-grade-class/versions/3"
    )
    for url in links.values():  # the HTML part carries the same links, escaped
        assert url.replace("&", "&amp;") in email.html()


def test_an_empty_base_url_means_no_such_link(instance: DagsterInstance) -> None:
    sender = AlertSender(dagster_url="https://dagster.example.org", evidently_url="", mlflow_url="")
    alert = alert_context(sender, instance, MonitoringSettings(evidently_workspace=""))
    links = links_of(notice_for(drift_incident(), "opened", alert).text())
    assert not [name for name in links if "Evidently" in name or "MLflow" in name]
    assert links["Dagster run of the last failing window"].startswith(
        "https://dagster.example.org/"
    )


def test_severity_is_the_most_severe_failed_check() -> None:
    alert = alert_context(SENDER, None, MonitoringSettings(evidently_workspace=""))
    assert notice_for(drift_incident(severity="ERROR"), "opened", alert).severity == "ERROR"
    assert notice_for(drift_incident(severity="WARN"), "opened", alert).severity == "WARN"


def test_every_check_and_incident_kind_has_a_what_to_check_line() -> None:
    assert set(MONITORING_CHECKS) <= set(CHECK_RUNBOOK)
    assert {f"{RUN_FAILED}:{job}" for job in WATCHED_JOBS} <= set(INCIDENT_RUNBOOK)
    assert {RUN_STUCK, SENSOR_FAILING} <= set(INCIDENT_RUNBOOK)
    alert = alert_context(SENDER, None, MonitoringSettings(evidently_workspace=""))
    text = notice_for(drift_incident(), "opened", alert).text()
    block = text.split("\nWhat to check\n")[1].split("\n\n")[0]
    assert [line.split(":")[0].strip() for line in block.splitlines()] == [
        "data_drift",
        "prediction_drift",
    ]


@pytest.mark.parametrize(
    ("job", "expected"),
    [
        ("monitoring_daily_job", "materialize the day's monitoring_daily partition again"),
        ("training_job", "the next successful training run resolves this"),
    ],
)
def test_a_failed_run_is_an_error_with_its_jobs_runbook_line(job: str, expected: str) -> None:
    incident = Incident(
        id=3,
        key=f"run_failed:{job}:abc",
        kind=RUN_FAILED,
        status="open",
        title=f"{job} failed at some_step",
        opened_at=datetime(2026, 12, 1, tzinfo=UTC),
        last_seen_at=datetime(2026, 12, 1, tzinfo=UTC),
        occurrences=1,
        details={
            "job": job,
            "step": "some_step",
            "error": "boom",
            "last_run_url": "http://d/runs/x",
        },
    )
    alert = alert_context(SENDER, None, MonitoringSettings(evidently_workspace=""))
    email = notice_for(incident, "opened", alert)
    assert email.severity == "ERROR"
    ((name, line),) = email.runbook
    assert name == job and expected in line
    assert "Last failed run: http://d/runs/x" in email.text()


def test_links_that_are_not_web_links_are_left_out() -> None:
    incident = drift_incident()
    details: dict[str, Any] = {**incident.details, "report_key": "reports/x/drift.html"}
    share = {
        "reports/x/drift.html": "https://bucket.s3.amazonaws.com/reports/x/drift.html?X-Amz-Signature=1"
    }
    alert = alert_context(
        SENDER, None, MonitoringSettings(evidently_workspace=""), share.__getitem__
    )
    on_s3 = notice_for(Incident(**{**incident.__dict__, "details": details}), "opened", alert)
    assert links_of(on_s3.text())["Drift report (HTML)"] == share["reports/x/drift.html"]
    alert = alert_context(SENDER, None, MonitoringSettings(evidently_workspace=""), folder_share)
    in_a_folder = notice_for(Incident(**{**incident.__dict__, "details": details}), "opened", alert)
    assert "Drift report (HTML)" not in links_of(in_a_folder.text())


def test_a_refused_candidate_names_the_check_and_its_verdict(instance: DagsterInstance) -> None:
    """Review of issue 24: a retraining the champion check refused e-mailed "training_job
    failed at model_bundle_model_bundle_vs_champion: DagsterAssetCheckFailedError: 1 blocking
    asset check failed with ERROR severity:": the error's first line ends before the check's
    name, and the numbers that refused the candidate were in Dagster's check alone."""
    from dagster import AssetCheckResult, asset, asset_check, materialize

    from studperf_assets.sensors.incidents import run_failure

    @asset
    def model_bundle() -> int:
        return 1

    @asset_check(asset=model_bundle, blocking=True)
    def model_bundle_vs_champion():  # no annotation: Dagster resolves it, and it is local
        verdict = "Champion check failed: candidate v2 test f1-macro 0.5000 against 0.6000"
        return AssetCheckResult(passed=False, metadata={"verdict": verdict})

    result = materialize(
        [model_bundle, model_bundle_vs_champion], instance=instance, raise_on_error=False
    )
    assert not result.success
    failure = run_failure(instance, result.run_id)
    assert failure.error == (
        "model_bundle_vs_champion failed: Champion check failed: candidate v2 test f1-macro "
        "0.5000 against 0.6000"
    )
