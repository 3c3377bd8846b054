"""Window closing, the seeded sampler and PSI: pure, fast."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from studperf_assets.lib.windows import (
    WindowRules,
    close_windows,
    newest_first_priorities,
    psi,
    seeded_sample,
    window_key,
    window_seed,
    window_start,
)

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
RULES = WindowRules(
    window_seconds=60, min_window_rows=200, max_window_wait_seconds=300, settle_seconds=5
)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_keys_are_sortable_utc_starts() -> None:
    key = window_key(at(65))
    assert key == "2026-12-01T10:01:05Z"
    assert window_start(key) == at(65)
    assert sorted([window_key(at(600)), window_key(at(60))]) == [
        window_key(at(60)),
        window_key(at(600)),
    ]
    with pytest.raises(ValueError):
        window_key(datetime(2026, 1, 1))  # no time zone
    with pytest.raises(ValueError):
        window_start("batch-000001")


def test_a_window_closes_when_its_length_has_passed_and_it_holds_the_minimum() -> None:
    objects = {at(10): 150, at(40): 100, at(70): 300}
    # length passed, but not settled yet
    assert close_windows(None, at(62), objects, RULES) == ([], at(0))
    closed, open_start = close_windows(None, at(66), objects, RULES)
    assert [(w.key, w.end, w.rows, w.objects, w.small) for w in closed] == [
        (window_key(at(0)), at(60), 250, 2, False)
    ]
    assert open_start == at(60)  # the next window starts where this one ended
    # the object at 70 s is only in the next window: every object in exactly one window
    later, _ = close_windows(open_start, at(130), {at(70): 300}, RULES)
    assert [(w.start, w.end, w.rows) for w in later] == [(at(60), at(120), 300)]


def test_a_window_short_of_rows_grows_by_whole_lengths() -> None:
    objects = {at(10): 120, at(70): 50, at(150): 40}
    assert close_windows(None, at(170), objects, RULES)[0] == []  # 170 rows by 120 s
    (window,), open_start = close_windows(None, at(190), objects, RULES)
    assert (window.start, window.end, window.rows, window.small) == (at(0), at(180), 210, False)
    assert open_start == at(180)


def test_after_the_maximum_wait_a_small_window_is_reported_and_marked() -> None:
    objects = {at(10): 20, at(250): 30}
    assert close_windows(None, at(304), objects, RULES)[0] == []
    (window,), open_start = close_windows(None, at(305), objects, RULES)
    assert (window.end, window.rows, window.small) == (at(300), 50, True)
    assert open_start == at(300)


def test_spans_without_rows_create_no_window() -> None:
    objects = {at(10): 300, at(3600 + 30): 300}  # an hour of silence between
    closed, open_start = close_windows(None, at(3600 + 70), objects, RULES)
    assert [window_key(w.start) for w in closed] == [window_key(at(0)), window_key(at(3600))]
    assert open_start == at(3660)
    # nothing new: the open window stays where it is, no partition for an empty span
    assert close_windows(open_start, at(9000), {}, RULES) == ([], at(3660))
    assert close_windows(None, at(9000), {}, RULES) == ([], None)


def test_a_backlog_closes_at_most_one_window_per_length() -> None:
    objects = {at(s): 100 for s in range(0, 3600, 15)}  # 400 rows a minute for an hour
    closed, open_start = close_windows(None, at(3600 + 5), objects, RULES)
    assert len(closed) == 60 and open_start == at(3600)
    assert all(w.rows == 400 and w.end - w.start == timedelta(seconds=60) for w in closed)
    assert sum(w.objects for w in closed) == len(objects)
    limited, resume = close_windows(None, at(3600 + 5), objects, RULES, limit=7)
    assert len(limited) == 7 and resume == at(7 * 60)


def test_objects_before_the_open_window_are_ignored() -> None:
    (window,), _ = close_windows(at(60), at(200), {at(10): 999, at(61): 250}, RULES)
    assert (window.start, window.rows) == (at(60), 250)


def test_the_newest_window_has_the_highest_priority() -> None:
    assert newest_first_priorities(3) == [-2, -1, 0]
    assert newest_first_priorities(1) == [0]
    assert newest_first_priorities(0) == []


def test_rules_refuse_nonsense() -> None:
    with pytest.raises(ValueError):
        WindowRules(window_seconds=60, max_window_wait_seconds=30)
    with pytest.raises(ValueError):
        WindowRules(min_window_rows=0)


def test_the_sample_is_bounded_seeded_and_in_order() -> None:
    frame = pd.DataFrame({"x": np.arange(60_000)})
    one = seeded_sample(frame, 5_000, seed=window_seed("2026-12-01T10:00:00Z"))
    again = seeded_sample(frame, 5_000, seed=window_seed("2026-12-01T10:00:00Z"))
    other = seeded_sample(frame, 5_000, seed=window_seed("2026-12-01T10:05:00Z"))
    assert len(one) == 5_000 and one["x"].is_unique and one["x"].is_monotonic_increasing
    assert one.equals(again) and not one.equals(other)
    assert seeded_sample(frame.head(10), 5_000, seed=1) is not None
    assert len(seeded_sample(frame.head(10), 5_000, seed=1)) == 10
    # uniform: the sample's mean is the frame's, within a few standard errors
    assert abs(one["x"].mean() - 30_000) < 4 * 17_320 / np.sqrt(5_000)


def test_psi_is_near_zero_for_the_same_distribution_and_large_for_a_shift() -> None:
    rng = np.random.default_rng(3)
    reference = pd.Series(rng.normal(0, 1, 2_000))
    same_small = psi(reference, pd.Series(rng.normal(0, 1, 5_000)))
    same_large = psi(reference, pd.Series(rng.normal(0, 1, 60_000)))
    shifted = psi(reference, pd.Series(rng.normal(1, 1, 5_000)))
    assert same_small < 0.05 and same_large < 0.05  # does not grow with n
    assert shifted > 0.25


def test_psi_of_categories_counts_values_the_reference_lacks() -> None:
    reference = pd.Series([0, 1, 2, 3] * 100)
    assert psi(reference, pd.Series([0, 1, 2, 3] * 50)) == pytest.approx(0.0)
    assert psi(reference, pd.Series([0, 1] * 100), categorical=True) > 1
    assert psi(reference, pd.Series([4] * 10 + [0, 1, 2, 3] * 50), categorical=True) > 0.01
    assert np.isnan(psi(reference, pd.Series([], dtype=float)))
