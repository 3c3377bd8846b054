"""Each sensor's decisions, fast: one tick with ``build_sensor_context``, small fakes for the
stream, the label files and the monitoring database, and real Dagster runs in a test instance
for the sensors that read runs. The integration tests (test_monitoring, test_live_loop) run
the same sensors against moto, PostgreSQL and the daemon."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from dagster import (
    AssetCheckResult,
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
from studperf_assets.resources.metrics_db import MonitoringDatabaseError
from studperf_assets.resources.monitoring import MonitoringSettings
from studperf_assets.resources.object_store import LocalObjectStore
from studperf_assets.sensors.late_labels_sensor import late_labels_sensor
from studperf_assets.sensors.monitoring_alert_sensor import monitoring_alert_sensor
from studperf_assets.sensors.prediction_batch_sensor import (
    MAX_BATCHES_PER_TICK,
    PARTITIONS_NAME,
    prediction_batch_sensor,
)
from studperf_assets.sensors.retraining_sensor import retraining_sensor

BATCH = 10


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


# --- prediction_batch_sensor -----------------------------------------------------------------


class FakeStream:
    """One shard of ``records`` predictions; positions are record counts."""

    def __init__(self, records: int, name: str = "stream-a") -> None:
        self.records, self.name = records, name

    def identity(self) -> str:
        return self.name

    def read(self, after: dict[str, str], limit: int) -> tuple[list[int], dict[str, str]]:
        start = int(after.get("shard-0", 0))
        end = min(self.records, start + limit)
        return list(range(start, end)), {"shard-0": str(end)}


def cut(
    instance: DagsterInstance, stream: FakeStream, cursor: str | None = None
) -> tuple[Any, str | None]:
    settings = MonitoringSettings(batch_size=BATCH)
    return evaluate(
        prediction_batch_sensor,
        instance,
        cursor,
        prediction_stream=stream,
        monitoring_settings=settings,
    )


def test_whole_batches_become_partitions_and_the_rest_waits(instance: DagsterInstance) -> None:
    result, cursor = cut(instance, FakeStream(25))
    assert isinstance(result, SensorResult)
    keys = [r.partition_key for r in result.run_requests or []]
    assert keys == ["batch-000001", "batch-000002"]
    (added,) = result.dynamic_partitions_requests or []
    assert list(getattr(added, "partition_keys", [])) == keys
    ranges = [
        r.run_config["ops"]["prediction_batches"]["config"] for r in result.run_requests or []
    ]
    assert ranges == [
        {"after": {}, "until": {"shard-0": "10"}},
        {"after": {"shard-0": "10"}, "until": {"shard-0": "20"}},
    ]  # back to back: no overlap, no gap
    waiting, same = cut(instance, FakeStream(25), cursor)
    assert isinstance(waiting, SkipReason) and "fewer than 10 new predictions" in str(
        waiting.skip_message
    )
    assert json.loads(str(same))["positions"] == {"shard-0": "20"}
    instance.add_dynamic_partitions(PARTITIONS_NAME, [str(k) for k in keys])
    later, _ = cut(instance, FakeStream(31), cursor)
    assert [r.run_config["ops"]["prediction_batches"]["config"] for r in later.run_requests] == [
        {"after": {"shard-0": "20"}, "until": {"shard-0": "30"}}
    ]
    assert [r.partition_key for r in later.run_requests] == ["batch-000003"]


def test_a_tick_cuts_at_most_its_share_of_a_backlog(instance: DagsterInstance) -> None:
    backlog = FakeStream(BATCH * (MAX_BATCHES_PER_TICK + 5))
    first, cursor = cut(instance, backlog)
    second, _ = cut(instance, backlog, cursor)
    assert len(first.run_requests) == MAX_BATCHES_PER_TICK
    assert [r.partition_key for r in second.run_requests] == [
        f"batch-0000{n}" for n in range(21, 26)
    ]


def test_numbering_survives_a_lost_cursor_and_a_new_stream_starts_over(
    instance: DagsterInstance,
) -> None:
    instance.add_dynamic_partitions(PARTITIONS_NAME, ["batch-000007", "not-a-batch"])
    result, cursor = cut(instance, FakeStream(10))
    assert [r.partition_key for r in result.run_requests] == ["batch-000008"]
    recreated, _ = cut(instance, FakeStream(10, name="stream-b"), cursor)
    (request,) = recreated.run_requests
    assert request.partition_key == "batch-000009"  # a new key, never a reused one
    assert request.run_config["ops"]["prediction_batches"]["config"]["after"] == {}


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
    """The monitoring database's answers, and the alerts recorded in it."""

    def __init__(self, down: bool = False) -> None:
        self.down = down
        self.file_states: dict[str, tuple[str, datetime]] = {}
        self.labelled_by: dict[str, set[str]] = {}
        self.partition_of: dict[str, str] = {}
        self.joins: dict[str, dict[str, Any]] = {}
        self.alerts: dict[tuple[str, str], str] = {}

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

    def alert_sent(self, partition: str, check_name: str) -> bool:
        self._up()
        return (partition, check_name) in self.alerts

    def record_alert(self, partition: str, check_name: str, message_id: str) -> None:
        self._up()
        self.alerts[partition, check_name] = message_id

    # no incidents in this world (test_failures_become_incidents uses a real database)
    def statuses(self) -> dict[str, dict[str, Any]]:
        self._up()
        return {}

    def incidents(self, status: str | None = None, kind: str | None = None) -> list[Any]:
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
    database.partition_of = {"r1": "batch-000001", "r2": "batch-000002", "r3": "batch-000003"}
    database.joins = {
        "batch-000001": {"labelled": 0, "rows": 10, "joined_at": NOW - timedelta(minutes=9)},
        "batch-000002": {"labelled": 3, "rows": 10, "joined_at": NOW},
        "batch-000003": {"labelled": 10, "rows": 10, "joined_at": NOW - timedelta(hours=1)},
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
        ("batch-000001", f"batch-000001@{keys['late']}")
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
    database.joins["batch-000003"]["labelled"] = 9  # a label of batch 3 came in that file
    settled, final = late(instance, labels, database, after)
    assert [r.partition_key for r in settled.run_requests] == ["batch-000003"]
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
            return AssetCheckResult(passed=name not in failing, metadata=failing.get(name, {}))

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
    sender: FakeSender,
    database: Any,
    tmp_path: Path,
) -> tuple[Any, str | None]:
    return evaluate(
        monitoring_alert_sensor,
        instance,
        cursor,
        alert_sender=sender,
        metrics_database=database,
        object_store=LocalObjectStore(root=str(tmp_path)),
        monitoring_settings=MonitoringSettings(),
    )


