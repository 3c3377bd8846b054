import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import skops.io as sio
from sklearn.base import BaseEstimator
from sklearn.linear_model import LinearRegression

from lambda_service.bundle import MANIFEST_FILE, ONNX_FILE, sha256_file, verify_bundle
from lambda_service.predictor import Predictor
from studperf_assets.lib import data, models
from studperf_assets.lib.bundle_builder import serving_mismatches, write_bundle


@pytest.fixture(scope="module")
def splits() -> dict:
    raw = data.parse_raw_csv(data.bundled_dataset_path().read_bytes())
    return data.reference_split(data.select_features(raw))


def _fit(spec: models.CandidateSpec, splits: dict):
    scaler = models.make_scaler().fit(data.feature_matrix(splits["train"]))
    train = splits["train"]
    model = models.fit_candidate(
        spec,
        scaler.transform(data.feature_matrix(train)),
        train["GradeClass"].to_numpy(),
        train["GPA"].to_numpy(),
    )
    return models.make_pipeline_for(scaler, model)


def test_ordinal_probabilities_follow_the_gpa_bands() -> None:
    X = np.linspace(0, 1, 200).reshape(-1, 1)
    gpa = 4.0 * X[:, 0]
    model = models.GPAOrdinalClassifier(LinearRegression()).fit(X, None, gpa=gpa)
    probabilities = model.predict_proba(np.array([[0.95], [0.8], [0.1]]))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    # GPA 3.8 -> A, 3.2 -> B, 0.4 -> F
    assert model.predict(np.array([[0.95], [0.8], [0.1]])).tolist() == [0, 1, 4]
    assert probabilities[0, 0] > 0.99


def test_ordinal_needs_gpa() -> None:
    with pytest.raises(ValueError, match="needs the training GPA"):
        models.GPAOrdinalClassifier().fit(np.zeros((3, 1)), np.zeros(3))


def test_search_space_is_distinct_seeded_and_sized_by_its_sample() -> None:
    """Every candidate is a model of its own (a duplicate would waste a fit and tie the
    ranking), the same seed gives the same search, and the tree sample is what was asked."""
    first = list(models.search_space(seed=3, boosting_samples=6))
    names = [spec.name for spec in first]
    assert len(set(names)) == len(names)
    assert [s.name for s in models.search_space(seed=3, boosting_samples=6)] == names
    trees = [s for s in first if s.family == "hist_gradient_boosting"]
    assert len(trees) == 6
    other_seed = [s.params for s in models.search_space(seed=4, boosting_samples=6)]
    assert [s.params for s in trees] != other_seed[-6:]
    for spec in first:
        assert spec.build().get_params()  # each builds an estimator of its family


@pytest.mark.parametrize(
    "spec",
    [
        models.CandidateSpec("gpa_ordinal", {"degree": 1, "interaction_only": False}),
        models.CandidateSpec("gpa_ordinal", {"degree": 2, "interaction_only": True}),
        models.CandidateSpec("logistic_regression", {"C": 10.0, "class_weight": None}),
    ],
    ids=lambda s: s.name,
)
def test_onnx_form_predicts_like_the_skops_pipeline(
    spec: models.CandidateSpec, splits: dict, tmp_path: Path
) -> None:
    pipeline = _fit(spec, splits)
    write_bundle(
        pipeline,
        tmp_path,
        model_family=spec.family,
        params=spec.params,
        metrics={},
        training_data_sha256="0" * 64,
        mlflow_run_id=None,
    )
    X = data.feature_matrix(splits["val"])
    mismatches, max_diff = serving_mismatches(tmp_path, X)
    assert mismatches == 0
    assert max_diff < 1e-5


def test_serving_mismatch_detects_a_different_onnx(splits: dict, tmp_path: Path) -> None:
    good = _fit(
        models.CandidateSpec("gpa_ordinal", {"degree": 1, "interaction_only": False}), splits
    )
    other = _fit(
        models.CandidateSpec("logistic_regression", {"C": 0.1, "class_weight": None}), splits
    )
    for name, pipeline in (("good", good), ("other", other)):
        write_bundle(
            pipeline,
            tmp_path / name,
            model_family="x",
            params={},
            metrics={},
            training_data_sha256="0" * 64,
            mlflow_run_id=None,
        )
    # Swap in another model's ONNX and re-hash it: the files verify, the predictions differ.
    good_dir = tmp_path / "good"
    (good_dir / ONNX_FILE).write_bytes((tmp_path / "other" / ONNX_FILE).read_bytes())
    manifest = json.loads((good_dir / MANIFEST_FILE).read_text())
    manifest["files"][ONNX_FILE] = sha256_file(good_dir / ONNX_FILE)
    (good_dir / MANIFEST_FILE).write_text(json.dumps(manifest))
    verify_bundle(good_dir)  # hashes agree
    mismatches, _ = serving_mismatches(good_dir, data.feature_matrix(splits["test"]))
    assert mismatches > 0


class Stranger(BaseEstimator):
    """A type studperf has never heard of: loading it must be refused."""


def test_load_skops_refuses_unknown_types(tmp_path: Path) -> None:
    path = tmp_path / "stranger.skops"
    sio.dump(Stranger(), path)
    with pytest.raises(models.UntrustedModelFile, match="unknown types"):
        models.load_skops(path)


