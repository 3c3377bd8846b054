"""Ground truth that arrives after the prediction: raw rows with an ``available_at`` time.

The simulator writes them (``labels/<time>.parquet`` in the object store); monitoring joins
those that have arrived to their batch, and retraining appends them to the training data.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

import pandas as pd

from studperf_assets.lib.data import RAW_COLUMNS

LABELS_PREFIX = "labels/"
AVAILABLE_AT = "available_at"


class FrameStore(Protocol):
    def list_keys(self, prefix: str) -> list[str]: ...
    def get_frame(self, key: str) -> pd.DataFrame: ...
    def put_frame(self, key: str, frame: pd.DataFrame) -> str: ...


def write_labels(store: FrameStore, rows: pd.DataFrame, available_at: datetime) -> str:
    if available_at.tzinfo is None:
        raise ValueError("available_at must be timezone-aware")
    frame = rows[list(RAW_COLUMNS)].copy()
    frame[AVAILABLE_AT] = pd.Timestamp(available_at).tz_convert("UTC")
    first_id = int(frame["StudentID"].iloc[0])
    key = f"{LABELS_PREFIX}{available_at.strftime('%Y%m%dT%H%M%S%f')}-{first_id}.parquet"
    return store.put_frame(key, frame)


def arrived_labels(store: FrameStore, now: datetime | None = None) -> pd.DataFrame:
    """Every label row whose ``available_at`` has passed (raw columns only)."""
    now = now or datetime.now(UTC)
    frames = [
        store.get_frame(key) for key in store.list_keys(LABELS_PREFIX) if key.endswith(".parquet")
    ]
    if not frames:
        return pd.DataFrame(columns=list(RAW_COLUMNS))
    labels = pd.concat(frames, ignore_index=True)
    arrived = labels[labels[AVAILABLE_AT] <= pd.Timestamp(now)]
    return (
        arrived[list(RAW_COLUMNS)].drop_duplicates("StudentID", keep="last").reset_index(drop=True)
    )
