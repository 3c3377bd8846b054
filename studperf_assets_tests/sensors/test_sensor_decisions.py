"""Each sensor's decisions, fast: one tick with ``build_sensor_context``, small fakes for the
label files and the monitoring database, and real Dagster runs in a test instance
for the sensors that read runs. The integration tests (test_monitoring, test_live_loop) run
the same sensors against moto, PostgreSQL and the daemon."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    DagsterInstance,
    Definitions,
    RunRequest,
    SensorResult,
    SkipReason,
    asset,
    asset_check,
    build_sensor_context,
    define_asset_job,
    instance_for_test,
)

from studperf_assets import sensors
from studperf_assets.constants import PARTITION_TAG
from studperf_assets.lib.labels import label_key
from studperf_assets.lib.windows import window_key
from studperf_assets.resources.metrics_db import MonitoringDatabaseError
from studperf_assets.resources.monitoring import MonitoringSettings
from studperf_assets.resources.object_store import LocalObjectStore
from studperf_assets.sensors.late_labels_sensor import late_labels_sensor
from studperf_assets.sensors.monitoring_alert_sensor import monitoring_alert_sensor
from studperf_assets.sensors.retraining_sensor import retraining_sensor


def window(minute: int) -> str:
    """The key of the monitoring window that starts ``minute`` minutes after 10:00 UTC."""
    return window_key(datetime(2026, 12, 1, 10, tzinfo=UTC) + timedelta(minutes=minute))


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    with instance_for_test() as test_instance:
        yield test_instance


def evaluate(
    function: Any, instance: DagsterInstance, cursor: str | None = None, **resources: Any
) -> tuple[Any, str | None]:
    """One tick: what the sensor function returned, and the cursor it leaves behind."""
    with build_sensor_context(instance=instance, cursor=cursor) as context:
        result = function(context, **resources)
        after = context.cursor
    if isinstance(result, SensorResult) and result.cursor is not None:
        after = result.cursor
    return result, after


# --- late_labels_sensor ------------------------------------------------------------------------


class FakeLabels:
    """Label files by key, each holding some request IDs; the database says which it has
    handled."""

    def __init__(self, files: dict[str, set[str]], database: FakeDatabase) -> None:
        self.files, self.database = files, database

    def unseen_versions(self, now: datetime) -> list[tuple[str, str]]:
        return sorted((k, "*") for k in self.files if k not in self.database.file_states)

    def request_ids_in(self, key: str) -> set[str]:
        return self.files[key]


class FakeDatabase:
    """The monitoring database's answers about labels (and an outage)."""

    def __init__(self, down: bool = False) -> None:
        self.down = down
        self.file_states: dict[str, tuple[str, datetime]] = {}
        self.labelled_by: dict[str, set[str]] = {}
        self.partition_of: dict[str, str] = {}
        self.joins: dict[str, dict[str, Any]] = {}

    def _up(self) -> None:
        if self.down:
            raise MonitoringDatabaseError("monitoring database sqlite:///gone: unreachable")

    def label_file_states(self, keys: Iterable[str]) -> dict[str, tuple[str, datetime]]:
        self._up()
        return {k: self.file_states[k] for k in keys if k in self.file_states}

    def label_files_handled_since(self, after: datetime) -> list[tuple[str, str, str, datetime]]:
        self._up()
        handled = [(k, "*", s, at) for k, (s, at) in self.file_states.items() if at >= after]
        return sorted(handled, key=lambda h: (h[3], h[0]))

    def request_ids_labelled_by(self, key: str) -> set[str]:
        return self.labelled_by.get(key, set())

    def partitions_for(self, request_ids: Iterable[str]) -> set[str]:
        return {self.partition_of[i] for i in request_ids if i in self.partition_of}

    def label_joins(self, partitions: Iterable[str]) -> dict[str, dict[str, Any]]:
        return {p: self.joins[p] for p in partitions if p in self.joins}

    def record_verdicts(self, partition: str, run_id: str, at: datetime, verdicts: Any) -> None:
        self._up()
        raise NotImplementedError("failed checks are incidents: use a real database")

    # no incidents in this world (the incident tests use a real database)
    def statuses(self) -> dict[str, dict[str, Any]]:
        self._up()
        return {}

    def incidents(self, status: str | None = None, kind: str | None = None) -> list[Any]:
        self._up()
        return []

    def resolve_incidents(self, keys_like: str) -> list[Any]:
        return []

    def unsettled_incidents(self) -> list[Any]:
        return []


NOW = datetime.now(UTC)


def late_labels_world() -> tuple[FakeLabels, FakeDatabase, dict[str, str]]:
    """Batch 1 joined its labels before file ``late`` was ingested; batch 2 joined after file
    ``seen`` was; ``fresh`` has not been ingested yet; ``bad`` was rejected."""
    keys = {
        name: label_key(NOW - timedelta(minutes=10 - i), token=name)
        for i, name in enumerate(("late", "seen", "fresh", "bad"))
    }
    database = FakeDatabase()
    files = {keys["late"]: {"r1"}, keys["seen"]: {"r2"}, keys["fresh"]: {"r3"}, keys["bad"]: {"r4"}}
    labels = FakeLabels(files, database)
    database.labelled_by = {keys["late"]: {"r1"}, keys["seen"]: {"r2"}, keys["fresh"]: {"r3"}}
    database.partition_of = {
        "r1": "2026-12-01T10:01:00Z",
        "r2": "2026-12-01T10:02:00Z",
        "r3": "2026-12-01T10:03:00Z",
    }
    database.joins = {
        "2026-12-01T10:01:00Z": {
            "labelled": 0,
            "rows": 10,
            "joined_at": NOW - timedelta(minutes=9),
        },
        "2026-12-01T10:02:00Z": {"labelled": 3, "rows": 10, "joined_at": NOW},
        "2026-12-01T10:03:00Z": {"labelled": 10, "rows": 10, "joined_at": NOW - timedelta(hours=1)},
    }
    database.file_states = {
        keys["late"]: ("ingested", NOW - timedelta(minutes=5)),
        keys["seen"]: ("ingested", NOW - timedelta(minutes=5)),
        keys["bad"]: ("rejected", NOW - timedelta(minutes=5)),
    }
    return labels, database, keys


def late(
    instance: DagsterInstance, labels: FakeLabels, database: FakeDatabase, cursor: str | None
) -> tuple[Any, str | None]:
    return evaluate(
        late_labels_sensor,
        instance,
        cursor,
        ground_truth=labels,
        metrics_database=database,
    )


def test_late_labels_rerun_only_the_batch_that_missed_them(instance: DagsterInstance) -> None:
    labels, database, keys = late_labels_world()
    result, cursor = late(instance, labels, database, None)
    assert isinstance(result, SensorResult)
    assert [(r.partition_key, r.run_key) for r in result.run_requests or []] == [
        ("2026-12-01T10:01:00Z", f"2026-12-01T10:01:00Z@{keys['late']}")
    ]  # batch 2 already saw its file; batch 3 is complete; the rejected file reruns nothing
    state = json.loads(str(cursor))
    seen = {tuple(entry) for entry in state["seen"]}  # a file version: [key, version]
    assert seen == {(keys[k], "*") for k in ("late", "seen", "bad")}
    again, after = late(instance, labels, database, cursor)
    assert isinstance(again, SensorResult) and not again.run_requests  # looked at once
    assert again.skip_reason is not None  # the daemon shows why nothing ran
    assert "0 label files ingested since the last look, 1 not ingested yet; re-running 0" in str(
        again.skip_reason.skip_message
    )
    database.file_states[keys["fresh"]] = ("ingested", NOW)
    database.joins["2026-12-01T10:03:00Z"]["labelled"] = 9  # a label of batch 3 came in that file
    settled, final = late(instance, labels, database, after)
    assert [r.partition_key for r in settled.run_requests] == ["2026-12-01T10:03:00Z"]
    assert [keys["fresh"], "*"] in json.loads(str(final))["seen"]
    quiet, _ = late(instance, labels, database, final)
    assert not quiet.run_requests


