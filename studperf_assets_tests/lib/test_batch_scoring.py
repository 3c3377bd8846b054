"""Batch scoring's output file: safe to open in a spreadsheet, and never left half-written."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from lambda_service.predictor import Prediction
from lambda_service.schema import FEATURE_NAMES, FEATURES
from studperf_assets.lib.batch_scoring import read_input, score_file, score_table


class FakePredictor:
    """Scores everything C: what is tested is the file around the predictions."""

    features = FEATURES
    labels = ("A", "B", "C", "D", "F")
    version = "v-test"

    def predict_records(self, records: Iterable[dict[str, Any]]) -> Iterator[Prediction]:
        for _ in records:
            yield Prediction(
                grade_class=2, grade="C", probabilities=dict.fromkeys(self.labels, 0.2)
            )


def _csv(ids: list[str]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["StudentID", *FEATURE_NAMES])
    for student in ids:
        writer.writerow([student, *(["1"] * len(FEATURE_NAMES))])
    return out.getvalue().encode()


def test_cells_a_spreadsheet_would_run_as_formulas_are_neutralised() -> None:
    """Field fault: a StudentID of ``=HYPERLINK(...)`` was copied verbatim into the output,
    where a spreadsheet runs it. Cells starting with = + - @, a tab or a carriage return
    get a leading apostrophe (OWASP); numbers such as -1 or +3 stay as they are."""
    ids = [
        '=HYPERLINK("http://x","y")',
        "+cmd",
        "-2+3",
        "@SUM(A1)",
        "\tx",
        "\r=1",
        "-1",
        "+3",
        "1001",
    ]
    predictor: Any = FakePredictor()
    sink = io.StringIO()
    score_table(predictor, read_input(predictor, _csv(ids), "in.csv"), sink)
    written = [row[0] for row in csv.reader(io.StringIO(sink.getvalue()))][1:]
    assert written == [
        "'=HYPERLINK(\"http://x\",\"y\")", "'+cmd", "'-2+3", "'@SUM(A1)", "'\tx",
        "'=1",  # the reader strips the carriage return; the rest is still a formula
        "-1", "+3", "1001",
    ]  # fmt: skip


def test_a_partial_output_of_a_killed_run_is_cleaned_by_the_next_run(tmp_path: Path) -> None:
    """Field fault: SIGKILL of ``studperf predict`` left a hidden ``.partial`` file beside
    the output forever. The next run of the same output removes partials whose writer is
    dead, and says so; a live writer's partial is left alone."""
    source, output = tmp_path / "in.csv", tmp_path / "out.csv"
    source.write_bytes(_csv(["1001", "1002"]))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    stale = tmp_path / f".out.csv.{int(dead.stdout)}-0123456789ab.partial"
    live = tmp_path / f".out.csv.{os.getppid()}-0123456789ab.partial"
    other = tmp_path / f".other.csv.{int(dead.stdout)}-0123456789ab.partial"
    for path in (stale, live, other):
        path.write_text("half")
    report = score_file(FakePredictor(), source, output)  # type: ignore[arg-type]
    assert report.scored == 2
    assert not stale.exists() and live.exists() and other.exists()
    assert report.cleaned == [stale.name]
