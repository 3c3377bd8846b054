"""The daily rollup's arithmetic: a day of windows summed, quality over the day's rows."""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from studperf_assets.lib.daily_rollup import (
    GROUPS,
    NO_LABELS,
    OVER_LABELLED_ROWS,
    WEIGHTED_WINDOW_MEAN,
    day_bounds,
    day_of,
    quality_from_confusion,
    summarise_day,
)
from studperf_assets.lib.models import batch_quality

DAY = date(2026, 12, 1)


def confusion(true: list[int], predicted: list[int]) -> list[list[int]]:
    matrix = np.zeros((5, 5), dtype=int)
    for t, p in zip(true, predicted, strict=True):
        matrix[t, p] += 1
    return matrix.tolist()


def window(key: str, rows: int, **fields: object) -> dict[str, object]:
    return {
        "partition": key,
        "rows": rows,
        "labelled_rows": 0,
        "drift_share": 0.0,
        "f1_macro": None,
        "accuracy": None,
        **fields,
    }


def test_a_day_covers_the_window_keys_that_start_on_it() -> None:
    assert day_bounds(DAY) == ("2026-12-01T00:00:00Z", "2026-12-02T00:00:00Z")
    assert day_of("2026-12-01T23:55:00Z") == DAY
    assert day_of("2026-12-02T00:00:00Z") == date(2026, 12, 2)
    assert day_of("batch-000001") is None


def test_a_day_without_windows_is_a_summary_of_nothing() -> None:
    summary = summarise_day(DAY, [window("2026-12-02T00:05:00Z", 10)])
    assert summary.windows == summary.rows == 0
    assert summary.drift_share_mean is None and summary.f1_macro is None
    assert summary.failing_windows == dict.fromkeys(GROUPS, 0)
    assert summary.quality_basis == NO_LABELS


def test_counts_drift_failures_and_class_shares_of_a_day() -> None:
    windows = [
        window(
            "2026-12-01T10:00:00Z",
            300,
            drift_share=0.1,
            small=False,
            prediction_counts=json.dumps({"A": 0, "B": 100, "C": 200, "D": 0, "F": 0}),
        ),
        window(
            "2026-12-01T10:05:00Z",
            100,
            drift_share=0.5,
            small=True,
            prediction_counts={"A": 0, "B": 0, "C": 0, "D": 0, "F": 100},
        ),
        window("2026-11-30T23:55:00Z", 999, drift_share=1.0),  # the day before: not counted
    ]
    verdicts = {
        "2026-12-01T10:00:00Z": {"drift": True, "performance": True},
        "2026-12-01T10:05:00Z": {"drift": False, "labels": False},
        "2026-11-30T23:55:00Z": {"drift": False},
    }
    summary = summarise_day(DAY, windows, verdicts)
    assert (summary.windows, summary.rows, summary.small_windows) == (2, 400, 1)
    assert summary.drift_share_mean == pytest.approx(0.3)
    assert summary.drift_share_max == pytest.approx(0.5)
    assert summary.failing_windows["drift"] == 1 and summary.failing_windows["labels"] == 1
    assert summary.failing_windows["performance"] == 0
    # weighted by rows: 100 B, 200 C, 100 F of 400, not the mean of the windows' shares
    assert summary.prediction_shares == {"A": 0.0, "B": 0.25, "C": 0.5, "D": 0.0, "F": 0.25}
    row = summary.to_row()
    assert json.loads(row["failing_windows"])["drift"] == 1 and row["day"] == DAY


def test_quality_is_over_the_days_labelled_rows_not_a_mean_of_windows() -> None:
    """Two windows: 90 rows all right, 10 rows all wrong. The day's accuracy is 0.9, not
    the mean 0.5 of the windows' own accuracies."""
    right = confusion([2] * 90, [2] * 90)
    wrong = confusion([3] * 10, [1] * 10)
    windows = [
        window("2026-12-01T01:00:00Z", 90, labelled_rows=90, accuracy=1.0, confusion=right),
        window(
            "2026-12-01T02:00:00Z", 10, labelled_rows=10, accuracy=0.0, confusion=json.dumps(wrong)
        ),
        window("2026-12-01T03:00:00Z", 50),  # no labels yet, no matrix: it does not matter
    ]
    summary = summarise_day(DAY, windows)
    assert summary.quality_basis == OVER_LABELLED_ROWS
    assert summary.accuracy == pytest.approx(0.9)
    assert summary.labelled_rows == 100
    expected = batch_quality(np.array([2] * 90 + [3] * 10), np.array([2] * 90 + [1] * 10))
    assert summary.f1_macro == pytest.approx(expected["f1_macro"])


def test_windows_without_a_confusion_matrix_give_a_weighted_mean_said_so() -> None:
    windows = [
        window("2026-12-01T01:00:00Z", 90, labelled_rows=90, f1_macro=0.8, accuracy=1.0),
        window("2026-12-01T02:00:00Z", 10, labelled_rows=10, f1_macro=0.2, accuracy=0.0),
    ]
    summary = summarise_day(DAY, windows)
    assert summary.quality_basis == WEIGHTED_WINDOW_MEAN
    assert summary.f1_macro == pytest.approx(0.74)
    assert summary.accuracy == pytest.approx(0.9)


@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=1, max_size=200))
def test_f1_macro_from_a_confusion_matrix_is_what_one_window_reports(
    pairs: list[tuple[int, int]],
) -> None:
    true = np.array([t for t, _ in pairs])
    predicted = np.array([p for _, p in pairs])
    expected = batch_quality(true, predicted)
    f1, accuracy = quality_from_confusion(np.array(expected["confusion_matrix"]))
    assert f1 == pytest.approx(expected["f1_macro"], abs=1e-6)
    assert accuracy == pytest.approx(expected["accuracy"], abs=1e-6)
