"""The studperf command line, run as a user runs it: a subprocess."""

import csv
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pytest

from benchmarks.streams import read_stream
from lambda_service.bundle import Manifest
from studperf_assets.lib.data import bundled_dataset_path
from studperf_assets_tests.kinesis_fakes import create_stream


def studperf(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "STUDPERF_HOME": str(home)}
    for inherited in ("DAGSTER_HOME", "MLFLOW_TRACKING_URI"):  # a user's shell has neither
        env.pop(inherited, None)
    return subprocess.run(
        [sys.executable, "-m", "studperf_assets.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def test_predict_scores_every_row(trained_bundle: tuple[Path, Manifest], tmp_path: Path) -> None:
    folder, manifest = trained_bundle
    out = tmp_path / "predictions.csv"
    source = str(bundled_dataset_path())
    result = studperf(
        "predict", "--model", str(folder), "--input", source, "--output", str(out), home=tmp_path
    )
    assert result.returncode == 0, result.stderr
    predictions = pd.read_csv(out)
    assert list(predictions.columns) == [
        "StudentID", "GradeClass", "Grade", "prob_A", "prob_B", "prob_C", "prob_D", "prob_F",
    ]  # fmt: skip
    assert len(predictions) == 2392
    assert predictions["GradeClass"].between(0, 4).all()
    letters = predictions["GradeClass"].map(dict(enumerate("ABCDF")))
    assert (letters == predictions["Grade"]).all()
    assert (predictions.filter(like="prob_").sum(axis=1) - 1).abs().max() < 1e-4
    assert f"scored 2392 of 2392 rows with {manifest.version}; 0 failed" in result.stdout


def test_predict_reports_bad_rows_and_fails(trained_home: Path, tmp_path: Path) -> None:
    frame = pd.read_csv(bundled_dataset_path()).head(10).astype(object)
    frame.loc[2, "Absences"] = "x"
    frame.loc[4, "StudyTimeWeekly"] = 25
    frame.loc[7, "Music"] = None
    source = tmp_path / "in.csv"
    frame.to_csv(source, index=False)
    out = tmp_path / "out.csv"
    store = trained_home / "model_store"
    result = studperf(
        "predict",
        "--model",
        str(store),
        "--input",
        str(source),
        "--output",
        str(out),
        home=tmp_path,
    )
    assert result.returncode == 1
    assert "row 3: Absences: not a number: 'x'" in result.stderr
    assert "row 5: StudyTimeWeekly: 25 outside [0, 20]" in result.stderr
    assert "row 8: Music: missing value" in result.stderr
    with open(out) as fh:
        scored = list(csv.DictReader(fh))
    assert len(scored) == 7  # 10 in = 7 scored + 3 reported
    assert "scored 7 of 10 rows" in result.stdout and "3 failed" in result.stdout
    bad_ids = {str(frame.loc[i, "StudentID"]) for i in (2, 4, 7)}
    assert not bad_ids & {row["StudentID"] for row in scored}


def test_predict_with_missing_column_or_model(trained_home: Path, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    pd.read_csv(bundled_dataset_path()).drop(columns=["Tutoring"]).to_csv(source, index=False)
    store = str(trained_home / "model_store")
    result = studperf(
        "predict",
        "--model",
        store,
        "--input",
        str(source),
        "--output",
        str(tmp_path / "o.csv"),
        home=tmp_path,
    )
    assert result.returncode == 2 and "missing column(s): Tutoring" in result.stderr
    nowhere = str(tmp_path / "nowhere")
    result = studperf(
        "predict",
        "--model",
        nowhere,
        "--input",
        str(source),
        "--output",
        str(tmp_path / "o.csv"),
        home=tmp_path,
    )
    assert result.returncode == 2 and nowhere in result.stderr


@pytest.mark.integration
def test_train_prints_the_bundle_uri_last(tmp_path: Path) -> None:
    result = studperf("train", home=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    bundle = Path(lines[-1])
    assert bundle.parent == (tmp_path / "model_store" / "bundles").resolve()
    assert (bundle / "manifest.json").is_file()
    assert any(line.startswith("bundle v") and "test f1-macro" in line for line in lines)
    assert (tmp_path / "dagster" / "dagster.yaml").is_file()


def test_json_log_lines_carry_their_fields() -> None:
    import io
    import json
    import logging

    from studperf_assets.cli.terminal import JsonFormatter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("studperf.test-json")
    log.addHandler(handler)
    log.propagate = False
    log.warning("batch: %d records", 7, extra={"records": 7, "model_version": "v1"})
    line = json.loads(stream.getvalue())
    assert line["message"] == "batch: 7 records" and line["level"] == "WARNING"
    assert line["records"] == 7 and line["model_version"] == "v1"
    assert line["logger"] == "studperf.test-json" and line["time"].endswith("+00:00")


def test_serve_says_where_it_listens(trained_home: Path, tmp_path: Path) -> None:
    from studperf_assets.local.moto import free_port

    port = free_port()
    # PYTHONFAULTHANDLER: should it ever outlive SIGTERM, SIGABRT prints where it is stuck
    env = {**os.environ, "STUDPERF_HOME": str(tmp_path), "PYTHONFAULTHANDLER": "1"}
    command = [sys.executable, "-m", "studperf_assets.cli", "serve", "--port", str(port)]
    command += ["--model", str(trained_home / "model_store")]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        health = _get_when_up(f"http://127.0.0.1:{port}/health", process)  # the URL is real
    finally:
        process.terminate()
        try:
            returncode = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGABRT)  # its threads' stacks, in the captured stderr
            process.wait(timeout=10)
            raise
        finally:
            process.kill()  # never leave it behind, whatever happened above
    assert f"http://127.0.0.1:{port}" in line and f"http://127.0.0.1:{port}/docs" in line
    assert health["status"] == "ok" and health["model_version"] in line
    assert returncode in (0, -15)  # SIGTERM stops it: clean exit or killed by the signal


def _get_when_up(url: str, process: subprocess.Popen[str], timeout: float = 60) -> Any:
    import json
    import time
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.load(response)
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("STUDPERF_DAGSTER_STORAGE", "mysql"),
        ("STUDPERF_DEPLOYMENT", "kubernetes"),
        ("STUDPERF_LOG_LEVEL", "LOUD"),
        ("STUDPERF_LOG_FORMAT", "xml"),
    ],
)
def test_a_wrong_setting_is_one_clear_line(variable: str, value: str, tmp_path: Path) -> None:
    env = {**os.environ, "STUDPERF_HOME": str(tmp_path), variable: value}
    env.pop("DAGSTER_HOME", None)
    result = subprocess.run(
        [sys.executable, "-m", "studperf_assets.cli", "train"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(f"studperf: {variable} must be")
    assert repr(value) in result.stderr
    assert not (tmp_path / "dagster" / "dagster.yaml").exists()  # nothing was seeded


def _without_aws(home: Path, **aws: str) -> dict[str, str]:
    """A shell with no AWS settings (and no ~/.aws to fall back on), plus ``aws``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return {**env, "HOME": str(home), "STUDPERF_HOME": str(home / "studperf"), **aws}


def _simulate(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "studperf_assets.cli", "simulate", "--count", "5", *args]
    return subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=120, check=False
    )


def test_aws_not_set_up_is_one_line_that_says_what_to_do(tmp_path: Path) -> None:
    from studperf_assets.local.moto import AWS_TEST_ENV, free_port

    no_region = _simulate(_without_aws(tmp_path))
    assert no_region.returncode == 2 and "Traceback" not in no_region.stderr
    assert no_region.stderr.startswith("studperf: You must specify a region.")
    assert "`studperf up`, then source the stack.env" in no_region.stderr
    debug = _simulate({**_without_aws(tmp_path), "STUDPERF_LOG_LEVEL": "debug"})
    assert "Traceback" in debug.stderr and "botocore.exceptions.NoRegionError" in debug.stderr
    assert debug.stderr.strip().splitlines()[-1] == no_region.stderr.strip()

    (tmp_path / "studperf").mkdir()
    (tmp_path / "studperf" / "stack.env").write_text("export AWS_REGION=us-east-1\n")
    no_credentials = _simulate(_without_aws(tmp_path, AWS_DEFAULT_REGION="us-east-1"))
    assert no_credentials.returncode == 2 and "Traceback" not in no_credentials.stderr
    assert f"source {tmp_path / 'studperf' / 'stack.env'}" in no_credentials.stderr

    nothing_there = f"http://127.0.0.1:{free_port()}"
    unreachable = _simulate(_without_aws(tmp_path, **AWS_TEST_ENV, AWS_ENDPOINT_URL=nothing_there))
    assert unreachable.returncode == 1 and "Traceback" not in unreachable.stderr
    assert f"cannot reach the AWS endpoint {nothing_there}" in unreachable.stderr


@pytest.mark.integration
def test_a_stream_that_does_not_exist_points_at_init_aws(moto_server: str, tmp_path: Path) -> None:
    from studperf_assets.local.moto import AWS_TEST_ENV

    env = _without_aws(tmp_path, **AWS_TEST_ENV, AWS_ENDPOINT_URL=moto_server)
    result = _simulate(env, "--stream", "no-such-stream")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "ResourceNotFoundException" in result.stderr and "studperf init-aws" in result.stderr


def test_other_errors_keep_their_traceback() -> None:
    from botocore.exceptions import ClientError

    from studperf_assets.cli.errors import one_line

    assert one_line(ValueError("a bug")) is None
    throttled = ClientError({"Error": {"Code": "ThrottlingException"}}, "PutRecords")
    assert one_line(throttled) is None  # AWS trouble that is not a setup problem


@pytest.mark.parametrize("command", ["serve", "stream"])
def test_an_empty_model_store_is_one_line(command: str, tmp_path: Path) -> None:
    """What the compose services print while they wait for the first bundle: one line (the
    stream consumer's is after the line the Lambda's cold start logs when it fails)."""
    from studperf_assets.local.moto import AWS_TEST_ENV

    store = tmp_path / "store"
    store.mkdir()
    args = ["--input-stream", "in"] if command == "stream" else []
    env = {**os.environ, **AWS_TEST_ENV, "STUDPERF_HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "studperf_assets.cli", command, "--model", str(store), *args],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr
    *before, said = result.stderr.splitlines()
    assert said.startswith(f"studperf: model: {store}: neither a model bundle")
    assert "`studperf train`" in said
    # stream: the consumer runs the handler module's own cold start, which logs its failure
    assert [line.split(" ", 1)[1] for line in before] == (
        ["ERROR   cold start failed"] if command == "stream" else []
    )


# Files as spreadsheets save them (issue 19, C.11 and C.12).
def _saved(frame: pd.DataFrame, encoding: str = "utf-8-sig", sep: str = ",") -> bytes:
    """``frame`` as Excel saves it: "CSV UTF-8" is a byte-order mark and CRLF line ends."""
    return frame.to_csv(index=False, sep=sep, lineterminator="\r\n").encode(encoding)


def _students(rows: int = 20) -> pd.DataFrame:
    return pd.read_csv(bundled_dataset_path()).head(rows)


def _predict(
    model: Path, data: bytes, folder: Path
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """``studperf predict`` from ``folder/in.csv`` to ``folder/out.csv``; its home (bundle
    cache) is elsewhere, so the folder holds only what the test and the command put there."""
    source, out = folder / "in.csv", folder / "out.csv"
    source.write_bytes(data)
    home = folder.with_name(folder.name + "-home")
    return studperf(
        "predict", "--model", str(model), "--input", str(source), "--output", str(out), home=home
    ), out  # fmt: skip


@pytest.mark.parametrize("reordered", [False, True], ids=["as saved", "columns reordered"])
def test_a_csv_utf8_file_is_scored_with_its_student_ids(
    trained_bundle: tuple[Path, Manifest], tmp_path: Path, reordered: bool
) -> None:
    frame = _students()
    if reordered:  # a feature first, right after the byte-order mark
        frame = frame[["Absences", *(c for c in frame.columns if c != "Absences")]]
    result, out = _predict(trained_bundle[0], _saved(frame), tmp_path)
    assert result.returncode == 0, result.stderr
    scored = pd.read_csv(out)
    assert scored["StudentID"].tolist() == frame["StudentID"].tolist()


@pytest.mark.parametrize("existing", [False, True], ids=["no output yet", "output kept"])
def test_a_windows_1252_file_is_one_line_and_leaves_no_output(
    trained_bundle: tuple[Path, Manifest], tmp_path: Path, existing: bool
) -> None:
    frame = _students().assign(Name="Ann")
    frame.loc[2, "Name"] = "José"
    if existing:
        (tmp_path / "out.csv").write_text("yesterday's predictions\n")
    result, out = _predict(trained_bundle[0], _saved(frame, "cp1252"), tmp_path)
    assert result.returncode == 2 and result.stderr == (
        f"studperf predict: {tmp_path / 'in.csv'}: not UTF-8: byte 0xE9 on line 4 ('é' in "
        'Windows-1252); save it as "CSV UTF-8 (Comma delimited)"\n'
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", *(["out.csv"] * existing)]
    if existing:
        assert out.read_text() == "yesterday's predictions\n"


UNREADABLE = {
    "semicolons": (_saved(_students(), sep=";"), "separated by semicolons, not commas"),
    "tabs": (_saved(_students(), sep="\t"), "separated by tabs, not commas"),
    "UTF-16": (_saved(_students(), "utf-16"), "UTF-16, not UTF-8"),
    "empty": (b"", "empty file"),
    "header only": (_saved(_students(0)), "a header but no rows"),
    "a quote left open": (
        _saved(_students()).replace(b"\r\n1010,", b'\r\n"1010,'),
        "line 11: a quoted field starts here and never ends",
    ),
    "a column missing": (_saved(_students().drop(columns="Music")), "missing column(s): Music"),
}


@pytest.mark.parametrize("case", UNREADABLE)
def test_an_unreadable_file_is_one_line_and_the_output_is_kept(
    trained_bundle: tuple[Path, Manifest], tmp_path: Path, case: str
) -> None:
    data, reason = UNREADABLE[case]
    (tmp_path / "out.csv").write_text("yesterday's predictions\n")
    result, out = _predict(trained_bundle[0], data, tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"studperf predict: {tmp_path / 'in.csv'}: {reason}")
    assert out.read_text() == "yesterday's predictions\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "out.csv"]


def test_predict_reads_numbers_as_a_csv_writer_writes_them(
    trained_bundle: tuple[Path, Manifest], tmp_path: Path
) -> None:
    frame = _students(6).astype(object)
    frame.loc[0, "Absences"] = "1_0"  # float() reads 10
    frame.loc[1, "Absences"] = "\u0661"  # Arabic-Indic one: float() reads 1
    frame.loc[2, "StudyTimeWeekly"] = "Infinity"
    frame.loc[3, "Absences"] = " 4 "  # spaces around a number are fine
    result, out = _predict(trained_bundle[0], _saved(frame), tmp_path)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "row 1: Absences: not a number: '1_0'",
        "row 2: Absences: not a number: '\u0661'",
        "row 3: StudyTimeWeekly: not a number: 'Infinity'",
    ]
    assert pd.read_csv(out)["StudentID"].tolist() == frame["StudentID"].tolist()[3:]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (_saved(_students().assign(Name="José"), "cp1252"), "not UTF-8: byte 0xE9 on line 2"),
        (_saved(_students(), sep=";"), "separated by semicolons, not commas"),
    ],
)
def test_train_says_what_predict_says_about_a_file(
    tmp_path: Path, data: bytes, reason: str
) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(data)
    result = studperf("train", "--data", str(source), home=tmp_path)
    assert result.returncode == 2 and result.stdout == ""  # said before Dagster starts
    assert result.stderr.startswith(f"studperf train: {source}: {reason}")
    assert result.stderr.count("\n") == 1


def _variants() -> dict[str, bytes]:
    """Files a user may hand either command: each is accepted by both or refused by both."""
    frame = _students()
    plain = frame.to_csv(index=False).encode()
    lines = plain.split(b"\n")
    reordered = frame[["Absences", *(c for c in frame.columns if c != "Absences")]]
    quoted = frame.to_csv(index=False, quoting=csv.QUOTE_ALL).encode()

    def with_absences(text: str) -> bytes:
        bad = frame.astype(object)
        bad.loc[3, "Absences"] = text
        return _saved(bad)

    bom = "\ufeff".encode()
    return {
        "plain": plain,
        "CSV UTF-8 (BOM, CRLF)": _saved(frame),
        # invisible characters around header names (issue 19): predict scored with an empty
        # StudentID column where train refused "missing column(s): StudentID"
        "two byte-order marks": bom + _saved(frame),
        "a zero-width space after StudentID": plain.replace(
            b"StudentID,", "StudentID\u200b,".encode(), 1
        ),
        "NBSP-padded names": plain.replace(
            b"StudentID,", "\u00a0StudentID\u00a0,".encode(), 1
        ).replace(b",Absences,", ",\u00a0Absences,".encode()),
        "BOM, columns reordered": _saved(reordered),
        "CR line ends": plain.replace(b"\n", b"\r"),
        "every field quoted": quoted,
        "blank lines and empty rows": b"\n".join([*lines[:3], b"", b"," * 14, *lines[3:]]),
        "spaces around names and numbers": plain.replace(b",Absences,", b", Absences ,").replace(
            b",7,", b", 7 ,"
        ),
        "Windows-1252": _saved(frame.assign(Name="José"), "cp1252"),
        "UTF-16": _saved(frame, "utf-16"),
        "UTF-16 without BOM": _saved(frame, "utf-16-le"),
        "semicolons": _saved(frame, sep=";"),
        "tabs": _saved(frame, sep="\t"),
        "empty": b"",
        "header only": lines[0] + b"\n",
        "a row too long": b"\n".join([*lines[:3], lines[3] + b",1", *lines[4:]]),
        "a row too short": b"\n".join([*lines[:3], lines[3].rsplit(b",", 1)[0], *lines[4:]]),
        "a whitespace-only line": b"\n".join([*lines[:3], b"  ", *lines[3:]]),
        "a quote left open": plain.replace(b"\n1005,", b'\n"1005,'),
        "a column named twice": b"\n".join(
            [lines[0] + b",Music", *(x + b",1" for x in lines[1:-1])]
        ),
        "1_0": with_absences("1_0"),
        "Arabic-Indic digit": with_absences("\u0661"),
        "nan": with_absences("nan"),
        "Infinity": with_absences("Infinity"),
        "hex": with_absences("0x1"),
    }


def test_train_and_predict_accept_the_same_files(
    trained_bundle: tuple[Path, Manifest], tmp_path: Path
) -> None:
    from lambda_service.predictor import Predictor
    from studperf_assets.lib.batch_scoring import score_file
    from studperf_assets.lib.data import DataValidationError, parse_raw_csv

    predictor = Predictor.from_uri(str(trained_bundle[0]), tmp_path / "cache")
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    verdicts = {}
    for case, data in _variants().items():
        source.write_bytes(data)
        try:
            trained = parse_raw_csv(data)
        except DataValidationError:
            trained = None
        try:
            report = score_file(predictor, source, out)
            predicted = report.scored == report.rows and not report.errors
        except ValueError:  # CsvFileError
            predicted = False
        verdicts[case] = (trained is not None, predicted)
        if trained is not None and predicted:
            ids = pd.read_csv(out)["StudentID"].tolist()
            assert ids == trained["StudentID"].tolist() == list(range(1001, 1021)), case
    disagreements = {case: v for case, v in verdicts.items() if v[0] != v[1]}
    assert not disagreements, disagreements
    accepted = [case for case, (ok, _) in verdicts.items() if ok]
    assert accepted == list(_variants())[:10]


def _platform(command: str, home: Path, **ports: int) -> subprocess.CompletedProcess[str]:
    """`studperf up` or `studperf ui` on ``home``, on free ports unless given."""
    from studperf_assets.local.moto import free_port

    env = {**os.environ, "STUDPERF_HOME": str(home)}
    env |= {
        f"STUDPERF_{n}_PORT": str(ports.get(n, free_port())) for n in ("AWS", "UI", "EVIDENTLY")
    }
    args = ["--port", env["STUDPERF_UI_PORT"]] if command == "ui" else []
    return subprocess.run(
        [sys.executable, "-m", "studperf_assets.cli", command, *args],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("command", ["up", "ui"])
def test_a_home_owned_by_a_live_stack_is_refused_naming_its_owner(
    command: str, tmp_path: Path
) -> None:
    """A second `studperf up` on a home started a second stack there (two daemons on one
    instance, two consumers on one checkpoint file). Now it says who owns the home and how
    to stop it, and starts nothing; it never offers other ports (a second stack)."""
    from studperf_assets.local.home_lock import own_home

    home = tmp_path / "home"
    ownership = own_home(home, "studperf up")  # this test process is the live owner
    try:
        result = _platform(command, home)
    finally:
        ownership.release()
    said = result.stdout + result.stderr
    assert result.returncode == 2, said
    assert f"in use by PID {os.getpid()} (studperf up, since " in said
    assert f"kill {os.getpid()}" in said and "one stack per home" in said
    assert "PORT" not in said and "Traceback" not in said
    assert not (home / "logs").exists() and not (home / "dagster").exists()  # nothing started


def test_a_port_another_program_holds_is_named_with_its_holder(tmp_path: Path) -> None:
    import socket

    home = tmp_path / "home"
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        result = _platform("up", home, AWS=port)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"port(s) {port} on 127.0.0.1 in use by PID {os.getpid()} (" in result.stdout
    assert f"not by a stack of {home.resolve()}" in result.stdout
    assert not (home / "logs").exists()


@pytest.mark.parametrize("delay", ["-600", "7200", "nan", "inf", "soon"])
def test_a_label_delay_labels_could_not_keep_is_refused_before_anything_is_sent(
    tmp_path: Path, delay: str
) -> None:
    """Field fault: --label-delay -600 printed a traceback after the students were sent
    (their labels lost); 7200 said "due in 7200s" while the labels were read at once (a name
    over an hour ahead is a clock that is wrong: SCHEDULE_HORIZON). Both are refused first,
    naming the range, with no AWS set up at all (nothing is sent)."""
    result = _simulate(_without_aws(tmp_path), "--label-delay", delay)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--label-delay" in result.stderr and "0 to 3600 seconds" in result.stderr
    assert "region" not in result.stderr  # refused before any AWS call


def test_init_aws_creates_bucket_and_streams_idempotently(moto_server: str) -> None:
    from studperf_assets.cli import main

    streams = ["init-in", "init-out"]
    for _ in range(2):
        assert main(["init-aws", "--bucket", "init-bucket", "--streams", *streams]) == 0
    boto3.client("s3").head_bucket(Bucket="init-bucket")
    kinesis = boto3.client("kinesis")
    for name in streams:
        assert (
            kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"][
                "StreamStatus"
            ]
            == "ACTIVE"
        )


def test_simulate_sends_the_count_asked_for_with_ids_no_run_reuses(
    moto_server: str, tmp_path: Path
) -> None:
    import pandas as pd

    def simulate(*args: str) -> int:
        env = {**os.environ, "STUDPERF_HOME": str(tmp_path)}
        command = [sys.executable, "-m", "studperf_assets.cli", "simulate", "--stream", "sim-in"]
        return subprocess.run([*command, *args], env=env, timeout=300, check=False).returncode

    kinesis = boto3.client("kinesis")
    create_stream(kinesis, "sim-in")
    for drift in ("absences=5", ""):  # the same seed twice: the IDs must still differ
        assert simulate("--count", "120", "--label-delay", "30", "--drift", drift) == 0
    sent = read_stream(kinesis, "sim-in")
    assert len(sent) == 240 and {"student_id", "request_id", "student"} <= set(sent[0])
    ids = [s["student_id"] for s in sent]
    assert len(set(ids)) == 240 and min(ids) >= 1_000_000
    assert {s["request_id"] for s in sent} == {f"sim-{i}" for i in ids}
    label_files = sorted((tmp_path / "monitoring" / "labels").rglob("*.parquet"))
    assert len(label_files) == 2 and all(f.parent.name.count("T") == 1 for f in label_files)
    labels = pd.concat(pd.read_parquet(f) for f in label_files)
    assert set(labels["request_id"]) == {s["request_id"] for s in sent}
    assert simulate("--count", "1", "--drift", "sleep=9") == 2
