"""A model store is a trust boundary: a hostile manifest or pointer must not reach the host.

Each attack names a victim outside the cache or store; the loader must refuse with a
BundleError naming the bad value, and leave the victim exactly as it was."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import boto3
import pytest

from lambda_service.bundle import (
    MANIFEST_FILE,
    ONNX_FILE,
    BundleError,
    Manifest,
    fetch_bundle,
    resolve_production,
)
from lambda_service.model_provider import ModelProvider
from studperf_assets.resources.model_store import LocalModelStore


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    folder = tmp_path / "victim"
    folder.mkdir()
    (folder / "precious.txt").write_text("do not touch")
    return folder


def hostile_bundle(trained: Path, where: Path, **manifest_changes: Any) -> Path:
    """A copy of a real bundle whose manifest carries the attacker's values."""
    shutil.copytree(trained, where)
    manifest = json.loads((where / MANIFEST_FILE).read_text())
    manifest.update(manifest_changes)
    (where / MANIFEST_FILE).write_text(json.dumps(manifest))
    return where


@pytest.mark.parametrize("version", ["../victim", "/tmp/anywhere", "v1/../../victim", "", 7])
def test_a_version_that_leaves_the_cache_is_refused_untouched(
    trained_bundle: tuple[Path, Manifest], tmp_path: Path, victim: Path, version: Any
) -> None:
    before = snapshot(victim)
    bundle = hostile_bundle(trained_bundle[0], tmp_path / "bundle", version=version)
    cache = tmp_path / "cache"
    with pytest.raises(BundleError, match="invalid bundle version"):
        fetch_bundle(str(bundle), cache)
    assert snapshot(victim) == before and not cache.exists()


@pytest.mark.parametrize(
    "name", ["../victim/precious.txt", "/etc/passwd", "sub/model.onnx", "..", MANIFEST_FILE]
)
def test_a_file_name_that_leaves_the_bundle_is_refused_untouched(
    trained_bundle: tuple[Path, Manifest], tmp_path: Path, victim: Path, name: str
) -> None:
    folder, manifest = trained_bundle
    before = snapshot(victim)
    files = {**manifest.files, name: "0" * 64}
    bundle = hostile_bundle(folder, tmp_path / "bundle", files=files)
    cache = tmp_path / "cache"
    with pytest.raises(BundleError, match="invalid file name in the manifest"):
        fetch_bundle(str(bundle), cache)
    assert snapshot(victim) == before and not cache.exists()


def test_a_symlinked_file_is_not_read(
    trained_bundle: tuple[Path, Manifest], tmp_path: Path, victim: Path
) -> None:
    folder, _manifest = trained_bundle
    bundle = hostile_bundle(folder, tmp_path / "bundle")
    (bundle / ONNX_FILE).unlink()
    os.symlink(victim / "precious.txt", bundle / ONNX_FILE)
    with pytest.raises(BundleError, match="leaves"):
        fetch_bundle(str(bundle), tmp_path / "cache")


def test_a_pointer_out_of_the_store_is_refused_and_serving_goes_on(
    trained_bundle: tuple[Path, Manifest], tmp_path: Path, victim: Path
) -> None:
    folder, manifest = trained_bundle
    store = LocalModelStore(root=str(tmp_path / "store"))
    store.publish(folder, manifest.version)
    store.promote(manifest.version, {})
    provider = ModelProvider(store.root_uri, tmp_path / "cache", refresh_seconds=0)
    # an attacker rewrites the pointer to a bundle-shaped folder outside the store
    hostile_bundle(folder, victim / "bundle")
    pointer = Path(store.root_uri) / "production.json"
    pointer.write_text(json.dumps({"version": "../../victim/bundle"}))
    with pytest.raises(BundleError, match=r"invalid bundle version '../../victim/bundle'"):
        resolve_production(store.root_uri)
    assert not provider.refresh() and provider.predictor.version == manifest.version
    # a symlinked bundle folder under bundles/ is refused the same way
    fake = "v20990101T000000Z-0badf00d"
    os.symlink(victim / "bundle", Path(store.root_uri) / "bundles" / fake)
    pointer.write_text(json.dumps({"version": fake}))
    with pytest.raises(BundleError, match="leaves"):
        resolve_production(store.root_uri)


def test_the_same_attacks_through_s3(
    trained_bundle: tuple[Path, Manifest], s3_bucket: str, tmp_path: Path, victim: Path
) -> None:
    folder, manifest = trained_bundle
    s3 = boto3.client("s3")
    before = snapshot(victim)
    attacks: dict[str, dict[str, Any]] = {
        "version": {"version": "../../victim"},
        "files": {"files": {**manifest.files, "../../victim/x": "0" * 64}},
    }
    for name, changes in attacks.items():
        bundle = hostile_bundle(folder, tmp_path / name, **changes)
        for path in bundle.iterdir():
            s3.upload_file(str(path), s3_bucket, f"hostile/{name}/{path.name}")
        with pytest.raises(BundleError, match="invalid"):
            fetch_bundle(f"s3://{s3_bucket}/hostile/{name}", tmp_path / "cache", s3)
    s3.put_object(Bucket=s3_bucket, Key="store/production.json", Body=b'{"version": "../../../x"}')
    with pytest.raises(BundleError, match="invalid bundle version"):
        resolve_production(f"s3://{s3_bucket}/store", s3)
    assert snapshot(victim) == before and not (tmp_path / "cache").exists()