def test_one_email_per_run_listing_its_failed_checks_once(
    instance: DagsterInstance, tmp_path: Path
) -> None:
    monitoring_run(instance, "batch-000001", {})
    run_id = monitoring_run(
        instance, "batch-000002", {"data_drift": DRIFT, "batch_labels": {"missing": 5}}
    )
    sender, database = FakeSender(), FakeDatabase()
    result, cursor = alerts(instance, None, sender, database, tmp_path)
    assert result.skip_message == "1 alerts sent, 0 to retry; 0 incident e-mails sent"
    ((subject, text),) = sender.sent
    assert subject.startswith("[studperf] batch-000002:")
    assert "data_drift" in subject and "batch_labels" in subject
    assert f"http://dagster.test/runs/{run_id}" in text and "v1" in text
    assert set(database.alerts) == {
        ("batch-000002", "data_drift"),
        ("batch-000002", "batch_labels"),
    }
    alerts(instance, cursor, sender, database, tmp_path)  # nothing new
    alerts(instance, None, sender, database, tmp_path)  # cursor lost: the database remembers
    assert len(sender.sent) == 1


def test_a_failed_send_is_retried_and_an_outage_does_not_silence(
    instance: DagsterInstance, tmp_path: Path
) -> None:
    monitoring_run(instance, "batch-000001", {"data_drift": DRIFT})
    database = FakeDatabase()
    result, cursor = alerts(instance, None, FakeSender(failing=True), database, tmp_path)
    assert result.skip_message == "0 alerts sent, 1 to retry; 0 incident e-mails sent"
    assert float(str(cursor)) == 0  # held before the run whose alert failed
    database.down = True  # alerts_sent unreadable: send anyway, the cursor keeps it once
    sender = FakeSender()
    _, cursor = alerts(instance, cursor, sender, database, tmp_path)
    assert len(sender.sent) == 1 and not database.alerts
    alerts(instance, cursor, sender, database, tmp_path)
    assert len(sender.sent) == 1


class FakeGroundTruth:
    def __init__(self, labels: int, down: bool = False) -> None:
        self.labels, self.down = labels, down

    def usable_labels(self) -> int:
        if self.down:
            raise MonitoringDatabaseError("monitoring database sqlite:///gone: unreachable")
        return self.labels


