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


INVISIBLE = {
    "a second byte-order mark": ("\ufeff\ufeff", "", "U+FEFF"),
    "a zero-width space": ("", "\u200b", "U+200B"),
    "no-break spaces": ("\u00a0", "\u00a0", "U+00A0"),
    "a word joiner": ("\u2060", "", "U+2060"),
    "an ideographic space": ("\u3000", "", "U+3000"),
}


def test_invisible_characters_around_a_header_name_are_ignored_and_said() -> None:
    """Field fault: a header cell ``StudentID\\u200b`` (or two BOMs, or NBSP padding) made
    predict score with an empty StudentID column while train refused the file. Both read
    the header through ``read_table``: invisible characters around a name are ignored, and
    a one-line notice names the column and the character."""
    from studperf_assets.lib.csv_input import read_table

    for case, (before, after, code) in INVISIBLE.items():
        data = _csv(["1001"]).decode()
        data = before + data.replace("StudentID", f"StudentID{after}", 1)
        predictor: Any = FakePredictor()
        table = read_input(predictor, data.encode(), "in.csv")
        assert "StudentID" in table.positions, case
        (note,) = table.notes
        assert note.startswith("in.csv: column StudentID: ignored "), (case, note)
        assert code in note and "\n" not in note, (case, note)
        sink = io.StringIO()
        score_table(predictor, table, sink)
        assert sink.getvalue().splitlines()[1].startswith("1001,"), case
        training = read_table(data.encode(), "in.csv", ["StudentID", *FEATURE_NAMES])
        assert training.notes == table.notes and training.positions["StudentID"] == 0


def test_an_invisible_character_inside_a_name_is_named_in_the_refusal() -> None:
    from studperf_assets.lib.csv_input import CsvFileError, read_table

    data = _csv(["1001"]).decode().replace("StudentID", "Student\u200bID", 1).encode()
    try:
        read_table(data, "in.csv", ["StudentID", *FEATURE_NAMES])
    except CsvFileError as error:
        message = str(error)
    else:
        raise AssertionError("accepted")
    assert message.startswith("in.csv: missing column(s): StudentID")
    assert "U+200B" in message and "\n" not in message


def test_predict_says_when_the_student_id_column_is_absent(tmp_path: Path) -> None:
    """Field fault: without a StudentID column predict wrote an empty one, silently."""
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    lines = _csv(["1001", "1002"]).decode().splitlines()
    source.write_text("\n".join(line.split(",", 1)[1] for line in lines) + "\n")
    predictor: Any = FakePredictor()
    report = score_file(predictor, source, out)
    assert report.scored == 2
    assert report.notes == [
        f"{source}: no StudentID column: the output's StudentID column is left empty"
    ]
    present = tmp_path / "with.csv"
    present.write_bytes(_csv(["1001"]))
    assert score_file(predictor, present, out).notes == []
