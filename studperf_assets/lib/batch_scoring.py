"""Batch scoring of a CSV with the lean predictor: every input row is accounted for."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from lambda_service.predictor import Prediction, Predictor
from lambda_service.schema import InvalidRecord


@dataclass
class ScoringReport:
    rows: int = 0
    scored: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)  # (row number, reason)


def output_columns(predictor: Predictor) -> list[str]:
    return ["StudentID", "GradeClass", "Grade", *(f"prob_{g}" for g in predictor.labels)]


def _chunks(reader: csv.DictReader[str], size: int) -> Iterator[list[dict[str, str]]]:
    chunk: list[dict[str, str]] = []
    for row in reader:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def score_csv(
    predictor: Predictor, source: TextIO, sink: TextIO, chunk_size: int = 4096
) -> ScoringReport:
    """Score ``source`` into ``sink``; bad rows are reported (row 1 = first data row)."""
    reader = csv.DictReader(source)
    missing = [f.name for f in predictor.features if f.name not in (reader.fieldnames or [])]
    if missing:
        raise InvalidRecord(None, f"input CSV lacks column(s): {', '.join(missing)}")
    writer = csv.writer(sink, lineterminator="\n")
    writer.writerow(output_columns(predictor))
    report = ScoringReport()
    for chunk in _chunks(reader, chunk_size):
        results = predictor.predict_records(chunk)
        for row, result in zip(chunk, results, strict=True):
            report.rows += 1
            if isinstance(result, Prediction):
                report.scored += 1
                writer.writerow(
                    [
                        row.get("StudentID", ""),
                        result.grade_class,
                        result.grade,
                        *(f"{p:.6f}" for p in result.probabilities.values()),
                    ]
                )
            else:
                report.errors.append((report.rows, str(result)))
    return report


def score_file(predictor: Predictor, input_path: Path, output_path: Path) -> ScoringReport:
    with open(input_path, newline="") as source, open(output_path, "w", newline="") as sink:
        return score_csv(predictor, source, sink)
