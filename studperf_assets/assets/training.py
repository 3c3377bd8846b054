"""Training: features -> reference split -> scaler -> tuned candidates -> best model.

scikit-learn is imported inside the steps (``lib.models``), never when the code location
loads: every sensor tick and run process pays for what this module imports.
"""

import json
from typing import Any

import numpy as np
import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    MetadataValue,
    Output,
    ResourceParam,
    asset,
    asset_check,
)

from lambda_service.schema import FEATURE_NAMES, SCALED_FEATURES
from studperf_assets.constants import TRAINING_GROUP
from studperf_assets.lib import data
from studperf_assets.lib.trained import TrainedModel
from studperf_assets.resources.training_settings import TrainingSettings

GROUP = TRAINING_GROUP
# A fitted sklearn ColumnTransformer; named loosely so loading the code location stays light.
Scaler = Any


@asset(group_name=GROUP, kinds={"pandas"})
def student_features(raw_student_data: pd.DataFrame) -> Output[pd.DataFrame]:
    """The nine behavioural features, GPA (training only) and GradeClass.

    StudentID, Age, Gender and Ethnicity are dropped: a grade prediction must not depend
    on who the student is.
    """
    features = data.select_features(raw_student_data)
    return Output(
        features,
        metadata={
            "rows": len(features),
            "dropped_columns": MetadataValue.json(list(data.DROPPED_COLUMNS)),
            "features": MetadataValue.json(list(FEATURE_NAMES)),
            "label_disagreements": int((~data.label_consistent(features)).sum()),
        },
    )


@asset(group_name=GROUP, kinds={"pandas"})
def data_splits(student_features: pd.DataFrame) -> Output[dict[str, pd.DataFrame]]:
    """The reference project's exact 70/15/15 stratified split, so scores compare."""
    splits = data.reference_split(student_features)
    return Output(
        splits,
        metadata={
            **{f"{name}_rows": len(frame) for name, frame in splits.items()},
            "class_counts": MetadataValue.json(
                {
                    name: {
                        str(k): int(v)
                        for k, v in frame[data.TARGET].value_counts().sort_index().items()
                    }
                    for name, frame in splits.items()
                }
            ),
            "train_sha256": data.dataset_sha256(splits["train"]),
        },
    )


@asset(group_name=GROUP, kinds={"sklearn"})
def feature_scaler(data_splits: dict[str, pd.DataFrame]) -> Output[Scaler]:
    """MinMaxScaler for the ordinal and continuous features, fitted on train only."""
    from studperf_assets.lib import models

    scaler = models.make_scaler().fit(data.feature_matrix(data_splits["train"]))
    minmax = scaler.named_transformers_["minmax"]
    return Output(
        scaler,
        metadata={
            "scaled_features": MetadataValue.json(list(SCALED_FEATURES)),
            "train_min": MetadataValue.json(
                dict(zip(SCALED_FEATURES, minmax.data_min_.tolist(), strict=True))
            ),
            "train_max": MetadataValue.json(
                dict(zip(SCALED_FEATURES, minmax.data_max_.tolist(), strict=True))
            ),
        },
    )


