"""The bundle format and both model stores (the S3 one against moto server over HTTP)."""

import json
import shutil
from pathlib import Path

import boto3
import pytest
from dagster_aws.s3 import S3Resource

from lambda_service.bundle import (
    MANIFEST_FILE,
    ONNX_FILE,
    SKOPS_FILE,
    BundleError,
    Manifest,
    fetch_bundle,
    resolve_bundle_uri,
    verify_bundle,
)
from studperf_assets.resources.model_store import LocalModelStore, ModelStore, S3ModelStore


def _copy(bundle: Path, tmp_path: Path) -> Path:
    target = tmp_path / "bundle"
    shutil.copytree(bundle, target)
    return target


def test_manifest_describes_the_bundle(trained_bundle: tuple[Path, Manifest]) -> None:
    _, manifest = trained_bundle
    assert manifest.version.startswith("v") and manifest.version.endswith(
        manifest.files[SKOPS_FILE][:8]
    )
    assert set(manifest.files) == {SKOPS_FILE, ONNX_FILE}
    assert [f["name"] for f in manifest.features][:3] == [
        "ParentalEducation",
        "StudyTimeWeekly",
        "Absences",
    ]
    assert manifest.features[2] == {"name": "Absences", "kind": "int", "minimum": 0, "maximum": 29}
    assert manifest.class_labels == ["A", "B", "C", "D", "F"]
    assert set(manifest.metrics) == {"val", "test"}
    assert len(manifest.training_data_sha256) == 64
    assert manifest.mlflow_run_id


def test_corrupt_or_missing_files_are_named(
    trained_bundle: tuple[Path, Manifest], tmp_path: Path
) -> None:
    folder = _copy(trained_bundle[0], tmp_path)
    (folder / ONNX_FILE).write_bytes(b"not a model")
    with pytest.raises(BundleError, match=f"{ONNX_FILE} is corrupt"):
        verify_bundle(folder)
    (folder / ONNX_FILE).unlink()
    with pytest.raises(BundleError, match=f"{ONNX_FILE} is missing"):
        verify_bundle(folder)
    (folder / MANIFEST_FILE).write_text("{not json")
    with pytest.raises(BundleError, match="not a valid bundle manifest"):
        verify_bundle(folder)


def test_fetch_reuses_a_good_cache_and_replaces_a_bad_one(
    trained_bundle: tuple[Path, Manifest], tmp_path: Path
) -> None:
    folder, manifest = trained_bundle
    cache = tmp_path / "cache"
    first, _ = fetch_bundle(str(folder), cache)
    assert first == cache / manifest.version
    (first / SKOPS_FILE).write_bytes(b"tampered")
    again, _ = fetch_bundle(str(folder), cache)
    verify_bundle(again)
    assert not list(cache.glob(".partial-*"))


def test_two_processes_fetching_one_bundle_into_one_cache_both_get_it(
    trained_bundle: tuple[Path, Manifest], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two consumers on one home share its bundle cache: the one whose copy lands second
    found the folder taken ('Directory not empty') and failed to start."""
    from lambda_service import bundle

    folder, manifest = trained_bundle
    cache = tmp_path / "cache"
    real_replace = bundle.os.replace
    renames: list[Path] = []

    def other_consumer_first(src: Path, dst: Path) -> None:
        renames.append(Path(dst))
        if len(renames) == 1:  # the other consumer's whole fetch lands between our copy and rename
            fetch_bundle(str(folder), cache)
        real_replace(src, dst)

    monkeypatch.setattr(bundle.os, "replace", other_consumer_first)
    path, verified = fetch_bundle(str(folder), cache)
    assert renames == [cache / manifest.version] * 2  # both copies were made; one landed
    assert path == cache / manifest.version and verified.version == manifest.version
    assert not list(cache.glob(".partial-*"))  # the copy that lost was cleaned up


def test_fetch_of_nothing_names_the_uri(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match=str(tmp_path / "nowhere")):
        fetch_bundle(str(tmp_path / "nowhere"), tmp_path / "cache")


def _exercise_store(store: ModelStore, bundle: Path, manifest: Manifest, cache: Path) -> None:
    assert store.production_version() is None
    uri = store.publish(bundle, manifest.version)
    assert uri == store.bundle_uri(manifest.version)
    fetched = store.fetch(manifest.version, cache)
    assert verify_bundle(fetched).version == manifest.version
    pointer = store.promote(manifest.version, {"test_f1_macro": 0.6})
    assert store.production_version() == manifest.version == pointer["version"]
    # every accepted spelling of the model URI leads to the same bundle
    for spelling in (uri, store.root_uri, f"{store.root_uri}/production.json"):
        resolved, _ = resolve_bundle_uri(spelling, store._s3())
        assert resolved == uri
    unpublished = "v20990101T000000Z-0badf00d"
    with pytest.raises(BundleError, match=f"cannot promote {unpublished}: not published"):
        store.promote(unpublished, {})
    with pytest.raises(BundleError, match=r"invalid bundle version '\.\./\.\./elsewhere'"):
        store.promote("../../elsewhere", {})


def test_local_store(trained_bundle: tuple[Path, Manifest], tmp_path: Path) -> None:
    folder, manifest = trained_bundle
    store = LocalModelStore(root=str(tmp_path / "store"))
    _exercise_store(store, folder, manifest, tmp_path / "cache")
    assert json.loads((tmp_path / "store" / "production.json").read_text())["version"] == (
        manifest.version
    )


@pytest.mark.integration
def test_s3_store_on_moto_server(
    trained_bundle: tuple[Path, Manifest], s3_bucket: str, tmp_path: Path
) -> None:
    folder, manifest = trained_bundle
    store = S3ModelStore(bucket=s3_bucket, prefix="models", s3=S3Resource())
    _exercise_store(store, folder, manifest, tmp_path / "cache")
    keys = {o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=s3_bucket)["Contents"]}
    assert f"models/bundles/{manifest.version}/{MANIFEST_FILE}" in keys
    assert "models/production.json" in keys


@pytest.mark.integration
def test_s3_corrupt_object_is_caught_on_fetch(
    trained_bundle: tuple[Path, Manifest], s3_bucket: str, tmp_path: Path
) -> None:
    folder, manifest = trained_bundle
    store = S3ModelStore(bucket=s3_bucket, prefix="models", s3=S3Resource())
    store.publish(folder, manifest.version)
    boto3.client("s3").put_object(
        Bucket=s3_bucket, Key=f"models/bundles/{manifest.version}/{ONNX_FILE}", Body=b"bits"
    )
    with pytest.raises(
        BundleError, match=rf"s3://{s3_bucket}/models/bundles/.*{ONNX_FILE} is corrupt"
    ):
        store.fetch(manifest.version, tmp_path / "cache")


def test_resolve_rejects_a_folder_that_is_neither(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="neither a model bundle"):
        resolve_bundle_uri(str(tmp_path))
