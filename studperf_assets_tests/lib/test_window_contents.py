"""What monitoring keeps of a window: exact counts and quality over every row, a bounded
seeded sample, and stored bytes that do not grow with the window's rows."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from lambda_service.schema import FEATURE_NAMES, GRADE_LETTERS
from studperf_assets.lib import data
from studperf_assets.lib.models import batch_quality
from studperf_assets.lib.simulation import StudentGenerator
from studperf_assets.lib.window_contents import WindowContents


@pytest.fixture(scope="module")
def generator() -> StudentGenerator:
    raw = data.parse_raw_csv(data.bundled_dataset_path().read_bytes())
    return StudentGenerator(raw, seed=7)


def window(generator: StudentGenerator, rows: int, labelled_share: float = 0.5) -> pd.DataFrame:
    frame = generator.sample(rows)
    rng = np.random.default_rng(rows)
    prediction = np.asarray(data.grade_from_gpa(frame["GPA"])).copy()
    wrong = rng.random(rows) < 0.2
    prediction[wrong] = (prediction[wrong] + 1) % len(GRADE_LETTERS)
    target = frame["GradeClass"].astype(float).where(rng.random(rows) < labelled_share)
    versions = np.where(rng.random(rows) < 0.9, "20261201T100000Z-aaaa", "20261130T100000Z-bbbb")
    return frame.assign(prediction=prediction, target=target, model_version=versions)


def stored_bytes(contents: WindowContents) -> int:
    total = 0
    for frame in contents.to_frames().values():
        buffer = io.BytesIO()
        frame.to_parquet(buffer)
        total += len(buffer.getvalue())
    return total


def test_counts_and_quality_are_over_every_row_and_the_sample_is_bounded(
    generator: StudentGenerator,
) -> None:
    rows = window(generator, 20_000)
    contents = WindowContents.of(rows, sample_rows=1_000, seed=11)
    labelled = rows[rows["target"].notna()]
    assert contents.rows == 20_000 and contents.labelled_rows == len(labelled)
    assert len(contents.sample) == 1_000
    assert set(contents.sample.columns) >= {*FEATURE_NAMES, "prediction", "target"}
    expected = rows["prediction"].value_counts()
    assert contents.prediction_counts == {
        letter: int(expected.get(code, 0)) for code, letter in enumerate(GRADE_LETTERS)
    }
    assert contents.model_version == "20261201T100000Z-aaaa"
    assert contents.model_versions == ["20261130T100000Z-bbbb", "20261201T100000Z-aaaa"]
    # the confusion matrix gives back every labelled pair's metrics exactly
    true, predicted = contents.labelled_pairs()
    rebuilt = batch_quality(true, predicted)
    direct = batch_quality(
        labelled["target"].astype(np.int64).to_numpy(), labelled["prediction"].to_numpy()
    )
    assert rebuilt["f1_macro"] == direct["f1_macro"] and rebuilt["accuracy"] == direct["accuracy"]
    assert rebuilt["per_class"] == direct["per_class"]


def test_the_same_window_gives_the_same_sample_and_another_seed_another(
    generator: StudentGenerator,
) -> None:
    rows = window(generator, 5_000)
    one = WindowContents.of(rows, sample_rows=500, seed=3).sample
    again = WindowContents.of(rows, sample_rows=500, seed=3).sample
    other = WindowContents.of(rows, sample_rows=500, seed=4).sample
    pd.testing.assert_frame_equal(one, again)
    assert not one.equals(other)
    small = WindowContents.of(rows.head(40), sample_rows=500, seed=3)
    assert len(small.sample) == 40  # a window under the bound is kept whole


def test_stored_bytes_do_not_grow_with_the_window(generator: StudentGenerator) -> None:
    """Field fault (issue 21): a window's value was every row, ~55 bytes a prediction."""
    bounded = [
        stored_bytes(WindowContents.of(window(generator, n), sample_rows=2_000, seed=1))
        for n in (2_000, 60_000)
    ]
    everything = stored_bytes(WindowContents.of(window(generator, 60_000), 60_000, seed=1))
    assert bounded[1] < 1.2 * bounded[0]  # 30x the rows, the same bytes
    assert everything > 10 * bounded[1]


def test_the_value_survives_the_io_managers_parquet(generator: StudentGenerator) -> None:
    contents = WindowContents.of(window(generator, 3_000), sample_rows=800, seed=2)
    frames = {
        name: pd.read_parquet(io.BytesIO(_parquet(frame)))
        for name, frame in contents.to_frames().items()
    }
    back = WindowContents.from_frames(frames)
    assert back.confusion == contents.confusion and back.rows == 3_000
    assert back.prediction_counts == contents.prediction_counts
    pd.testing.assert_frame_equal(back.sample, contents.sample)


def test_out_of_range_inputs_are_counted_over_every_row(generator: StudentGenerator) -> None:
    rows = window(generator, 10_000)
    rows.loc[rows.index[-3:], "Absences"] = 99  # beyond the schema's 0-30
    rows.loc[rows.index[-1], "Tutoring"] = np.nan
    contents = WindowContents.of(rows, sample_rows=100, seed=0)  # the sample misses them
    assert contents.bad_values == {"Absences": 3, "Tutoring": 1}


def test_an_empty_window_is_refused() -> None:
    with pytest.raises(ValueError, match="without rows"):
        WindowContents.of(pd.DataFrame(columns=[*FEATURE_NAMES, "prediction"]), 10, seed=0)


def _parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    return buffer.getvalue()