def test_late_labels_wait_out_a_database_outage(instance: DagsterInstance) -> None:
    labels, database, _ = late_labels_world()
    database.down = True
    result, cursor = late(instance, labels, database, None)
    assert isinstance(result, SkipReason) and "label files wait for the next tick" in str(
        result.skip_message
    )
    assert cursor is None  # nothing was marked done
    empty = FakeDatabase()
    quiet, _ = late(instance, FakeLabels({}, empty), empty, None)
    assert isinstance(quiet, SensorResult) and not quiet.run_requests
    assert "0 label files ingested since the last look, 0 not ingested yet" in str(
        quiet.skip_reason.skip_message if quiet.skip_reason else ""
    )


# --- monitoring runs, as monitoring_alert_sensor and retraining_sensor read them ---------------


def monitoring_run(instance: DagsterInstance, partition: str, failing: dict[str, Any]) -> str:
    """A finished ``monitoring_job`` run in which the named checks failed (with metadata)."""

    @asset(name="drift_report")
    def report() -> int:
        return 1

    def check(name: str) -> Any:
        @asset_check(asset=report, name=name)
        def evaluated() -> AssetCheckResult:
            return AssetCheckResult(
                passed=name not in failing,
                metadata=failing.get(name, {}),
                severity=AssetCheckSeverity.WARN if "drift" in name else AssetCheckSeverity.ERROR,
            )

        return evaluated

    names = ("batch_labels", "batch_data_quality", "data_drift", "prediction_drift")
    definitions = Definitions(
        assets=[report],
        asset_checks=[check(n) for n in names],
        jobs=[define_asset_job("monitoring_job")],
    )
    run = definitions.resolve_job_def("monitoring_job").execute_in_process(
        instance=instance, tags={PARTITION_TAG: partition}
    )
    return run.run_id


class FakeSender:
    dagster_url = "http://dagster.test"
    evidently_url = "http://evidently.test"
    mlflow_url = "http://mlflow.test"
    recipients = ("oncall@example.org",)

    def __init__(self, failing: bool = False) -> None:
        self.failing = failing
        self.sent: list[tuple[str, str]] = []

    def run_url(self, run_id: str) -> str:
        return f"http://dagster.test/runs/{run_id}"

    def send(self, subject: str, text: str, html: str | None = None) -> str:
        if self.failing:
            raise RuntimeError("SES: MessageRejected")
        self.sent.append((subject, text))
        return f"message-{len(self.sent)}"


DRIFT = {"drift_share": 0.5, "rows": 200, "model_version": "v1", "report_key": "r/drift.html"}


def alerts(
    instance: DagsterInstance,
    cursor: str | None,
    sender: Any,
    database: Any,
    tmp_path: Path,
    settings: MonitoringSettings | None = None,
) -> tuple[Any, str | None]:
    return evaluate(
        monitoring_alert_sensor,
        instance,
        cursor,
        alert_sender=sender,
        metrics_database=database,
        object_store=LocalObjectStore(root=str(tmp_path)),
        monitoring_settings=settings or MonitoringSettings(),
    )


def test_failed_checks_of_real_runs_open_one_incident_per_group(
    instance: DagsterInstance, tmp_path: Path, database: Any
) -> None:
    """Dagster runs as the sensor reads them: their failed and passed checks become each
    window's verdicts; drift and labels are separate incidents, each told once, with the
    severity each check was evaluated at (here ERROR for batch_labels, not its usual WARN),
    and the tick's message names what it sent."""
    monitoring_run(instance, "2026-12-01T10:01:00Z", {})
    run_id = monitoring_run(
        instance, "2026-12-01T10:02:00Z", {"data_drift": DRIFT, "batch_labels": {"missing": 5}}
    )
    sender = FakeSender()
    result, cursor = alerts(instance, None, sender, database, tmp_path)
    assert result.skip_message.startswith(
        "sent 2 e-mails to oncall@example.org: OPEN #1 checks:drift WARN (data_drift); "
        "OPEN #2 checks:labels ERROR (batch_labels) | 2 windows' checks recorded"
    )
    subjects = sorted(s for s, _ in sender.sent)
    assert subjects == [
        "[studperf] OPEN: drift incident: data_drift failed on 2026-12-01T10:02:00Z",
        "[studperf] OPEN: labels incident: batch_labels failed on 2026-12-01T10:02:00Z",
    ]
    (drift_text,) = [t for s, t in sender.sent if "drift incident" in s]
    assert f"http://dagster.test/runs/{run_id}" in drift_text and "v1" in drift_text
    assert "open: #1 checks:drift (1 occurrences, 2026-12-01T10:02:00Z); #2 checks:labels" in str(
        result.skip_message
    )
    quiet, _ = alerts(instance, cursor, sender, database, tmp_path)  # nothing new
    assert str(quiet.skip_message).startswith("sent nothing | 0 windows' checks recorded")
    alerts(instance, None, sender, database, tmp_path)  # cursor lost: the database remembers
    assert len(sender.sent) == 2


def test_an_outage_does_not_silence_failed_checks(
    instance: DagsterInstance, tmp_path: Path
) -> None:
    """With the monitoring database down there is no incident: the window's failed checks
    are in the one "monitoring database down" e-mail, sent once (the cursor keeps it), and
    a refused send is retried."""
    monitoring_run(instance, "2026-12-01T10:01:00Z", {"data_drift": DRIFT})
    database = FakeDatabase(down=True)
    result, cursor = alerts(instance, None, FakeSender(failing=True), database, tmp_path)
    assert "1 runs wait for the monitoring database; its outage e-mail to retry" in str(
        result.skip_message
    )
    sender = FakeSender()
    _, cursor = alerts(instance, cursor, sender, database, tmp_path)
    ((subject, text),) = sender.sent
    assert subject == "[studperf] OPEN: monitoring database down"
    assert "2026-12-01T10:01:00Z: checks failed: data_drift" in text
    alerts(instance, cursor, sender, database, tmp_path)
    assert len(sender.sent) == 1


# --- failed checks on consecutive windows: incidents -------------------------------------------

PASSING = ("batch_records", "batch_labels", "batch_data_quality", "data_drift", "prediction_drift")


def drifted(scores: dict[str, float]) -> dict[str, dict[str, Any]]:
    """A window's failed drift checks: the features over 0.2 drifted."""
    data_drift = {
        "drift_share": 0.4,
        "threshold": 0.2,
        "drifted_features": sorted(f for f, v in scores.items() if v > 0.2),
        "feature_scores": scores,
        "feature_thresholds": dict.fromkeys(scores, 0.2),
        "rows": 200,
        "model_version": "v1",
        "report_key": "reports/x/drift.html",
    }
    prediction_drift = {"prediction_drift": 0.3, "threshold": 0.15, "model_version": "v1"}
    return {"data_drift": data_drift, "prediction_drift": prediction_drift}


