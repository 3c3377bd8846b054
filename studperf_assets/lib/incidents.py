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
