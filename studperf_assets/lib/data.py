"""Raw-data schema, validation, feature selection, the reference split and label rules."""

from __future__ import annotations

import gc
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lambda_service.bundle import split_s3_uri
from lambda_service.schema import FEATURE_NAMES, FEATURES, GPA_CUTOFFS, parse_numbers
from studperf_assets.lib.csv_input import CsvFileError, CsvTable, read_table

TARGET = "GradeClass"
GPA = "GPA"
ID = "StudentID"
# Dropped before training: identifiers and demographics must not drive a grade prediction.
DROPPED_COLUMNS: tuple[str, ...] = ("StudentID", "Age", "Gender", "Ethnicity")


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # "int" or "float"
    minimum: float
    maximum: float


RAW_SCHEMA: tuple[Column, ...] = (
    Column(ID, "int", 1, 10**9),
    Column("Age", "int", 15, 18),
    Column("Gender", "int", 0, 1),
    Column("Ethnicity", "int", 0, 3),
    *(Column(f.name, f.kind, f.minimum, f.maximum) for f in FEATURES),
    Column(GPA, "float", 0.0, 4.0),
    Column(TARGET, "int", 0, 4),
)
RAW_COLUMNS: tuple[str, ...] = tuple(c.name for c in RAW_SCHEMA)
MODEL_COLUMNS: tuple[str, ...] = (*FEATURE_NAMES, GPA, TARGET)

BUNDLED_DATASET = "Student_performance_data.csv"


class DataValidationError(ValueError):
    """Raw data that breaks the schema; the message names the columns and rows."""


def bundled_dataset_path() -> Path:
    return Path(str(resources.files("studperf_assets") / "data" / BUNDLED_DATASET))


def read_source(source: str, s3_client: Any = None) -> bytes:
    """Bytes of the raw CSV: the bundled copy (empty source), a local path or an s3:// URI."""
    if not source:
        return bundled_dataset_path().read_bytes()
    if source.startswith("s3://"):
        bucket, key = split_s3_uri(source)
        if s3_client is None:
            raise ValueError("an s3:// source needs an S3 client")
        return bytes(s3_client.get_object(Bucket=bucket, Key=key)["Body"].read())
    return Path(source).read_bytes()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _rows(mask: pd.Series, limit: int = 5) -> str:
    """Human row numbers (1 = first data row) of the offending rows."""
    rows = [str(i + 1) for i in np.flatnonzero(mask.to_numpy())[:limit]]
    more = int(mask.sum()) - len(rows)
    return ", ".join(rows) + (f" and {more} more" if more > 0 else "")


def column_problems(column: Column, values: pd.Series, blank: pd.Series) -> list[str]:
    """What is wrong with one column: missing, non-numeric, non-integral, out of range."""
    problems = []
    if blank.any():
        problems.append(f"column {column.name}: missing value in row {_rows(blank)}")
    bad_type = values.isna() & ~blank
    if bad_type.any():
        problems.append(f"column {column.name}: not a number in row {_rows(bad_type)}")
    known = values.notna()
    if column.kind == "int":
        fractional = known & (values != np.floor(values))
        if fractional.any():
            problems.append(f"column {column.name}: not an integer in row {_rows(fractional)}")
    outside = known & ((values < column.minimum) | (values > column.maximum))
    if outside.any():
        problems.append(
            f"column {column.name}: outside [{column.minimum:g}, {column.maximum:g}] "
            f"in row {_rows(outside)}"
        )
    return problems


def schema_problems(frame: pd.DataFrame) -> list[str]:
    """Schema and range problems of an already-loaded frame (nulls count as missing)."""
    problems = [f"missing column {c.name}" for c in RAW_SCHEMA if c.name not in frame.columns]
    for column in RAW_SCHEMA:
        if column.name in frame.columns:
            raw = frame[column.name]
            values = pd.to_numeric(raw, errors="coerce")
            problems += column_problems(column, values, raw.isna())
    return problems


def parse_raw_csv(data: bytes, source: str = "the CSV") -> pd.DataFrame:
    """Parse and validate the raw CSV; raise DataValidationError naming column and rows.

    Read as ``csv_input`` reads every CSV (``studperf predict`` too), numbers as
    ``schema.parse_number`` reads them (the Lambda too); ``source`` names it in messages."""
    try:
        table = read_table(data, source, RAW_COLUMNS)
        with _collector_paused():
            values, blank = _raw_columns(table)
    except CsvFileError as exc:
        raise DataValidationError(str(exc)) from exc
    problems: list[str] = []
    for column in RAW_SCHEMA:
        typed = pd.Series(values[column.name], copy=False)
        problems += column_problems(column, typed, pd.Series(blank[column.name], copy=False))
    if problems:
        raise DataValidationError("invalid raw data: " + "; ".join(problems))
    return pd.DataFrame(
        {
            c.name: values[c.name].astype(np.int64 if c.kind == "int" else np.float64)
            for c in RAW_SCHEMA
        }
    )


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Reading makes a list per row, and the cyclic garbage collector walked those (and every
    other live object) again and again: 40 % of the time at a million rows. They hold only
    strings, so nothing is left for it to find."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


