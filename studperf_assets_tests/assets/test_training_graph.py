"""The training graph materialized in process, on real SQLite/MLflow and a local store."""

import json
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest
from dagster import AssetKey, DagsterInstance, materialize
from mlflow.tracking import MlflowClient

from lambda_service.bundle import verify_bundle
from studperf_assets.assets import ingestion, training
from studperf_assets.definitions import make_definitions
from studperf_assets.deployment import Deployment
from studperf_assets.lib import models
from studperf_assets.lib.mlflow_story import (
    EXPERIMENT_KIND_TAG,
    INCIDENT_TAG,
    NEW_LABELS_TAG,
    TRIGGER_TAG,
)
from studperf_assets.lib.trained import MODEL_NAME
from studperf_assets.local.training_run import run_training
from studperf_assets.resources import resources_for

pytestmark = pytest.mark.integration


def test_definitions_load() -> None:
    definitions = make_definitions(Deployment())
    graph = definitions.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == {
        "raw_student_data",
        "student_features",
        "data_splits",
        "feature_scaler",
        "candidate_models",
        "best_model",
        "model_bundle",
        "production_model",
        "reference_data",
        "prediction_windows",
        "drift_report",
        "batch_metrics",
        "monitoring_daily",
    }
    assert definitions.resolve_job_def("training_job").name == "training_job"
    assert definitions.resolve_job_def("monitoring_job").partitions_def is not None
    daily = definitions.resolve_job_def("monitoring_daily_job")
    assert daily.partitions_def is not None
    assert definitions.resolve_schedule_def("monitoring_daily_schedule").job_name == daily.name
    for sensor in (
        "prediction_window_sensor",
        "late_labels_sensor",
        "monitoring_alert_sensor",
        "retraining_sensor",
    ):
        assert definitions.resolve_sensor_def(sensor).name == sensor
    checks = {c.name for c in graph.asset_check_keys}
    assert {"raw_label_consistency", "model_bundle_integrity", "model_bundle_vs_champion"} <= checks


def test_feature_assets_materialize_in_process(tmp_path: Path) -> None:
    result = materialize(
        [
            ingestion.raw_student_data,
            training.student_features,
            training.data_splits,
            training.feature_scaler,
        ],
        resources=resources_for(Deployment(home=tmp_path)),
    )
    assert result.success
    features = result.output_for_node("student_features")
    assert "Gender" not in features.columns and len(features) == 2392
    splits = result.output_for_node("data_splits")
    assert {k: len(v) for k, v in splits.items()} == {"train": 1674, "val": 359, "test": 359}
    scaler = result.output_for_node("feature_scaler")
    scaled = scaler.transform(splits["train"].iloc[:, :9].to_numpy())
    assert scaled[:, :4].min() == 0.0 and scaled[:, :4].max() == 1.0