class Windows:
    """Finished monitoring runs as the alert sensor reads them (no Dagster run behind them:
    the sensor's decisions, fast), and the clock it reads."""

    def __init__(self) -> None:
        self.runs: list[Any] = []
        self.now = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)

    def finish(self, number: int, failed: dict[str, dict[str, Any]] | None = None) -> None:
        from studperf_assets.sensors.runs import MonitoringRun

        failed = failed or {}
        self.runs.append(
            MonitoringRun(
                updated=1000.0 + len(self.runs),
                partition=window(number),
                run_id=f"run-{len(self.runs) + 1}",
                failed=failed,
                passed={c for c in PASSING if c not in failed},
            )
        )

    def finished_runs(self, context: Any, after: float) -> Iterator[Any]:
        return iter([r for r in self.runs if r.updated > after])


@pytest.fixture
def windows(monkeypatch: pytest.MonkeyPatch) -> Windows:
    import sys

    from studperf_assets.sensors import incidents

    module = sys.modules["studperf_assets.sensors.monitoring_alert_sensor"]
    world = Windows()
    monkeypatch.setattr(module, "finished_runs", world.finished_runs)
    monkeypatch.setattr(incidents, "clock", lambda: world.now)
    return world


def subjects(sender: FakeSender) -> list[str]:
    return [s.removeprefix("[studperf] ") for s, _ in sender.sent]


def test_failing_windows_in_a_row_are_one_incident_told_once(
    instance: DagsterInstance, tmp_path: Path, database: Any, windows: Windows
) -> None:
    """Field fault: one e-mail per failing batch, about 5 a second for one drift at 1,000
    predictions/s. Five failing windows are one incident and one e-mail."""
    windows.finish(1)
    windows.finish(2, drifted({"Absences": 0.9, "StudyTimeWeekly": 0.4, "Age": 0.01}))
    windows.finish(3, drifted({"Absences": 0.5, "StudyTimeWeekly": 0.95, "Age": 0.02}))
    sender = FakeSender()
    result, cursor = alerts(instance, None, sender, database, tmp_path)
    ((subject, text),) = sender.sent
    assert subject == (
        "[studperf] OPEN: drift incident: data_drift, prediction_drift failed on "
        "2026-12-01T10:02:00Z"
    )
    assert "failed checks: data_drift, prediction_drift" in text
    assert "window(s): 2026-12-01T10:02:00Z .. 2026-12-01T10:03:00Z (2 failing)" in text
    table = text.split("Drifted features, highest score first")[1]
    assert table.index("StudyTimeWeekly") < table.index("Absences")  # by the highest score
    assert "StudyTimeWeekly  0.95" in text and "Age" not in text  # Age did not drift
    assert "http://dagster.test/runs/run-3" in text  # the last failing window's run
    assert str(result.skip_message).startswith(
        "sent 1 e-mail to oncall@example.org: OPEN #1 checks:drift WARN "
        "(data_drift, prediction_drift) | 3 windows' checks recorded"
    )
    for number in (4, 5, 6):
        windows.finish(number, drifted({"Absences": 0.7}))
        result, cursor = alerts(instance, cursor, sender, database, tmp_path)
    assert len(sender.sent) == 1
    assert (
        "open: #1 checks:drift (5 occurrences, 2026-12-01T10:02:00Z .. 2026-12-01T10:06:00Z)"
        in str(result.skip_message)
    )
    alerts(instance, cursor, sender, database, tmp_path)  # the same tick again
    alerts(instance, None, sender, database, tmp_path)  # a restart that lost the cursor
    assert len(sender.sent) == 1
    (incident,) = database.incidents()
    assert (incident.occurrences, incident.first_partition, incident.last_partition) == (
        5,
        "2026-12-01T10:02:00Z",
        "2026-12-01T10:06:00Z",
    )


def test_a_reminder_once_per_period_while_open(
    instance: DagsterInstance, tmp_path: Path, database: Any, windows: Windows
) -> None:
    windows.finish(1, drifted({"Absences": 0.9}))
    sender = FakeSender()
    _, cursor = alerts(instance, None, sender, database, tmp_path)
    for minutes in (30, 59):
        windows.now += timedelta(minutes=minutes - (windows.now.minute or 0))
        windows.finish(1 + minutes, drifted({"Absences": 0.9}))
        _, cursor = alerts(instance, cursor, sender, database, tmp_path)
    assert len(sender.sent) == 1  # not before the hour
    windows.now = datetime(2026, 12, 1, 11, 0, 1, tzinfo=UTC)
    alerts(instance, cursor, sender, database, tmp_path)
    alerts(instance, None, sender, database, tmp_path)
    assert subjects(sender)[1:] == [
        "STILL OPEN: drift incident: data_drift, prediction_drift failed on 2026-12-01T10:01:00Z"
    ]
    assert (
        "window(s): 2026-12-01T10:01:00Z .. 2026-12-01T11:00:00Z (3 failing)" in sender.sent[1][1]
    )
    windows.now = datetime(2026, 12, 1, 12, 0, 2, tzinfo=UTC)
    alerts(instance, cursor, sender, database, tmp_path)
    assert len(sender.sent) == 3  # one more after another hour


def test_resolved_after_consecutive_passing_windows_then_a_new_incident(
    instance: DagsterInstance, tmp_path: Path, database: Any, windows: Windows
) -> None:
    windows.finish(1, drifted({"Absences": 0.9}))
    windows.finish(2, drifted({"Absences": 0.9}))
    sender = FakeSender()
    _, cursor = alerts(instance, None, sender, database, tmp_path)
    for number in (3, 4):
        windows.finish(number)
    windows.finish(5, drifted({"Absences": 0.9}))  # not yet: the streak starts over
    for number in (6, 7):
        windows.finish(number)
    _, cursor = alerts(instance, cursor, sender, database, tmp_path)
    assert len(sender.sent) == 1
    windows.finish(8)  # the third in a row
    _, cursor = alerts(instance, cursor, sender, database, tmp_path)
    alerts(instance, cursor, sender, database, tmp_path)
    alerts(instance, None, sender, database, tmp_path)
    assert subjects(sender)[1:] == [
        "RESOLVED: drift incident: data_drift, prediction_drift failed on 2026-12-01T10:01:00Z"
    ]
    assert "passed: 3 consecutive windows, through 2026-12-01T10:08:00Z" in sender.sent[1][1]
    assert (
        "window(s): 2026-12-01T10:01:00Z .. 2026-12-01T10:05:00Z (3 failing)" in sender.sent[1][1]
    )
    windows.finish(9, drifted({"Absences": 0.8}))
    alerts(instance, cursor, sender, database, tmp_path)
    assert subjects(sender)[2:] == [
        "OPEN: drift incident: data_drift, prediction_drift failed on 2026-12-01T10:09:00Z"
    ]
    first, second = database.incidents()
    assert (first.status, second.status, second.occurrences) == ("resolved", "open", 1)


def test_windows_count_in_their_order_not_their_runs(
    instance: DagsterInstance, tmp_path: Path, database: Any, windows: Windows
) -> None:
    """Windows are monitored out of order (the newest first, a backlog after): passing
    windows before the last failing one do not resolve it, and an incident opened and
    passed within one tick is still told before it is resolved."""
    windows.finish(5, drifted({"Absences": 0.9}))
    for number in (8, 7, 3, 2, 1):
        windows.finish(number)
    sender = FakeSender()
    settings = MonitoringSettings(incident_resolve_after_passing=2)
    _, cursor = evaluate(
        monitoring_alert_sensor,
        instance,
        None,
        alert_sender=sender,
        metrics_database=database,
        object_store=LocalObjectStore(root=str(tmp_path)),
        monitoring_settings=settings,
    )
    assert subjects(sender) == [
        "OPEN: drift incident: data_drift, prediction_drift failed on 2026-12-01T10:05:00Z"
    ]  # told, not yet resolved, although 7 and 8 passed
    windows.finish(6, drifted({"Absences": 0.9}))  # late, and failing: 7 and 8 still follow it
    evaluate(
        monitoring_alert_sensor,
        instance,
        cursor,
        alert_sender=sender,
        metrics_database=database,
        object_store=LocalObjectStore(root=str(tmp_path)),
        monitoring_settings=settings,
    )
    assert subjects(sender)[1:] == [
        "RESOLVED: drift incident: data_drift, prediction_drift failed on 2026-12-01T10:05:00Z"
    ]
    assert "through 2026-12-01T10:08:00Z" in sender.sent[1][1]
    assert (
        "window(s): 2026-12-01T10:05:00Z .. 2026-12-01T10:06:00Z (2 failing)" in sender.sent[1][1]
    )


