"""The prediction input schema: the nine behavioural features, their types and valid ranges.

Demographic columns (Age, Gender, Ethnicity) are deliberately absent: the model must not
use them. GPA is absent too: it is only known after the fact.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Feature:
    name: str
    kind: str  # "int" (integral values only) or "float"
    minimum: float
    maximum: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


FEATURES: tuple[Feature, ...] = (
    Feature("ParentalEducation", "int", 0, 4),
    Feature("StudyTimeWeekly", "float", 0.0, 20.0),
    Feature("Absences", "int", 0, 29),
    Feature("Tutoring", "int", 0, 1),
    Feature("ParentalSupport", "int", 0, 4),
    Feature("Extracurricular", "int", 0, 1),
    Feature("Sports", "int", 0, 1),
    Feature("Music", "int", 0, 1),
    Feature("Volunteering", "int", 0, 1),
)
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)

# Features the fitted MinMaxScaler rescales; the binary flags pass through unchanged.
SCALED_FEATURES: tuple[str, ...] = (
    "ParentalEducation",
    "StudyTimeWeekly",
    "Absences",
    "ParentalSupport",
)

# GradeClass 0..4 and their letters; cut-offs are lower GPA bounds of A, B, C, D.
GRADE_LETTERS: tuple[str, ...] = ("A", "B", "C", "D", "F")
GPA_CUTOFFS: tuple[float, ...] = (3.5, 3.0, 2.5, 2.0)


class InvalidRecord(ValueError):
    """A record that cannot be scored; the message names the field and the reason."""

    def __init__(self, field: str | None, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}" if field else reason)


# Identifiers a message carries. They become Kinesis partition keys (1-256 characters) and
# SQL keys, so they get explicit limits: an integer of at most 18 digits (an integral float
# such as 2566.0, as pandas-based producers send, counts as one), or a short ASCII token.
MAX_INTEGER_ID = 10**18 - 1
MAX_EXACT_INTEGER = 2**53  # a feature beyond this cannot even be a float exactly
STUDENT_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}")
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}")
ID_RULES = {
    "student_id": (STUDENT_ID_PATTERN, "an integer 0..10^18-1 or 1-64 of A-Z a-z 0-9 . _ : @ -"),
    "request_id": (REQUEST_ID_PATTERN, "an integer 0..10^18-1 or 1-128 of A-Z a-z 0-9 . _ : @ / -"),
}


def parse_id(field: str, raw: Any) -> int | str:
    """A validated identifier (``student_id`` or ``request_id``), or InvalidRecord."""
    pattern, rule = ID_RULES[field]
    if isinstance(raw, float) and math.isfinite(raw) and raw.is_integer():
        raw = int(raw)
    if isinstance(raw, int) and not isinstance(raw, bool):
        if 0 <= raw <= MAX_INTEGER_ID:
            return raw
    elif isinstance(raw, str) and pattern.fullmatch(raw):
        return raw
    raise InvalidRecord(field, f"must be {rule}; got {describe(raw)}")


def describe(raw: Any) -> str:
    """A short, always printable description of a raw value for error messages
    (``str`` of a huge integer raises in Python 3.11, and payloads may be megabytes)."""
    if isinstance(raw, int) and not isinstance(raw, bool) and raw.bit_length() > 64:
        return f"an integer of about {int(raw.bit_length() * 0.30103) + 1} digits"
    if isinstance(raw, str | int | float | bool) or raw is None:
        text = repr(raw)
        return text if len(text) <= 40 else text[:37] + "..."
    return type(raw).__name__


def parse_value(feature: Feature, raw: Any) -> float:
    """Coerce one raw value (number or numeric string) or raise InvalidRecord."""
    kind = type(raw)  # exact types first: the hot path is a JSON int or float
    if kind is float or kind is int:
        if kind is int and not -MAX_EXACT_INTEGER <= raw <= MAX_EXACT_INTEGER:
            raise InvalidRecord(feature.name, f"{describe(raw)} is far outside the valid range")
        value = float(raw)
    elif raw is None or (kind is str and raw.strip() == ""):
        raise InvalidRecord(feature.name, "missing value")
    elif isinstance(raw, str):
        try:
            value = float(raw.strip())
        except ValueError:
            raise InvalidRecord(feature.name, f"not a number: {describe(raw)}") from None
    else:  # bool, containers, anything else
        raise InvalidRecord(feature.name, f"not a number: {describe(raw)}")
    if not math.isfinite(value):
        raise InvalidRecord(feature.name, f"not a finite number: {describe(raw)}")
    if feature.kind == "int" and not value.is_integer():
        raise InvalidRecord(feature.name, f"expected an integer, got {describe(raw)}")
    if not feature.minimum <= value <= feature.maximum:
        raise InvalidRecord(
            feature.name, f"{value:g} outside [{feature.minimum:g}, {feature.maximum:g}]"
        )
    return value


def parse_record(record: Mapping[str, Any], features: Sequence[Feature] = FEATURES) -> list[float]:
    """Return the feature vector of one record in schema order; extra keys are ignored."""
    if type(record) is not dict and not isinstance(record, Mapping):  # dict: the fast check
        raise InvalidRecord(None, f"expected an object of features, got {type(record).__name__}")
    values = []
    for feature in features:
        raw = record.get(feature.name, _MISSING)
        if raw is _MISSING:
            raise InvalidRecord(feature.name, "missing field")
        values.append(parse_value(feature, raw))
    return values


_MISSING = object()


def features_from_manifest(entries: Sequence[Mapping[str, Any]]) -> tuple[Feature, ...]:
    """Rebuild the schema a bundle was trained with, so serving validates against it."""
    return tuple(
        Feature(str(e["name"]), str(e["kind"]), float(e["minimum"]), float(e["maximum"]))
        for e in entries
    )
