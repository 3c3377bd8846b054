"""Monitoring for real: traffic through the Lambda core on moto, Dagster partitions, Evidently
reports, metrics in PostgreSQL, SES alerts read back from moto, sensors with an instance."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pandas as pd
import psycopg2
import pytest
import sqlalchemy as sa
from dagster import DagsterInstance, SensorResult, build_sensor_context, instance_for_test

from lambda_service.model_provider import ModelProvider
from lambda_service.service import PredictionService
from lambda_service.streams import KinesisSink
from studperf_assets.definitions import make_definitions
from studperf_assets.deployment import Deployment
from studperf_assets.lib import data, drift
from studperf_assets.lib.simulation import Drift, StudentGenerator
from studperf_assets.resources.monitoring import AlertSender, MonitoringSettings
from studperf_assets.serving.kinesis_poller import KinesisPoller
from studperf_assets.serving.moto_local import sent_emails
from studperf_assets.serving.traffic import simulate, training_generator
from studperf_assets.training_run import run_training
from studperf_assets_tests.conftest import PG_URL
from studperf_assets_tests.kinesis_fakes import create_stream


def _reference_and_train() -> tuple[pd.DataFrame, pd.DataFrame]:
    raw = data.parse_raw_csv(data.bundled_dataset_path().read_bytes())
    splits = data.reference_split(data.select_features(raw))
    reference = pd.concat([splits["val"], splits["test"]])
    reference = reference.assign(prediction=reference["GradeClass"], target=reference["GradeClass"])
    return reference, raw.loc[splits["train"].index]


def _batch(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.assign(prediction=data.grade_from_gpa(rows["GPA"]), target=rows["GradeClass"])


def test_no_drift_passes_and_a_shifted_batch_fails() -> None:
    reference, train = _reference_and_train()
    generator = StudentGenerator(train, seed=3)
    calm = drift.drift_report(reference, _batch(generator.sample(400))).summary
    shifted = drift.drift_report(reference, _batch(generator.sample(400, Drift(8, 0.5)))).summary
    assert calm.drift_share < 0.2 and calm.drifted_features == []
    assert set(shifted.drifted_features) == {"StudyTimeWeekly", "Absences"}
    assert shifted.prediction_drift > calm.prediction_drift
    assert calm.f1_macro == pytest.approx(1.0) and calm.labelled_rows == 400


def test_quality_only_over_labelled_rows_and_sampling_above_the_limit() -> None:
    reference, train = _reference_and_train()
    batch = _batch(StudentGenerator(train, seed=4).sample(600))
    batch.loc[batch.index[:200], "target"] = np.nan
    batch.loc[batch.index[200:260], "prediction"] = (
        batch.loc[batch.index[200:260], "prediction"] + 1
    ) % 5
    result = drift.drift_report(reference, batch, max_rows=300)
    assert result.summary.rows == 600 and result.summary.rows_compared == 300
    assert 0 < result.summary.labelled_rows < 300
    assert result.summary.f1_macro is not None and result.summary.f1_macro < 1.0
    assert result.quality is not None


def test_simulator_is_fitted_on_training_rows_and_keeps_labels_consistent() -> None:
    generator = training_generator(seed=1)
    raw = data.parse_raw_csv(data.bundled_dataset_path().read_bytes())
    splits = data.reference_split(data.select_features(raw))
    assert set(generator.train["StudentID"]) == set(raw.loc[splits["train"].index, "StudentID"])
    rows = generator.sample(500, Drift(absences_added=6))
    assert data.schema_problems(rows) == [] and data.label_consistent(rows).all()
    assert rows["StudentID"].min() >= 1_000_000 and rows["StudentID"].is_unique
    # a raw shift moves the feature after the labels were drawn: same GPA, shifted input
    plain = training_generator(seed=2).sample(300)
    shifted = training_generator(seed=2).sample(300, Drift(raw_shift={"StudyTimeWeekly": 5.0}))
    assert (plain["GPA"] == shifted["GPA"]).all()
    moved = shifted["StudyTimeWeekly"] - plain["StudyTimeWeekly"]
    assert moved.max() == pytest.approx(5.0) and (moved >= 0).all()
    with pytest.raises(ValueError, match="unknown drift setting"):
        Drift.parse("sleep=9")


# ---- the whole loop, on moto server, PostgreSQL and a Dagster instance ----------------------


@pytest.fixture(scope="module")
def metrics_db() -> Iterator[str]:
    name = f"studperf_monitoring_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(PG_URL)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_URL.rsplit('/', 1)[0].replace('postgresql://', 'postgresql+psycopg2://')}/{name}"
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(scope="module")
def stack(
    moto_server: str, metrics_db: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """Trained + promoted bundle, streams, traffic (calm then drifted) through the Lambda core."""
    home = tmp_path_factory.mktemp("monitoring-home")
    suffix = uuid.uuid4().hex[:6]
    streams = {k: f"mon-{k}-{suffix}" for k in ("input", "predictions", "errors")}
    kinesis = boto3.client("kinesis")
    for name in streams.values():
        create_stream(kinesis, name)
    boto3.client("ses").verify_email_identity(EmailAddress="alerts@studperf.test")
    deployment = Deployment(
        home=home,
        metrics_db_url=metrics_db,
        predictions_stream=streams["predictions"],
        alert_sender="alerts@studperf.test",
        alert_recipients=("oncall@studperf.test",),
        monitoring={
            "batch_size": 200,
            "min_new_labels_for_retraining": 100,
            "retraining_cooldown_seconds": 0,
        },
    )
    definitions = make_definitions(deployment)
    resources = dict(definitions.resources or {})
    with instance_for_test() as instance:
        outcome = run_training(instance=instance, definitions=definitions)
        assert outcome.success, outcome.failures
        generator = training_generator(seed=7)
        store = resources["object_store"]
        simulate(kinesis, streams["input"], store, generator, 400)
        simulate(
            kinesis,
            streams["input"],
            store,
            generator,
            400,
            drift=Drift(absences_added=8, study_time_factor=0.5),
        )
        provider = ModelProvider(str(home / "model_store"), home / "cache")
        service = PredictionService(
            provider, KinesisSink(kinesis), streams["predictions"], streams["errors"]
        )
        poller = KinesisPoller(
            kinesis,
            streams["input"],
            lambda e, _c: service.handle_kinesis(e["Records"]).response(),
            batch_size=500,
            sleep=lambda _s: None,
        )
        assert poller.run(until_idle=1, poll_interval=0).records == 800
        yield {
            "home": home,
            "deployment": deployment,
            "instance": instance,
            "definitions": definitions,
            "resources": resources,
            "moto": moto_server,
            "streams": streams,
            "poller": poller,
        }


def _sensor(stack: dict[str, Any], name: str, cursor: str | None = None) -> Any:
    definition = stack["definitions"].resolve_sensor_def(name)
    with build_sensor_context(
        instance=stack["instance"], cursor=cursor, resources=stack["resources"]
    ) as context:
        return definition(context), context


@pytest.fixture(scope="module")
def monitored(stack: dict[str, Any]) -> dict[str, Any]:
    """The batch sensor cuts partitions; each is materialized with the monitoring job."""
    result, _ = _sensor(stack, "prediction_batch_sensor")
    assert isinstance(result, SensorResult)
    requests = result.run_requests or []
    (added,) = result.dynamic_partitions_requests or []
    keys = [r.partition_key for r in requests]
    assert keys == list(added.partition_keys) == [f"batch-00000{i}" for i in (1, 2, 3, 4)]
    instance: DagsterInstance = stack["instance"]  # as the daemon would: add, then run
    instance.add_dynamic_partitions(added.partitions_def_name, list(added.partition_keys))
    job = stack["definitions"].resolve_job_def("monitoring_job")
    outcomes = {}
    for request in requests:
        run = job.execute_in_process(
            run_config=request.run_config,
            partition_key=request.partition_key,
            instance=instance,
            raise_on_error=False,
        )
        outcomes[request.partition_key] = {
            e.check_name: e.passed for e in run.get_asset_check_evaluations()
        }
    again, _ = _sensor(stack, "prediction_batch_sensor", cursor=result.cursor)
    return {"outcomes": outcomes, "no_more": again, "cursor": result.cursor}


@pytest.mark.integration
def test_batches_reports_checks_and_metrics(
    stack: dict[str, Any], monitored: dict[str, Any], metrics_db: str
) -> None:
    outcomes = monitored["outcomes"]
    assert all(outcomes[k]["data_drift"] for k in ("batch-000001", "batch-000002"))
    assert not any(outcomes[k]["data_drift"] for k in ("batch-000003", "batch-000004"))
    assert all(o["batch_data_quality"] for o in outcomes.values())
    assert all(
        outcomes[k]["performance"] and outcomes[k]["prediction_drift"]
        for k in ("batch-000001", "batch-000002")
    )
    assert not any(outcomes[k]["prediction_drift"] for k in ("batch-000003", "batch-000004"))
    assert not isinstance(
        monitored["no_more"], SensorResult
    )  # nothing left: batches do not overlap
    with sa.create_engine(metrics_db).connect() as db:
        rows = db.execute(
            sa.text(
                "select partition, rows, labelled_rows, drift_share, report_uri"
                " from batch_metrics order by partition"
            )
        ).all()
    assert [r.partition for r in rows] == sorted(outcomes)
    assert all(r.rows == 200 and r.labelled_rows == 200 for r in rows)
    assert rows[0].drift_share < 0.2 <= rows[3].drift_share
    assert Path(rows[3].report_uri).read_text().count("<html") >= 1
    archive = stack["home"] / "monitoring" / "batches" / "batch-000001" / "predictions.parquet"
    assert len(pd.read_parquet(archive)) == 200
    from evidently.ui.workspace import Workspace

    workspace = Workspace(str(stack["home"] / "evidently"))
    (project,) = workspace.search_project("studperf")
    assert len(workspace.list_runs(project.id)) == 8  # drift + quality per batch


@pytest.mark.integration
def test_alerts_go_out_once_per_failed_check_and_survive_send_failures(
    stack: dict[str, Any], monitored: dict[str, Any]
) -> None:
    sender = stack["resources"]["alert_sender"]
    before = len(sent_emails(stack["moto"]))
    # an unverified sender: SES rejects, the sensor logs, keeps its cursor, and does not crash
    stack["resources"]["alert_sender"] = AlertSender(
        sender="nobody@unverified.test", recipients=sender.recipients
    )
    try:
        _, failing = _sensor(stack, "monitoring_alert_sensor")
    finally:
        stack["resources"]["alert_sender"] = sender
    assert len(sent_emails(stack["moto"])) == before
    # the cursor stops before the first run whose alert could not be sent
    _sensor(stack, "monitoring_alert_sensor", cursor=failing.cursor)
    emails = sent_emails(stack["moto"])[before:]
    failed = {(p, c) for p, o in monitored["outcomes"].items() for c, ok in o.items() if not ok}
    assert len(emails) == len(failed) and failed
    subjects = {e["subject"] for e in emails}
    assert "[studperf] data_drift failed on batch-000003" in subjects
    body = next(e["body"] for e in emails if "data_drift failed on batch-000004" in e["subject"])
    assert "drift_share" in body and "drift.html" in body
    assert emails[0]["destinations"]["ToAddresses"] == ["oncall@studperf.test"]
    _sensor(stack, "monitoring_alert_sensor", cursor=None)  # even from scratch: de-duplicated
    assert len(sent_emails(stack["moto"])) == before + len(failed)


@pytest.mark.integration
def test_retraining_sensor_requests_a_run_with_the_labelled_batches(
    stack: dict[str, Any], monitored: dict[str, Any]
) -> None:
    result, _ = _sensor(stack, "retraining_sensor")
    assert isinstance(result, SensorResult)
    (request,) = result.run_requests or []
    assert request.job_name in (None, "training_job")
    assert (
        request.run_config["ops"]["raw_student_data"]["config"]["include_production_labels"] is True
    )
    state = json.loads(result.cursor or "{}")
    assert state["labels"] == 800
    settings = stack["resources"]["monitoring_settings"]
    stack["resources"]["monitoring_settings"] = MonitoringSettings(
        evidently_workspace=settings.evidently_workspace,
        retraining_cooldown_seconds=3600,
        min_new_labels_for_retraining=100,
    )
    try:  # the same failures again: a retraining an hour ago holds it back (cooldown)
        just_retrained = json.dumps({"after": 0, "last_retrain": time.time() - 60, "labels": 0})
        held, held_context = _sensor(stack, "retraining_sensor", cursor=just_retrained)
    finally:
        stack["resources"]["monitoring_settings"] = settings
    assert not isinstance(held, SensorResult) and "cooldown" in str(held.skip_message)
    assert held_context.cursor == just_retrained  # failures still count once it has passed
    # and without newly labelled rows there is nothing to retrain on
    no_new_labels = json.dumps({"after": 0, "last_retrain": 0, "labels": 800})
    starved, _ = _sensor(stack, "retraining_sensor", cursor=no_new_labels)
    assert not isinstance(starved, SensorResult) and "0 new labelled rows" in str(
        starved.skip_message
    )
    job = stack["definitions"].resolve_job_def("training_job")
    run = job.execute_in_process(
        run_config=request.run_config, instance=stack["instance"], raise_on_error=False
    )
    raw = run.output_for_node("raw_student_data")
    assert len(raw) == 2392 + 800
    assert {e.check_name: e.passed for e in run.get_asset_check_evaluations()}[
        "raw_unique_student_ids"
    ]


@pytest.mark.integration
def test_late_labels_rerun_the_batch_that_missed_them(
    stack: dict[str, Any], monitored: dict[str, Any]
) -> None:
    from datetime import UTC, datetime, timedelta

    from studperf_assets.lib.labels import REQUEST_ID, write_labels
    from studperf_assets.lib.simulation import request_id_for
    from studperf_assets.serving.traffic import reserve_ids, send

    store = stack["resources"]["object_store"]
    rows = training_generator(seed=11).sample(200, first_id=reserve_ids(store, 200))
    rows.insert(0, REQUEST_ID, [request_id_for(int(i)) for i in rows["StudentID"]])
    write_labels(store, rows, datetime.now(UTC) + timedelta(days=1))  # not arrived yet
    streams = stack["streams"]
    send(boto3.client("kinesis"), streams["input"], rows)
    stack["poller"].run(until_idle=1, poll_interval=0)
    result, _ = _sensor(stack, "prediction_batch_sensor", cursor=monitored["cursor"])
    (request,) = result.run_requests
    assert request.partition_key == "batch-000005"
    stack["instance"].add_dynamic_partitions("prediction_batches", [request.partition_key])
    job = stack["definitions"].resolve_job_def("monitoring_job")
    job.execute_in_process(
        run_config=request.run_config,
        partition_key=request.partition_key,
        instance=stack["instance"],
        raise_on_error=False,
    )
    database = stack["resources"]["metrics_database"]
    latest = {b["partition"]: b for b in database.batches()}[request.partition_key]
    assert latest["labelled_rows"] == 0
    nothing_new, labels_context = _sensor(stack, "late_labels_sensor")
    assert not isinstance(nothing_new, SensorResult) or not nothing_new.run_requests
    write_labels(store, rows, datetime.now(UTC) + timedelta(seconds=1))  # these arrive now
    time.sleep(1.5)
    labels_result, _ = _sensor(stack, "late_labels_sensor", cursor=labels_context.cursor)
    assert [r.partition_key for r in labels_result.run_requests] == [request.partition_key]
    again = labels_result.run_requests[0]
    job.execute_in_process(
        partition_key=again.partition_key, instance=stack["instance"], raise_on_error=False
    )
    assert {b["partition"]: b for b in database.batches()}[request.partition_key][
        "labelled_rows"
    ] == 200


@pytest.mark.integration
def test_a_database_outage_does_not_hide_drift(
    stack: dict[str, Any], monitored: dict[str, Any]
) -> None:
    from dagster import DagsterEventType

    from studperf_assets.serving.moto_local import free_port

    down = f"postgresql+psycopg2://studperf:hunter2@127.0.0.1:{free_port()}/monitoring"
    deployment = stack["deployment"].with_(metrics_db_url=down)
    definitions = make_definitions(deployment)
    started = time.time()
    run = definitions.resolve_job_def("monitoring_job").execute_in_process(
        partition_key="batch-000004", instance=stack["instance"], raise_on_error=False
    )
    assert not run.success  # the SQL step failed, after its retries...
    checks = {e.check_name: e for e in run.get_asset_check_evaluations()}
    assert not checks["data_drift"].passed  # ...but the drift was judged from the report
    labels = checks["batch_labels"]
    unavailable = str(labels.metadata["labels_unavailable"].value)
    assert not labels.passed and f"127.0.0.1:{down.rsplit(':', 1)[1]}" in unavailable
    failures = [e for e in run.all_events if e.event_type == DagsterEventType.STEP_FAILURE]
    (failure,) = failures
    assert failure.step_key == "batch_metrics"
    error = failure.event_specific_data.error  # type: ignore[union-attr]
    message = ""
    while error is not None:  # "Exceeded max_retries of 3", caused by the last attempt's error
        message, error = message + str(error.message), error.cause
    assert "monitoring database postgresql+psycopg2://studperf:***@127.0.0.1" in message
    assert "hunter2" not in message + unavailable
    retries = [e for e in run.all_events if e.event_type == DagsterEventType.STEP_UP_FOR_RETRY]
    assert len(retries) == 3
    # the alert still goes out, though alerts_sent cannot be read or written
    before = len(sent_emails(stack["moto"]))
    alerts = definitions.resolve_sensor_def("monitoring_alert_sensor")
    resources = dict(definitions.resources or {})
    with build_sensor_context(
        instance=stack["instance"], cursor=str(started), resources=resources
    ) as context:
        alerts(context)
    subjects = [e["subject"] for e in sent_emails(stack["moto"])[before:]]
    assert "[studperf] data_drift failed on batch-000004" in subjects