def test_drift_and_performance_are_separate_and_unjudged_is_not_passing(
    instance: DagsterInstance, tmp_path: Path, database: Any, windows: Windows
) -> None:
    low = {"f1_macro": 0.31, "floor": 0.5, "labelled_rows": 80, "model_version": "v1"}
    windows.finish(1, {"performance": low})
    windows.finish(2, drifted({"Absences": 0.9}))
    for number in (3, 4, 5, 6):  # drift passes; performance is not judged (no labels yet)
        windows.finish(number)
    sender = FakeSender()
    _, cursor = alerts(instance, None, sender, database, tmp_path)
    alerts(instance, cursor, sender, database, tmp_path)
    assert sorted(subjects(sender)) == [
        "OPEN: drift incident: data_drift, prediction_drift failed on 2026-12-01T10:02:00Z",
        "OPEN: performance incident: performance failed on 2026-12-01T10:01:00Z",
        "RESOLVED: drift incident: data_drift, prediction_drift failed on 2026-12-01T10:02:00Z",
    ]
    (performance,) = [t for s, t in sender.sent if "performance incident" in s]
    assert "f1_macro in 2026-12-01T10:01:00Z: 0.31 (threshold 0.5)" in performance
    (still,) = database.incidents(status="open")
    assert still.key == "checks:performance"


def test_a_refused_incident_email_is_retried_and_not_resolved_untold(
    instance: DagsterInstance, tmp_path: Path, database: Any, windows: Windows
) -> None:
    windows.finish(1, drifted({"Absences": 0.9}))
    for number in (2, 3, 4):
        windows.finish(number)
    result, cursor = alerts(instance, None, FakeSender(failing=True), database, tmp_path)
    assert str(result.skip_message).startswith("sent nothing; 1 e-mail to retry")
    sender = FakeSender()
    alerts(instance, cursor, sender, database, tmp_path)
    alerts(instance, cursor, sender, database, tmp_path)
    assert [s.split(":")[0] for s in subjects(sender)] == ["OPEN", "RESOLVED"]


class FakeGroundTruth:
    def __init__(self, labels: int, down: bool = False) -> None:
        self.labels, self.down = labels, down

    def usable_labels(self) -> int:
        if self.down:
            raise MonitoringDatabaseError("monitoring database sqlite:///gone: unreachable")
        return self.labels


def retrain(
    instance: DagsterInstance,
    cursor: str | None,
    labels: FakeGroundTruth,
    database: Any,
    cooldown: int = 0,
) -> tuple[Any, str | None]:
    settings = MonitoringSettings(
        retraining_cooldown_seconds=cooldown, min_new_labels_for_retraining=100
    )
    return evaluate(
        retraining_sensor,
        instance,
        cursor,
        ground_truth=labels,
        monitoring_settings=settings,
        alert_sender=FakeSender(),
        metrics_database=database,
    )


def test_retraining_needs_an_incident_new_labels_and_the_cooldown_passed(
    instance: DagsterInstance, tmp_path: Path, database: Any, windows: Windows
) -> None:
    windows.finish(1, {"batch_labels": {"missing": 3}})  # an incident, not a trigger
    _, cursor = alerts(instance, None, FakeSender(), database, tmp_path)
    quiet, _ = retrain(instance, None, FakeGroundTruth(500), database)
    assert "no open drift or performance incident" in str(quiet.skip_message)
    down, kept = retrain(instance, None, FakeGroundTruth(500), FakeDatabase(down=True))
    assert "retraining waits for it" in str(down.skip_message) and kept is None
    windows.finish(2, drifted({"Absences": 0.9}))
    alerts(instance, cursor, FakeSender(), database, tmp_path)
    starved, kept = retrain(instance, None, FakeGroundTruth(60), database)
    assert starved.skip_message == "60 new labelled rows; 100 needed" and kept is None
    down, kept = retrain(instance, None, FakeGroundTruth(500, down=True), database)
    assert "retraining waits for it" in str(down.skip_message) and kept is None
    recent = json.dumps({"after": 0, "last_retrain": time.time() - 60, "labels": 0})
    held, kept = retrain(instance, recent, FakeGroundTruth(500), database, cooldown=3600)
    assert held.skip_message == "retraining cooldown" and kept == recent
    fired, cursor = retrain(instance, None, FakeGroundTruth(500), database)
    assert isinstance(fired, SensorResult)
    (request,) = fired.run_requests or []
    assert isinstance(request, RunRequest)
    (drift,) = database.incidents(status="open", kind="checks_failed")[1:]
    assert request.run_key == f"retrain-incident-{drift.id}"
    assert request.tags["studperf/incident"] == str(drift.id)
    assert request.tags["studperf/trigger"] == "data_drift,prediction_drift@2026-12-01T10:02:00Z"
    assert request.tags["studperf/new_labels"] == "500"
    assert request.run_config["ops"]["raw_student_data"]["config"] == {
        "include_production_labels": True
    }
    assert json.loads(str(cursor))["labels"] == 500


def test_retraining_once_per_incident_not_per_window(
    instance: DagsterInstance, tmp_path: Path, database: Any, windows: Windows
) -> None:
    windows.finish(1, drifted({"Absences": 0.9}))
    _, alert_cursor = alerts(instance, None, FakeSender(), database, tmp_path)
    fired, cursor = retrain(instance, None, FakeGroundTruth(500), database)
    (request,) = fired.run_requests
    for number in (2, 3, 4):  # the same incident goes on, with labels to spare
        windows.finish(number, drifted({"Absences": 0.9}))
        _, alert_cursor = alerts(instance, alert_cursor, FakeSender(), database, tmp_path)
        again, cursor = retrain(instance, cursor, FakeGroundTruth(500 + 500 * number), database)
        assert "no open drift or performance incident" in str(again.skip_message)
    # a lost cursor: the run requested for the incident is found by its tag
    from dagster._core.test_utils import create_run_for_test

    create_run_for_test(instance, job_name="training_job", tags=request.tags)
    lost, _ = retrain(instance, None, FakeGroundTruth(5000), database)
    assert "no open drift or performance incident" in str(lost.skip_message)
    # resolved, then a new incident: a new retraining
    for number in (5, 6, 7):
        windows.finish(number)
    _, alert_cursor = alerts(instance, alert_cursor, FakeSender(), database, tmp_path)
    windows.finish(8, drifted({"Absences": 0.9}))
    alerts(instance, alert_cursor, FakeSender(), database, tmp_path)
    new, _ = retrain(instance, cursor, FakeGroundTruth(5000), database)
    (second,) = new.run_requests
    assert second.run_key != request.run_key and second.tags["studperf/trigger"].endswith(
        "@2026-12-01T10:08:00Z"
    )


