"""What monitoring accepts from the predictions stream: anything else is named, never raised."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lambda_service.schema import FEATURE_NAMES
from studperf_assets.lib.prediction_records import UnreadablePrediction, decode_prediction

STUDENT: dict[str, object] = {name: 1 for name in FEATURE_NAMES}
RECORD = {
    "model_name": "studperf-grade-class",
    "model_version": "v20261127T130346Z-2cb339a3",
    "student_id": 1000001,
    "request_id": "r-1",
    "grade_class": 2,
    "grade": "C",
    "probabilities": {"A": 0.1, "B": 0.2, "C": 0.5, "D": 0.1, "F": 0.1},
    "student": {name: 1 for name in FEATURE_NAMES},
    "idempotency_key": "shardId-000000000000:1",
    "predicted_at": "2026-11-27T20:00:00Z",
}


def test_a_prediction_as_the_lambda_writes_it_is_read() -> None:
    assert decode_prediction(json.dumps(RECORD).encode()) == RECORD


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"grade_class": 5}, "grade_class 5 is not a grade"),
        ({"grade_class": True}, "'grade_class' is a JSON bool"),
        ({"grade_class": 2.0}, "'grade_class' is a JSON float"),
        ({"student": [1, 2]}, "'student' is a JSON list"),
        ({"student": {"Age": 17}}, "student lacks ParentalEducation, StudyTimeWeekly"),
        ({"idempotency_key": None}, "no 'idempotency_key'"),
        ({"model_version": 7}, "'model_version' is a JSON int"),
        # identifiers bound for bounded database columns (field fault: one 200-character
        # request_id failed its whole batch on PostgreSQL)
        ({"request_id": "r" * 129}, "'request_id' must be an integer 0..10\\^18-1 or 1-128"),
        ({"request_id": "r" * 200}, "'request_id' must be"),
        ({"request_id": "no spaces here"}, "'request_id' must be"),
        ({"request_id": None, "idempotency_key": "k" * 300}, "'idempotency_key' must be"),
        ({"model_version": "v" * 150}, "'model_version' is not a bundle version"),
        ({"model_version": "../../etc/passwd"}, "'model_version' is not a bundle version"),
        # every field as the Lambda's schema reads it (field fault: StudyTimeWeekly "abc"
        # stopped monitoring of its whole batch with ArrowInvalid)
        ({"student": {**STUDENT, "StudyTimeWeekly": "abc"}}, "StudyTimeWeekly: not a"),
        ({"student": {**STUDENT, "Absences": True}}, "Absences: not a number"),
        ({"student": {**STUDENT, "Absences": 400}}, "Absences: 400 outside"),
        ({"student": {**STUDENT, "Tutoring": [1]}}, "Tutoring: not a number"),
        ({"student_id": "stu dent"}, "'student_id' must be"),
        ({"student_id": -3}, "'student_id' must be"),
        ({"grade": "E"}, "'grade' 'E' is not the letter of grade_class 2"),
        ({"probabilities": {"A": 0.5, "B": 0.1}}, "probabilities sum to 0.6"),
        ({"probabilities": {"A": "x", "B": 1}}, "probability 'A' is not a number"),
        ({"probabilities": {"A": 1.5, "B": -0.5}}, "probability 'A' is 1.5"),
        ({"probabilities": {"Z": 1.0}}, "probability 'Z' is not a grade"),
        ({"probabilities": {}}, "no probabilities"),
        ({"predicted_at": "yesterday"}, "'predicted_at' is not an ISO 8601 time"),
        ({"idempotency_key": "k" * 300}, "'idempotency_key' must be"),
    ],
)
def test_a_record_missing_what_monitoring_needs_is_named(
    change: dict[str, object], reason: str
) -> None:
    with pytest.raises(UnreadablePrediction, match=reason):
        decode_prediction(json.dumps(RECORD | change).encode())


@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise_anything_else(data: bytes) -> None:
    try:
        decode_prediction(data)
    except UnreadablePrediction as problem:
        assert str(problem)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda children: (
            st.lists(children) | st.dictionaries(st.sampled_from([*RECORD, "x"]), children)
        ),
    )
)
def test_arbitrary_json_never_raises_anything_else(value: object) -> None:
    try:
        decode_prediction(json.dumps(value).encode())
    except UnreadablePrediction as problem:
        assert str(problem)


def test_a_read_prediction_has_one_type_per_field() -> None:
    """Numbers the Lambda could have written as text or integers come out as floats, ids
    as text: a batch of them is one Parquet column each (field fault: ArrowInvalid)."""
    body = decode_prediction(
        json.dumps(RECORD | {"student": {**STUDENT, "StudyTimeWeekly": "2.5"}}).encode()
    )
    assert body["student"]["StudyTimeWeekly"] == 2.5
    assert all(type(v) is float for v in body["student"].values())