def _training_arrays(
    splits: dict[str, pd.DataFrame], scaler: Scaler
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    return {
        name: (
            scaler.transform(data.feature_matrix(frame)),
            frame[data.TARGET].to_numpy(),
            frame[data.GPA].to_numpy(),
        )
        for name, frame in splits.items()
    }


def _fit_on_train(spec: Any, splits: dict[str, pd.DataFrame], arrays: dict[str, Any]) -> Any:
    """Fit one candidate (a ``models.CandidateSpec``); classifiers skip label-noise rows
    (GradeClass contradicting GPA)."""
    from studperf_assets.lib import models

    X, y, gpa = arrays["train"]
    keep = (
        np.ones(len(y), dtype=bool)
        if spec.uses_gpa
        else data.label_consistent(splits["train"]).to_numpy()
    )
    return models.fit_candidate(spec, X[keep], y[keep], gpa[keep])


@asset(group_name=GROUP, kinds={"sklearn", "mlflow"})
def candidate_models(
    context: AssetExecutionContext,
    data_splits: dict[str, pd.DataFrame],
    feature_scaler: Scaler,
    training_settings: TrainingSettings,
    mlflow: ResourceParam[Any],  # dagster-mlflow's MlFlow: the mlflow API, run attached
) -> Output[pd.DataFrame]:
    """Every candidate of the search, ranked by 5-fold cross-validated f1-macro over train +
    val (steadier than the 359-row validation split alone, which is still scored and
    logged); one nested MLflow run each.

    The leaderboard is the output: fitted models are cheap and deterministic to refit, so
    only the winner is kept (by ``best_model``).
    """
    from studperf_assets.lib import models

    arrays = _training_arrays(data_splits, feature_scaler)
    X_val, y_val, _ = arrays["val"]
    pool = pd.concat([data_splits["train"], data_splits["val"]])
    X_pool, y_pool = data.feature_matrix(pool), pool[data.TARGET].to_numpy()
    gpa_pool, ok_pool = pool[data.GPA].to_numpy(), data.label_consistent(pool).to_numpy()
    parent = mlflow.active_run()
    _log_training_data(mlflow, data_splits)
    rows = []
    specs = list(models.search_space(boosting_samples=training_settings.boosting_samples))
    # The search's cost: candidates x (folds + 1) fits, each linear in rows (bounded by
    # TrainingSettings.max_training_rows where the rows are assembled).
    fits = len(specs) * (models.CV_FOLDS + 1)
    context.log.info(
        f"{len(specs)} candidates, {fits} fits: {models.CV_FOLDS} folds over {len(pool)} rows "
        f"and one on {len(data_splits['train'])} each"
    )
    for spec in _progress(specs, "candidates"):
        with models.native_threads(training_settings.native_threads):
            model = _fit_on_train(spec, data_splits, arrays)
            metrics = models.classification_metrics(y_val, model.predict(X_val))
            cv_mean, cv_std = models.cross_validated_f1(spec, X_pool, y_pool, gpa_pool, ok_pool)
        with mlflow.start_run(run_name=spec.name, nested=True) as run:
            # Not "dagster_run_id": dagster-mlflow finds the parent run by that tag.
            mlflow.set_tags({"family": spec.family, "studperf.dagster_run": context.run_id})
            mlflow.log_params({**spec.params, **models.tuned_params(model), "family": spec.family})
            mlflow.log_metrics(
                {
                    **models.flat_metrics(metrics, "val"),
                    "cv_f1_macro": cv_mean,
                    "cv_f1_macro_std": cv_std,
                }
            )
            mlflow.log_dict(
                {"labels": list(models.GRADE_LETTERS), "matrix": metrics["confusion_matrix"]},
                "val_confusion_matrix.json",
            )
        rows.append(
            {
                "candidate": spec.name,
                "family": spec.family,
                "params": json.dumps(spec.params, sort_keys=True),
                "cv_f1_macro": cv_mean,
                "cv_f1_macro_std": cv_std,
                "val_f1_macro": metrics["f1_macro"],
                "val_accuracy": metrics["accuracy"],
                "mlflow_run_id": run.info.run_id,
            }
        )
        context.log.info(
            f"{spec.name}: cv f1-macro {cv_mean:.4f} ± {cv_std:.3f}, val {metrics['f1_macro']:.4f}"
        )
    board = pd.DataFrame(rows).sort_values("cv_f1_macro", ascending=False, kind="stable")
    board = board.reset_index(drop=True)
    return Output(
        board,
        metadata={
            "candidates": len(board),
            "fits": fits,
            "cv_pool_rows": len(pool),
            "best_candidate": str(board["candidate"].iloc[0]),
            "best_cv_f1_macro": float(board["cv_f1_macro"].iloc[0]),
            "best_val_f1_macro": float(board["val_f1_macro"].iloc[0]),
            "mlflow_parent_run_id": parent.info.run_id if parent else "",
            "leaderboard": MetadataValue.md(
                board.drop(columns=["mlflow_run_id"]).to_markdown(index=False, floatfmt=".4f")
            ),
        },
    )


def _log_training_data(mlflow: Any, splits: dict[str, pd.DataFrame]) -> None:
    """The three splits as the run's datasets (schema, digest, row count in MLflow's
    Datasets column), so a retraining run shows it trained on more rows than the file."""
    from mlflow.data.pandas_dataset import from_pandas

    contexts = {"train": "training", "val": "validation", "test": "test"}
    for split, frame in splits.items():
        dataset = from_pandas(frame, targets=data.TARGET, name=f"students-{split}")
        mlflow.log_input(dataset, context=contexts.get(split, split))
    mlflow.log_params({f"{split}_rows": len(frame) for split, frame in splits.items()})


def _progress(items: list[Any], what: str) -> Any:
    """A progress bar when a person is watching (``studperf train`` on a terminal)."""
    from studperf_assets.lib.progress import progress_enabled

    if not progress_enabled():
        return items
    from tqdm import tqdm

    return tqdm(items, desc=what, unit=" model", leave=False)


@asset(group_name=GROUP, kinds={"sklearn"})
def best_model(
    context: AssetExecutionContext,
    candidate_models: pd.DataFrame,
    data_splits: dict[str, pd.DataFrame],
    feature_scaler: Scaler,
    training_settings: TrainingSettings,
) -> Output[TrainedModel]:
    """The top candidate (cross-validated f1-macro) refitted on train as one Pipeline;
    validation and test scored once, here."""
    from studperf_assets.lib import models

    top = candidate_models.iloc[0]
    spec = models.CandidateSpec(str(top["family"]), json.loads(str(top["params"])))
    arrays = _training_arrays(data_splits, feature_scaler)
    with models.native_threads(training_settings.native_threads):  # boosting predicts with OpenMP
        model = _fit_on_train(spec, data_splits, arrays)
        pipeline = models.make_pipeline_for(feature_scaler, model)
        metrics = {
            split: models.classification_metrics(
                data_splits[split][data.TARGET].to_numpy(),
                pipeline.predict(data.feature_matrix(data_splits[split])),
            )
            for split in ("val", "test")
        }
    trained = TrainedModel(
        pipeline,
        spec.family,
        {
            **spec.params,
            **models.tuned_params(model),
            "candidate_run_id": str(top["mlflow_run_id"]),
        },
        metrics,
    )
    context.log.info(
        f"best: {spec.name} val f1-macro {metrics['val']['f1_macro']:.4f}, "
        f"test f1-macro {metrics['test']['f1_macro']:.4f}"
    )
    return Output(
        trained,
        metadata={
            "family": spec.family,
            "params": MetadataValue.json(trained.params),
            "val_f1_macro": metrics["val"]["f1_macro"],
            "test_f1_macro": metrics["test"]["f1_macro"],
            "test_accuracy": metrics["test"]["accuracy"],
            "test_per_class_f1": MetadataValue.json(
                {k: round(v["f1"], 4) for k, v in metrics["test"]["per_class"].items()}
            ),
        },
    )


@asset_check(asset=best_model, blocking=True, description="Validation f1-macro above the floor.")
def best_model_quality_floor(
    best_model: TrainedModel, training_settings: TrainingSettings
) -> AssetCheckResult:
    score = float(best_model.metrics["val"]["f1_macro"])
    return AssetCheckResult(
        passed=score >= training_settings.quality_floor_f1,
        metadata={"val_f1_macro": score, "floor": training_settings.quality_floor_f1},
    )