CHUNK_ROWS = 65_536  # rows held as strings at once: memory stays flat at a million rows


def _raw_columns(table: CsvTable) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Each schema column's numbers (NaN where not one) and blank mask, read a chunk of rows
    at a time; DataValidationError for rows whose fields do not line up with the header."""
    parts: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {c.name: [] for c in RAW_SCHEMA}
    ragged: list[str] = []  # the first few rows whose fields do not line up, and a count
    ragged_rows = rows_read = 0
    while chunk := list(islice(table.rows, CHUNK_ROWS)):
        widths = np.fromiter(map(len, chunk), dtype=np.int64, count=len(chunk))
        off = np.flatnonzero(widths != len(table.header))
        ragged += [f"row {rows_read + i + 1}: {table.width_problem(chunk[i])}" for i in off[:5]]
        ragged_rows += len(off)
        rows_read += len(chunk)
        if ragged_rows:  # the file is refused: only the other ragged rows are worth finding
            continue
        fields = list(zip(*chunk, strict=True))  # one tuple per column
        for column in RAW_SCHEMA:
            texts = fields[table.positions[column.name]]
            numbers, parsed = parse_numbers(texts)
            empty = np.zeros(len(texts), dtype=bool)
            for i in np.flatnonzero(~parsed):
                empty[i] = texts[i].strip(" \t") == ""
            parts[column.name].append((numbers, empty))
    if ragged_rows:
        more = f" and {ragged_rows - 5} more" if ragged_rows > 5 else ""
        raise DataValidationError(
            f"{table.source}: fields do not line up with the header: {'; '.join(ragged[:5])}{more}"
        )
    values = {name: np.concatenate([n for n, _ in chunks]) for name, chunks in parts.items()}
    blank = {name: np.concatenate([e for _, e in chunks]) for name, chunks in parts.items()}
    return values, blank


def select_features(raw: pd.DataFrame) -> pd.DataFrame:
    """Keep the nine behavioural features, GPA (training only) and the target."""
    return raw.loc[:, list(MODEL_COLUMNS)].copy()


def grade_from_gpa(gpa: np.ndarray | pd.Series) -> np.ndarray:
    """GradeClass implied by GPA under the dataset's cut-offs (0 = A … 4 = F)."""
    lower_bounds = np.asarray(GPA_CUTOFFS[::-1])  # 2.0, 2.5, 3.0, 3.5
    return (len(GPA_CUTOFFS) - np.searchsorted(lower_bounds, np.asarray(gpa), side="right")).astype(
        np.int64
    )


def label_consistent(frame: pd.DataFrame) -> pd.Series:
    """True where GradeClass agrees with the GPA cut-offs."""
    return pd.Series(grade_from_gpa(frame[GPA]) == frame[TARGET].to_numpy(), index=frame.index)


SPLITS = ("train", "val", "test")


def reference_split(features: pd.DataFrame, seed: int = 42) -> dict[str, pd.DataFrame]:
    """The reference project's split: 70/15/15, stratified on GradeClass, random_state 42."""
    from sklearn.model_selection import train_test_split  # only the steps that split pay

    y = features[TARGET]
    train, rest = train_test_split(features, test_size=0.3, random_state=seed, stratify=y)
    val, test = train_test_split(rest, test_size=0.5, random_state=seed, stratify=rest[TARGET])
    return {"train": train, "val": val, "test": test}


def feature_matrix(frame: pd.DataFrame) -> np.ndarray:
    """Model input in schema order, as float64 (the ONNX form casts to float32)."""
    return frame.loc[:, list(FEATURE_NAMES)].to_numpy(dtype=np.float64)


def duplicate_ids(frame: pd.DataFrame) -> list[int]:
    """StudentIDs that occur more than once (they would leak across splits)."""
    return sorted(int(i) for i in frame.loc[frame[ID].duplicated(), ID].unique())


def class_shares(frame: pd.DataFrame) -> dict[int, float]:
    """Share of rows per GradeClass, every class listed (0.0 when absent)."""
    shares = frame[TARGET].value_counts(normalize=True)
    return {k: float(shares.get(k, 0.0)) for k in range(len(GPA_CUTOFFS) + 1)}


def dataset_sha256(frame: pd.DataFrame) -> str:
    """Content hash of a frame (values in column order), for lineage in the manifest."""
    return sha256_bytes(frame.to_csv(index=False, float_format="%.10g").encode())
