"""Monitoring windows: when a span of archived predictions is closed and monitored.

Pure (no Dagster). A window is the set of archive objects whose key time (the delivery time
Firehose writes into every object's key) is in [start, end). Every object has one key time,
so every object, and every record in it, is in exactly one window, and closing a window
needs only the row count of its objects, never the records' own timestamps.

Windows start on the grid of ``window_seconds`` (UTC), and end on it too. A window closes at
the later of two moments: its length has passed, and it holds ``min_window_rows``. Until
then it grows by whole lengths; once it has waited ``max_window_wait_seconds`` it closes
with the rows it has and is marked small. A span without any object is skipped: the next
window starts on the grid point at or before the next object. So there is at most one
window per length, whatever the traffic. A window is only closed once ``settle_seconds``
have passed after its end: Firehose names an object by its oldest record's arrival and
writes it up to one buffer interval later.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

KEY_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # sortable as text, UTC


def window_key(start: datetime) -> str:
    """The partition key of the window starting at ``start`` (UTC, to the second)."""
    if start.tzinfo is None:
        raise ValueError(f"{start!r}: a window starts at a time with a time zone (UTC)")
    return start.astimezone(UTC).strftime(KEY_FORMAT)


def window_start(key: str) -> datetime:
    """The start of the window named ``key`` (ValueError if it is not a window key)."""
    return datetime.strptime(key, KEY_FORMAT).replace(tzinfo=UTC)


def is_window_key(key: str) -> bool:
    try:
        window_start(key)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class WindowRules:
    window_seconds: int = 300
    min_window_rows: int = 200
    max_window_wait_seconds: int = 1800
    settle_seconds: int = 90

    def __post_init__(self) -> None:
        if self.window_seconds < 1 or self.min_window_rows < 1:
            raise ValueError("window_seconds and min_window_rows must be at least 1")
        if self.max_window_wait_seconds < self.window_seconds or self.settle_seconds < 0:
            raise ValueError("max_window_wait_seconds must be at least window_seconds")

    @property
    def length(self) -> timedelta:
        return timedelta(seconds=self.window_seconds)

    def floor(self, at: datetime) -> datetime:
        """The grid point at or before ``at``."""
        seconds = int(at.astimezone(UTC).timestamp())
        return datetime.fromtimestamp(seconds - seconds % self.window_seconds, UTC)

    @property
    def max_lengths(self) -> int:
        """Lengths a window may grow to before it closes small."""
        return -(-self.max_window_wait_seconds // self.window_seconds)


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime
    rows: int
    objects: int
    small: bool  # closed after the maximum wait with fewer than min_window_rows

    @property
    def key(self) -> str:
        return window_key(self.start)


def close_windows(
    open_start: datetime | None,
    now: datetime,
    rows_by_time: Mapping[datetime, int],
    rules: WindowRules,
    limit: int = 1000,
) -> tuple[list[Window], datetime | None]:
    """The windows that can close now, oldest first (at most ``limit``), and the start of
    the window left open (None while nothing was ever seen).

    ``rows_by_time``: row counts of the archive objects by key time, for every object at or
    after ``open_start`` whose key time is before ``now - settle_seconds`` (objects may share
    a key time: add their counts). Objects before ``open_start`` belong to windows already
    closed and are ignored."""
    settled = now - timedelta(seconds=rules.settle_seconds)
    times = sorted(t for t in rows_by_time if open_start is None or t >= open_start)
    counts = np.array([rows_by_time[t] for t in times], dtype=np.int64)
    stamps = np.array([t.timestamp() for t in times], dtype=np.float64)
    closed: list[Window] = []
    start = open_start
    position = 0  # first object not yet in a closed window
    while len(closed) < limit and position < len(times):
        first = rules.floor(times[position])
        start = first if start is None or first > start else start  # empty spans: skipped
        window = _close_one(start, settled, stamps[position:], counts[position:], rules)
        if window is None:
            break
        if window.rows:  # objects without rows (none in practice) make no partition
            closed.append(window)
        position += window.objects
        start = window.end
    return closed, start


def _close_one(
    start: datetime, settled: datetime, stamps: np.ndarray, counts: np.ndarray, rules: WindowRules
) -> Window | None:
    """The window starting at ``start`` if it can close, else None. ``stamps`` (sorted) and
    ``counts`` are of the objects at or after ``start``; the first is in its first length."""
    for lengths in range(1, rules.max_lengths + 1):
        end = start + lengths * rules.length
        if end > settled:
            return None
        inside = int(np.searchsorted(stamps, end.timestamp(), side="left"))
        rows = int(counts[:inside].sum())
        small = lengths == rules.max_lengths and rows < rules.min_window_rows
        if rows >= rules.min_window_rows or small:
            return Window(start, end, rows, inside, small)
    return None


def newest_first_priorities(count: int) -> list[int]:
    """``dagster/priority`` for ``count`` windows listed oldest first: 0 for the newest (as
    any other run), one less for each older one. The run queue starts the highest first,
    so the newest window of a backlog is monitored first, the newest of a later tick before
    the rest of an earlier backlog, and the older windows catch up after them."""
    return [index - (count - 1) for index in range(count)]


# ---- per-window statistics ----------------------------------------------------------------


def seeded_sample(frame: pd.DataFrame, max_rows: int, seed: int) -> pd.DataFrame:
    """At most ``max_rows`` rows of ``frame``, drawn uniformly without replacement with a
    fixed seed (the same window gives the same sample), in the frame's own order."""
    if max_rows < 1:
        raise ValueError("max_rows must be at least 1")
    if len(frame) <= max_rows:
        return frame
    chosen = np.random.default_rng(seed).choice(len(frame), size=max_rows, replace=False)
    return frame.iloc[np.sort(chosen)]


