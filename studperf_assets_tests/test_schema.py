import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lambda_service.schema import FEATURE_NAMES, FEATURES, InvalidRecord, parse_record

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
    assert parse_record(record)[1] == 12.5


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("Absences", None, "missing value"),
        ("Absences", "", "missing value"),
        ("Absences", "many", "not a number"),
        ("Absences", True, "not a number"),
        ("Absences", [1], "not a number"),
        ("StudyTimeWeekly", math.nan, "not a finite number"),
        ("StudyTimeWeekly", "inf", "not a finite number"),
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
