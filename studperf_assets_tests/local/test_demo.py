"""The main job end to end: a shortened `studperf demo`, each step's outcome asserted."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import sys
from pathlib import Path

import pytest

from studperf_assets.lib.incidents import check_group
from studperf_assets.lib.windows import is_window_key
from studperf_assets.local.demo import DemoSummary, print_summary, run_demo

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[DemoSummary, str]:
    """The demo's summary, and what it wrote to stderr (the sensors' Dagster lines)."""
    home = tmp_path_factory.mktemp("demo")
    lines: list[str] = []
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        summary = run_demo(
            home, batch_size=200, calm_batches=2, drifted_batches=2, echo=lines.append
        )
    assert any(line.startswith("[6/6]") for line in lines)
    return summary, stderr.getvalue()


@pytest.fixture(scope="module")
def demo(demo_run: tuple[DemoSummary, str]) -> DemoSummary:
    return demo_run[0]


def test_the_sensors_events_read_as_studperf_up_prints_them(
    demo_run: tuple[DemoSummary, str],
) -> None:
    """Not as the JSON records they are (``local.events.ReadableEvents``)."""
    _, stderr = demo_run
    assert "studperf_event" not in stderr
    assert " - INFO - alert sent: incident opened: drift incident: " in stderr
    window = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
    assert re.search(rf" - INFO - retraining: \S+ failed on {window}; \d+ new labelled", stderr)


def test_two_bundles_both_promoted(demo: DemoSummary) -> None:
    first, second = demo.bundles
    assert first["promoted"] and second["promoted"]
    assert first["version"] != second["version"]
    pointer = json.loads((demo.home / "model_store" / "production.json").read_text())
    assert pointer["version"] == second["version"]


def test_drift_check_fails_on_the_drifted_windows_only(demo: DemoSummary) -> None:
    """Each burst of traffic is one window (see local/demo.py): two calm, then two drifted."""
    windows = sorted(demo.batches, key=lambda b: b["partition"])
    assert all(is_window_key(b["partition"]) for b in windows)
    assert ["data_drift" in b["failed_checks"] for b in windows] == [False, False, True, True]
    for window in windows:  # the HTML only for a window that failed a check
        report = demo.reports / window["partition"] / "drift.html"
        assert report.is_file() == bool(window["failed_checks"]), window


def test_one_email_per_incident_naming_its_checks_and_windows(demo: DemoSummary) -> None:
    failed = sorted((b["partition"], c) for b in demo.batches for c in b["failed_checks"])
    groups = {check_group(c) for _, c in failed}
    subjects = sorted(e["subject"] for e in demo.emails)
    assert "drift" in groups and len(subjects) == len(groups)  # not one per window
    for group in groups:  # one e-mail per incident, naming every check of it that failed
        (subject,) = [s for s in subjects if s.startswith(f"[studperf] OPEN: {group} incident:")]
        assert all(check in subject for _, check in failed if check_group(check) == group)
    (drift,) = [e for e in demo.emails if "OPEN: drift incident" in e["subject"]]
    drifted = sorted(b["partition"] for b in demo.batches if "data_drift" in b["failed_checks"])
    assert f"{drifted[0]} .. {drifted[-1]} (2 failing)" in drift["body"]


def test_retraining_ran_and_the_handler_hot_swapped(demo: DemoSummary) -> None:
    assert demo.retraining_run
    first, second = (b["version"] for b in demo.bundles)
    served = demo.versions_served
    assert served[0] == first and served[-1] == second
    switch = served.index(second)
    assert set(served[:switch]) == {first} and set(served[switch:]) == {second}
    assert len(served) == 800 + 50


def test_summary_names_everything(demo: DemoSummary, capsys: pytest.CaptureFixture[str]) -> None:
    print_summary(demo)
    text = capsys.readouterr().out
    assert "alert e-mails sent: " in text and f"STUDPERF_HOME={demo.home}" in text
    assert "one per incident opened" in text
    assert all(b["version"] in text for b in demo.bundles)
    assert Path(demo.home / "evidently").is_dir()


def test_summary_commands_name_this_installation(
    demo: DemoSummary, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The commands to type next exist: `.venv/bin/…` in a checkout, full paths elsewhere."""
    for cwd in (Path(sys.executable).parent.parent.parent, demo.home):
        monkeypatch.chdir(cwd)
        print_summary(demo)
        text = capsys.readouterr().out
        studperf = text.split(f"STUDPERF_HOME={demo.home} ")[1].split()[0]
        evidently = text.split("Evidently dashboard: ")[1].split()[0]
        for command in (studperf, evidently):
            assert (cwd / command).is_file() and os.access(cwd / command, os.X_OK), command
