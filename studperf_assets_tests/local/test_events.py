"""What `studperf up` prints after `ready`, from what the loop's emitters really log.

Each emitter is called through its smallest unit (the sensor's tick, the asset, the model
provider's refresh, the stream report) and its output is captured as its process writes it:
Dagster's console lines (what reaches ``dagster.log``) and ``studperf stream``'s own
formatter (``stream.log``), human and JSON. The reader is fed those lines, never copies.
"""

from __future__ import annotations

import ast
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from dagster import DagsterInstance, build_asset_context, build_sensor_context, instance_for_test

from lambda_service import model_provider
from lambda_service.bundle import MANIFEST_FILE
from lambda_service.event_record import CONSUMER_SWAPPED, event_line
from studperf_assets.lib import loop_events
from studperf_assets.lib.drift_summary import DriftSummary
from studperf_assets.local.events import SAY, EventFollower, event_of
from studperf_assets_tests.sensors.test_sensor_decisions import (
    DRIFT,
    FakeDatabase,
    FakeGroundTruth,
    FakeSender,
    alerts,
    failing_run,
    monitoring_run,
    retrain,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    with instance_for_test() as test_instance:
        yield test_instance


def said(capfd: pytest.CaptureFixture[str], log: str = "dagster.log") -> list[str]:
    """What the stack would print for everything written since the last look."""
    out, err = capfd.readouterr()
    return [e for line in (out + err).splitlines() if (e := event_of(log, line)) is not None]


def records(capfd: pytest.CaptureFixture[str]) -> list[loop_events.LoopEvent]:
    out, err = capfd.readouterr()
    return [e for line in (out + err).splitlines() if (e := loop_events.parse(line))]


# --- Dagster: the assets' step logs ---------------------------------------------------------


def summary(**changes: Any) -> DriftSummary:
    fields: dict[str, Any] = {
        "rows": 200, "rows_compared": 200, "drift_share": 0.2222,
        "drifted_features": ["Absences", "StudyTimeWeekly"], "feature_scores": {},
        "prediction_drift": 0.1, **changes,
    }  # fmt: skip
    return DriftSummary(**fields)


def test_monitored(capfd: pytest.CaptureFixture[str]) -> None:
    from studperf_assets.assets.reports import log_monitored

    capfd.readouterr()
    log = build_asset_context().log.info  # drift_report passes its context's log
    log_monitored(log, "2026-12-01T10:03:00Z", summary())
    (record,) = records(capfd)
    assert record.name == "monitored"
    assert dict(record.fields) == {
        "window": "2026-12-01T10:03:00Z", "drift_share": 0.2222,
        "drifted_features": ["Absences", "StudyTimeWeekly"], "prediction_drift": 0.1,
        "f1_macro": None,
    }  # fmt: skip
    log_monitored(log, "2026-12-01T10:03:00Z", summary())
    log_monitored(log, "2026-12-01T10:04:00Z", summary(drifted_features=[], f1_macro=0.91234))
    assert said(capfd) == [
        "monitored: 2026-12-01T10:03:00Z: drift share 0.22 (Absences, StudyTimeWeekly), "
        "prediction drift 0.100, f1-macro n/a (no labels yet)",
        "monitored: 2026-12-01T10:04:00Z: drift share 0.22 (none), prediction drift 0.100, "
        "f1-macro 0.912",
    ]


def test_promoted(capfd: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from studperf_assets.assets.publishing import production_model
    from studperf_assets.resources.model_store import LocalModelStore
    from studperf_assets.resources.training_settings import TrainingSettings

    store = LocalModelStore(root=str(tmp_path / "store"))
    first, second = "v20261127T223819Z-0123abcd", "v20261127T224501Z-4567ef01"
    for version in (first, second):
        Path(store.bundle_uri(version)).mkdir(parents=True)
        (Path(store.bundle_uri(version)) / MANIFEST_FILE).write_text("{}")
    resources = {
        "model_store": store,
        "training_settings": TrainingSettings(),
        "mlflow": SimpleNamespace(tracking_uri=""),
    }
    capfd.readouterr()
    for version, champion in ((first, None), (second, first)):
        production_model(
            build_asset_context(resources=resources),
            model_bundle={"version": version, "test_f1_macro": 0.9, "champion": champion},
        )
    out, err = capfd.readouterr()
    lines = (out + err).splitlines()
    assert [dict(e.fields) for line in lines if (e := loop_events.parse(line))] == [
        {"version": first, "replaced": None},
        {"version": second, "replaced": first},
    ]
    assert [t for line in lines if (t := event_of("dagster.log", line))] == [
        f"promoted: production -> {first}",
        f"promoted: production -> {second}",
    ]


def test_a_failed_run_is_dagsters_own_line(
    capfd: pytest.CaptureFixture[str], instance: DagsterInstance
) -> None:
    run_id = failing_run(instance, "training_job", "", "the champion cannot be read")
    assert f"run FAILED: training_job - {run_id}" in said(capfd)


# --- Dagster: the sensors' logs -------------------------------------------------------------


def test_alert_sent(
    capfd: pytest.CaptureFixture[str], instance: DagsterInstance, tmp_path: Path
) -> None:
    """With the monitoring database down there is no incident to record: the outage is one
    e-mail naming the waiting window, and said so."""
    monitoring_run(instance, "2026-12-01T10:03:00Z", {"data_drift": DRIFT, "prediction_drift": {}})
    capfd.readouterr()
    alerts(instance, None, FakeSender(), FakeDatabase(down=True), tmp_path)
    (line,) = said(capfd)
    assert line.startswith("alert sent: incident opened: ")


def test_an_incident_opened_by_failed_checks(
    capfd: pytest.CaptureFixture[str], instance: DagsterInstance, tmp_path: Path
) -> None:
    from studperf_assets.resources.metrics_db import MetricsDatabase

    database = MetricsDatabase(url=f"sqlite:///{tmp_path / 'monitoring.db'}")
    monitoring_run(instance, "2026-12-01T10:03:00Z", {"data_drift": DRIFT, "prediction_drift": {}})
    capfd.readouterr()
    alerts(instance, None, FakeSender(), database, tmp_path)
    (line,) = said(capfd)
    assert line.startswith("alert sent: incident opened: ") and "2026-12-01T10:03:00Z" in line


def test_not_monitored_and_its_incident_opened_then_resolved(
    capfd: pytest.CaptureFixture[str], instance: DagsterInstance, tmp_path: Path
) -> None:
    from studperf_assets.resources.metrics_db import MetricsDatabase

    database = MetricsDatabase(url=f"sqlite:///{tmp_path / 'monitoring.db'}")
    failing_run(instance, "monitoring_job", "2026-12-01T10:05:00Z", "KeyError: 1")
    capfd.readouterr()
    _, cursor = alerts(instance, None, FakeSender(), database, tmp_path)
    opened = "monitoring_job failed at drift_report (2026-12-01T10:05:00Z): KeyError: 1"
    assert said(capfd) == [
        "not monitored: 2026-12-01T10:05:00Z: monitoring_job failed at drift_report: KeyError: 1",
        f"alert sent: incident opened: {opened}",
    ]
    database.record_status("2026-12-01T10:05:00Z", "monitored", "rerun")
    alerts(instance, cursor, FakeSender(), database, tmp_path)
    assert said(capfd) == [f"alert sent: incident resolved: {opened}"]


def test_retraining(
    capfd: pytest.CaptureFixture[str], instance: DagsterInstance, tmp_path: Path
) -> None:
    from studperf_assets.resources.metrics_db import MetricsDatabase

    database = MetricsDatabase(url=f"sqlite:///{tmp_path / 'monitoring.db'}")
    monitoring_run(instance, "2026-12-01T10:04:00Z", {"data_drift": DRIFT})
    alerts(instance, None, FakeSender(), database, tmp_path)  # opens the drift incident
    capfd.readouterr()
    retrain(instance, None, FakeGroundTruth(800), database)
    assert said(capfd) == [
        "retraining: data_drift failed on 2026-12-01T10:04:00Z; 800 new labelled rows"
    ]


# --- the consumer: `studperf stream`'s log --------------------------------------------------


@pytest.fixture(params=["human", "json"])
def stream_log(request: pytest.FixtureRequest) -> Iterator[str]:
    """Logging as `studperf stream` sets it up (cli.terminal), in either format."""
    from studperf_assets.cli.terminal import configure

    root, studperf = logging.getLogger(), logging.getLogger("studperf")
    kept = (root.handlers[:], root.level, studperf.level)
    configure(request.param)
    try:
        yield request.param
    finally:
        root.handlers[:], root.level = kept[0], kept[1]
        studperf.setLevel(kept[2])


class FakePredictor:
    def __init__(self, version: str) -> None:
        self.version = version

    @classmethod
    def from_uri(cls, uri: str, *_: Any) -> FakePredictor:
        return cls(uri.rsplit("/", 1)[-1])


def test_consumer_swapped(
    capfd: pytest.CaptureFixture[str],
    stream_log: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    production = {"version": "v1"}
    monkeypatch.setattr(model_provider, "Predictor", FakePredictor)
    monkeypatch.setattr(model_provider, "resolve_bundle_uri", lambda uri, s3: (f"{uri}/v1", "v1"))
    monkeypatch.setattr(
        model_provider,
        "resolve_production",
        lambda root, s3: (production["version"], f"{root}/{production['version']}"),
    )
    provider = model_provider.ModelProvider("/store", tmp_path, refresh_seconds=0)
    capfd.readouterr()
    production["version"] = "v2"
    assert provider.refresh()
    assert said(capfd, "stream.log") == ["consumer swapped: v1 -> v2"]


def test_consumer_minute(capfd: pytest.CaptureFixture[str], stream_log: str) -> None:
    from lambda_service.service import BatchOutcome
    from studperf_assets.local.poller import PollStats
    from studperf_assets.local.stream_report import StreamReport

    now = [0.0]
    report = StreamReport(logging.getLogger("studperf.stream"), clock=lambda: now[0])
    report.batch(BatchOutcome(100, 98, 1, ("7",), "v1", 12.34, failed=1))
    now[0] = 61.0
    report.poll(PollStats(records=100, retried_batches=1))
    now[0] = 122.0
    report.poll(PollStats(records=100, retried_batches=1))  # a quiet minute says nothing
    assert said(capfd, "stream.log") == [
        "consumer: last 61s: 1 batches, 100 records, 98 predicted, 1 errors, 1 to retry; model v1"
    ]


def test_consumer_minute_counts_function_errors_and_the_on_failure_file(
    capfd: pytest.CaptureFixture[str], stream_log: str
) -> None:
    """A minute in which no batch was scored but batches raised and records went to the
    on-failure file is not quiet; each minute counts only its own (the poller's are totals)."""
    from studperf_assets.local.poller import PollStats
    from studperf_assets.local.stream_report import StreamReport

    now = [0.0]
    report = StreamReport(logging.getLogger("studperf.stream"), clock=lambda: now[0])
    now[0] = 60.0
    report.poll(PollStats(batches=4, records=80, function_errors=4, discarded_records=20))
    now[0] = 120.0
    report.poll(PollStats(batches=5, records=100, function_errors=5, discarded_records=20))
    now[0] = 180.0
    report.poll(PollStats(batches=5, records=100, function_errors=5, discarded_records=20))
    assert said(capfd, "stream.log") == [
        "consumer: last 60s: 0 batches, 0 records, 0 predicted, 0 errors, 0 to retry; "
        "4 function errors; 20 records to the on-failure file; model -",
        "consumer: last 60s: 0 batches, 0 records, 0 predicted, 0 errors, 0 to retry; "
        "1 function errors; model -",
    ]


def test_readable_events_rewrites_records_only(caplog: pytest.LogCaptureFixture) -> None:
    """The demo's filter: a record becomes its terminal line, a quiet minute nothing, any
    other line is left as it is."""
    from studperf_assets.local.events import ReadableEvents

    log = logging.getLogger("studperf.test-readable")
    log.addFilter(ReadableEvents())
    try:
        with caplog.at_level(logging.INFO, logger=log.name):
            log.info(event_line(CONSUMER_SWAPPED, from_version="v1", to_version="v2"))
            loop_events.emit(
                log.info, loop_events.CONSUMER_MINUTE, seconds=60, batches=0, records=0,
                predicted=0, errors=0, to_retry=0, function_errors=0, on_failure_records=0,
                models=[], total_records=0, retried_batches=0, outage_retries=0,
            )  # fmt: skip
            log.info("scored %d records", 7)
    finally:
        log.filters.clear()
    assert [r.getMessage() for r in caplog.records] == [
        "consumer swapped: v1 -> v2",
        "scored 7 records",
    ]


# --- the catalog: every event has an emitter and a reader -----------------------------------


def emitted() -> dict[str, list[tuple[str, set[str]]]]:
    """Every event emitted in the package's source: name -> [(where, field names)]."""
    constants = {
        key: value
        for key, value in vars(loop_events).items()
        if key.isupper() and isinstance(value, str) and value in loop_events.FIELDS
    }
    found: dict[str, list[tuple[str, set[str]]]] = {}
    for path in [*REPO.glob("studperf_assets/**/*.py"), *REPO.glob("lambda_service/*.py")]:
        if path.name in ("loop_events.py", "event_record.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
                continue
            position = {"emit": 1, "event_line": 0}.get(node.func.id)
            if position is None or len(node.args) <= position:
                continue
            name = node.args[position]
            assert isinstance(name, ast.Name), f"{path}:{node.lineno}: name events by constant"
            where = f"{path.relative_to(REPO)}:{node.lineno}"
            fields = {k.arg for k in node.keywords if k.arg}
            found.setdefault(constants[name.id], []).append((where, fields))
    return found


def test_every_event_has_an_emitter_with_its_fields_and_a_reader() -> None:
    found = emitted()
    assert set(found) == set(loop_events.FIELDS) == set(SAY)
    for name, emitters in found.items():
        for where, fields in emitters:
            assert fields == set(loop_events.FIELDS[name]), where
    assert CONSUMER_SWAPPED in found  # emitted in lambda_service, which cannot import lib


def test_emit_refuses_fields_the_catalog_does_not_name() -> None:
    logged: list[str] = []
    with pytest.raises(ValueError, match="takes"):
        loop_events.emit(logged.append, loop_events.PROMOTED, version="v2")
    with pytest.raises(ValueError, match="unknown"):
        loop_events.emit(logged.append, "promotion", version="v2", replaced=None)
    assert logged == []


def test_numpy_numbers_stay_numbers() -> None:
    import numpy as np

    line = event_line(loop_events.RETRAINING, check="data_drift", window="2026-12-01T10:04:00Z",
                      new_labels=np.int64(800), share=np.float64(0.25), at=Path("/x"))  # fmt: skip
    record = loop_events.parse(line)
    assert record is not None
    assert dict(record.fields) == {
        "check": "data_drift", "window": "2026-12-01T10:04:00Z", "new_labels": 800, "share": 0.25,
        "at": "/x",
    }  # fmt: skip


def test_the_rest_is_quiet_and_an_unknown_record_is_still_said() -> None:
    quiet = [
        ("dagster.log", "2026-11-27 22:38:19 +0000 - dagster - DEBUG - STEP_SUCCESS - Finished"),
        ("stream.log", "22:40:01 INFO    batch: 100 records, 100 predicted, 0 errors"),
        ("stream.log", '{"studperf_event": "monitored", "window": '),  # cut short
        ("stream.log", '{"level": "INFO", "message": "hot swap v1 -> v2"}'),
    ]
    assert [event_of(log, line) for log, line in quiet] == [None] * len(quiet)
    newer = event_line("consumer drained", shard="0")
    assert event_of("stream.log", f"22:40:01 INFO    {newer}") == (
        'consumer drained: {"shard": "0"}'
    )
    renamed = event_line(loop_events.PROMOTED, new_version="v2")
    assert event_of("dagster.log", renamed) == 'promoted: {"new_version": "v2"}'


def test_the_follower_starts_at_the_end_and_waits_for_whole_lines(tmp_path: Path) -> None:
    def swap(old: str, new: str) -> str:
        return "22:00:00 INFO    " + event_line(CONSUMER_SWAPPED, from_version=old, to_version=new)

    said_: list[str] = []
    stream = tmp_path / "stream.log"
    stream.write_text(swap("v0", "v1") + "\n")  # before the stack was ready
    follower = EventFollower(tmp_path, said_.append)
    whole, cut = swap("v1", "v2") + "\n", swap("v2", "v3")
    with stream.open("a") as log:
        log.write(whole + cut[:30])
    follower.poll()
    with stream.open("a") as log:
        log.write(cut[30:] + "\n")
    monitored = event_line(
        loop_events.MONITORED, window="2026-12-01T10:01:00Z", drift_share=0.0, drifted_features=[],
        prediction_drift=0.0, f1_macro=None,
    )  # fmt: skip
    (tmp_path / "dagster.log").write_text(f"2026-11-27 - dagster - INFO - {monitored}\n")
    follower.poll()
    follower.poll()  # nothing new: nothing said twice
    assert [line.split(" ", 1)[1] for line in said_] == [
        "consumer swapped: v1 -> v2",
        "monitored: 2026-12-01T10:01:00Z: drift share 0.00 (none), prediction drift 0.000, "
        "f1-macro n/a (no labels yet)",  # the logs are read in name order
        "consumer swapped: v2 -> v3",
    ]
    stream.write_text(swap("v3", "v4") + "\n")  # a new, shorter log
    follower.poll()
    assert said_[-1].endswith("consumer swapped: v3 -> v4")


class OccurrenceLog:
    """The one call escalation makes on the monitoring database."""

    def __init__(self) -> None:
        self.occurrences: list[tuple[Any, ...]] = []

    def record_occurrence(self, *args: Any) -> None:
        self.occurrences.append(args)


def test_alert_not_sent(capfd: pytest.CaptureFixture[str]) -> None:
    """Field fault: SES refusing every alert was shown nowhere."""
    from studperf_assets.sensors.incidents import (
        AlertsUndelivered,
        SendFailures,
        escalate_undelivered,
    )

    failures = SendFailures()
    failures.add(time.time() - 400, RuntimeError("MessageRejected: Email address not verified"))
    failures.add(time.time() - 10, RuntimeError("MessageRejected: Email address not verified"))
    context = build_sensor_context()
    with pytest.raises(AlertsUndelivered):
        database: Any = OccurrenceLog()
        escalate_undelivered(context, database, failures, 300, advanced=False)
    (line,) = said(capfd)
    assert line.startswith("alert not sent: 2 e-mails owed, the oldest for 40")
    assert line.endswith(" s: RuntimeError: MessageRejected: Email address not verified")


def test_a_record_whose_fields_do_not_fit_is_still_said() -> None:
    """Field fault: a drift share of 10**350 raised OverflowError in the reader, and the
    follower thread died with every later event."""
    line = event_line(loop_events.MONITORED, window="w", drift_share=10**350,
                      drifted_features=[], prediction_drift=0.1, f1_macro=None)  # fmt: skip
    said_line = event_of("dagster.log", line)
    assert said_line is not None and said_line.startswith("monitored: {")


def test_the_follower_reads_across_a_rotation(tmp_path: Path) -> None:
    """The supervisor rotates a log (``local.rotating_log``) between two polls: the lines
    written to the old file after the last poll and those of the new file are all said,
    once, in order."""
    from studperf_assets.local.rotating_log import RotatingLog

    def swap(n: int) -> bytes:
        line = event_line(CONSUMER_SWAPPED, from_version=f"v{n}", to_version=f"v{n + 1}")
        return f"22:00:00 INFO    {line}\n".encode()

    said_: list[str] = []
    log = RotatingLog(tmp_path / "stream.log", max_bytes=len(swap(0)) * 3, backups=2)
    follower = EventFollower(tmp_path, said_.append)
    log.write(swap(0))
    follower.poll()
    for n in range(1, 5):  # the third line fills the file: the fourth starts a new one
        log.write(swap(n))
    assert (tmp_path / "stream.log.1").exists()
    follower.poll()
    log.write(swap(5))
    follower.poll()
    follower.poll()
    assert [line.split(" ", 1)[1] for line in said_] == [
        f"consumer swapped: v{n} -> v{n + 1}" for n in range(6)
    ]
