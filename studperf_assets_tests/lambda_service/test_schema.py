import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lambda_service.schema import (
    FEATURE_NAMES,
    FEATURES,
    NUMBER,
    NUMBER_CHARACTERS,
    InvalidRecord,
    parse_number,
    parse_numbers,
    parse_record,
)

VALID = {
    "ParentalEducation": 2,
    "StudyTimeWeekly": 12.5,
    "Absences": 3,
    "Tutoring": 1,
    "ParentalSupport": 4,
    "Extracurricular": 0,
    "Sports": 1,
    "Music": 0,
    "Volunteering": 0,
}


def test_valid_record_in_schema_order_with_extra_keys_ignored() -> None:
    record = {**VALID, "Age": 17, "Gender": 1, "GPA": 3.9}
    assert parse_record(record) == [float(VALID[name]) for name in FEATURE_NAMES]


def test_numeric_strings_are_accepted() -> None:
    record = {k: str(v) for k, v in VALID.items()}
    assert parse_record(record) == [float(VALID[name]) for name in FEATURE_NAMES]


def test_the_schema_is_the_dataset_without_demographics_and_outcomes() -> None:
    """The input schema is the shipped dataset's columns less the demographics (dropped on
    purpose), the id and the outcomes; each feature's range is the data's own."""
    import csv

    from studperf_assets.lib.data import bundled_dataset_path

    with bundled_dataset_path().open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    dropped = {"StudentID", "Age", "Gender", "Ethnicity", "GPA", "GradeClass"}
    assert tuple(c for c in rows[0] if c not in dropped) == FEATURE_NAMES
    for feature in FEATURES:
        values = [float(row[feature.name]) for row in rows]
        assert feature.minimum <= min(values) and max(values) <= feature.maximum, feature.name
        assert max(values) > feature.maximum - (feature.maximum - feature.minimum) / 4


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("Absences", None, "missing value"),
        ("Absences", "", "missing value"),
        ("Absences", "many", "not a number"),
        ("Absences", True, "not a number"),
        ("Absences", [1], "not a number"),
        ("StudyTimeWeekly", math.nan, "not a finite number"),
        ("StudyTimeWeekly", "inf", "not a number"),
        ("Absences", 2.5, "expected an integer"),
        ("Absences", 30, "outside [0, 29]"),
        ("StudyTimeWeekly", -0.1, "outside [0, 20]"),
    ],
)
def test_bad_values_name_field_and_reason(field: str, value: object, reason: str) -> None:
    with pytest.raises(InvalidRecord) as error:
        parse_record({**VALID, field: value})
    assert error.value.field == field
    assert reason in str(error.value)


def test_missing_field_and_non_object() -> None:
    record = dict(VALID)
    del record["Music"]
    with pytest.raises(InvalidRecord, match="Music: missing field"):
        parse_record(record)
    with pytest.raises(InvalidRecord, match="expected an object"):
        parse_record([1, 2, 3])  # type: ignore[arg-type]


@given(st.dictionaries(st.sampled_from(FEATURE_NAMES), st.none() | st.floats() | st.text()))
def test_parse_record_either_returns_in_range_values_or_raises(record: dict[str, object]) -> None:
    try:
        values = parse_record(record)
    except InvalidRecord as error:
        assert error.field is None or error.field in FEATURE_NAMES
    else:
        for feature, value in zip(FEATURES, values, strict=True):
            assert feature.minimum <= value <= feature.maximum


# Strings float() takes that no CSV writer writes (issue 19, C.12): each read one way by
# prediction and another by training.
NOT_NUMBERS = [
    *("1_0", "\u0661", "\u0663\u0664", "\uff14", "\u00bd"),  # '1_0', Arabic-Indic, fullwidth, ½
    *("nan", "NaN", "inf", "-inf", "Infinity", "0x1A"),
    *("1e", "e5", "+", ".", "1.2.3", "1 0", "--4", "4\n", "\u00a04", "4\u2003"),
]
NUMBERS = {
    **{"4": 4.0, " 4 ": 4.0, "\t4": 4.0, "+4": 4.0, "4.0": 4.0, "4.": 4.0, ".5": 0.5},
    **{"-0": -0.0, "1e1": 10.0, "2.5E-1": 0.25, "12.739233746429086": 12.739233746429086},
}


@pytest.mark.parametrize("text", NOT_NUMBERS)
def test_strings_no_csv_writer_writes_are_not_numbers(text: str) -> None:
    assert parse_number(text) is None
    with pytest.raises(InvalidRecord, match=r"Absences: not a number"):
        parse_record({**VALID, "Absences": text})


@pytest.mark.parametrize(("text", "value"), NUMBERS.items())
def test_numbers_as_csv_writers_write_them(text: str, value: float) -> None:
    parsed = parse_number(text)
    assert parsed == value and math.copysign(1, parsed) == math.copysign(1, value)


# Text near the grammar (its characters and a few that float() also knows) finds the edges;
# arbitrary text finds the rest; columns of digits and of written floats take the fast paths.
NEAR_NUMBERS = st.text(alphabet=st.sampled_from([*NUMBER_CHARACTERS, "_", "\u0661", "x", "n"]))
DIGITS = st.from_regex(r"[0-9]{1,18}", fullmatch=True)
WRITTEN = st.floats(allow_nan=False, allow_infinity=False).map(repr) | st.integers().map(str)
COLUMNS = (
    st.lists(DIGITS) | st.lists(WRITTEN) | st.lists(DIGITS | WRITTEN | NEAR_NUMBERS | st.text())
)


@settings(max_examples=500)
@given(COLUMNS)
def test_the_column_parser_agrees_with_the_scalar_one(texts: list[str]) -> None:
    values, parsed = parse_numbers(texts)
    for text, value, ok in zip(texts, values.tolist(), parsed.tolist(), strict=True):
        expected = parse_number(text)
        if expected is None:
            assert not ok and math.isnan(value), text
        else:
            assert ok and value.hex() == expected.hex(), text


@settings(max_examples=500)
@given(NEAR_NUMBERS | WRITTEN | st.text())
def test_a_number_is_what_the_grammar_matches_and_float_reads(text: str) -> None:
    value = parse_number(text)
    assert (value is not None) == bool(NUMBER.fullmatch(text)), text
    if value is not None:
        assert value == float(text)


@given(st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(10**20), 10**20))
def test_what_writers_write_reads_back_exactly(number: float) -> None:
    assert parse_number(repr(number)) == float(number)  # csv and json write repr
    assert parse_number(f"{number:.6f}") == float(f"{number:.6f}")