def retrain(
    instance: DagsterInstance, cursor: str | None, labels: FakeGroundTruth, cooldown: int = 0
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
        metrics_database=FakeDatabase(down=True),  # watching the alert sensor never blocks
    )


def test_retraining_needs_a_trigger_new_labels_and_the_cooldown_passed(
    instance: DagsterInstance,
) -> None:
    monitoring_run(instance, "batch-000001", {"batch_labels": {"missing": 3}})  # no trigger
    quiet, _ = retrain(instance, None, FakeGroundTruth(500))
    assert "no drift or performance failure" in str(quiet.skip_message)
    monitoring_run(instance, "batch-000002", {"data_drift": DRIFT})
    starved, kept = retrain(instance, None, FakeGroundTruth(60))
    assert starved.skip_message == "60 new labelled rows; 100 needed" and kept is None
    down, kept = retrain(instance, None, FakeGroundTruth(500, down=True))
    assert "retraining waits for it" in str(down.skip_message) and kept is None
    recent = json.dumps({"after": 0, "last_retrain": time.time() - 60, "labels": 0})
    held, kept = retrain(instance, recent, FakeGroundTruth(500), cooldown=3600)
    assert held.skip_message == "retraining cooldown" and kept == recent
    fired, cursor = retrain(instance, None, FakeGroundTruth(500))
    assert isinstance(fired, SensorResult)
    (request,) = fired.run_requests or []
    assert isinstance(request, RunRequest)
    assert request.tags["studperf/trigger"] == "data_drift@batch-000002"
    assert request.tags["studperf/new_labels"] == "500"
    assert request.run_config["ops"]["raw_student_data"]["config"] == {
        "include_production_labels": True
    }
    assert json.loads(str(cursor))["labels"] == 500
    again, _ = retrain(instance, cursor, FakeGroundTruth(900))
    assert "no drift or performance failure" in str(again.skip_message)  # already acted on


def test_each_sensor_targets_its_job() -> None:
    targets = {s.name: s.job_name for s in sensors.build_sensors() if s.has_jobs}
    assert targets == {
        "prediction_batch_sensor": "monitoring_job",
        "late_labels_sensor": "monitoring_job",
        "retraining_sensor": "training_job",
    }


# --- failed runs and failing sensors: incidents ---------------------------------------------


def failing_run(instance: DagsterInstance, job: str, partition: str, error: str) -> str:
    """A finished run of ``job`` whose step ``drift_report`` raised ``error``."""
    from dagster import Failure

    @asset(name="drift_report")
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
    first = failing_run(instance, "monitoring_job", "batch-000003", "batch batch-000003: no\nmore")
    sender = FakeSender()
    result, cursor = alerts(instance, None, sender, database, tmp_path)
    ((subject, text),) = sender.sent
    assert subject == (
        "[studperf] OPEN: monitoring_job failed at drift_report (batch-000003): "
        "batch batch-000003: no"
    )
    for fact in ("job: monitoring_job", "step: drift_report", "window(s): batch-000003"):
        assert fact in text
    assert f"http://dagster.test/runs/{first}" in text and "more" not in text  # first line only
    assert database.statuses()["batch-000003"]["status"] == "failed"  # not just missing
    assert "1 incident e-mails sent" in str(result.skip_message)
    # the same fault on the next window is the same incident: no second e-mail
    failing_run(instance, "monitoring_job", "batch-000004", "batch batch-000004: no\nmore")
    _, cursor = alerts(instance, cursor, sender, database, tmp_path)
    alerts(instance, cursor, sender, database, tmp_path)
    alerts(instance, None, sender, database, tmp_path)  # a lost cursor sends nothing again
    assert len(sender.sent) == 1
    (incident,) = database.incidents(status="open")
    assert incident.occurrences >= 2 and incident.last_partition == "batch-000004"
    # both windows monitored again: resolved, said once
    for partition in ("batch-000003", "batch-000004"):
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


def test_with_the_database_down_a_failed_run_is_told_at_once(
    instance: DagsterInstance, tmp_path: Path
) -> None:
    from studperf_assets.resources.metrics_db import MetricsDatabase

    gone = MetricsDatabase(url="postgresql+psycopg2://nobody@127.0.0.1:9/none")
    failing_run(instance, "monitoring_job", "batch-000007", "archive unreadable")
    sender = FakeSender()
    alerts(instance, None, sender, gone, tmp_path)
    ((subject, text),) = sender.sent
    assert "monitoring_job failed at drift_report" in subject
    assert "window: batch-000007" in text and "not recorded as an incident" in text


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