def test_training_publishes_promotes_and_tracks(trained_home: Path) -> None:
    store = trained_home / "model_store"
    pointer = json.loads((store / "production.json").read_text())
    manifest = verify_bundle(store / "bundles" / pointer["version"])
    assert manifest.metrics["test"]["f1_macro"] >= 0.62
    assert manifest.model_family == "gpa_ordinal"

    uri = f"sqlite:///{trained_home / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    assert manifest.mlflow_run_id
    parent = mlflow.get_run(manifest.mlflow_run_id)
    assert parent.info.status == "FINISHED"
    children = mlflow.search_runs(
        experiment_ids=[parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
    )
    assert len(children) == len(list(models.search_space()))
    assert children["metrics.val_f1_macro"].notna().all()
    champion = MlflowClient(uri, registry_uri=uri).get_model_version_by_alias(
        MODEL_NAME, "champion"
    )
    assert champion.tags["bundle_version"] == manifest.version


def test_mlflow_names_a_manual_training_and_types_the_experiment(trained_home: Path) -> None:
    client = MlflowClient(f"sqlite:///{trained_home / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("studperf")
    assert experiment and experiment.tags[EXPERIMENT_KIND_TAG] == "custom_model_development"
    (parent,) = client.search_runs([experiment.experiment_id], "tags.studperf.trigger = 'manual'")
    assert parent.info.run_name == "training · manual"
    assert parent.inputs
    assert {i.dataset.name: i.tags[0].value for i in parent.inputs.dataset_inputs} == {
        "students-train": "training",
        "students-val": "validation",
        "students-test": "test",
    }
    assert parent.data.params["train_rows"] == "1674"
    assert parent.data.params["model_family"] == "gpa_ordinal"
    version = client.get_model_version(MODEL_NAME, "1")  # later tests train this home again
    assert version.tags["champion_check"] == "passed"
    assert version.tags["replaced"] == "none (first bundle)"
    # later tests of this module may have replaced it: its promotion's words stay
    assert "Promoted to champion; trigger: manual. First bundle" in str(version.description)


def test_mlflow_tells_why_a_retraining_was_promoted(tmp_path: Path) -> None:
    """A retraining the sensor started is named and tagged for its incident, and its
    model version carries the champion check's numbers: the champion re-scored on the
    same test split, which is what decided, not the champion's score at its own training."""
    instance = DagsterInstance.ephemeral()
    definitions = make_definitions(Deployment(home=tmp_path))
    first = run_training(instance=instance, definitions=definitions)
    assert first.success and first.production
    tags = {TRIGGER_TAG: "data_drift,prediction_drift@2026-12-01T14:42:00Z"}
    tags |= {INCIDENT_TAG: "7", NEW_LABELS_TAG: "400"}
    second = run_training(instance=instance, definitions=definitions, tags=tags)
    assert second.success and second.bundle, second.failures

    client = MlflowClient(uri := f"sqlite:///{tmp_path / 'mlflow.db'}", registry_uri=uri)
    run = client.get_run(second.bundle["mlflow_run_id"])
    assert run.info.run_name == "retraining · data_drift,prediction_drift · 2026-12-01T14:42:00Z"
    assert {k: v for k, v in run.data.tags.items() if k.startswith("studperf.t")} == {
        "studperf.trigger": "retraining",
        "studperf.trigger_checks": "data_drift,prediction_drift",
        "studperf.trigger_window": "2026-12-01T14:42:00Z",
    }
    assert (run.data.tags["studperf.incident"], run.data.tags["studperf.new_labels"]) == (
        "7",
        "400",
    )
    assert len(run.inputs.dataset_inputs if run.inputs else []) == 3

    version = client.get_model_version_by_alias(MODEL_NAME, "champion")
    assert str(version.version) == second.bundle["mlflow_model_version"]
    champion_f1 = float(version.tags["champion_check.champion_test_f1_macro"])
    assert version.tags["champion_check"] == "passed"
    assert version.tags["champion_check.champion"] == first.production["version"]
    assert float(version.tags["champion_check.candidate_test_f1_macro"]) == pytest.approx(
        second.bundle["test_f1_macro"], abs=5e-5
    )
    assert run.data.metrics["champion_test_f1_macro_rescored"] == pytest.approx(
        champion_f1, abs=5e-5
    )
    assert version.tags["trigger"] == (
        "retraining after data_drift,prediction_drift failed on window 2026-12-01T14:42:00Z "
        "(incident #7)"
    )
    assert str(version.description).startswith(
        f"Promoted to champion, replacing {first.production['version']}; trigger: retraining"
    )
    assert first.bundle is not None
    outgoing = client.get_model_version(MODEL_NAME, first.bundle["mlflow_model_version"])
    assert outgoing.tags["replaced_by"] == second.bundle["version"]  # no longer "Promoted"
    assert str(outgoing.description).startswith(
        f"Replaced as champion by {second.bundle['version']}. Before: Promoted to champion;"
    )
    assert "re-scored on the same test split" in str(version.description)


def test_champion_check_blocks_promotion(tmp_path: Path) -> None:
    instance = DagsterInstance.ephemeral()
    first = run_training(
        instance=instance,
        definitions=make_definitions(Deployment(home=tmp_path)),
    )
    assert first.success and first.production
    # A tolerance no model can meet: the new bundle is published but not promoted.
    strict = make_definitions(Deployment(home=tmp_path, training={"champion_tolerance": -1.0}))
    second = run_training(instance=instance, definitions=strict)
    assert not second.success
    assert second.checks["model_bundle_vs_champion"] is False
    assert second.bundle and second.bundle["version"] != first.production["version"]
    pointer = json.loads((tmp_path / "model_store" / "production.json").read_text())
    assert pointer["version"] == first.production["version"]
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    refused = MlflowClient(uri, registry_uri=uri).get_model_version(
        MODEL_NAME, second.bundle["mlflow_model_version"]
    )
    assert refused.tags["champion_check"] == "failed"
    assert refused.tags["champion_check.tolerance"] == "-1"
    assert str(refused.description).startswith("Champion check failed: candidate")
    assert "outside the tolerance of -1" in str(refused.description)


def test_an_unreadable_pointer_fails_training_before_it_publishes(tmp_path: Path) -> None:
    """Before, an unreadable production pointer (an empty one, as readers saw during a
    promotion) read as "no champion": the bundle passed its check as a first bundle and
    the pointer was overwritten blind. Now model_bundle fails on it, and nothing moves."""
    store = tmp_path / "model_store"
    store.mkdir()
    (store / "production.json").write_text("")
    outcome = run_training(
        instance=DagsterInstance.ephemeral(),
        definitions=make_definitions(Deployment(home=tmp_path)),
    )
    assert not outcome.success and outcome.bundle is None and outcome.production is None
    assert any(
        "step model_bundle failed" in f and "production.json: the pointer is not JSON" in f
        for f in outcome.failures
    ), outcome.failures
    assert (store / "production.json").read_text() == "" and not (store / "bundles").exists()


def test_bad_csv_fails_with_column_and_row_and_publishes_nothing(tmp_path: Path) -> None:
    from studperf_assets.lib.data import bundled_dataset_path

    frame = pd.read_csv(bundled_dataset_path())
    frame.loc[6, "Absences"] = 31
    source = tmp_path / "bad.csv"
    frame.to_csv(source, index=False)
    outcome = run_training(
        source=str(source),
        instance=DagsterInstance.ephemeral(),
        definitions=make_definitions(Deployment(home=tmp_path)),
    )
    assert not outcome.success
    assert any("column Absences: outside [0, 29] in row 7" in f for f in outcome.failures)
    assert not (tmp_path / "model_store").exists()
    assert not (tmp_path / "mlflow.db").exists()  # MLflow is only touched once training starts


def test_quality_floor_blocks_publishing_and_closes_the_mlflow_run(tmp_path: Path) -> None:
    outcome = run_training(
        instance=DagsterInstance.ephemeral(),
        definitions=make_definitions(
            Deployment(home=tmp_path, training={"quality_floor_f1": 0.99})
        ),
    )
    assert not outcome.success
    assert outcome.checks["best_model_quality_floor"] is False
    assert outcome.bundle is None and not (tmp_path / "model_store").exists()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = mlflow.search_runs(search_all_experiments=True)
    parents = runs[runs["tags.mlflow.parentRunId"].isna()]
    assert parents["status"].tolist() == ["FAILED"]  # closed, not left RUNNING
    assert set(runs["status"]) == {"FINISHED", "FAILED"}


def test_materialization_metadata_is_useful(tmp_path: Path) -> None:
    instance = DagsterInstance.ephemeral()
    outcome = run_training(
        instance=instance,
        definitions=make_definitions(Deployment(home=tmp_path)),
    )
    assert outcome.success

    def metadata(key: str) -> dict[str, Any]:
        event = instance.get_latest_materialization_event(AssetKey(key))
        assert event and event.asset_materialization
        return {k: v.value for k, v in event.asset_materialization.metadata.items()}

    assert float(metadata("best_model")["test_f1_macro"]) >= 0.62
    assert "gpa_ordinal" in str(metadata("candidate_models")["leaderboard"])
    assert metadata("raw_student_data")["source_sha256"] == (
        "211b5cc8fb656bcaf96f6badefd2bd0f2700f8c329f7666a8c93cacd68ce8ce9"
    )


LOAD_CHAMPION = """
import json, sys
from pathlib import Path
import mlflow, pandas as pd
uri, csv = sys.argv[1], sys.argv[2]
mlflow.set_tracking_uri(uri)
mlflow.set_registry_uri(uri)
model = mlflow.pyfunc.load_model("models:/studperf-grade-class@champion")
features = [c["name"] for c in model.metadata.signature.inputs.to_dict()]
rows = pd.read_csv(csv).head(20)[features]
folder = Path(mlflow.artifacts.download_artifacts("models:/studperf-grade-class@champion"))
champion = mlflow.MlflowClient().get_model_version_by_alias("studperf-grade-class", "champion")
try:
    model.predict(rows.astype("float64"))
    floats = "accepted"
except mlflow.exceptions.MlflowException as error:
    floats = str(error)
print(json.dumps({
    "labels": [int(x) for x in model.predict(rows)],
    "floats": floats,
    "features": features,
    "requirements": (folder / "requirements.txt").read_text(),
    "files": sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()),
    "run_artifacts": [a.path for a in mlflow.MlflowClient().list_artifacts(champion.run_id)],
}))
"""


def test_the_registered_champion_stands_alone(trained_home: Path, tmp_path: Path) -> None:
    """Loaded by MLflow alone, in a fresh process: no studperf package, its own code."""
    import subprocess
    import sys

    from lambda_service.predictor import Predictor
    from lambda_service.schema import FEATURE_NAMES
    from studperf_assets.lib.data import bundled_dataset_path

    uri = f"sqlite:///{trained_home / 'mlflow.db'}"
    result = subprocess.run(
        [sys.executable, "-c", LOAD_CHAMPION, uri, str(bundled_dataset_path())],
        cwd=tmp_path,  # not the repository: the model must bring its code
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["features"] == list(FEATURE_NAMES)  # the signature names the inputs
    store = trained_home / "model_store"
    pointer = json.loads((store / "production.json").read_text())
    predictor = Predictor.from_folder(store / "bundles" / pointer["version"])
    rows = pd.read_csv(bundled_dataset_path()).head(20)[list(FEATURE_NAMES)]
    labels, _ = predictor.predict_matrix(rows.to_numpy())
    assert loaded["labels"] == labels.tolist()
    # MLflow enforces the signature: integer columns refuse float64 (docs/training.md#the-bundle
    # says to cast)
    assert "float64 to int64" in loaded["floats"]
    assert "studperf" not in loaded["requirements"] and "scikit-learn==" in loaded["requirements"]
    assert "input_example.json" in loaded["files"]
    assert "code/studperf_assets/lib/models.py" in loaded["files"]  # its code, with it
    assert "test_confusion_matrix.png" in loaded["run_artifacts"]


@pytest.mark.parametrize("family", sorted({spec.family for spec in models.search_space()}))
def test_training_judges_a_winner_of_every_family(
    family: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whichever family wins, its model is handed between steps, bundled, reloaded and
    judged by every check: the search forced to one family publishes that family."""
    search_space = models.search_space

    def one_family(**kwargs: Any) -> Any:
        return (spec for spec in search_space(**kwargs) if spec.family == family)

    monkeypatch.setattr(models, "search_space", one_family)
    outcome = run_training(
        instance=DagsterInstance.ephemeral(),
        definitions=make_definitions(Deployment(home=tmp_path)),
    )
    assert outcome.bundle, outcome.failures
    assert outcome.bundle["model_family"] == family
    judged = ("best_model_quality_floor", "model_bundle_integrity", "model_bundle_vs_champion")
    assert {check: outcome.checks.get(check) for check in judged} == dict.fromkeys(judged, True)
    assert outcome.success and outcome.production
