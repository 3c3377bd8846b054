"""What `studperf up` prints after `ready`, from lines its parts really log."""

from __future__ import annotations

from pathlib import Path

from studperf_assets.local.events import EventFollower, event_of

RUN_ID = "959ac2f5-9854-41e9-ba43-fa56275d3518"
RUN = f"2026-11-27 22:38:19 +0000 - dagster - INFO - monitoring_job - {RUN_ID}"
SENSOR = "\x1b[32m2026-11-27 22:39:06 +0000\x1b[0m - dagster - INFO - __repository__"


def test_each_event_is_one_line_and_the_rest_is_quiet() -> None:
    assert (
        event_of("dagster.log", f"{RUN} - drift_report - batch-000003: drift share 0.22 (Absences)")
        == "monitored: batch-000003: drift share 0.22 (Absences)"
    )
    alert = "alert sent for batch-000003: data_drift"
    assert event_of("dagster.log", f"{SENSOR} - monitoring_alert_sensor - {alert}") == (
        "alert sent: batch-000003: data_drift"
    )
    missed = "not monitored: batch-000005: monitoring_job failed at drift_report: KeyError: 1"
    assert event_of("dagster.log", f"{SENSOR} - monitoring_alert_sensor - {missed}") == (
        "not monitored: batch-000005: monitoring_job failed at drift_report: KeyError: 1"
    )
    opened = "incident opened: monitoring_job failed at drift_report (batch-000005): KeyError: 1"
    assert event_of("dagster.log", f"{SENSOR} - monitoring_alert_sensor - {opened}") == (
        f"alert sent: {opened}"
    )
    retraining = "retraining: data_drift failed on batch-000004; 800 new labelled rows"
    assert event_of("dagster.log", f"{SENSOR} - retraining_sensor - {retraining}") == retraining
    training = RUN.replace("monitoring_job", "training_job")
    assert event_of("dagster.log", f"{training} - production_model - production -> v2") == (
        "promoted: production -> v2"
    )
    failure = f'{RUN} - 4242 - RUN_FAILURE - Execution of run for "monitoring_job" failed.'
    assert event_of("dagster.log", failure) == f"run FAILED: monitoring_job - {RUN_ID}"
    assert event_of("stream.log", "22:40:01 INFO    hot swap v1 -> v2") == (
        "consumer swapped: v1 -> v2"
    )
    minute = (
        "22:38:33 INFO    last 60s: 40 batches, 4000 records, 4000 predicted, 0 errors, 0 to "
        "retry; model v1; since start 4000 records, 0 retried batches, 0 outage retries"
    )
    assert event_of("stream.log", minute) == (
        "consumer: last 60s: 40 batches, 4000 records, 4000 predicted, 0 errors, 0 to retry; "
        "model v1"
    )
    idle = minute.replace(
        "40 batches, 4000 records, 4000 predicted", "0 batches, 0 records, 0 predicted"
    )
    quiet = [
        ("stream.log", idle),  # a quiet minute says nothing
        ("dagster.log", f"{RUN} - 4242 - drift_report - STEP_SUCCESS - Finished"),
        ("dagster.log", f"{SENSOR} - dagster.daemon.SensorDaemon - Sensor skipped: 0 alerts sent"),
        ("stream.log", "22:40:01 INFO    batch: 100 records, 100 predicted, 0 errors"),
        ("stream.log", f"{RUN} - drift_report - batch-000003: in the wrong log"),
    ]
    assert [event_of(log, line) for log, line in quiet] == [None] * len(quiet)


def test_the_follower_starts_at_the_end_and_waits_for_whole_lines(tmp_path: Path) -> None:
    said: list[str] = []
    stream = tmp_path / "stream.log"
    stream.write_text("22:00:00 INFO    hot swap v0 -> v1\n")  # before the stack was ready
    follower = EventFollower(tmp_path, said.append)
    with stream.open("a") as log:
        log.write("22:00:01 INFO    hot swap v1 -> v2\n22:00:02 INFO    hot swap v2")
    follower.poll()
    with stream.open("a") as log:
        log.write(" -> v3\n")
    (tmp_path / "dagster.log").write_text(
        f"{RUN} - drift_report - batch-000001: drift share 0.00\n"
    )
    follower.poll()
    follower.poll()  # nothing new: nothing said twice
    assert [line.split(" ", 1)[1] for line in said] == [
        "consumer swapped: v1 -> v2",
        "monitored: batch-000001: drift share 0.00",  # the logs are read in name order
        "consumer swapped: v2 -> v3",
    ]
    stream.write_text("22:10:00 INFO    hot swap v3 -> v4\n")  # a new, shorter log
    follower.poll()
    assert said[-1].endswith("consumer swapped: v3 -> v4")


def test_undelivered_alerts_reach_the_terminal() -> None:
    """Field fault: SES refusing every alert was shown nowhere."""
    line = "alert not sent: 2 e-mails owed for 300 s: MessageRejected: Email address not verified"
    assert event_of("dagster.log", f"{SENSOR} - monitoring_alert_sensor - {line}") == line
