import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import train_test_split

from lambda_service.schema import FEATURE_NAMES
from studperf_assets.lib import data


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    return data.parse_raw_csv(data.bundled_dataset_path().read_bytes())


def _csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def test_bundled_dataset_is_the_attributed_file(raw: pd.DataFrame) -> None:
    payload = data.bundled_dataset_path().read_bytes()
    assert data.sha256_bytes(payload) == (
        "211b5cc8fb656bcaf96f6badefd2bd0f2700f8c329f7666a8c93cacd68ce8ce9"
    )
    assert len(raw) == 2392
    assert "El Kharoua" in (data.bundled_dataset_path().parent / "README.md").read_text()


def test_missing_column_is_named(raw: pd.DataFrame) -> None:
    with pytest.raises(data.DataValidationError, match=r"missing column.*Absences"):
        data.parse_raw_csv(_csv(raw.drop(columns=["Absences"])))


def test_wrong_type_and_out_of_range_name_column_and_row(raw: pd.DataFrame) -> None:
    bad = raw.astype(object)
    bad.loc[4, "StudyTimeWeekly"] = "lots"
    bad.loc[9, "Absences"] = 45
    bad.loc[11, "Tutoring"] = 0.5
    with pytest.raises(data.DataValidationError) as error:
        data.parse_raw_csv(_csv(bad))
    message = str(error.value)
    assert "column StudyTimeWeekly: not a number in row 5" in message
    assert "column Absences: outside [0, 29] in row 10" in message
    assert "column Tutoring: not an integer in row 12" in message


def test_missing_value_and_empty_file(raw: pd.DataFrame) -> None:
    bad = raw.astype(object)
    bad.loc[0, "GPA"] = None
    with pytest.raises(data.DataValidationError, match="column GPA: missing value in row 1"):
        data.parse_raw_csv(_csv(bad))
    with pytest.raises(data.DataValidationError, match="no rows"):
        data.parse_raw_csv(_csv(raw.head(0)))
    with pytest.raises(data.DataValidationError, match="cannot parse"):
        data.parse_raw_csv(b"")


def test_feature_selection_drops_identifiers_and_demographics(raw: pd.DataFrame) -> None:
    features = data.select_features(raw)
    assert list(features.columns) == [*FEATURE_NAMES, "GPA", "GradeClass"]
    for column in ("StudentID", "Age", "Gender", "Ethnicity"):
        assert column not in features.columns


def test_split_is_exactly_the_reference_split(raw: pd.DataFrame) -> None:
    features = data.select_features(raw)
    splits = data.reference_split(features)
    y = features["GradeClass"]
    _, rest, _, y_rest = train_test_split(features, y, test_size=0.3, random_state=42, stratify=y)
    val, test = train_test_split(rest, test_size=0.5, random_state=42, stratify=y_rest)
    assert splits["val"].index.equals(val.index)
    assert splits["test"].index.equals(test.index)
    assert [len(splits[s]) for s in data.SPLITS] == [1674, 359, 359]
    all_rows = pd.concat(splits.values()).index
    assert all_rows.is_unique and len(all_rows) == len(features)


@pytest.mark.parametrize(
    ("gpa", "grade"),
    [(4.0, 0), (3.5, 0), (3.4999, 1), (3.0, 1), (2.99, 2), (2.5, 2), (2.0, 3), (1.99, 4), (0.0, 4)],
)
def test_grade_from_gpa_cutoffs(gpa: float, grade: int) -> None:
    assert data.grade_from_gpa(np.array([gpa]))[0] == grade


def test_label_disagreements_in_the_bundled_data(raw: pd.DataFrame) -> None:
    assert int((~data.label_consistent(raw)).sum()) == 168


def test_duplicates_and_class_shares(raw: pd.DataFrame) -> None:
    assert data.duplicate_ids(raw) == []
    doubled = pd.concat([raw, raw.head(2)])
    assert data.duplicate_ids(doubled) == sorted(raw["StudentID"].head(2).tolist())
    shares = data.class_shares(raw[raw["GradeClass"] != 0])
    assert shares[0] == 0.0 and abs(sum(shares.values()) - 1) < 1e-9


def test_schema_problems_on_a_loaded_frame(raw: pd.DataFrame) -> None:
    assert data.schema_problems(raw) == []
    bad = raw.copy()
    bad.loc[3, "Age"] = 40
    bad.loc[5, "Music"] = np.nan
    problems = data.schema_problems(bad.drop(columns=["Sports"]))
    assert "missing column Sports" in problems
    assert "column Age: outside [15, 18] in row 4" in problems
    assert "column Music: missing value in row 6" in problems
