"""Batch scoring of a CSV with the lean predictor: every input row is accounted for."""

from __future__ import annotations

import csv
import glob
import os
import uuid
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import TextIO

from lambda_service.predictor import Prediction, Predictor
from lambda_service.schema import parse_number
from studperf_assets.lib.csv_input import CsvTable, read_table

ID = "StudentID"  # copied to the output when the input has it
# A cell a spreadsheet would run as a formula (OWASP, "CSV Injection"): it starts with one of
# these. Such a copied cell gets a leading apostrophe, which spreadsheets show as text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass
class ScoringReport:
    rows: int = 0
    scored: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)  # (row number, reason)
    neutralised: int = 0  # copied cells a spreadsheet would have run as formulas
    cleaned: list[str] = field(default_factory=list)  # stale partial outputs removed
    notes: list[str] = field(default_factory=list)  # one line each: what the reader ignored


def neutralised(cell: str) -> str:
    """``cell`` as it is safe to write into a CSV a spreadsheet opens: a cell starting with
    = + - @, a tab or a carriage return gets a leading apostrophe, unless it is a number
    (-1 and +3 stay numbers; OWASP's CSV-injection advice)."""
    if cell.startswith(FORMULA_STARTS) and parse_number(cell) is None:
        return "'" + cell
    return cell


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
    report = ScoringReport(notes=list(table.notes))
    if id_at is None:  # optional, and said: the output's column stays empty
        report.notes.append(
            f"{table.source}: no {ID} column: the output's {ID} column is left empty"
        )
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
                student = "" if id_at is None else neutralised(row[id_at])
                report.neutralised += id_at is not None and student != row[id_at]
                writer.writerow(
                    [
                        student,
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
    cleaned = clean_stale_partials(output_path)
    partial = output_path.with_name(
        f".{output_path.name}.{os.getpid()}-{uuid.uuid4().hex[:12]}.partial"
    )
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
    report.cleaned = cleaned
    return report


def clean_stale_partials(output_path: Path) -> list[str]:
    """Remove the partial outputs of ``output_path`` that a writer killed before it could
    (SIGKILL, a power cut) left beside it; returns their names. A partial is named with its
    writer's process ID: one whose writer still runs is left alone."""
    cleaned = []
    for partial in output_path.parent.glob(f".{glob.escape(output_path.name)}.*.partial"):
        owner = partial.name[len(output_path.name) + 2 :].split("-", 1)[0]
        if owner.isdigit() and _alive(int(owner)):
            continue
        try:
            partial.unlink()
        except OSError:
            continue
        cleaned.append(partial.name)
    return sorted(cleaned)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True