def test_predictor_scores_a_batch_in_one_call(splits: dict, tmp_path: Path) -> None:
    pipeline = _fit(
        models.CandidateSpec("gpa_ordinal", {"degree": 1, "interaction_only": False}), splits
    )
    write_bundle(
        pipeline,
        tmp_path,
        model_family="gpa_ordinal",
        params={},
        metrics={},
        training_data_sha256="0" * 64,
        mlflow_run_id=None,
    )
    predictor = Predictor.from_folder(tmp_path)
    session, calls = predictor._session, []

    class CountingSession:  # the real ONNX session, its calls counted
        def run(self, *args: Any, **kwargs: Any) -> Any:
            calls.append(args)
            return session.run(*args, **kwargs)

    predictor._session = CountingSession()
    labels, probabilities = predictor.predict_matrix(data.feature_matrix(splits["test"]))
    assert len(calls) == 1  # 359 rows, one inference call
    assert labels.shape == (359,) and probabilities.shape == (359, 5)
    assert labels.tolist() == pipeline.predict(data.feature_matrix(splits["test"])).tolist()
    empty_labels, empty_probabilities = predictor.predict_matrix(np.empty((0, 9)))
    assert empty_labels.shape == (0,) and empty_probabilities.shape == (0, 5)


def test_native_threads_caps_openmp_while_fitting_and_restores_it(splits: dict) -> None:
    """Gradient boosting's OpenMP pool is one thread inside, whatever it was outside."""
    from threadpoolctl import threadpool_info, threadpool_limits

    def openmp_threads() -> set[int]:
        return {p["num_threads"] for p in threadpool_info() if p["user_api"] == "openmp"}

    with threadpool_limits(limits=2, user_api="openmp"):  # as on an idle 2-core machine
        assert openmp_threads() == {2}
        with models.native_threads(1):
            assert openmp_threads() == {1}
            spec = models.CandidateSpec("hist_gradient_boosting", {"max_iter": 20})
            pipeline = _fit(spec, splits)
            X = data.feature_matrix(splits["test"])
            assert pipeline.predict(X).shape == (len(X),)
        assert openmp_threads() == {2}


SEARCHED_FAMILIES = sorted({spec.family for spec in models.search_space()})


@pytest.fixture(scope="module")
def candidates(splits: dict) -> list[tuple[models.CandidateSpec, Any]]:
    """Every candidate of a search a little wider than the default, fitted (one native
    thread: OpenMP spinning beside other processes slows the boosting fits tenfold)."""
    with models.native_threads(1):
        return [(spec, _fit(spec, splits)) for spec in models.search_space(boosting_samples=6)]


@pytest.mark.parametrize("family", SEARCHED_FAMILIES)
def test_every_family_the_search_can_pick_reloads_from_its_bundle(
    family: str,
    candidates: list[tuple[models.CandidateSpec, Any]],
    splits: dict,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each candidate of the family, bundled with write_bundle and reloaded by every loader
    a bundle meets: the bundle's skops file, its ONNX form (the Lambda's Predictor), the IO
    manager between steps, and MLflow's skops flavour. All predict alike."""
    import mlflow.sklearn
    from dagster import AssetKey, build_input_context, build_output_context

    from studperf_assets.lib.bundle_builder import load_pipeline
    from studperf_assets.lib.trained import TrainedModel
    from studperf_assets.resources.io_manager import SafeIOManager
    from studperf_assets.resources.object_store import LocalObjectStore

    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")  # MLflow's own gate
    X = data.feature_matrix(splits["test"])
    io_manager = SafeIOManager(store=LocalObjectStore(root=str(tmp_path / "io")))
    family_candidates = [(spec, p) for spec, p in candidates if spec.family == family]
    assert family_candidates
    with models.native_threads(1):  # boosting predicts with OpenMP too: no spinning
        for number, (spec, pipeline) in enumerate(family_candidates):
            folder = tmp_path / f"bundle-{number}"
            write_bundle(
                pipeline,
                folder,
                model_family=family,
                params=spec.params,
                metrics={},
                training_data_sha256="0" * 64,
                mlflow_run_id=None,
            )
            labels, probabilities = pipeline.predict(X), pipeline.predict_proba(X)

            reloaded = load_pipeline(folder / "model.skops")
            np.testing.assert_array_equal(reloaded.predict(X), labels, err_msg=spec.name)
            np.testing.assert_array_equal(reloaded.predict_proba(X), probabilities)

            onnx_labels, onnx_probabilities = Predictor.from_folder(folder).predict_matrix(X)
            np.testing.assert_array_equal(onnx_labels, labels, err_msg=spec.name)
            np.testing.assert_allclose(onnx_probabilities, probabilities, atol=1e-5)

            key = AssetKey(["best_model", str(number)])
            io_manager.handle_output(
                build_output_context(asset_key=key), TrainedModel(pipeline, family, {}, {})
            )
            between_steps = io_manager.load_input(build_input_context(asset_key=key))
            np.testing.assert_array_equal(between_steps.pipeline.predict_proba(X), probabilities)

            mlflow_path = tmp_path / f"mlflow-{number}"
            mlflow.sklearn.save_model(  # as model_bundle logs it; MLflow reloads it to check
                pipeline,
                str(mlflow_path),
                serialization_format="skops",
                skops_trusted_types=list(models.TRUSTED_TYPES),
                pip_requirements=[],  # not inferred: that loads the model in a subprocess
            )
            from_mlflow = mlflow.sklearn.load_model(str(mlflow_path))
            np.testing.assert_array_equal(from_mlflow.predict_proba(X), probabilities)


def test_trusted_types_are_exactly_what_the_families_need(
    candidates: list[tuple[models.CandidateSpec, Any]],
) -> None:
    """Nothing trusted that no family uses: the allow-list grows only for a reason."""
    needed: dict[str, set[str]] = {family: set() for family in SEARCHED_FAMILIES}
    for spec, pipeline in candidates:
        needed[spec.family] |= set(sio.get_untrusted_types(data=sio.dumps(pipeline)))
    assert {f: set(t) for f, t in models.FAMILY_TRUSTED_TYPES.items()} == needed
    assert set(models.TRUSTED_TYPES) == set().union(*needed.values())
