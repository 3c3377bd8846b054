"""The loop's events as structured records with named fields: the catalog, the emitter's
``emit`` and the reader's ``parse``.

Each emitter logs one record where its event happens (a JSON object on one line whose
``studperf_event`` key names the event; format in ``lambda_service.event_record``).
``studperf up`` (``local.events``) reads the fields, so a log line can be reworded freely.

=================  =====================================  ==================================
event              emitted by                             fields
=================  =====================================  ==================================
monitored          asset ``drift_report``                 window, drift_share,
                                                          drifted_features, prediction_drift,
                                                          f1_macro (null: no labels yet)
not monitored      ``monitoring_alert_sensor``            window ("" if none), job, step,
                                                          error
alert not sent     ``monitoring_alert_sensor`` (SES has   owed, oldest_seconds, error
                   refused e-mails past the threshold)
incident           ``monitoring_alert_sensor``            notice (opened, reminder,
                   (an incident's e-mail went out)        resolved), kind, title
retraining         ``retraining_sensor``                  check, window, new_labels
promoted           asset ``production_model``             version, replaced (null: first)
consumer swapped   ``ModelProvider`` (consumer, Lambda)   from_version, to_version
consumer minute    ``studperf stream``'s minute summary   seconds, batches, records,
                                                          predicted, errors, to_retry,
                                                          function_errors,
                                                          on_failure_records,
                                                          models, total_records,
                                                          retried_batches, outage_retries
=================  =====================================  ==================================
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lambda_service.event_record import (
    CONSUMER_SWAPPED,
    CONSUMER_SWAPPED_FIELDS,
    MARKER,
    event_line,
)

MONITORED = "monitored"
NOT_MONITORED = "not monitored"
ALERT_NOT_SENT = "alert not sent"
INCIDENT = "incident"
RETRAINING = "retraining"
PROMOTED = "promoted"
CONSUMER_MINUTE = "consumer minute"

FIELDS: dict[str, tuple[str, ...]] = {
    MONITORED: ("window", "drift_share", "drifted_features", "prediction_drift", "f1_macro"),
    NOT_MONITORED: ("window", "job", "step", "error"),
    ALERT_NOT_SENT: ("owed", "oldest_seconds", "error"),
    INCIDENT: ("notice", "kind", "title"),
    RETRAINING: ("check", "window", "new_labels"),
    PROMOTED: ("version", "replaced"),
    CONSUMER_SWAPPED: CONSUMER_SWAPPED_FIELDS,
    CONSUMER_MINUTE: (
        "seconds", "batches", "records", "predicted", "errors", "to_retry",
        "function_errors", "on_failure_records", "models",
        "total_records", "retried_batches", "outage_retries",
    ),
}  # fmt: skip


def emit(log: Callable[[str], Any], name: str, **fields: Any) -> None:
    """Log the event ``name`` through ``log`` (``context.log.info``, a logger's ``info``)
    as one record line. Its fields must be exactly the catalog's: a renamed or forgotten
    field fails where it is emitted, not silently in the reader."""
    expected = FIELDS.get(name)
    if expected is None:
        raise ValueError(f"unknown loop event {name!r}")
    if set(fields) != set(expected):
        raise ValueError(f"event {name!r} takes {sorted(expected)}, not {sorted(fields)}")
    log(event_line(name, **{key: fields[key] for key in expected}))


@dataclass(frozen=True)
class LoopEvent:
    name: str
    fields: Mapping[str, Any]


_OPENING = "{" + json.dumps(MARKER) + ":"
_decoder = json.JSONDecoder()


def parse(line: str) -> LoopEvent | None:
    """The event record in a log line, or None. The record may follow any prefix (a
    timestamp, Dagster's job/run/step), or be the escaped ``message`` of a JSON log line."""
    start = line.find(_OPENING)
    if start >= 0:
        try:
            record, _ = _decoder.raw_decode(line, start)
        except ValueError:
            return None
        name = record.pop(MARKER)
        return LoopEvent(str(name), record)
    if MARKER in line and line.lstrip().startswith("{"):  # a JSON log line
        try:
            outer = json.loads(line)
        except ValueError:
            return None
        message = outer.get("message") if isinstance(outer, dict) else None
        return parse(message) if isinstance(message, str) else None
    return None
