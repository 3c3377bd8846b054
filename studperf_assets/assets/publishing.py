"""Publishing: the model bundle, its integrity and champion checks, and promotion.

MLflow, skops and the ONNX exporter are imported inside the steps that use them.
"""

import tempfile
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetIn,
    MetadataValue,
    Output,
    ResourceParam,
    asset,
    asset_check,
)

from lambda_service.bundle import BundleError
from lambda_service.schema import FEATURE_NAMES
from studperf_assets.constants import TRAINING_GROUP
from studperf_assets.lib import data
from studperf_assets.lib.loop_events import PROMOTED, emit
from studperf_assets.lib.mlflow_story import (
    ChampionCheck,
    promotion_description,
    trigger_text,
)
from studperf_assets.lib.trained import MODEL_NAME, TrainedModel
from studperf_assets.resources.model_store import PREVIOUS, ModelStore
from studperf_assets.resources.training_settings import TrainingSettings

GROUP = TRAINING_GROUP
CANDIDATE_ALIAS = "candidate"
CHAMPION_ALIAS = "champion"


def _summary_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    flat = {"f1_macro": metrics["f1_macro"], "accuracy": metrics["accuracy"]}
    flat.update({f"f1_{k}": v["f1"] for k, v in metrics["per_class"].items()})
    return flat


@asset(group_name=GROUP, kinds={"s3", "mlflow"})
def model_bundle(
    context: AssetExecutionContext,
    best_model: TrainedModel,
    data_splits: dict[str, pd.DataFrame],
    model_store: ModelStore,
    training_settings: TrainingSettings,
    mlflow: ResourceParam[Any],  # dagster-mlflow's MlFlow: the mlflow API, run attached
) -> Output[dict[str, Any]]:
    """A versioned bundle (skops pipeline, ONNX form, monitoring reference, manifest) in
    the model store,
    and the same pipeline registered in MLflow under the ``candidate`` alias. Records the
    champion it is published against (the production version now, or None), which the
    champion check compares with and ``production_model`` swaps out."""
    from studperf_assets.lib.bundle_builder import write_bundle

    champion = model_store.production_version()  # an unreadable pointer fails here
    parent = mlflow.active_run()
    run_id = parent.info.run_id if parent else None
    with training_settings.scratch("bundle-") as folder:
        manifest = write_bundle(
            best_model.pipeline,
            folder,
            model_family=best_model.family,
            params=best_model.params,
            metrics={split: _summary_metrics(m) for split, m in best_model.metrics.items()},
            training_data_sha256=data.dataset_sha256(data_splits["train"]),
            mlflow_run_id=run_id,
            held_out=pd.concat([data_splits["val"], data_splits["test"]]),
        )
        uri = model_store.publish(folder, manifest.version)
        example = data_splits["test"][list(FEATURE_NAMES)].head(5)
        registered = _register(mlflow, best_model, folder, manifest.version, example)
    context.log.info(f"published bundle {manifest.version} at {uri}")
    return Output(
        {
            "version": manifest.version,
            "uri": uri,
            "model_family": manifest.model_family,
            "val_f1_macro": manifest.metrics["val"]["f1_macro"],
            "test_f1_macro": manifest.metrics["test"]["f1_macro"],
            "mlflow_run_id": run_id,
            "mlflow_model_version": registered,
            "champion": champion,
        },
        metadata={
            "version": manifest.version,
            "champion": champion or "none (first bundle)",
            "uri": MetadataValue.path(uri),
            "test_f1_macro": manifest.metrics["test"]["f1_macro"],
            "files_sha256": MetadataValue.json(manifest.files),
            "mlflow_model": f"models:/{MODEL_NAME}/{registered}",
        },
    )


def _register(
    mlflow: Any, trained: TrainedModel, folder: Path, version: str, example: pd.DataFrame
) -> str:
    """Log the bundle and the pipeline to MLflow as a model that stands alone (signature,
    input example, its own code, published requirements); register it."""
    from mlflow import sklearn as mlflow_sklearn
    from mlflow.models import infer_signature
    from mlflow.tracking import MlflowClient

    from studperf_assets.lib import mlflow_model, models

    mlflow.log_artifacts(str(folder), artifact_path="bundle")
    mlflow.set_tags({"bundle_version": version, "model_family": trained.family})
    mlflow.log_params(
        {"model_family": trained.family, **{f"model.{k}": v for k, v in trained.params.items()}}
    )
    mlflow.log_metrics(
        {f"test_{k}": v for k, v in _summary_metrics(trained.metrics["test"]).items()}
    )
    mlflow.log_figure(
        mlflow_model.confusion_matrix_figure(trained.metrics["test"]["confusion_matrix"]),
        "test_confusion_matrix.png",
    )
    with tempfile.TemporaryDirectory() as code, warnings.catch_warnings():
        # Two warnings about choices made on purpose, kept out of every training log: the
        # integer columns stay integers in the signature (strict: cast before scoring; see
        # docs/training.md#the-bundle), and the pipeline, fitted on arrays as the Lambda
        # scores them, is handed the input example as a DataFrame whose column order the
        # signature enforces.
        warnings.filterwarnings("ignore", r"\s*Hint: Inferred schema contains integer column")
        warnings.filterwarnings("ignore", r"\s*X has feature names, but MinMaxScaler was fitted")
        info = mlflow_sklearn.log_model(
            trained.pipeline,
            name="model",
            serialization_format="skops",
            skops_trusted_types=list(models.TRUSTED_TYPES),
            registered_model_name=MODEL_NAME,
            signature=infer_signature(example, trained.pipeline.predict(example.to_numpy())),
            input_example=example,
            code_paths=mlflow_model.code_paths(Path(code)),
            pip_requirements=mlflow_model.requirements(),
            await_registration_for=0,
        )
    model_version = str(info.registered_model_version)
    client = MlflowClient()
    client.set_registered_model_alias(MODEL_NAME, CANDIDATE_ALIAS, model_version)
    client.set_model_version_tag(MODEL_NAME, model_version, "bundle_version", version)
    mlflow.end_run()  # the last step that logs to this Dagster run's MLflow run
    return model_version