def test_a_retraining_that_ended_without_a_champion_is_tried_again(
    instance: DagsterInstance, tmp_path: Path, database: Any, windows: Windows
) -> None:
    """Review of issue 24: a retraining whose candidate the champion check refused (a
    blocking check fails the run) left its incident open and never retrained again."""
    from dagster import DagsterRunStatus
    from dagster._core.test_utils import create_run_for_test

    from studperf_assets.sensors.retraining_sensor import MAX_RETRAININGS

    windows.finish(1, drifted({"Absences": 0.9}))
    alerts(instance, None, FakeSender(), database, tmp_path)
    labels, cursor, keys = 500, None, []
    for attempt in range(1, MAX_RETRAININGS + 1):
        fired, cursor = retrain(instance, cursor, FakeGroundTruth(labels), database)
        (request,) = fired.run_requests
        keys.append(request.run_key)
        assert request.tags["studperf/retraining_attempt"] == str(attempt)
        waiting, _ = retrain(instance, cursor, FakeGroundTruth(labels + 500), database)
        assert "no open drift" in str(waiting.skip_message)  # requested, not launched yet
        run = create_run_for_test(instance, job_name="training_job", tags=request.tags)
        running, _ = retrain(instance, cursor, FakeGroundTruth(labels + 500), database)
        assert "no open drift" in str(running.skip_message)  # on its way
        instance.report_run_failed(run)  # refused by the champion check
        if attempt < MAX_RETRAININGS:  # again, once labels came, as the first time
            starved, _ = retrain(instance, cursor, FakeGroundTruth(labels + 50), database)
            assert starved.skip_message == "50 new labelled rows; 100 needed"
        labels += 500
    (drift,) = database.incidents(status="open", kind="checks_failed")
    assert keys == [
        f"retrain-incident-{drift.id}",
        f"retrain-incident-{drift.id}-2",
        f"retrain-incident-{drift.id}-3",
    ]
    spent, _ = retrain(instance, cursor, FakeGroundTruth(labels + 5000), database)
    assert "no open drift" in str(spent.skip_message)  # MAX_RETRAININGS ended: no more
    assert all(
        r.dagster_run.status == DagsterRunStatus.FAILURE
        for r in instance.get_run_records()
        if r.dagster_run.job_name == "training_job"
    )


def test_each_sensor_targets_its_job() -> None:
    targets = {s.name: s.job_name for s in sensors.build_sensors() if s.has_jobs}
    assert targets == {
        "prediction_window_sensor": "monitoring_job",
        "late_labels_sensor": "monitoring_job",
        "retraining_sensor": "training_job",
    }


# --- failed runs and failing sensors: incidents ---------------------------------------------


def failing_run(
    instance: DagsterInstance, job: str, partition: str, error: str, step: str = "drift_report"
) -> str:
    """A finished run of ``job`` whose step ``step`` raised ``error``."""
    from dagster import Failure

    @asset(name=step)
    def report() -> int:
        raise Failure(error)

    run = (
        Definitions(assets=[report], jobs=[define_asset_job(job)])
        .resolve_job_def(job)
        .execute_in_process(
            instance=instance,
            tags={PARTITION_TAG: partition} if partition else {},
            raise_on_error=False,
        )
    )
    assert not run.success
    return run.run_id


@pytest.fixture
def database(tmp_path: Path) -> Any:
    from studperf_assets.resources.metrics_db import MetricsDatabase

    return MetricsDatabase(url=f"sqlite:///{tmp_path / 'monitoring.db'}")


def test_a_failed_monitoring_run_reaches_the_on_call_once(
    instance: DagsterInstance, tmp_path: Path, database: Any
) -> None:
    """Field fault: the alert sensor read only failed checks; a monitoring run that failed
    (the window never monitored) alerted nobody."""
    first = failing_run(
        instance, "monitoring_job", "2026-12-01T10:03:00Z", "batch 2026-12-01T10:03:00Z: no\nmore"
    )
    sender = FakeSender()
    result, cursor = alerts(instance, None, sender, database, tmp_path)
    ((subject, text),) = sender.sent
    assert subject == (
        "[studperf] OPEN: monitoring_job failed at drift_report (2026-12-01T10:03:00Z): "
        "batch 2026-12-01T10:03:00Z: no"
    )
    for fact in ("job: monitoring_job", "step: drift_report", "window(s): 2026-12-01T10:03:00Z"):
        assert fact in text
    assert f"http://dagster.test/runs/{first}" in text and "more" not in text  # first line only
    assert database.statuses()["2026-12-01T10:03:00Z"]["status"] == "failed"  # not just missing
    assert "sent 1 e-mail to oncall@example.org: OPEN #1 run_failed:" in str(result.skip_message)
    # the same fault on the next window is the same incident: no second e-mail
    failing_run(
        instance, "monitoring_job", "2026-12-01T10:04:00Z", "batch 2026-12-01T10:04:00Z: no\nmore"
    )
    _, cursor = alerts(instance, cursor, sender, database, tmp_path)
    alerts(instance, cursor, sender, database, tmp_path)
    alerts(instance, None, sender, database, tmp_path)  # a lost cursor sends nothing again
    assert len(sender.sent) == 1
    (incident,) = database.incidents(status="open")
    assert incident.occurrences >= 2 and incident.last_partition == "2026-12-01T10:04:00Z"
    # both windows monitored again: resolved, said once
    for partition in ("2026-12-01T10:03:00Z", "2026-12-01T10:04:00Z"):
        database.record_status(partition, "monitored", "rerun")
    alerts(instance, cursor, sender, database, tmp_path)
    alerts(instance, cursor, sender, database, tmp_path)
    assert [s for s, _ in sender.sent][1:] == [subject.replace("OPEN", "RESOLVED", 1)]


def test_a_failed_training_run_is_an_incident_and_a_refused_send_is_retried(
    instance: DagsterInstance, tmp_path: Path, database: Any
) -> None:
    failing_run(instance, "training_job", "", "the champion cannot be read")
    _, cursor = alerts(instance, None, FakeSender(failing=True), database, tmp_path)
    sender = FakeSender()
    alerts(instance, cursor, sender, database, tmp_path)  # the incident is owed its e-mail
    ((subject, text),) = sender.sent
    assert subject.startswith("[studperf] OPEN: training_job failed at drift_report")
    assert "error: the champion cannot be read" in text


def test_a_failed_daily_rollup_is_an_incident_until_its_day_is_rolled_up(
    instance: DagsterInstance, tmp_path: Path, database: Any
) -> None:
    """A day that fails to roll up keeps its windows past retention: the on-call hears of
    it, and the incident is resolved once a rollup run succeeded and that day has its row."""
    from studperf_assets.lib.daily_rollup import summarise_day

    failing_run(
        instance, "monitoring_daily_job", "2026-11-25", "database refused", "monitoring_daily"
    )
    sender = FakeSender()
    _, cursor = alerts(instance, None, sender, database, tmp_path)
    ((subject, _),) = sender.sent
    assert subject.startswith("[studperf] OPEN: monitoring_daily_job failed at monitoring_daily")
    assert database.statuses() == {}  # a day is not a window

    def succeeded() -> None:
        @asset(name="monitoring_daily")
        def rolled() -> int:
            return 1

        defs = Definitions(assets=[rolled], jobs=[define_asset_job("monitoring_daily_job")])
        defs.resolve_job_def("monitoring_daily_job").execute_in_process(
            instance=instance, tags={PARTITION_TAG: "2026-11-26"}
        )

    succeeded()  # another day rolled up: the failed one still is not
    _, cursor = alerts(instance, cursor, sender, database, tmp_path)
    assert len(sender.sent) == 1 and database.incidents(status="open")
    database.record_day(summarise_day(date(2026, 11, 25), []).to_row())
    succeeded()
    alerts(instance, cursor, sender, database, tmp_path)
    assert [s for s, _ in sender.sent][1:] == [subject.replace("OPEN", "RESOLVED", 1)]
    assert database.incidents(status="open") == []


