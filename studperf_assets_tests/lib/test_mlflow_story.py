"""What MLflow is told about a training: its name, its trigger, the champion check's words."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from studperf_assets.lib.mlflow_story import (
    INCIDENT_TAG,
    ChampionCheck,
    experiment_url,
    run_name,
    run_tags,
    trigger_text,
)

retraining_sensor = importlib.import_module("studperf_assets.sensors.retraining_sensor")

SENSOR_TAGS = {
    "studperf/trigger": "data_drift,prediction_drift@2026-12-01T14:42:00Z",
    "studperf/incident": "3",
    "studperf/new_labels": "412",
}


def test_the_sensor_tags_are_the_ones_read() -> None:
    assert retraining_sensor.INCIDENT_TAG == INCIDENT_TAG
    text = Path(str(retraining_sensor.__file__)).read_text()  # the sensor writes literals
    assert '"studperf/trigger": f"{checks}@{partition}"' in text
    assert '"studperf/new_labels"' in text


def test_a_retraining_is_named_and_tagged_for_its_incident() -> None:
    assert run_name("training_job", SENSOR_TAGS) == (
        "retraining · data_drift,prediction_drift · 2026-12-01T14:42:00Z"
    )
    assert run_tags(SENSOR_TAGS) == {
        "studperf.trigger": "retraining",
        "studperf.trigger_checks": "data_drift,prediction_drift",
        "studperf.trigger_window": "2026-12-01T14:42:00Z",
        "studperf.incident": "3",
        "studperf.new_labels": "412",
    }
    assert trigger_text(SENSOR_TAGS) == (
        "retraining after data_drift,prediction_drift failed on window "
        "2026-12-01T14:42:00Z (incident #3)"
    )


def test_any_other_training_is_manual() -> None:
    tags = {"dagster/backfill": "x"}
    assert run_name("training_job", tags) == "training · manual"
    assert run_tags(tags) == {"studperf.trigger": "manual"}
    assert trigger_text({}) == "manual"
    assert run_name("monitoring_job", {}) == "monitoring_job"


def test_a_trigger_without_a_window_names_only_its_checks() -> None:
    tags = {"studperf/trigger": "performance"}
    assert run_name("training_job", tags) == "retraining · performance"
    assert "studperf.trigger_window" not in run_tags(tags)


def test_the_check_says_which_numbers_decided() -> None:
    check = ChampionCheck("v2", 0.61951, "v1", 0.60612, 0.02, passed=True)
    assert check.tags() == {
        "champion_check": "passed",
        "champion_check.candidate_test_f1_macro": "0.6195",
        "champion_check.champion_test_f1_macro": "0.6061",
        "champion_check.champion": "v1",
        "champion_check.tolerance": "0.02",
    }
    assert "v2 test f1-macro 0.6195 against the champion v1's 0.6061" in check.sentence()
    assert "re-scored on the same test split (no worse: the tolerance is not needed)" in (
        check.sentence()
    )
    close = ChampionCheck("v2", 0.60, "v1", 0.61, 0.02, passed=True)
    assert "(worse by 0.0100, within the tolerance of 0.02)" in close.sentence()
    refused = ChampionCheck("v2", 0.55, "v1", 0.60, 0.02, passed=False)
    assert refused.sentence().startswith("Champion check failed")
    assert "(worse by 0.0500, outside the tolerance of 0.02)" in refused.sentence()


@pytest.mark.parametrize(
    ("check", "start"),
    [
        (ChampionCheck("v1", 0.63, None, None, 0.02, True), "First bundle (v1)"),
        (ChampionCheck("v2", 0.6, "v1", None, 0.02, False, "hash mismatch"), "Champion check "),
    ],
)
def test_first_bundles_and_unreadable_champions_say_so(check: ChampionCheck, start: str) -> None:
    assert check.sentence().startswith(start)
    assert ("champion_check.champion_test_f1_macro" in check.tags()) is False


def test_the_link_opens_the_training_view() -> None:
    assert experiment_url("http://127.0.0.1:5005/", "1") == (
        "http://127.0.0.1:5005/#/experiments/1/runs?workflowType=machine_learning"
    )
    assert experiment_url("http://127.0.0.1:5005").endswith(
        "#/experiments?workflowType=machine_learning"
    )
