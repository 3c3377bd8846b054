"""The alert e-mail of a batch, as its readers see it (plain text and HTML)."""

from __future__ import annotations

from studperf_assets.lib.alert_email import (
    CHECK_RUNBOOK,
    BatchAlert,
    FailedCheck,
    IncidentNotice,
    highest_severity,
    sig,
)

DRIFT = FailedCheck(
    "data_drift",
    {
        "drift_share": 0.2222222222222222,
        "threshold": 0.2,
        "drifted_features": ["StudyTimeWeekly", "Absences"],
        "feature_scores": {"Absences": 0.83381234, "StudyTimeWeekly": 0.8773, "Music": 0.02061},
        "feature_thresholds": {"Absences": 0.2, "StudyTimeWeekly": 0.2, "Music": 0.15},
        "rows": 200,
        "model_version": "v20261127T130346Z-2cb339a3",
    },
)
PREDICTIONS = FailedCheck("prediction_drift", {"prediction_drift": 0.31234, "threshold": 0.15})
LABELS = FailedCheck(
    "batch_labels",
    {"rejected_label_files": {"labels/x.parquet": "missing column(s) available_at <b>"}},
)


def alert() -> BatchAlert:
    return BatchAlert(
        "batch-000004",
        [DRIFT, PREDICTIONS, LABELS],
        rows=200,
        model_version="v20261127T130346Z-2cb339a3",
        run_url="http://127.0.0.1:3000/runs/abc",
        report_url="https://bucket.s3.amazonaws.com/reports/batch-000004/drift.html?X-Amz-Signature=1",
    )


def test_three_significant_digits() -> None:
    assert [sig(0.2222222222222222), sig(0.83381234), sig(200), sig(float("nan"))] == [
        "0.222", "0.834", "200", "n/a",
    ]  # fmt: skip


def test_one_mail_for_the_batch_lists_every_failed_check() -> None:
    mail = alert()
    assert mail.subject == (
        "[studperf] batch-000004: 3 check(s) failed (data_drift, prediction_drift, batch_labels)"
    )
    text = mail.text()
    assert "predictions in the batch: 200" in text and "model version: v20261127T130346Z" in text
    # a table per check: feature, score, threshold, worst first, 3 significant digits
    lines = text.splitlines()
    header = next(
        i for i, line in enumerate(lines) if line.split()[:3] == ["feature", "score", "threshold"]
    )
    assert lines[header + 1].split() == ["StudyTimeWeekly", "0.877", "0.2", "yes"]
    assert lines[header + 2].split() == ["Absences", "0.834", "0.2", "yes"]
    assert lines[header + 3].split() == ["Music", "0.0206", "0.15"]
    assert "0.2222222" not in text and "{" not in text  # no reprs, no 16-digit floats
    assert "labels/x.parquet  missing column(s) available_at <b>" in text
    assert "Dagster run: http://127.0.0.1:3000/runs/abc" in text
    assert "Drift report: https://bucket.s3.amazonaws.com/" in text


def test_the_html_part_has_the_same_content_escaped() -> None:
    html = alert().html()
    assert html.count("<table") == 3
    assert "<td>0.877</td>" in html and "<td>0.312</td>" in html
    assert "available_at &lt;b&gt;" in html  # what came from a file is escaped
    assert '<a href="http://127.0.0.1:3000/runs/abc">Dagster run</a>' in html
    assert "X-Amz-Signature=1" in html


def test_records_that_are_not_predictions_are_named_with_their_position() -> None:
    listed = [
        {"shard": "shardId-000000000000", "sequence": "41", "reason": "not JSON (JSONDecodeError)"},
        {"shard": "shardId-000000000000", "sequence": "42", "reason": "no 'student_id'"},
    ]
    check = FailedCheck("batch_records", {"unreadable_records": 5, "first_unreadable": listed})
    text = BatchAlert("batch-000007", [check], rows=195).text()
    assert "Records on the predictions stream that are not predictions (batch_records)" in text
    lines = [line.split("  ") for line in text.splitlines()]
    assert ["shard shardId-000000000000 sequence 42", "no 'student_id'"] in [
        [part.strip() for part in line if part.strip()] for line in lines
    ]
    assert "3 more" in text and "not listed" in text


def test_an_incident_notice_leads_with_its_severity_and_keeps_both_parts_alike() -> None:
    notice = IncidentNotice(
        "opened",
        "labels incident: batch_labels failed on 2026-12-01T10:02:00Z",
        [("failed checks", "batch_labels")],
        links={
            "Dagster run": "http://127.0.0.1:3000/runs/abc",
            "Label file": "file:///srv/studperf/monitoring/labels/x.parquet",
        },
        severity="WARN",
        doing=["no automatic action: retraining does not repair labels"],
        runbook=[("batch_labels", CHECK_RUNBOOK["batch_labels"] + " <b>")],
    )
    text, page = notice.text(), notice.html()
    assert text.splitlines()[:2] == [f"New incident: {notice.title}.", "Severity: WARN"]
    assert "What the platform is doing\n  no automatic action" in text
    assert "What to check\n  batch_labels: fix and re-upload the named label files" in text
    assert "Links\n  Dagster run: http://127.0.0.1:3000/runs/abc" in text
    assert "file://" not in text and "file://" not in page  # the server's disk, not a link
    assert "Severity: WARN" in page and "&lt;b&gt;" in page  # escaped
    assert '<a href="http://127.0.0.1:3000/runs/abc">Dagster run</a>' in page


def test_the_most_severe_wins() -> None:
    assert highest_severity(["WARN", "ERROR", "WARN"]) == "ERROR"
    assert highest_severity(["WARN"]) == "WARN"
    assert highest_severity(["CRITICAL?"]) == "ERROR"  # unknown: the safe side
