"""The daily rollup of monitoring windows: what one UTC day of windows amounts to, as plain
data (no Dagster, no database). ``assets/rollup.py`` reads the day's rows from the
monitoring database and stores the summary as a row of ``daily_metrics``.

A window belongs to the day its key (its start, UTC) falls on. Quality over the day is
computed over the day's labelled rows, from the confusion matrices the windows stored
(summed, then f1-macro and accuracy as ``models.batch_quality`` computes them for one
window). A window recorded before confusion matrices were stored (migration 0005) has none:
then the day's figures are the mean of the windows' own values weighted by their labelled
rows, and ``quality_basis`` says so.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import numpy as np

from lambda_service.schema import GRADE_LETTERS
from studperf_assets.lib.incidents import CHECK_GROUPS
from studperf_assets.lib.windows import KEY_FORMAT, is_window_key, window_start

# How the day's f1-macro and accuracy were obtained
OVER_LABELLED_ROWS = "labelled rows"  # summed confusion matrices: exact over the day's rows
WEIGHTED_WINDOW_MEAN = "weighted mean of windows"  # some window stored no confusion matrix
NO_LABELS = "no labelled rows"
GROUPS = tuple(sorted(set(CHECK_GROUPS.values())))


def day_bounds(day: date) -> tuple[str, str]:
    """The window keys a day covers: [first, after) as text (keys sort as text, UTC)."""
    start = datetime.combine(day, time(0), tzinfo=UTC)
    return start.strftime(KEY_FORMAT), (start + timedelta(days=1)).strftime(KEY_FORMAT)


def day_of(key: str) -> date | None:
    """The UTC day a window key falls on; None for a key that is not a window's."""
    return window_start(key).date() if is_window_key(key) else None


@dataclass
class DailySummary:
    day: date
    windows: int = 0  # windows monitored (a row in batch_metrics)
    rows: int = 0  # predictions in them
    labelled_rows: int = 0
    small_windows: int = 0  # closed after the maximum wait with fewer rows than wanted
    drift_share_mean: float | None = None  # over windows, unweighted
    drift_share_max: float | None = None
    failing_windows: dict[str, int] = field(default_factory=dict)  # check group -> windows
    prediction_shares: dict[str, float] = field(default_factory=dict)  # grade -> share of rows
    f1_macro: float | None = None
    accuracy: float | None = None
    quality_basis: str = NO_LABELS

    def to_row(self) -> dict[str, Any]:
        """The ``daily_metrics`` row (JSON columns as text)."""
        row = asdict(self)
        row["failing_windows"] = json.dumps(self.failing_windows, sort_keys=True)
        row["prediction_shares"] = json.dumps(self.prediction_shares, sort_keys=True)
        return row


def summarise_day(
    day: date,
    windows: Sequence[Mapping[str, Any]],
    verdicts: Mapping[str, Mapping[str, bool]] | None = None,
) -> DailySummary:
    """The summary of ``day`` from its windows' ``batch_metrics`` rows (``partition``,
    ``rows``, ``labelled_rows``, ``drift_share``, ``f1_macro``, ``accuracy``, and, from
    migration 0005, ``small``, ``prediction_counts`` and ``confusion``, JSON text or
    decoded) and their check verdicts (partition -> check group -> passed). Rows of other
    days, or of keys that are not windows, are ignored."""
    mine = [w for w in windows if day_of(str(w["partition"])) == day]
    summary = DailySummary(day=day, failing_windows=dict.fromkeys(GROUPS, 0))
    if not mine:
        return summary
    summary.windows = len(mine)
    summary.rows = sum(int(w["rows"]) for w in mine)
    summary.labelled_rows = sum(int(w["labelled_rows"]) for w in mine)
    summary.small_windows = sum(bool(w.get("small")) for w in mine)
    shares = [float(w["drift_share"]) for w in mine]
    summary.drift_share_mean = round(float(np.mean(shares)), 6)
    summary.drift_share_max = round(max(shares), 6)
    for partition in {str(w["partition"]) for w in mine}:
        for group, passed in (verdicts or {}).get(partition, {}).items():
            if not passed:
                summary.failing_windows[group] = summary.failing_windows.get(group, 0) + 1
    summary.prediction_shares = _shares(_decoded(w.get("prediction_counts")) for w in mine)
    summary.f1_macro, summary.accuracy, summary.quality_basis = _quality(mine)
    return summary


def _decoded(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _shares(counts: Iterable[Mapping[str, int] | None]) -> dict[str, float]:
    """Each grade's share of the predictions of the windows that stored their counts (a
    share of all their rows: weighted by rows)."""
    total = dict.fromkeys(GRADE_LETTERS, 0)
    for window in counts:
        for grade, count in (window or {}).items():
            total[grade] = total.get(grade, 0) + int(count)
    rows = sum(total.values())
    return {g: round(n / rows, 6) for g, n in total.items()} if rows else {}


def _quality(windows: Sequence[Mapping[str, Any]]) -> tuple[float | None, float | None, str]:
    labelled = [w for w in windows if int(w["labelled_rows"]) > 0]
    if not labelled:
        return None, None, NO_LABELS
    matrices = [_decoded(w.get("confusion")) for w in labelled]
    if all(m is not None for m in matrices):
        f1, accuracy = quality_from_confusion(np.sum([np.asarray(m) for m in matrices], axis=0))
        return f1, accuracy, OVER_LABELLED_ROWS
    weights = np.array([int(w["labelled_rows"]) for w in labelled], dtype=float)

    def mean(column: str) -> float | None:
        values = [(w[column], n) for w, n in zip(labelled, weights, strict=True)]
        known = [(float(v), n) for v, n in values if v is not None]
        if not known:
            return None
        return round(float(np.average([v for v, _ in known], weights=[n for _, n in known])), 6)

    return mean("f1_macro"), mean("accuracy"), WEIGHTED_WINDOW_MEAN


def quality_from_confusion(confusion: np.ndarray) -> tuple[float | None, float | None]:
    """f1-macro and accuracy of a confusion matrix (rows: true grade, columns: predicted),
    as ``models.batch_quality`` gives them: the macro average is over the grades present
    (in the labels or the predictions), a grade's F1 is 0 when it was never right."""
    matrix = np.asarray(confusion, dtype=float)
    total = matrix.sum()
    if total == 0:
        return None, None
    right = np.diag(matrix)
    truth, predicted = matrix.sum(axis=1), matrix.sum(axis=0)
    present = (truth + predicted) > 0
    f1 = np.divide(2 * right, truth + predicted, out=np.zeros_like(right), where=present)
    return round(float(f1[present].mean()), 6), round(float(right.sum() / total), 6)
