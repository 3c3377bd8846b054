"""The local bundle cache is keyed by version; a cached copy is served only if it is the
bundle the store's manifest describes now (the same manifest text, files verifying against
its sha256), so a manifest or file changed under the same version is never served stale."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from lambda_service.bundle import MANIFEST_FILE, ONNX_FILE, BundleError, Manifest, sha256_file
from lambda_service.predictor import Predictor
from studperf_assets_tests.bundle_edits import tampered


def _republish(bundle: Path, store_bundle: Path) -> None:
    """Replace a bundle under the same version in place (a rewritten store, a re-upload)."""
    shutil.rmtree(store_bundle)
    shutil.copytree(bundle, store_bundle)


def test_a_cached_bundle_is_reused_only_if_it_is_what_the_store_holds_now(
    trained_bundle: tuple[Path, Manifest], tmp_path: Path
) -> None:
    """Before: the cache was keyed by version alone, so a changed manifest and model file
    under the same version were served from the cache, stale."""
    good, manifest = trained_bundle
    store_bundle = tmp_path / "store" / manifest.version
    shutil.copytree(good, store_bundle)
    cache = tmp_path / "cache"
    first = Predictor.from_uri(str(store_bundle), cache)
    assert sha256_file(first.folder / ONNX_FILE) == manifest.files[ONNX_FILE]
    # the same version, another (servable) ONNX graph and a manifest hashing it
    changed = tampered(good, tmp_path / "changed", manifest.version, "probabilities", "Mul", 1.0)
    _republish(changed, store_bundle)
    expected = json.loads((store_bundle / MANIFEST_FILE).read_text())["files"][ONNX_FILE]
    assert expected != manifest.files[ONNX_FILE]
    second = Predictor.from_uri(str(store_bundle), cache)
    assert second.manifest.files[ONNX_FILE] == expected
    assert sha256_file(second.folder / ONNX_FILE) == expected
    assert (second.folder / MANIFEST_FILE).read_text() == (store_bundle / MANIFEST_FILE).read_text()
    # a manifest change that lists the same files (its metrics) is fetched again too
    text = json.loads((store_bundle / MANIFEST_FILE).read_text())
    text["metrics"] = {"test": {"f1_macro": 0.5}}
    (store_bundle / MANIFEST_FILE).write_text(json.dumps(text))
    third = Predictor.from_uri(str(store_bundle), cache)
    assert third.manifest.metrics == {"test": {"f1_macro": 0.5}}


def test_a_store_manifest_that_no_longer_matches_its_files_is_refused_despite_the_cache(
    trained_bundle: tuple[Path, Manifest], tmp_path: Path
) -> None:
    """Before: the cached copy verified against its own (old) manifest and was served."""
    good, manifest = trained_bundle
    store_bundle = tmp_path / "store" / manifest.version
    shutil.copytree(good, store_bundle)
    cache = tmp_path / "cache"
    Predictor.from_uri(str(store_bundle), cache)
    text = json.loads((store_bundle / MANIFEST_FILE).read_text())
    text["files"][ONNX_FILE] = "0" * 64
    (store_bundle / MANIFEST_FILE).write_text(json.dumps(text))
    with pytest.raises(BundleError, match=f"{ONNX_FILE} is corrupt"):
        Predictor.from_uri(str(store_bundle), cache)
