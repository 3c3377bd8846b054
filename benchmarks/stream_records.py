"""Predictions-stream decoding: what checking each record costs monitoring.

    python benchmarks/stream_records.py

The batch sensor and every monitoring run decode each record of their stream range. The
baseline is what they did before records were checked (``json.loads`` alone); the same
records, in the same process, alternating, best of five. Figures go to
benchmarks/results/stream_records.json.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "results" / "stream_records.json"
RECORDS = 100_000


def records() -> list[bytes]:
    """Prediction records as the Lambda writes them (service._prediction), ids varying."""
    from lambda_service.schema import FEATURE_NAMES

    body: dict[str, Any] = {
        "model_name": "studperf-grade-class",
        "model_version": "v20261127T130346Z-2cb339a3",
        "request_id": "",
        "grade_class": 2,
        "grade": "C",
        "probabilities": {"A": 0.05, "B": 0.15, "C": 0.6, "D": 0.1, "F": 0.1},
        "student": {name: 2 for name in FEATURE_NAMES},
        "predicted_at": "2026-11-27T20:00:00.000000Z",
    }
    out = []
    for i in range(RECORDS):
        body.update(student_id=1_000_000 + i, request_id=f"r-{i}", idempotency_key=f"s:{i}")
        out.append(json.dumps(body, separators=(",", ":")).encode())
    return out


def timed(decode: Callable[[bytes], Any], data: list[bytes]) -> float:
    started = time.perf_counter()
    for item in data:
        decode(item)
    return time.perf_counter() - started


def main() -> None:
    from studperf_assets.lib.prediction_records import decode_prediction

    data = records()
    plain, checked = float("inf"), float("inf")
    for _ in range(5):  # alternating, so both see the same machine
        plain = min(plain, timed(json.loads, data))
        checked = min(checked, timed(decode_prediction, data))
    figures = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} cores, Python {sys.version.split()[0]}",
        "records": RECORDS,
        "json_loads_us_per_record": round(plain / RECORDS * 1e6, 2),
        "decode_prediction_us_per_record": round(checked / RECORDS * 1e6, 2),
        "ratio_checked_over_plain": round(checked / plain, 2),
        "added_ms_per_200_record_batch": round((checked - plain) / RECORDS * 200 * 1e3, 3),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
