"""Every training check passes on good data and fails on bad data."""

import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pandas as pd
import pytest
from dagster import AssetCheckResult, Output, build_asset_context

from lambda_service.bundle import ONNX_FILE, Manifest
from lambda_service.pointers import PointerMoved
from studperf_assets.assets import ingestion, publishing, training
from studperf_assets.lib import data
from studperf_assets.lib.trained import TrainedModel
from studperf_assets.resources.model_store import LocalModelStore
from studperf_assets.resources.training_settings import TrainingSettings
from studperf_assets_tests.bundle_edits import renamed, tampered, version

# The summaries here name no MLflow model version: the champion check writes nothing there.
NO_MLFLOW = SimpleNamespace(tracking_uri=None)


def champion_check(
    summary: dict[str, Any], store: LocalModelStore, settings: TrainingSettings
) -> AssetCheckResult:
    return run(publishing.model_bundle_vs_champion, summary, _splits(), store, settings, NO_MLFLOW)


def run(check: Any, *args: Any) -> AssetCheckResult:
    """Invoke an asset check directly, as Dagster would, and type its result."""
    return cast(AssetCheckResult, check(*args))


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    return data.parse_raw_csv(data.bundled_dataset_path().read_bytes())


@pytest.fixture
def settings(tmp_path: Path) -> TrainingSettings:
    return TrainingSettings(work_dir=str(tmp_path / "work"))


def test_schema_check(raw: pd.DataFrame) -> None:
    assert run(ingestion.raw_schema_and_ranges, raw).passed
    bad = raw.copy()
    bad.loc[0, "Absences"] = 99
    result = run(ingestion.raw_schema_and_ranges, bad)
    assert not result.passed
    assert "Absences" in str(result.metadata["problems"].value)


def test_null_check(raw: pd.DataFrame) -> None:
    assert run(ingestion.raw_no_nulls, raw).passed
    bad = raw.astype({"GPA": float}).copy()
    bad.loc[[1, 2], "GPA"] = float("nan")
    result = run(ingestion.raw_no_nulls, bad)
    assert not result.passed and result.metadata["null_counts"].value == {"GPA": 2}


def test_duplicate_id_check(raw: pd.DataFrame) -> None:
    assert run(ingestion.raw_unique_student_ids, raw).passed
    result = run(ingestion.raw_unique_student_ids, pd.concat([raw, raw.head(3)]))
    assert not result.passed and result.metadata["duplicates"].value == 3


def test_class_balance_check(raw: pd.DataFrame, settings: TrainingSettings) -> None:
    assert run(ingestion.raw_class_balance, raw, settings).passed
    without_a = raw[raw["GradeClass"] != 0]
    assert not run(ingestion.raw_class_balance, without_a, settings).passed