@asset_check(
    asset=model_bundle,
    additional_ins={"data_splits": AssetIn("data_splits")},
    blocking=True,
    description="Reloaded from the store: hashes match, the smoke test passes, ONNX labels "
    "equal the skops pipeline's.",
)
def model_bundle_integrity(
    model_bundle: dict[str, Any],
    data_splits: dict[str, pd.DataFrame],
    model_store: ModelStore,
    training_settings: TrainingSettings,
) -> AssetCheckResult:
    from studperf_assets.lib.bundle_builder import serving_mismatches
    from studperf_assets.lib.models import native_threads

    X = data.feature_matrix(pd.concat(data_splits.values()))
    with training_settings.scratch("verify-") as cache:
        try:
            folder = model_store.fetch(model_bundle["version"], cache)  # verifies every hash
            # loading the serving form runs the smoke test the Lambda runs before a swap
            with native_threads(training_settings.native_threads):  # a boosting model spins
                mismatches, max_probability_diff = serving_mismatches(folder, X)
        except BundleError as error:  # corrupt, unreadable or unservable: the check fails
            return AssetCheckResult(passed=False, metadata={"error": str(error)})
    return AssetCheckResult(
        passed=mismatches == 0,
        metadata={
            "smoke_test": "passed",
            "rows_compared": len(X),
            "label_mismatches": mismatches,
            "max_probability_diff": max_probability_diff,
        },
    )


@asset_check(
    asset=model_bundle,
    additional_ins={"data_splits": AssetIn("data_splits")},
    blocking=True,
    description="No worse than the champion it was published against, on the test split, "
    "within tolerance.",
)
def model_bundle_vs_champion(
    model_bundle: dict[str, Any],
    data_splits: dict[str, pd.DataFrame],
    model_store: ModelStore,
    training_settings: TrainingSettings,
    mlflow: ResourceParam[Any],  # only its tracking URI: the numbers go on the model version
) -> AssetCheckResult:
    challenger = float(model_bundle["test_f1_macro"])
    if "champion" not in model_bundle:  # a summary from before champions were recorded
        error = "the bundle records no champion it was published against; retrain"
        return AssetCheckResult(passed=False, metadata={"error": error})
    champion = model_bundle["champion"]  # exactly what production_model will swap out
    tolerance = training_settings.champion_tolerance
    if champion is None or champion == model_bundle["version"]:
        check = ChampionCheck(model_bundle["version"], challenger, None, None, tolerance, True)
        metadata: dict[str, Any] = {
            "champion": champion or "none (first bundle)",
            "challenger_test_f1": challenger,
        }
    else:
        try:
            champion_f1 = _champion_test_f1(
                champion, data_splits["test"], model_store, training_settings
            )
        except BundleError as error:  # an unreadable champion is not a reason to publish blind
            check = ChampionCheck(
                model_bundle["version"], challenger, champion, None, tolerance, False, str(error)
            )
            metadata = {"champion": champion, "error": str(error)}
        else:
            passed = challenger >= champion_f1 - tolerance
            check = ChampionCheck(
                model_bundle["version"], challenger, champion, champion_f1, tolerance, passed
            )
            metadata = {
                "champion": champion,
                "champion_test_f1": champion_f1,
                "challenger_test_f1": challenger,
                "tolerance": tolerance,
            }
    metadata["verdict"] = check.sentence()
    written = _record_champion_check(mlflow.tracking_uri, model_bundle, check)
    if written:
        metadata["mlflow_note"] = written
    return AssetCheckResult(passed=check.passed, metadata=metadata)