def test_with_the_database_down_a_failed_run_is_told_at_once(
    instance: DagsterInstance, tmp_path: Path
) -> None:
    from studperf_assets.resources.metrics_db import MetricsDatabase

    gone = MetricsDatabase(url="postgresql+psycopg2://nobody@127.0.0.1:9/none")
    failing_run(instance, "monitoring_job", "2026-12-01T10:07:00Z", "archive unreadable")
    sender = FakeSender()
    alerts(instance, None, sender, gone, tmp_path)
    ((subject, text),) = sender.sent
    assert subject == "[studperf] OPEN: monitoring database down"
    assert "2026-12-01T10:07:00Z: monitoring_job failed at drift_report: archive unreadable" in text
    assert "127.0.0.1:9/none unreachable" in text


class Outage:
    """A real monitoring database that can be cut: while ``down`` every call raises what an
    unreachable database raises."""

    def __init__(self, database: Any) -> None:
        self.database, self.down = database, False

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.database, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.down:
                raise MonitoringDatabaseError("monitoring database sqlite:///cut unreachable: gone")
            return attribute(*args, **kwargs)

        return call


DOWN = "monitoring database sqlite:///cut unreachable: gone"


def test_an_outage_is_one_email_and_its_windows_are_recorded_when_back(
    instance: DagsterInstance, tmp_path: Path, database: Any
) -> None:
    """Field fault (live, PostgreSQL behind a cut proxy): every window that failed at
    batch_metrics during the outage sent its own identical "OPEN: monitoring_job failed at
    batch_metrics" e-mail, never resolved, and once the database was back those windows
    were in neither monitoring_status nor batch_metrics, and no incident was recorded: the
    cursor had moved past them. Now an outage is one e-mail, the runs wait in the cursor,
    and they are recorded (and de-duplicated, and resolved) once the database is back."""
    cut = Outage(database)
    cut.down = True
    failing_run(instance, "monitoring_job", "2026-12-01T10:01:00Z", DOWN, step="batch_metrics")
    failing_run(instance, "monitoring_job", "2026-12-01T10:02:00Z", DOWN, step="batch_metrics")
    monitoring_run(instance, "2026-12-01T10:03:00Z", {"data_drift": DRIFT})
    sender = FakeSender()
    result, cursor = alerts(instance, None, sender, cut, tmp_path)
    ((subject, text),) = sender.sent
    assert subject == "[studperf] OPEN: monitoring database down"
    for line in (
        "2026-12-01T10:01:00Z: monitoring_job failed at batch_metrics",
        "2026-12-01T10:02:00Z: monitoring_job failed at batch_metrics",
        "2026-12-01T10:03:00Z: checks failed: data_drift",
    ):
        assert line in text
    assert "3 runs wait for the monitoring database" in str(result.skip_message)
    failing_run(instance, "monitoring_job", "2026-12-01T10:04:00Z", DOWN, step="batch_metrics")
    _, cursor = alerts(instance, cursor, sender, cut, tmp_path)
    _, cursor = alerts(instance, cursor, sender, cut, tmp_path)
    assert len(sender.sent) == 1  # one e-mail per outage
    assert len(json.loads(str(cursor))["pending"]) == 4
    cut.down = False
    result, cursor = alerts(instance, cursor, sender, cut, tmp_path)
    statuses = database.statuses()
    for number in (1, 2, 4):
        row = statuses[window(number)]
        assert (row["status"], row["step"]) == ("failed", "batch_metrics")
    assert sorted(subjects(sender)[1:]) == [
        "OPEN: drift incident: data_drift failed on 2026-12-01T10:03:00Z",
        f"OPEN: monitoring_job failed at batch_metrics (2026-12-01T10:01:00Z): {DOWN}",
    ]  # the four windows: two incidents, each told once
    assert not json.loads(str(cursor))["pending"]
    alerts(instance, cursor, sender, cut, tmp_path)
    assert len(sender.sent) == 3
    for number in (1, 2, 4):  # re-run (late_labels_sensor) and monitored now
        database.record_status(window(number), "monitored", "rerun")
    alerts(instance, cursor, sender, cut, tmp_path)
    assert subjects(sender)[3:] == [
        f"RESOLVED: monitoring_job failed at batch_metrics (2026-12-01T10:01:00Z): {DOWN}"
    ]
    # a new outage is a new e-mail
    cut.down = True
    failing_run(instance, "monitoring_job", "2026-12-01T10:05:00Z", DOWN, step="batch_metrics")
    alerts(instance, cursor, sender, cut, tmp_path)
    assert subjects(sender)[4:] == ["OPEN: monitoring database down"]


@pytest.mark.integration
def test_a_postgresql_outage_is_one_email_and_caught_up_when_back(
    instance: DagsterInstance, tmp_path: Path, pg_databases: Any
) -> None:
    """The same on PostgreSQL, behind a proxy that is cut and restored (the live repro)."""
    from studperf_assets.resources.metrics_db import MetricsDatabase
    from studperf_assets_tests.tcp_proxy import TcpProxy

    url = pg_databases().replace("postgresql://", "postgresql+psycopg2://")
    proxy = TcpProxy(int(url.rsplit(":", 1)[1].split("/")[0]))
    through = url.replace(url.rsplit("@", 1)[1].split("/")[0], f"127.0.0.1:{proxy.port}")
    database = MetricsDatabase(url=through)
    database.migrate()
    sender = FakeSender()
    _, cursor = alerts(instance, None, sender, database, tmp_path)  # the pool is warm
    proxy.down()
    try:
        for number in (1, 2):
            failing_run(instance, "monitoring_job", window(number), DOWN, "batch_metrics")
            _, cursor = alerts(instance, cursor, sender, database, tmp_path)
    finally:
        proxy.up()
    assert subjects(sender) == ["OPEN: monitoring database down"]
    _, cursor = alerts(instance, cursor, sender, database, tmp_path)
    statuses = database.statuses()
    assert {p: (r["status"], r["step"]) for p, r in statuses.items()} == {
        "2026-12-01T10:01:00Z": ("failed", "batch_metrics"),
        "2026-12-01T10:02:00Z": ("failed", "batch_metrics"),
    }
    assert subjects(sender)[1:] == [
        f"OPEN: monitoring_job failed at batch_metrics (2026-12-01T10:01:00Z): {DOWN}"
    ]
    (incident,) = database.incidents(status="open")
    assert incident.occurrences == 2


