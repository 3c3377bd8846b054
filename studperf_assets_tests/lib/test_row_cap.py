"""The bound on the rows a training run fits (``lib.row_cap``), alone and in the asset."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from dagster import DagsterInstance, materialize
from hypothesis import given
from hypothesis import strategies as st

from lambda_service.schema import GRADE_LETTERS
from studperf_assets.assets import ingestion
from studperf_assets.deployment import Deployment
from studperf_assets.lib import data
from studperf_assets.lib.labels import AVAILABLE_AT, LABEL_COLUMNS, REQUEST_ID, label_key
from studperf_assets.lib.row_cap import cap_training_rows, stratified_sample
from studperf_assets.lib.simulation import StudentGenerator
from studperf_assets.resources import resources_for


def _rows(counts: list[int], first_id: int = 1) -> pd.DataFrame:
    """Rows with GradeClass k repeated counts[k] times, shuffled; ids count up in order."""
    grades = np.random.default_rng(len(counts) + sum(counts)).permutation(
        np.repeat(np.arange(len(counts)), counts)
    )
    ids = np.arange(first_id, first_id + len(grades))
    return pd.DataFrame({data.ID: ids, data.TARGET: grades.astype(np.int64)})


def _per_grade(frame: pd.DataFrame) -> np.ndarray:
    return np.bincount(frame[data.TARGET].to_numpy(dtype=np.int64), minlength=5)


def _by_letter(counts: np.ndarray) -> dict[str, int]:
    return dict(zip(GRADE_LETTERS, counts.tolist(), strict=True))


@pytest.fixture(scope="module")
def bundled() -> pd.DataFrame:
    return data.parse_raw_csv(data.bundled_dataset_path().read_bytes())


def test_a_frame_over_the_cap_is_cut_to_it_stratified_and_seeded(bundled: pd.DataFrame) -> None:
    capped = cap_training_rows(bundled, bundled.iloc[:0], limit=1000, production_share=0.5, seed=7)
    assert len(capped.file) == 1000
    expected = _per_grade(bundled) * 1000 / len(bundled)
    assert np.abs(_per_grade(capped.file) - expected).max() < 1  # each grade keeps its share
    assert capped.file[data.ID].is_monotonic_increasing  # file order kept
    assert set(capped.file[data.ID]) <= set(bundled[data.ID])
    again = cap_training_rows(bundled, bundled.iloc[:0], limit=1000, production_share=0.5, seed=7)
    other = cap_training_rows(bundled, bundled.iloc[:0], limit=1000, production_share=0.5, seed=8)
    assert again.file[data.ID].tolist() == capped.file[data.ID].tolist()  # same seed, same rows
    assert other.file[data.ID].tolist() != capped.file[data.ID].tolist()
    dropped = _by_letter(_per_grade(bundled) - _per_grade(capped.file))
    assert capped.dropped == {"file": dropped, "production": dict.fromkeys(GRADE_LETTERS, 0)}
    assert capped.metadata() == {
        "max_training_rows": 1000,
        "rows_offered": {"file": 2392, "production": 0},
        "rows_kept": {"file": 1000, "production": 0},
        "rows_dropped": capped.dropped,
        "rows_dropped_total": 1392,
    }
    assert capped.summary().startswith("capped at 1000 rows; file: kept 1000 of 2392, dropped ")


def test_under_the_cap_nothing_changes(bundled: pd.DataFrame) -> None:
    production = _rows([3, 4, 5, 6, 7], first_id=10_000)
    capped = cap_training_rows(bundled, production, limit=2392 + 25, production_share=0.1, seed=0)
    assert capped.file is bundled and capped.production is production
    assert capped.dropped_total == 0
    assert capped.summary() == "2417 rows, within the cap of 2417"


def test_the_most_recent_production_labels_are_kept_within_their_share() -> None:
    file_rows = _rows([100, 200, 300, 400, 1000])
    production = _rows([50, 50, 50, 50, 800], first_id=10_000)  # oldest first
    capped = cap_training_rows(file_rows, production, limit=1000, production_share=0.3, seed=0)
    assert capped.production[data.ID].tolist() == production[data.ID].tolist()[-300:]
    assert len(capped.file) == 700
    # a file that cannot fill the rest leaves the production labels more room
    small_file = file_rows.iloc[:400]
    capped = cap_training_rows(small_file, production, limit=1000, production_share=0.3, seed=0)
    assert capped.file is small_file
    assert capped.production[data.ID].tolist() == production[data.ID].tolist()[-600:]


def test_a_grade_with_one_row_does_not_stop_the_sample() -> None:
    rows = _rows([1, 2, 50, 50, 97])
    sample = stratified_sample(rows, 50, seed=3)
    # quotas 0.25, 0.5, 12.5, 12.5, 24.25: the two rows rounding leaves go to grades 1 and 2
    assert _per_grade(sample).tolist() == [0, 1, 13, 12, 24]


@given(
    file_counts=st.lists(st.integers(0, 300), min_size=5, max_size=5),
    production_counts=st.lists(st.integers(0, 300), min_size=5, max_size=5),
    limit=st.integers(1, 1500),
    share=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_every_row_is_accounted_for(
    file_counts: list[int], production_counts: list[int], limit: int, share: float, seed: int
) -> None:
    file_rows = _rows(file_counts)
    production = _rows(production_counts, first_id=10_000)
    capped = cap_training_rows(file_rows, production, limit, share, seed)
    offered = len(file_rows) + len(production)
    assert len(capped.file) + len(capped.production) == min(limit, offered)
    newest = production[data.ID].tolist()
    assert capped.production[data.ID].tolist() == newest[len(newest) - len(capped.production) :]
    if offered > limit:  # the share holds unless the file cannot fill the rest
        assert len(capped.production) <= max(int(limit * share), limit - len(file_rows))
        assert len(capped.file) == min(len(file_rows), limit - len(capped.production))
    for source, before, after in (
        ("file", file_rows, capped.file),
        ("production", production, capped.production),
    ):
        dropped = np.array([capped.dropped[source][g] for g in GRADE_LETTERS])
        assert (_per_grade(after) + dropped == _per_grade(before)).all()
        assert (dropped >= 0).all()
    if len(file_rows):
        expected = _per_grade(file_rows) * len(capped.file) / len(file_rows)
        assert np.abs(_per_grade(capped.file) - expected).max() < 1


def _ingest_labels(resources: dict[str, Any], rows: pd.DataFrame, times: list[datetime]) -> None:
    """Labels of ``rows`` arriving at ``times`` (one per row), as a monitoring run ingests
    them; three files, interleaved in time, so arrival order is not insertion order."""
    labels = rows.copy()
    labels[REQUEST_ID] = [f"r-{i}" for i in rows[data.ID]]
    labels[AVAILABLE_AT] = times
    database = resources["ground_truth"].database
    for part in range(3):
        chunk = labels.iloc[part::3]
        database.ingest_labels(label_key(min(chunk[AVAILABLE_AT])), chunk[list(LABEL_COLUMNS)])


@pytest.mark.integration
def test_the_asset_caps_retraining_rows_and_says_what_it_dropped(
    bundled: pd.DataFrame, tmp_path: Path
) -> None:
    settings = {"max_training_rows": 3000, "max_production_share": 0.25}
    resources = resources_for(Deployment(home=tmp_path, training=settings))
    train = data.reference_split(data.select_features(bundled))["train"]
    students = StudentGenerator(bundled.loc[train.index], seed=1).sample(2000)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    minutes = np.random.default_rng(0).permutation(2000)  # arrival unrelated to row order
    _ingest_labels(resources, students, [start + timedelta(minutes=int(m)) for m in minutes])
    instance = DagsterInstance.ephemeral()
    result = materialize(
        [ingestion.raw_student_data],
        resources=resources,
        instance=instance,
        run_config={"ops": {"raw_student_data": {"config": {"include_production_labels": True}}}},
    )
    assert result.success
    frame = result.output_for_node("raw_student_data")
    assert len(frame) == 3000
    # 750 (a quarter) go to the newest labels; the file's rows fill the other 2,250
    newest = set(students[data.ID].to_numpy()[np.argsort(minutes)[-750:]])
    assert set(frame[data.ID][frame[data.ID] >= 1_000_000]) == newest
    assert (frame[data.ID] < 1_000_000).sum() == 2250
    (materialization,) = result.asset_materializations_for_node("raw_student_data")
    metadata: dict[str, Any] = {k: v.value for k, v in materialization.metadata.items()}
    assert metadata["rows"] == 3000 and metadata["rows_dropped_total"] == 4392 - 3000
    assert metadata["rows_offered"] == {"file": 2392, "production": 2000}
    assert metadata["rows_kept"] == {"file": 2250, "production": 750}
    kept_file = frame[frame[data.ID] < 1_000_000]
    assert metadata["rows_dropped"]["file"] == _by_letter(
        _per_grade(bundled) - _per_grade(kept_file)
    )
    assert sum(metadata["rows_dropped"]["production"].values()) == 1250
    logged = [e.user_message for e in instance.all_logs(result.run_id)]
    assert any(m.startswith("capped at 3000 rows; file: kept 2250 of 2392") for m in logged)


@pytest.mark.integration
def test_the_bundled_data_is_under_the_default_cap_and_unchanged(
    bundled: pd.DataFrame, tmp_path: Path
) -> None:
    result = materialize(
        [ingestion.raw_student_data], resources=resources_for(Deployment(home=tmp_path))
    )
    pd.testing.assert_frame_equal(result.output_for_node("raw_student_data"), bundled)
    (materialization,) = result.asset_materializations_for_node("raw_student_data")
    assert materialization.metadata["rows_dropped_total"].value == 0
