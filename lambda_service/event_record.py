"""The loop's structured event records, as one JSON log line each (the wire format).

A record is a JSON object whose first key is ``studperf_event`` (the event's name) and whose
other keys are its named fields: ``{"studperf_event": "consumer swapped", "from_version":
"v1", "to_version": "v2"}``. It is logged as the whole message of one log line, so it comes
through any formatter that writes the message (Dagster's console lines, ``studperf``'s human
format) and, escaped, inside the ``message`` of a JSON line (``STUDPERF_LOG_FORMAT=json``,
Powertools in Lambda). ``studperf up`` reads the fields, never the wording
(``studperf_assets.local.events``).

Only the format and the event the Lambda code emits live here (``lambda_service`` imports
nothing of ``studperf_assets``); the catalog of every event and its fields is
``studperf_assets.lib.loop_events``.
"""

from __future__ import annotations

import json
from typing import Any

MARKER = "studperf_event"

# Emitted by ``model_provider.ModelProvider`` when a newly promoted bundle replaces the one
# serving (the local consumer and Lambda alike).
CONSUMER_SWAPPED = "consumer swapped"
CONSUMER_SWAPPED_FIELDS = ("from_version", "to_version")


def event_line(name: str, **fields: Any) -> str:
    """The record as one line: the marker key first, then the fields; never a newline
    (JSON escapes them). A numpy scalar is written as the number it holds, anything else
    JSON cannot hold as its string."""
    return json.dumps({MARKER: name, **fields}, default=_plain)


def _plain(value: Any) -> Any:
    item = getattr(value, "item", None)  # numpy scalars: float64, int64, bool_
    return item() if callable(item) and getattr(value, "shape", None) == () else str(value)