def test_the_runs_waiting_for_the_database_are_bounded(
    instance: DagsterInstance, tmp_path: Path, database: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    module = sys.modules["studperf_assets.sensors.monitoring_alert_sensor"]
    monkeypatch.setattr(module, "MAX_PENDING_RUNS", 2)
    ids = [
        failing_run(instance, "monitoring_job", window(n), DOWN, step="batch_metrics")
        for n in (1, 2, 3)
    ]
    cut = Outage(database)
    cut.down = True
    _, cursor = alerts(instance, None, FakeSender(), cut, tmp_path)
    assert json.loads(str(cursor))["pending"] == ids[1:]  # the newest kept


def test_a_window_whose_metrics_write_failed_is_rerun_when_the_database_is_back(
    instance: DagsterInstance, database: Any
) -> None:
    """Field fault: a window whose batch_metrics write failed in an outage was never
    monitored again. Once the database is back (its status says so), late_labels_sensor
    re-runs it, a bounded number of times, one request per failed run."""
    from studperf_assets.sensors.late_labels_sensor import MAX_METRICS_RETRIES, RETRY_TAG

    class NoLabels:
        def unseen_files(self, now: datetime) -> list[str]:
            return []

        def unseen_versions(self, now: datetime | None = None) -> list[tuple[str, str]]:
            return []

    def tick(cursor: str | None = None) -> Any:
        return evaluate(
            late_labels_sensor,
            instance,
            cursor,
            ground_truth=NoLabels(),
            metrics_database=database,
        )[0]

    first = failing_run(
        instance, "monitoring_job", "2026-12-01T10:01:00Z", DOWN, step="batch_metrics"
    )
    database.record_status("2026-12-01T10:01:00Z", "failed", first, "batch_metrics", DOWN)
    other = failing_run(instance, "monitoring_job", "2026-12-01T10:02:00Z", "archive unreadable")
    database.record_status(
        "2026-12-01T10:02:00Z", "failed", other, "drift_report", "archive unreadable"
    )
    database.record_status("2026-12-01T10:03:00Z", "monitored", "run-3")
    result = tick()
    assert [(r.partition_key, r.run_key, r.tags) for r in result.run_requests] == [
        ("2026-12-01T10:01:00Z", "2026-12-01T10:01:00Z@metrics-retry-1", {RETRY_TAG: "1"})
    ]  # not the window that failed elsewhere, nor the monitored one
    assert [r.run_key for r in tick().run_requests] == ["2026-12-01T10:01:00Z@metrics-retry-1"]
    for attempt in range(1, MAX_METRICS_RETRIES + 1):  # each retry fails in its turn
        run_id = failing_run(
            instance, "monitoring_job", "2026-12-01T10:01:00Z", DOWN, step="batch_metrics"
        )
        instance.add_run_tags(run_id, {RETRY_TAG: str(attempt)})
        if attempt < MAX_METRICS_RETRIES:
            assert tick().run_requests == []  # the retry not recorded yet: it is newer
        database.record_status("2026-12-01T10:01:00Z", "failed", run_id, "batch_metrics", DOWN)
        requested = [r.run_key for r in tick().run_requests]
        if attempt < MAX_METRICS_RETRIES:
            assert requested == [f"2026-12-01T10:01:00Z@metrics-retry-{attempt + 1}"]
    assert requested == []  # bounded: the incident stays open for the on-call


def test_a_sensor_that_keeps_failing_is_an_incident_until_it_ticks_again(
    instance: DagsterInstance, tmp_path: Path, database: Any, code_location_environment: None
) -> None:
    (origin,) = [s for s in _remote_sensors(instance) if s.name == "late_labels_sensor"]
    for _ in range(3):
        _tick(instance, origin, "FAILURE", "labels store: AccessDenied\ntraceback...")
    sender = FakeSender()
    alerts(instance, None, sender, database, tmp_path)
    ((subject, _),) = sender.sent
    assert subject == (
        "[studperf] OPEN: sensor late_labels_sensor keeps failing: labels store: AccessDenied"
    )
    _tick(instance, origin, "SKIPPED", None)
    alerts(instance, None, sender, database, tmp_path)
    assert sender.sent[-1][0].startswith("[studperf] RESOLVED: sensor late_labels_sensor")


def _remote_sensors(instance: DagsterInstance) -> list[Any]:
    """The code location's sensors as the daemon sees them (their origins name the ticks)."""
    from dagster._core.test_utils import in_process_test_workspace
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

    target = LoadableTargetOrigin(module_name="studperf_assets.definitions", attribute="defs")
    with in_process_test_workspace(instance, target) as workspace:
        (entry,) = workspace.get_code_location_entries().values()
        assert entry.code_location is not None, entry.load_error
        (repository,) = entry.code_location.get_repositories().values()
        return list(repository.get_sensors())


def _tick(instance: DagsterInstance, sensor: Any, status: str, error: str | None) -> None:
    """A tick of ``sensor`` as the daemon records it."""
    from dagster._core.definitions.run_request import InstigatorType
    from dagster._core.scheduler.instigation import (
        InstigatorState,
        InstigatorStatus,
        TickData,
        TickStatus,
    )
    from dagster._utils.error import SerializableErrorInfo

    origin = sensor.get_remote_origin()
    if instance.get_instigator_state(sensor.get_remote_origin_id(), sensor.selector_id) is None:
        instance.add_instigator_state(
            InstigatorState(origin, InstigatorType.SENSOR, InstigatorStatus.RUNNING)
        )
    instance.create_tick(
        TickData(
            instigator_origin_id=sensor.get_remote_origin_id(),
            instigator_name=sensor.name,
            instigator_type=InstigatorType.SENSOR,
            status=TickStatus[status],
            timestamp=time.time(),
            selector_id=sensor.selector_id,
            error=SerializableErrorInfo(error, [], "Exception") if error else None,
        )
    )


def test_a_run_stuck_started_or_queued_is_an_incident_until_it_ends(
    instance: DagsterInstance, tmp_path: Path, database: Any
) -> None:
    """Field fault: a hung run was never detected; two of them (the 2 run slots) stopped all
    monitoring and nobody was told. A run of a watched job still queued or started after
    ``stuck_run_seconds`` is an incident, resolved once no run of that kind is stuck."""
    from dagster import DagsterRunStatus
    from dagster._core.test_utils import create_run_for_test

    hung = create_run_for_test(
        instance, "monitoring_job", status=DagsterRunStatus.STARTED,
        tags={PARTITION_TAG: "2026-12-01T10:05:00Z"},
    )  # fmt: skip
    create_run_for_test(
        instance, "monitoring_job", status=DagsterRunStatus.QUEUED,
        remote_job_origin=_job_origin("monitoring_job"),
    )  # fmt: skip
    sender = FakeSender()
    alerts(instance, None, sender, database, tmp_path)  # not stuck yet: 15 minutes by default
    assert not sender.sent
    quick = MonitoringSettings(stuck_run_seconds=0)
    _, cursor = alerts(instance, None, sender, database, tmp_path, quick)
    subjects = sorted(s for s, _ in sender.sent)
    assert subjects == [
        "[studperf] OPEN: monitoring_job run stuck in QUEUED for over 0 s",
        "[studperf] OPEN: monitoring_job run stuck in STARTED for over 0 s",
    ]
    started = next(text for subject, text in sender.sent if "STARTED" in subject)
    assert (
        f"http://dagster.test/runs/{hung.run_id}" in started and "2026-12-01T10:05:00Z" in started
    )
    alerts(instance, cursor, sender, database, tmp_path, quick)
    assert len(sender.sent) == 2  # one incident each, not one e-mail per tick
    for run in instance.get_runs():
        instance.report_run_failed(run, "Exceeded maximum runtime of 600 seconds.")
    alerts(instance, cursor, sender, database, tmp_path, quick)
    resolved = sorted(s for s, _ in sender.sent if "RESOLVED" in s and "stuck" in s)
    assert resolved == [s.replace("OPEN", "RESOLVED", 1) for s in subjects]


def _job_origin(job: str) -> Any:
    """Where a queued run's job would be loaded from (Dagster requires one)."""
    from dagster._core.remote_origin import (
        InProcessCodeLocationOrigin,
        RemoteJobOrigin,
        RemoteRepositoryOrigin,
    )
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

    target = LoadableTargetOrigin(module_name="studperf_assets.definitions", attribute="defs")
    location = InProcessCodeLocationOrigin(target)
    return RemoteJobOrigin(RemoteRepositoryOrigin(location, "__repository__"), job)


def test_alerts_ses_keeps_refusing_escalate_and_fail_the_tick(
    instance: DagsterInstance, tmp_path: Path, database: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Field fault: with SES refusing every message (its identity deleted), the alert
    sensor's ticks were skipped "0 alerts sent, 2 to retry" for ever and nobody was told.
    Refusals for longer than ``alert_failure_seconds`` are an incident of their own, logged
    at ERROR as "alert not sent: ..." (the line ``studperf up`` prints), and the tick fails
    (the UI shows it; the retraining sensor's watch of this sensor takes it up)."""
    import boto3
    from moto import mock_aws

    from studperf_assets.lib.incidents import ALERTS_UNDELIVERED
    from studperf_assets.resources.monitoring import AlertSender
    from studperf_assets.sensors.incidents import AlertsUndelivered

    for name, value in (("AWS_DEFAULT_REGION", "us-east-1"), ("AWS_ACCESS_KEY_ID", "test")):
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monitoring_run(instance, "2026-12-01T10:01:00Z", {"data_drift": DRIFT})
    failing_run(instance, "monitoring_job", "2026-12-01T10:02:00Z", "archive unreadable")
    with mock_aws():
        ses = boto3.client("ses")
        ses.verify_email_identity(EmailAddress="alerts@example.org")
        sender = AlertSender(sender="alerts@example.org", dagster_url="http://dagster.test")
        sender.send("works", "before the identity is deleted")
        ses.delete_identity(Identity="alerts@example.org")
        patient = MonitoringSettings(alert_failure_seconds=3600)
        result, cursor = alerts(instance, None, sender, database, tmp_path, patient)
        assert str(result.skip_message).startswith("sent nothing; 2 e-mails to retry")
        # ...not yet a problem
        assert not database.incidents(kind=ALERTS_UNDELIVERED)
        urgent = MonitoringSettings(alert_failure_seconds=0)
        with build_sensor_context(instance=instance, cursor=cursor) as context:
            owed = r"alert not sent: 2 e-mails owed, the oldest for \d+ s: .*MessageRejected"
            with pytest.raises(AlertsUndelivered, match=owed):
                monitoring_alert_sensor(
                    context,
                    alert_sender=sender,
                    metrics_database=database,
                    object_store=LocalObjectStore(root=str(tmp_path)),
                    monitoring_settings=urgent,
                )
            assert context.cursor == cursor  # nothing is skipped for the failed tick
        (incident,) = database.incidents(status="open", kind=ALERTS_UNDELIVERED)
        assert "MessageRejected" in incident.details["error"]
        assert incident.title.startswith("alerts not sent: 2 e-mails refused")
        ses.verify_email_identity(EmailAddress="alerts@example.org")  # SES repaired
        result, cursor = alerts(instance, cursor, sender, database, tmp_path, urgent)
        assert str(result.skip_message).startswith("sent 3 e-mails")  # everything owed
        alerts(instance, cursor, sender, database, tmp_path, urgent)
        assert not database.incidents(status="open", kind=ALERTS_UNDELIVERED)
        subjects = [m["Subject"] for m in _sent_by_moto()]
        assert any(s.startswith("[studperf] RESOLVED: alerts not sent") for s in subjects)


def _sent_by_moto() -> list[dict[str, Any]]:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    backend = ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    return [{"Subject": m.subject} for m in backend.sent_messages]


def _run_cut_short(instance: DagsterInstance, partition: str, step: str | None) -> Any:
    """A monitoring run that started ``step`` (if given) and never finished it."""
    from dagster import DagsterEvent, DagsterEventType, DagsterRunStatus
    from dagster._core.test_utils import create_run_for_test

    run = create_run_for_test(
        instance, "monitoring_job", status=DagsterRunStatus.STARTED,
        tags={PARTITION_TAG: partition},
    )  # fmt: skip
    if step:
        started = DagsterEvent(
            DagsterEventType.STEP_START.value, job_name="monitoring_job", step_key=step
        )
        instance.report_dagster_event(started, run_id=run.run_id)
    return run


def test_a_canceled_monitoring_run_is_not_monitored_not_missing(
    instance: DagsterInstance, tmp_path: Path, database: Any
) -> None:
    """Field fault: a CANCELED monitoring run (canceled in the UI, or by run monitoring)
    left its window silently missing: no status row, no e-mail, no terminal line. Any
    finished run that did not succeed is "not monitored"."""
    run = _run_cut_short(instance, "2026-12-01T10:09:00Z", "drift_report")
    instance.report_run_canceled(run, "Canceled due to exceeding maximum runtime of 600 seconds.")
    sender = FakeSender()
    alerts(instance, None, sender, database, tmp_path)
    row = database.statuses()["2026-12-01T10:09:00Z"]
    assert (row["status"], row["step"]) == ("failed", "drift_report")
    assert row["error"].startswith("canceled: ")
    ((subject, text),) = sender.sent
    assert subject.startswith(
        "[studperf] OPEN: monitoring_job failed at drift_report (2026-12-01T10:09:00Z): canceled"
    )
    assert "window(s): 2026-12-01T10:09:00Z" in text


def test_a_killed_run_worker_names_the_step_it_was_running(
    instance: DagsterInstance, tmp_path: Path, database: Any
) -> None:
    """Field fault: the incident of a SIGKILLed run worker said only "failed at run: This
    run has been marked as failed from outside the execution context."."""
    from studperf_assets.sensors.incidents import run_failure

    run = _run_cut_short(instance, "2026-12-01T10:10:00Z", "drift_report")
    instance.report_run_failed(run)  # what Dagster reports for a worker that vanished
    failure = run_failure(instance, run.run_id)
    assert failure.step == "drift_report"
    assert failure.error.startswith("the run worker process died")
    overrun = _run_cut_short(instance, "2026-12-01T10:11:00Z", None)
    instance.report_run_failed(overrun, "Exceeded maximum runtime of 600 seconds.")
    assert run_failure(instance, overrun.run_id) == type(failure)(
        "run", "Exceeded maximum runtime of 600 seconds."
    )


def test_a_records_incident_names_the_records_and_a_labels_incident_the_files(
    instance: DagsterInstance, tmp_path: Path, database: Any, windows: Windows
) -> None:
    """Review: "OPEN: records incident: batch_records failed on <window>" named no object,
    line, reason or count, though the check's metadata held them (the verdict kept only
    scalars). The e-mail now shows them, as the docs said it did."""
    records = {
        "unreadable_records": 3,
        "first_unreadable": [
            {"object": "/store/archive/predictions/2026/12/01/10/a-1.gz", "line": "7",
             "reason": "no 'student_id'"},
        ],
        "rows": 47,
        "model_version": "v1",
    }  # fmt: skip
    labels = {"rejected_label_files": {"labels/2026/12/01/bad.csv": "no GradeClass column"}}
    windows.finish(1, {"batch_records": records, "batch_labels": labels})
    sender = FakeSender()
    alerts(instance, None, sender, database, tmp_path)
    texts = {s.split(":")[1].strip(): t for s, t in sender.sent}
    assert "a-1.gz line 7" in texts["records incident"]
    assert "no 'student_id'" in texts["records incident"] and "2 more" in texts["records incident"]
    assert "labels/2026/12/01/bad.csv" in texts["labels incident"]
    assert "no GradeClass column" in texts["labels incident"]
