import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal
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
    with pytest.raises(data.DataValidationError, match="empty file"):
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


# Files as spreadsheets save them (issue 19, C.11): training reads them as `predict` does.
def _saved(frame: pd.DataFrame, encoding: str = "utf-8-sig", sep: str = ",") -> bytes:
    """``frame`` as Excel saves it: "CSV UTF-8" is a byte-order mark and CRLF line ends."""
    return frame.to_csv(index=False, sep=sep, lineterminator="\r\n").encode(encoding)


def test_a_csv_utf8_file_reads_like_the_plain_one(raw: pd.DataFrame) -> None:
    plain = data.bundled_dataset_path().read_bytes()
    saved = b"\xef\xbb\xbf" + plain.replace(b"\n", b"\r\n")
    assert_frame_equal(data.parse_raw_csv(saved), raw)
    columns = ["Absences", *(c for c in raw.columns if c != "Absences")]
    reordered = data.parse_raw_csv(_saved(raw[columns]))
    assert_frame_equal(reordered[raw.columns], raw)


def test_numbers_are_read_as_float_reads_them(raw: pd.DataFrame) -> None:
    """One parser: training's values are the ones prediction and the Lambda read."""
    text = pd.read_csv(data.bundled_dataset_path(), dtype=str)
    for column in ("StudyTimeWeekly", "GPA"):
        assert raw[column].tolist() == [float(t) for t in text[column]]


@pytest.mark.parametrize(
    ("encoding", "reason"),
    [
        (
            "cp1252",
            r"not UTF-8: byte 0xE9 on line 4 \('é' in Windows-1252\); save it as \"CSV UTF-8",
        ),
        ("utf-16", r"UTF-16, not UTF-8 \(it starts with a UTF-16 byte-order mark\)"),
        ("utf-16-le", r"NUL byte on line 1, as in UTF-16 without a byte-order mark"),
    ],
)
def test_another_encoding_is_named(raw: pd.DataFrame, encoding: str, reason: str) -> None:
    frame = raw.head(5).assign(Name=["Ann", "Bo", "José", "Li", "Al"])
    with pytest.raises(data.DataValidationError, match=f"^in.csv: {reason}"):
        data.parse_raw_csv(_saved(frame, encoding), "in.csv")


@pytest.mark.parametrize(("sep", "called"), [(";", "semicolons"), ("\t", "tabs")])
def test_another_delimiter_is_named(raw: pd.DataFrame, sep: str, called: str) -> None:
    with pytest.raises(data.DataValidationError, match=f"separated by {called}, not commas"):
        data.parse_raw_csv(_saved(raw.head(5), sep=sep))


def test_header_names_match_exactly(raw: pd.DataFrame) -> None:
    spaced = _saved(raw.head(5)).replace(b",Absences,", b", Absences\t,")
    assert_frame_equal(data.parse_raw_csv(spaced), raw.head(5))  # spaces around are ignored
    lower = _saved(raw.head(5).rename(columns={"Absences": "absences"}))
    with pytest.raises(data.DataValidationError, match="case-sensitive: the header has absences"):
        data.parse_raw_csv(lower)
    twice = raw.head(5).copy()
    twice.insert(0, "Extra", twice["Absences"] + 1)
    doubled = _saved(twice).replace(b"Extra", b"Absences", 1)
    with pytest.raises(data.DataValidationError, match="named more than once: Absences"):
        data.parse_raw_csv(doubled)


def test_rows_whose_fields_do_not_line_up_are_named(raw: pd.DataFrame) -> None:
    lines = _saved(raw.head(6)).split(b"\r\n")
    lines[3] += b",extra"
    lines[5] = lines[5][: lines[5].rindex(b",")]
    with pytest.raises(data.DataValidationError) as error:
        data.parse_raw_csv(b"\r\n".join(lines))
    assert "row 3: 16 fields, the header has 15; row 5: 14 fields, the header has 15" in str(
        error.value
    )


def test_blank_lines_and_empty_rows_carry_no_record(raw: pd.DataFrame) -> None:
    lines = _saved(raw.head(3)).split(b"\r\n")
    empty_row = b"," * (len(raw.columns) - 1)
    padded = b"\r\n".join([lines[0], b"", lines[1], empty_row, lines[2], lines[3], b"", b""])
    assert_frame_equal(data.parse_raw_csv(padded), raw.head(3))


@pytest.mark.parametrize("text", ["1_0", "\u0661", "nan", "0x1"])
def test_training_refuses_what_no_csv_writer_writes(raw: pd.DataFrame, text: str) -> None:
    bad = raw.head(5).astype(object)
    bad.loc[1, "Absences"] = text
    with pytest.raises(data.DataValidationError, match="column Absences: not a number in row 2"):
        data.parse_raw_csv(_saved(bad))


def test_a_broken_quote_names_its_line(raw: pd.DataFrame) -> None:
    broken = _saved(raw.head(5)).replace(b"\r\n1003,", b'\r\n"1003,')
    with pytest.raises(
        data.DataValidationError,
        match=r"^the CSV: line 4: a quoted field starts here and never ends$",
    ):
        data.parse_raw_csv(broken)