def window_seed(key: str) -> int:
    """A seed fixed by the window (its start's seconds since the epoch)."""
    return int(window_start(key).timestamp()) if is_window_key(key) else 0


PSI_FLOOR = 1e-4  # a bin's share is at least this: an empty bin does not give infinity


def psi(
    reference: pd.Series, current: pd.Series, bins: int = 10, categorical: bool = False
) -> float:
    """Population stability index of ``current`` against ``reference``:
    sum((c - r) * ln(c / r)) over bins. Bins are the reference's deciles for a continuous
    column (edges deduplicated) and its values for a categorical one (values the reference
    lacks share one extra bin). Like the distances, it does not grow with the sample size
    (rule of thumb: below 0.1 stable, 0.1-0.25 moderate, above 0.25 a real shift)."""
    ref = pd.Series(reference).dropna()
    cur = pd.Series(current).dropna()
    if ref.empty or cur.empty:
        return float("nan")
    if categorical:
        values = sorted(ref.unique().tolist())
        r = ref.value_counts(normalize=True).reindex(values, fill_value=0.0).to_numpy()
        c_counts = cur.value_counts(normalize=True)
        c = c_counts.reindex(values, fill_value=0.0).to_numpy()
        r = np.append(r, 0.0)
        c = np.append(c, float(c_counts.drop(values, errors="ignore").sum()))
    else:
        quantiles = np.quantile(ref.to_numpy(dtype=float), np.linspace(0, 1, bins + 1)[1:-1])
        edges = np.unique(quantiles)
        r, c = _shares_in_bins(ref, edges), _shares_in_bins(cur, edges)
    r = np.clip(r, PSI_FLOOR, None)
    c = np.clip(c, PSI_FLOOR, None)
    return float(np.sum((c - r) * np.log(c / r)))


def _shares_in_bins(values: pd.Series, edges: np.ndarray) -> np.ndarray:
    bins = np.searchsorted(edges, values.to_numpy(dtype=float), side="right")
    return np.bincount(bins, minlength=len(edges) + 1) / len(values)


def expired_windows(keys: Sequence[str], now: datetime, retention_days: int) -> list[str]:
    """The window keys whose window started more than ``retention_days`` before ``now``
    (other keys, not windows, are never expired), oldest first. Their partitions and files
    go once their day is rolled up (``daily_metrics`` keeps its summary)."""
    cutoff = now - timedelta(days=retention_days)
    return sorted(k for k in keys if is_window_key(k) and window_start(k) < cutoff)
