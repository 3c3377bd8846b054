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

import numpy as np


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


# A number as CSV writers (Excel, LibreOffice, pandas, R, the csv module) and JSON encoders
# write one: ASCII digits, an optional sign, decimal point and exponent, spaces or tabs
# around. Python's float() accepts more, and each extra was a way for one reader to take what
# another refused: '1_0' (10), non-ASCII digits ('١' is 1), 'nan', 'inf', 'Infinity'.
NUMBER = re.compile(r"[ \t]*[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[ \t]*")
# Within these characters, float() accepts exactly what NUMBER matches: parse_number and
# parse_numbers check the characters and let float() judge the rest.
NUMBER_CHARACTERS = "0123456789+-.eE \t"
_NUMBER_CODES = np.zeros(128, dtype=bool)  # code 127 (DEL) stands for every non-ASCII one
_NUMBER_CODES[[ord(c) for c in NUMBER_CHARACTERS]] = True
_NEWLINE = ord("\n")
_NUMBER_CODES[_NEWLINE] = True  # the separator parse_numbers joins a column with


def parse_number(text: str) -> float | None:
    """The value of ``text`` if it is a number as NUMBER defines it, else None (a blank
    too). Overflow gives an infinity, which callers refuse as out of range. Checked as the
    characters plus float() (a property test holds that to NUMBER): 40 % faster than the
    regular expression on the strings predict and producers send."""
    if text.strip(NUMBER_CHARACTERS):  # a character outside them is left over
        return None
    try:
        return float(text)
    except ValueError:
        return None


def parse_numbers(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """parse_number over a column of strings: (float64 values, NaN where not a number; bool
    mask of the parsed ones). Agrees exactly with parse_number (a property test holds it to
    that) at about C speed, for training's million-row files: the column's characters are
    checked in one pass, integers of up to 15 digits computed in numpy (exact: below 2**53),
    other numbers read by float() itself; a column with odd text goes one by one."""
    joined = "\n".join(texts)  # "\n" is in no number: it only separates
    if joined.isascii():
        codes = np.frombuffer(joined.encode("ascii"), dtype=np.uint8)
    else:
        wide = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        codes = np.minimum(wide, 127).astype(np.uint8)
    breaks = np.flatnonzero(codes == _NEWLINE)
    if len(texts) and len(breaks) == len(texts) - 1 and _NUMBER_CODES[codes].all():
        starts = np.concatenate(([0], breaks + 1))
        lengths = np.concatenate((breaks, [len(codes)])) - starts
        digits = codes - ord("0")  # unsigned: anything below '0' wraps around
        parsed = np.ones(len(texts), dtype=bool)
        if lengths.min() > 0 and lengths.max() <= 15 and (digits[codes != _NEWLINE] < 10).all():
            return _integers(digits, starts, lengths), parsed
        try:
            return np.fromiter(map(float, texts), dtype=np.float64, count=len(texts)), parsed
        except ValueError:  # allowed characters, yet not a number ('1.2.3', '+', ' ', '')
            pass
    return _one_by_one(texts)


def _integers(digits: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Values of the digit strings at ``starts`` (1..15 digits each), right-aligned in a
    matrix and summed by place."""
    width = int(lengths.max())
    place = np.arange(width)
    inside = place >= (width - lengths)[:, None]
    at = np.maximum((starts + lengths - width)[:, None] + place, 0)
    matrix = np.where(inside, digits[at], 0).astype(np.int64)
    return (matrix @ 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)).astype(np.float64)


def _one_by_one(column: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    values = np.full(len(column), np.nan)
    parsed = np.zeros(len(column), dtype=bool)
    for i, text in enumerate(column):
        value = parse_number(text)
        if value is not None:
            values[i], parsed[i] = value, True
    return values, parsed


def parse_value(feature: Feature, raw: Any) -> float:
    """Coerce one raw value (a JSON number, or a string NUMBER matches) or raise
    InvalidRecord."""
    kind = type(raw)  # exact types first: the hot path is a JSON int or float
    if kind is float or kind is int:
        if kind is int and not -MAX_EXACT_INTEGER <= raw <= MAX_EXACT_INTEGER:
            raise InvalidRecord(feature.name, f"{describe(raw)} is far outside the valid range")
        value = float(raw)
    elif raw is None or (kind is str and raw.strip(" \t") == ""):
        raise InvalidRecord(feature.name, "missing value")
    elif isinstance(raw, str):
        number = parse_number(raw)
        if number is None:
            raise InvalidRecord(feature.name, f"not a number: {describe(raw)}")
        value = number
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


FEATURE_KEYS = ("name", "kind", "minimum", "maximum")


def schema_differences(entries: Any, serving: Sequence[Feature] = FEATURES) -> list[str]:
    """How a bundle manifest's ``features`` differ from the serving schema: names, order,
    kinds and ranges, each naming the field ([] when they are the same). A bundle is served
    only against the serving schema: one whose manifest narrowed Absences to [0, 1] passed
    a smoke test drawn from its own schema, then sent 16 of 20 valid rows to errors."""
    if not isinstance(entries, list):
        return [f"the manifest's features are {describe(entries)}, not a list"]
    problems = []
    for number, entry in enumerate(entries, 1):
        if not isinstance(entry, dict) or set(entry) != set(FEATURE_KEYS):
            shown = describe(entry) if not isinstance(entry, dict) else f"keys {sorted(entry)}"
            keys = ", ".join(FEATURE_KEYS)
            problems.append(f"feature {number} is {shown}, not an object of {keys}")
    if problems:
        return problems
    names = [entry["name"] for entry in entries]
    expected = [feature.name for feature in serving]
    if len(names) != len(expected):
        missing = [name for name in expected if name not in names]
        extra = [describe(name) for name in names if name not in expected]
        detail = "; ".join(
            part
            for part in (
                f"missing {', '.join(missing)}" if missing else "",
                f"not served: {', '.join(extra)}" if extra else "",
            )
            if part
        )
        return [
            f"the manifest lists {len(names)} features, the serving schema "
            f"{len(expected)}" + (f" ({detail})" if detail else "")
        ]
    for number, (entry, feature) in enumerate(zip(entries, serving, strict=True), 1):
        if entry["name"] != feature.name:
            problems.append(
                f"feature {number} is {describe(entry['name'])}, the serving schema's is "
                f"{feature.name!r}"
            )
            continue
        if entry["kind"] != feature.kind:
            problems.append(
                f"{feature.name}: kind {describe(entry['kind'])}, the serving schema's is "
                f"{feature.kind!r}"
            )
        low, high = entry["minimum"], entry["maximum"]
        if not (_same_number(low, feature.minimum) and _same_number(high, feature.maximum)):
            problems.append(
                f"{feature.name}: range [{_bound(low)}, {_bound(high)}], the serving "
                f"schema's is [{feature.minimum:g}, {feature.maximum:g}]"
            )
    return problems


def _same_number(value: Any, expected: float) -> bool:
    return type(value) in (int, float) and value == expected


def _bound(value: Any) -> str:
    """A range's end as a message shows it: a number as %g, anything else as its repr."""
    if type(value) in (int, float):
        try:
            return f"{value:g}"
        except OverflowError:  # an integer beyond any float
            pass
    return describe(value)
