"""Incidents: one alert per problem, not one per failure.

A failure (a run that failed, a sensor that keeps erroring) is an *occurrence* of an
incident, keyed by what failed, so that the same problem met on window after window is
one incident: one e-mail when it opens, at most one reminder per period while it stays
open, and one when it is resolved. The monitoring database keeps them (``incidents``);
this module decides keys and which e-mail is due, and holds no state.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from studperf_assets.lib.alert_email import highest_severity

RUN_FAILED = "run_failed"
SENSOR_FAILING = "sensor_failing"
RUN_STUCK = "run_stuck"
# E-mails SES keeps refusing (a deleted identity, the sandbox): one incident, itself shown
# in the logs, the terminal and the UI, since it may not be e-mailed until SES is back.
ALERTS_UNDELIVERED = "alerts_undelivered"
# A sensor whose last ticks failed this many times in a row is an incident (one failed
# tick is often a passing outage the next tick rides out).
SENSOR_FAILURES_FOR_INCIDENT = 3
# What varies between occurrences of one failure, masked in its signature: quoted values
# ('stu-ab12cd', "…", `…`), then words holding a digit (batch-000012's numbers, ab12cd, a
# run ID's parts) and long hexadecimal words (deadbeefcafe); the words around them stay.
_QUOTED = re.compile(r"'[^'\n]*'|\"[^\"\n]*\"|`[^`\n]*`")
_VARYING = re.compile(r"\b(?=[A-Za-z_]*\d)\w+\b|\b[0-9A-Fa-f]{8,}\b")


@dataclass(frozen=True)
class Incident:
    id: int
    key: str
    kind: str
    status: str  # open | resolved
    title: str
    opened_at: datetime
    last_seen_at: datetime
    occurrences: int
    first_partition: str | None = None
    last_partition: str | None = None
    resolved_at: datetime | None = None
    notified_at: datetime | None = None
    notifications: int = 0
    resolution_notified_at: datetime | None = None
    details: dict[str, Any] = field(default_factory=dict)


def incident_severity(incident: Incident) -> str:
    """Failed checks: the most severe check that failed in any of its windows. Anything else
    (a failed or stuck run, a failing sensor, undelivered e-mails) leaves monitoring blind
    or the on-call unreached: ERROR."""
    if incident.kind == CHECKS_FAILED:
        checks = incident.details.get("checks", [])
        fallback = highest_severity([CHECK_SEVERITY.get(c, "ERROR") for c in checks])
        return str(incident.details.get("severity") or fallback)
    return "ERROR"


def first_line(message: str, limit: int = 300) -> str:
    """The first non-empty line of an error message, at most ``limit`` characters."""
    for line in str(message).splitlines():
        if line.strip():
            text = line.strip()
            return text if len(text) <= limit else text[: limit - 3] + "..."
    return "(no message)"


def error_signature(error: str) -> str:
    """An error's first line with what varies from window to window masked: quoted values
    become ``'…'``, words holding a digit and long hexadecimal words ``#``
    (``KeyError: 'stu-ab12' in batch-000012`` -> ``KeyError: '…' in batch-#``)."""
    quoted = _QUOTED.sub(lambda m: f"{m.group()[0]}…{m.group()[0]}", first_line(error))
    return _VARYING.sub("#", quoted)


def run_failure_key(job: str, step: str, error: str) -> str:
    """The incident a failed run belongs to: the job, the step and the error's signature
    (``error_signature``: ``batch-000012`` and ``batch-000013`` failing the same way, or an
    error quoting one student's ID and then another's, are one incident, not two)."""
    signature = error_signature(error)
    digest = hashlib.sha256(signature.encode()).hexdigest()[:12]
    return f"{RUN_FAILED}:{job}:{step}:{digest}"[:200]


def stuck_run_key(job: str, status: str) -> str:
    """Runs of one job stuck in one status (QUEUED, STARTED...) are one incident."""
    return f"{RUN_STUCK}:{job}:{status}"[:200]


def sensor_failure_key(sensor: str) -> str:
    return f"{SENSOR_FAILING}:{sensor}"[:200]


def notice_due(incident: Incident, now: datetime, reminder: timedelta) -> str | None:
    """Which e-mail an incident is owed now: "opened" (never sent), "reminder" (open, and
    the last e-mail is ``reminder`` old), "resolved" (resolved after an e-mail was sent,
    and not yet said so), or None."""
    if incident.status == "open":
        if incident.notified_at is None:
            return "opened"
        if now - incident.notified_at >= reminder:
            return "reminder"
        return None
    if incident.notified_at is not None and incident.resolution_notified_at is None:
        return "resolved"
    return None


# ---- failed checks ---------------------------------------------------------------------------
CHECKS_FAILED = "checks_failed"
# The incident a failed check belongs to. The two drift checks are one group: they fail
# together on a shifted population, for one cause and with one remedy (retraining). The
# performance check is its own: it is judged late (when labels arrive), can fail without
# drift, and has its own severity. The data checks each point at a different producer (the
# predictions stream, the label files, the inputs) and are their own groups.
CHECK_GROUPS = {
    "data_drift": "drift",
    "prediction_drift": "drift",
    "performance": "performance",
    "batch_records": "records",
    "batch_labels": "labels",
    "batch_data_quality": "data_quality",
}
RETRAINING_GROUPS = ("drift", "performance")
# Check metadata kept per window for the incident's e-mail (the rest stays on the run).
_KEPT = (
    "drift_share", "threshold", "drifted_features", "feature_scores", "feature_thresholds",
    "prediction_drift", "f1_macro", "labelled_rows", "floor", "rows", "model_version",
    "report_key", "unreadable_records", "conflicting_labels", "bad_values",
    "first_unreadable", "rejected_label_files", "labels_unavailable", "severity",
)  # fmt: skip
# A check's severity when its verdict does not say (recorded before verdicts kept it): its
# definition's (``monitoring_settings`` for the drift and performance checks; Dagster's
# default, ERROR, for ``batch_data_quality``).
CHECK_SEVERITY = {
    "data_drift": "WARN",
    "prediction_drift": "WARN",
    "performance": "ERROR",
    "batch_records": "WARN",
    "batch_labels": "WARN",
    "batch_data_quality": "ERROR",
}
# Lists and mappings an e-mail shows as they are (each bounded where it is made: at most 20
# records named, one entry per rejected label file); other nested values are left out.
_DETAILS = ("first_unreadable", "rejected_label_files", "bad_values")
WINDOWS_LISTED = 10  # an e-mail lists at most this many windows (the first and last halves)


def check_group(check: str) -> str:
    return CHECK_GROUPS.get(check, check)


def check_incident_key(group: str) -> str:
    """One open incident per group of checks, whatever the windows: ``checks:drift``. A
    window key never enters it (keys are window starts or batch numbers; an incident spans
    many), and neither does the model version (a retrained model that still drifts is the
    same incident, and a new one opens only after the group passed long enough)."""
    return f"checks:{group}"[:200]


def window_order(partition: str) -> str:
    """The order of monitored windows: their partition keys sort by time (zero-padded batch
    numbers today, window start timestamps tomorrow). The one place that assumes it."""
    return partition


@dataclass(frozen=True)
class Verdict:
    """What one monitored window says about one group of checks: failed (with each failed
    check's metadata) or passed. A check that was not judged (performance without enough
    labels) is no verdict: it must not count as a passing window."""

    group: str
    passed: bool
    failed: dict[str, dict[str, Any]] = field(default_factory=dict)


def verdicts(failed: dict[str, dict[str, Any]], passed: set[str]) -> list[Verdict]:
    """A run's check results as one verdict per group: failed if any of its checks failed."""
    groups: dict[str, dict[str, dict[str, Any]]] = {}
    for check in passed:
        groups.setdefault(check_group(check), {})
    for check, metadata in failed.items():
        kept = {k: v for k, v in metadata.items() if k in _KEPT}
        groups.setdefault(check_group(check), {})[check] = kept
    return [Verdict(g, not checks, checks) for g, checks in sorted(groups.items())]


def check_incident_details(
    group: str, windows: list[tuple[str, str, dict[str, dict[str, Any]]]]
) -> dict[str, Any]:
    """What an incident's e-mail says, from its failing windows (partition, run id, failed
    checks with their metadata), whatever order they were monitored in: the checks, the
    windows in time order, and the drifted features with the highest score each reached."""
    ordered = sorted(windows, key=lambda w: window_order(w[0]))
    checks = sorted({c for _, _, failed in ordered for c in failed})
    scores: dict[str, float] = {}
    thresholds: dict[str, float] = {}
    drifted: set[str] = set()
    for _, _, failed in ordered:
        drift = failed.get("data_drift")
        if not drift:
            continue
        drifted.update(drift.get("drifted_features", []))
        thresholds.update(drift.get("feature_thresholds", {}))
        for feature, score in dict(drift.get("feature_scores", {})).items():
            scores[feature] = max(float(score), scores.get(feature, float("-inf")))
    partitions = [w[0] for w in ordered]
    severities = [
        str(m.get("severity") or CHECK_SEVERITY.get(c, "ERROR"))
        for _, _, failed in ordered
        for c, m in failed.items()
    ]
    last_partition, last_run, last_failed = ordered[-1]
    facts = next((m for m in last_failed.values() if "model_version" in m), {})
    return {
        "group": group,
        "checks": checks,
        "severity": highest_severity(severities),
        "windows": len(partitions),
        "listed_windows": _listed(partitions),
        "drifted_features": ranked_features(scores, drifted),
        "feature_thresholds": {f: thresholds[f] for f in drifted if f in thresholds},
        "last_failed": {c: _scalars(m) for c, m in last_failed.items()},
        "last_run_id": last_run,
        "last_partition": last_partition,
        "model_version": str(facts.get("model_version", "")),
        "report_key": str(facts.get("report_key", "")),
    }


def ranked_features(scores: dict[str, float], drifted: set[str]) -> list[tuple[str, float]]:
    """The drifted features, highest score first (ties by name)."""
    return sorted(
        ((f, round(scores[f], 4)) for f in drifted if f in scores), key=lambda fs: (-fs[1], fs[0])
    )


def _listed(partitions: list[str]) -> list[str]:
    if len(partitions) <= WINDOWS_LISTED:
        return partitions
    half = WINDOWS_LISTED // 2
    return [*partitions[:half], "...", *partitions[-half:]]


def _scalars(metadata: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metadata.items() if k in _DETAILS or not isinstance(v, dict | list)}


def passes_to_resolve(after_last_failure: list[tuple[str, bool]], needed: int) -> str | None:
    """The window that resolves an incident: the ``needed``-th consecutive passing window
    after its last failing one (``after_last_failure`` in window order), or None."""
    ordered = sorted(after_last_failure, key=lambda v: window_order(v[0]))
    for streak, (partition, passed) in enumerate(ordered, start=1):
        if not passed:
            return None
        if streak >= needed:
            return partition
    return None