def _record_champion_check(
    tracking_uri: str | None, bundle: dict[str, Any], check: ChampionCheck
) -> str | None:
    """The check's numbers and verdict on the candidate's model version (tags, description)
    and its training run (tag, metric), where MLflow's UI shows them beside the version's
    own test score. A failure to write is reported, never a different verdict."""
    version, run_id = bundle.get("mlflow_model_version"), bundle.get("mlflow_run_id")
    if not version:
        return None
    from mlflow.tracking import MlflowClient

    try:
        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        for key, value in check.tags().items():
            client.set_model_version_tag(MODEL_NAME, version, key, value)
        client.update_model_version(MODEL_NAME, version, description=check.sentence())
        if run_id:
            client.set_tag(run_id, "studperf.champion_check", check.sentence())
            if check.champion_f1 is not None:
                client.log_metric(run_id, "champion_test_f1_macro_rescored", check.champion_f1)
    except Exception as exc:  # noqa: BLE001 - the verdict stands; MLflow only shows it
        return f"the check's numbers were not written to MLflow: {exc}"[:500]
    return None


def _retire_champion(client: Any, new: str, bundle: str) -> None:
    """The outgoing champion's model version says it was replaced, and by which bundle: its
    description no longer reads "Promoted to champion" once it is not."""
    try:
        old = client.get_model_version_by_alias(MODEL_NAME, CHAMPION_ALIAS)
    except Exception:  # noqa: BLE001 - no champion yet (MLflow raises for a missing alias)
        return
    if str(old.version) == new:
        return
    before = old.description or ""
    client.update_model_version(
        MODEL_NAME, old.version, description=f"Replaced as champion by {bundle}. Before: {before}"
    )
    client.set_model_version_tag(MODEL_NAME, old.version, "replaced_by", bundle)


def _trigger(context: AssetExecutionContext) -> str:
    """What started this training, in words (``manual`` outside a run: invoked directly)."""
    from dagster._core.errors import DagsterInvalidPropertyError

    try:
        return trigger_text(context.run.tags)
    except DagsterInvalidPropertyError:
        return "manual"


def _champion_test_f1(
    version: str, test: pd.DataFrame, store: ModelStore, settings: TrainingSettings
) -> float:
    """The champion scored on today's test split, through its serving form."""
    from lambda_service.predictor import Predictor
    from studperf_assets.lib import models

    with settings.scratch("champion-") as cache:
        labels, _ = Predictor.from_folder(store.fetch(version, cache)).predict_matrix(
            data.feature_matrix(test)
        )
    return float(models.classification_metrics(test[data.TARGET].to_numpy(), labels)["f1_macro"])


@asset(group_name=GROUP, kinds={"s3", "mlflow"})
def production_model(
    context: AssetExecutionContext,
    model_bundle: dict[str, Any],
    model_store: ModelStore,
    training_settings: TrainingSettings,
    mlflow: ResourceParam[Any],  # only its tracking URI: no MLflow run is started here
) -> Output[dict[str, Any]]:
    """The store's ``production`` pointer, moved only after both bundle checks pass, and
    only if it still names the champion the bundle was checked against (compare-and-swap:
    of two trainings checked against the same champion, the second to finish fails here,
    naming both versions, and changes nothing). MLflow's ``champion`` alias follows the
    pointer, after it moved. Then bundles past ``bundles_kept`` are deleted
    (``ModelStore.prune_bundles``: the new champion, the one it replaced and every bundle
    a pointer names stay; MLflow's registry keeps every version)."""
    from mlflow.tracking import MlflowClient

    pointer = model_store.promote(
        model_bundle["version"],
        {"test_f1_macro": model_bundle["test_f1_macro"], PREVIOUS: model_bundle["champion"]},
        replacing=model_bundle["champion"],
    )
    trigger = _trigger(context)
    checked = ""
    if model_bundle.get("mlflow_model_version"):
        uri = mlflow.tracking_uri
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        version = model_bundle["mlflow_model_version"]
        _retire_champion(client, str(version), pointer["version"])
        client.set_registered_model_alias(MODEL_NAME, CHAMPION_ALIAS, version)
        checked = client.get_model_version(MODEL_NAME, version).description or ""
        client.update_model_version(
            MODEL_NAME,
            version,
            description=promotion_description(checked, model_bundle["champion"], trigger),
        )
        client.set_model_version_tag(MODEL_NAME, version, "trigger", trigger)
        client.set_model_version_tag(
            MODEL_NAME, version, "replaced", model_bundle["champion"] or "none (first bundle)"
        )
    emit(context.log.info, PROMOTED, version=pointer["version"], replaced=model_bundle["champion"])
    retention: dict[str, Any] = {}
    try:
        deleted = model_store.prune_bundles(
            training_settings.bundles_kept, previous=model_bundle["champion"]
        )
        retention["bundles_deleted"] = MetadataValue.json(deleted)
        if deleted:
            context.log.info(f"{len(deleted)} old bundles deleted: {', '.join(deleted)}")
    except Exception as exc:  # noqa: BLE001 - the promotion stands; the next one prunes
        context.log.warning(f"old bundles not deleted: {exc}")
        retention["bundle_retention_error"] = str(exc)
    return Output(
        pointer,
        metadata={  # what it replaced and why, where the catalog shows it
            "version": pointer["version"],
            "replaced": model_bundle["champion"] or "none (first bundle)",
            "trigger": trigger,
            "decision": checked or "promoted: both bundle checks passed",
            "test_f1_macro": round(float(model_bundle["test_f1_macro"]), 4),
            "bundle_uri": pointer["bundle_uri"],
            **retention,
        },
    )