def test_label_consistency_check(raw: pd.DataFrame, settings: TrainingSettings) -> None:
    result = run(ingestion.raw_label_consistency, raw, settings)
    assert result.passed and result.metadata["disagreeing_rows"].value == 168
    noisy = raw.copy()
    noisy.loc[: len(raw) // 4, "GradeClass"] = (noisy.loc[: len(raw) // 4, "GradeClass"] + 1) % 5
    assert not run(ingestion.raw_label_consistency, noisy, settings).passed


def _trained(f1: float) -> TrainedModel:
    metrics = {"f1_macro": f1, "accuracy": f1, "per_class": {}, "confusion_matrix": []}
    return TrainedModel(pipeline=None, family="x", params={}, metrics={"val": metrics})


def test_quality_floor_check(settings: TrainingSettings) -> None:
    assert run(training.best_model_quality_floor, _trained(0.63), settings).passed
    assert not run(training.best_model_quality_floor, _trained(0.40), settings).passed


def _splits() -> dict[str, pd.DataFrame]:
    raw = data.parse_raw_csv(data.bundled_dataset_path().read_bytes())
    return data.reference_split(data.select_features(raw))


def _published(
    trained_bundle: tuple[Path, Manifest], root: Path
) -> tuple[LocalModelStore, dict[str, Any]]:
    folder, manifest = trained_bundle
    store = LocalModelStore(root=str(root))
    store.publish(folder, manifest.version)
    summary = {
        "version": manifest.version,
        "test_f1_macro": manifest.metrics["test"]["f1_macro"],
        "champion": store.production_version(),  # as model_bundle records it
    }
    return store, summary


def test_integrity_check(
    trained_bundle: tuple[Path, Manifest], tmp_path: Path, settings: TrainingSettings
) -> None:
    store, summary = _published(trained_bundle, tmp_path / "store")
    result = run(publishing.model_bundle_integrity, summary, _splits(), store, settings)
    assert result.passed and result.metadata["label_mismatches"].value == 0
    stored = Path(store.bundle_uri(summary["version"]))
    (stored / ONNX_FILE).write_bytes(b"garbage")
    failed = run(publishing.model_bundle_integrity, summary, _splits(), store, settings)
    assert not failed.passed
    assert "corrupt" in str(failed.metadata["error"].value)


def test_integrity_check_runs_the_smoke_test(
    trained_bundle: tuple[Path, Manifest], tmp_path: Path, settings: TrainingSettings
) -> None:
    """The field case: a hash-valid bundle whose ONNX label leaves 0..4 only where
    StudyTimeWeekly > 19.99, which no row of the data reaches: ONNX and skops agree on
    every row, and only the smoke set's extremes show it. It was promoted."""
    folder, _ = trained_bundle
    store = LocalModelStore(root=str(tmp_path / "store"))
    bad = tampered(folder, tmp_path / "bad", version(1), "label", "Add", 5, above_study_time=19.99)
    store.publish(bad, version(1))
    summary = {"version": version(1), "test_f1_macro": 0.7, "champion": None}
    result = run(publishing.model_bundle_integrity, summary, _splits(), store, settings)
    assert not result.passed
    error = str(result.metadata["error"].value)
    assert f"bundle {version(1)} fails the smoke test" in error and "outside 0..4" in error


def test_integrity_check_holds_the_output_on_the_data_to_the_same_rules(
    trained_bundle: tuple[Path, Manifest], tmp_path: Path, settings: TrainingSettings
) -> None:
    """NaN probabilities only where 19 < StudyTimeWeekly < 19.99: no smoke row is there (the
    bundle loads), 94 rows of the data are, and their labels still equal skops'."""
    folder, _ = trained_bundle
    store = LocalModelStore(root=str(tmp_path / "store"))
    bad = tampered(
        folder, tmp_path / "bad", version(1), "probabilities", "Add", float("nan"), 19.0, 19.99
    )
    store.publish(bad, version(1))
    summary = {"version": version(1), "test_f1_macro": 0.7, "champion": None}
    result = run(publishing.model_bundle_integrity, summary, _splits(), store, settings)
    assert not result.passed
    error = str(result.metadata["error"].value)
    assert "on 2392 data rows: probabilities not finite (NaN or infinite) in 94 rows" in error


def _summary(store: LocalModelStore, version: str, f1: float) -> dict[str, Any]:
    """What model_bundle returns: the bundle and the champion it was published against."""
    return {"version": version, "test_f1_macro": f1, "champion": store.production_version()}


def test_champion_check(
    trained_bundle: tuple[Path, Manifest], tmp_path: Path, settings: TrainingSettings
) -> None:
    store, champion = _published(trained_bundle, tmp_path / "store")
    first = run(
        publishing.model_bundle_vs_champion, champion, _splits(), store, settings, NO_MLFLOW
    )
    assert first.passed  # no champion yet: the first bundle is promoted
    assert first.metadata["champion"].value == "none (first bundle)"
    store.promote(champion["version"], {}, replacing=None)
    f1 = champion["test_f1_macro"]
    equal = _summary(store, version(1), f1)
    assert run(
        publishing.model_bundle_vs_champion, equal, _splits(), store, settings, NO_MLFLOW
    ).passed
    within = _summary(store, version(1), f1 - 0.005)
    assert run(
        publishing.model_bundle_vs_champion, within, _splits(), store, settings, NO_MLFLOW
    ).passed
    worse = _summary(store, version(1), f1 - 0.05)
    result = champion_check(worse, store, settings)
    assert not result.passed
    assert result.metadata["champion_test_f1"].value == pytest.approx(f1)


def test_corrupt_champion_is_not_silently_ignored(
    trained_bundle: tuple[Path, Manifest], tmp_path: Path, settings: TrainingSettings
) -> None:
    store, champion = _published(trained_bundle, tmp_path / "store")
    store.promote(champion["version"], {}, replacing=None)
    shutil.rmtree(store.bundle_uri(champion["version"]))
    challenger = _summary(store, version(1), 0.9)
    result = run(
        publishing.model_bundle_vs_champion, challenger, _splits(), store, settings, NO_MLFLOW
    )
    assert not result.passed
    assert champion["version"] in str(result.metadata["error"].value)


def test_champion_check_without_a_recorded_champion_fails(
    trained_bundle: tuple[Path, Manifest], tmp_path: Path, settings: TrainingSettings
) -> None:
    """A bundle summary that does not say what it was published against is not a first
    bundle: nothing says there was no champion."""
    store, _ = _published(trained_bundle, tmp_path / "store")
    unknown = {"version": version(1), "test_f1_macro": 0.9}
    result = run(
        publishing.model_bundle_vs_champion, unknown, _splits(), store, settings, NO_MLFLOW
    )
    assert not result.passed and "records no champion" in str(result.metadata["error"].value)


def _promote(summary: dict[str, Any], store: LocalModelStore) -> dict[str, Any]:
    """production_model as Dagster runs it (no MLflow model version: no alias to move)."""
    output = publishing.production_model(
        build_asset_context(),
        model_bundle=summary,
        model_store=store,
        training_settings=TrainingSettings(),
        mlflow=None,
    )
    return cast(Output[dict[str, Any]], output).value


def test_two_trainings_checked_against_the_same_champion(
    trained_bundle: tuple[Path, Manifest], tmp_path: Path, settings: TrainingSettings
) -> None:
    """Two trainings publish against champion C, both pass the check against C; the better
    one promotes first. The worse one used to overwrite it (the last promotion won whatever
    its score); now its promotion fails, naming both versions, and changes nothing."""
    folder, manifest = trained_bundle
    store, champion = _published(trained_bundle, tmp_path / "store")
    store.promote(champion["version"], {}, replacing=None)
    f1 = champion["test_f1_macro"]
    for n in (1, 2):
        store.publish(renamed(folder, tmp_path / str(n), version(n)), version(n))
    better, worse = _summary(store, version(1), f1 + 0.03), _summary(store, version(2), f1 - 0.01)
    for summary in (better, worse):
        check = run(
            publishing.model_bundle_vs_champion, summary, _splits(), store, settings, NO_MLFLOW
        )
        assert check.passed and check.metadata["champion"].value == manifest.version
    assert _promote(better, store)["version"] == version(1)
    pointer = (tmp_path / "store" / "production.json").read_bytes()
    with pytest.raises(PointerMoved) as lost:
        _promote(worse, store)
    message = str(lost.value)
    assert f"{version(2)} not promoted: it was checked against {manifest.version}" in message
    assert f"now names {version(1)}" in message
    assert (tmp_path / "store" / "production.json").read_bytes() == pointer
