"""Batch scoring of a CSV with the lean predictor: every input row is accounted for."""

from __future__ import annotations

import csv
import os
import uuid
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import TextIO

from lambda_service.predictor import Prediction, Predictor
from studperf_assets.lib.csv_input import CsvTable, read_table

ID = "StudentID"  # copied to the output when the input has it


@dataclass
class ScoringReport:
    rows: int = 0
    scored: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)  # (row number, reason)


def output_columns(predictor: Predictor) -> list[str]:
    return [ID, "GradeClass", "Grade", *(f"prob_{g}" for g in predictor.labels)]


def read_input(predictor: Predictor, data: bytes, source: str) -> CsvTable:
    """The input CSV, read as training reads its CSV (``csv_input``); CsvFileError."""
    return read_table(data, source, [f.name for f in predictor.features], optional=[ID])


def score_table(
    predictor: Predictor, table: CsvTable, sink: TextIO, chunk_size: int = 4096
) -> ScoringReport:
    """Score ``table``'s rows into ``sink``; bad rows are reported (row 1 = first data row)."""
    writer = csv.writer(sink, lineterminator="\n")
    writer.writerow(output_columns(predictor))
    features = [(f.name, table.positions[f.name]) for f in predictor.features]
    id_at = table.positions.get(ID)
    report = ScoringReport()
    while chunk := list(islice(table.rows, chunk_size)):
        errors: list[tuple[int, str]] = []
        lined_up: list[tuple[int, list[str]]] = []
        for number, row in enumerate(chunk, start=report.rows + 1):
            problem = table.width_problem(row)
            if problem:
                errors.append((number, problem))
            else:
                lined_up.append((number, row))
        report.rows += len(chunk)
        records = ({name: row[i] for name, i in features} for _, row in lined_up)
        for (number, row), result in zip(lined_up, predictor.predict_records(records), strict=True):
            if isinstance(result, Prediction):
                report.scored += 1
                writer.writerow(
                    [
                        "" if id_at is None else row[id_at],
                        result.grade_class,
                        result.grade,
                        *(f"{p:.6f}" for p in result.probabilities.values()),
                    ]
                )
            else:
                errors.append((number, str(result)))
        report.errors += sorted(errors)
    return report


def score_file(predictor: Predictor, input_path: Path, output_path: Path) -> ScoringReport:
    """Score a CSV file into ``output_path``, which appears only once every row is accounted
    for: it is written beside, under a hidden name, and renamed over. A file that cannot be
    read (CsvFileError, OSError) leaves nothing behind and an existing output untouched."""
    table = read_input(predictor, input_path.read_bytes(), str(input_path))
    partial = output_path.with_name(f".{output_path.name}.{uuid.uuid4().hex[:12]}.partial")
    try:
        sink = open(partial, "x", newline="", encoding="utf-8")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise OSError(f"cannot write {output_path}: {exc.strerror or exc}") from exc
    try:
        with sink:
            report = score_table(predictor, table, sink)
        os.replace(partial, output_path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return report
