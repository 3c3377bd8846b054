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
    DEFAULT_MAX_BUNDLE_BYTES,
    MANIFEST_FILE,
    MAX_BUNDLE_FILES,
    MAX_TEXT_BYTES,
    ONNX_FILE,
    BundleError,
    Manifest,
    fetch_bundle,
    resolve_production,
    sha256_file,
    verify_bundle,
)
from lambda_service.config import max_bundle_bytes
from lambda_service.model_provider import ModelProvider
from lambda_service.predictor import Predictor
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
    store.promote(manifest.version, {}, replacing=None)
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


# ---- sizes: nothing in the store may fill the disk or hold up a batch ----------------------


def bundle_bytes(manifest: Manifest, folder: Path) -> int:
    return sum((folder / name).stat().st_size for name in manifest.files)


def test_a_bundle_over_the_size_limit_is_refused_before_it_is_copied(
    trained_bundle: tuple[Path, Manifest], tmp_path: Path
) -> None:
    folder, manifest = trained_bundle
    total = bundle_bytes(manifest, folder)
    cache = tmp_path / "cache"
    with pytest.raises(BundleError, match=f"hold {total:,} bytes, more than the {total - 1:,}"):
        fetch_bundle(str(folder), cache, max_bytes=total - 1)
    assert [p.name for p in cache.iterdir()] == []  # no partial copy left behind
    with pytest.raises(BundleError, match="more than the"):
        verify_bundle(folder, max_bytes=total - 1)  # a folder served as it is
    fetched, _ = fetch_bundle(str(folder), cache, max_bytes=total)  # the limit itself is fine
    assert fetched.name == manifest.version


def test_a_manifest_listing_many_files_or_an_oversized_pointer_is_refused(
    trained_bundle: tuple[Path, Manifest], tmp_path: Path
) -> None:
    folder, manifest = trained_bundle
    many = {f"extra{i}.bin": "0" * 64 for i in range(MAX_BUNDLE_FILES)}
    bundle = hostile_bundle(folder, tmp_path / "bundle", files={**manifest.files, **many})
    with pytest.raises(BundleError, match=f"lists {MAX_BUNDLE_FILES + len(manifest.files)} files"):
        fetch_bundle(str(bundle), tmp_path / "cache")
    store = tmp_path / "store"
    store.mkdir()
    (store / "production.json").write_bytes(b" " * (MAX_TEXT_BYTES + 1))
    with pytest.raises(BundleError, match="more than 1,048,576 bytes"):
        resolve_production(str(store))


class AnnouncesLess:
    """A real S3 client whose answers understate an object's size, as an object replaced
    mid-read could: the copy must stop at the limit anyway. Counts the bytes it hands out."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.bytes_read = 0

    def get_object(self, **kwargs: Any) -> dict[str, Any]:
        response = dict(self.client.get_object(**kwargs))
        response["ContentLength"] = 1
        body = response["Body"]

        def read(amount: int | None = None) -> bytes:
            chunk: bytes = body.read(amount)
            self.bytes_read += len(chunk)
            return chunk

        response["Body"] = type("Counted", (), {"read": staticmethod(read), "close": body.close})
        return response


def test_size_limits_hold_through_s3_even_when_the_size_is_understated(
    trained_bundle: tuple[Path, Manifest], s3_bucket: str, tmp_path: Path
) -> None:
    folder, manifest = trained_bundle
    s3 = boto3.client("s3")
    padded = (folder / ONNX_FILE).read_bytes() + b"\0" * (16 << 20)  # 16 MiB of padding
    (tmp_path / ONNX_FILE).write_bytes(padded)
    bundle = hostile_bundle(
        folder,
        tmp_path / "big",
        files={**manifest.files, ONNX_FILE: sha256_file(tmp_path / ONNX_FILE)},
    )
    (bundle / ONNX_FILE).write_bytes(padded)
    for path in bundle.iterdir():  # one PutObject each: moto 5.2's /moto-api/data.json,
        # which later tests read their e-mails from, fails once a multipart upload was made
        s3.put_object(Bucket=s3_bucket, Key=f"b/{path.name}", Body=path.read_bytes())
    uri = f"s3://{s3_bucket}/b"
    honest, lying = s3, AnnouncesLess(s3)
    for client in (honest, lying):
        cache = tmp_path / f"cache-{type(client).__name__}"
        with pytest.raises(BundleError, match="more than the 1,048,576 allowed"):
            fetch_bundle(uri, cache, client, max_bytes=1 << 20)
        assert list(cache.iterdir()) == []
    files_read = lying.bytes_read - len((bundle / MANIFEST_FILE).read_bytes())
    assert files_read <= (1 << 20) + (1 << 20)  # the limit and one chunk past it, not 16 MiB
    s3.put_object(Bucket=s3_bucket, Key="store/production.json", Body=b"{" * (MAX_TEXT_BYTES + 1))
    for client in (honest, lying):
        with pytest.raises(BundleError, match="1,048,576"):
            resolve_production(f"s3://{s3_bucket}/store", client)
    assert fetch_bundle(uri, tmp_path / "ok", s3, max_bytes=20 << 20)[1].version == (
        manifest.version
    )


def test_a_hot_swap_to_an_oversized_bundle_keeps_serving_the_current_one(
    trained_bundle: tuple[Path, Manifest], tmp_path: Path
) -> None:
    folder, manifest = trained_bundle
    store = LocalModelStore(root=str(tmp_path / "store"))
    store.publish(folder, manifest.version)
    store.promote(manifest.version, {}, replacing=None)
    provider = ModelProvider(
        store.root_uri,
        tmp_path / "cache",
        refresh_seconds=0,
        max_bytes=bundle_bytes(manifest, folder) + 1024,
    )
    bigger = hostile_bundle(folder, tmp_path / "bigger")
    (bigger / ONNX_FILE).write_bytes((bigger / ONNX_FILE).read_bytes() + b"\0" * 4096)
    new_version = "v20990101T000000Z-0badf00d"
    digest = sha256_file(bigger / ONNX_FILE)
    hostile_bundle(
        bigger,
        tmp_path / "store" / "bundles" / new_version,
        version=new_version,
        files={**manifest.files, ONNX_FILE: digest},
    )
    (tmp_path / "store" / "production.json").write_text(json.dumps({"version": new_version}))
    assert not provider.refresh() and provider.predictor.version == manifest.version


def test_the_lambda_reads_its_bundle_limit_from_the_environment() -> None:
    assert max_bundle_bytes({}) == DEFAULT_MAX_BUNDLE_BYTES
    assert max_bundle_bytes({"MODEL_MAX_MB": "0.5"}) == 512 * 1024
    for bad in ("lots", "0", "-3", "nan"):
        with pytest.raises(RuntimeError, match=f"MODEL_MAX_MB must be a positive number.*{bad}"):
            max_bundle_bytes({"MODEL_MAX_MB": bad})


def onnx_reading(location: str) -> bytes:
    """An ONNX model whose only output is an initializer stored as external data."""
    from onnx import TensorProto, helper

    tensor = TensorProto(name="w", data_type=TensorProto.UINT8, dims=[12])
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("length", "12")):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    output = helper.make_tensor_value_info("out", TensorProto.UINT8, [12])
    graph = helper.make_graph(
        [helper.make_node("Identity", ["w"], ["out"])], "g", [], [output], initializer=[tensor]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    return bytes(model.SerializeToString())


@pytest.mark.parametrize("location", ["../../victim/precious.txt", "VICTIM"])
def test_onnx_external_data_cannot_read_outside_the_bundle(
    trained_bundle: tuple[Path, Manifest], tmp_path: Path, victim: Path, location: str
) -> None:
    """The loader relies on onnxruntime here: it must refuse external data that leaves the
    model's folder, by a relative or an absolute path."""
    folder, manifest = trained_bundle
    location = location.replace("VICTIM", str(victim / "precious.txt"))
    (tmp_path / ONNX_FILE).write_bytes(onnx_reading(location))
    files = {**manifest.files, ONNX_FILE: sha256_file(tmp_path / ONNX_FILE)}
    bundle = hostile_bundle(folder, tmp_path / "bundle", files=files)
    shutil.copyfile(tmp_path / ONNX_FILE, bundle / ONNX_FILE)
    with pytest.raises(Exception, match=r"escapes model directory|Absolute path not allowed"):
        Predictor.from_uri(str(bundle), tmp_path / "cache")


def test_the_cache_keeps_only_the_bundle_that_serves(
    trained_bundle: tuple[Path, Manifest], tmp_path: Path, victim: Path
) -> None:
    """A store that promotes one bundle after another, loadable or not, must not fill the
    disk: after each refresh the cache holds the serving version and nothing else of its
    own (a staging folder or a symlink in it is not followed or deleted)."""
    folder, manifest = trained_bundle
    store = LocalModelStore(root=str(tmp_path / "store"))
    store.publish(folder, manifest.version)
    store.promote(manifest.version, {}, replacing=None)
    cache = tmp_path / "cache"
    provider = ModelProvider(store.root_uri, cache, refresh_seconds=0)
    (cache / ".partial-other-process").mkdir()
    os.symlink(victim, cache / "v20000101T000000Z-00000000")

    def promote(version: str, onnx: bytes) -> None:
        (tmp_path / ONNX_FILE).write_bytes(onnx)
        files = {**manifest.files, ONNX_FILE: sha256_file(tmp_path / ONNX_FILE)}
        bundle = store_root / "bundles" / version
        hostile_bundle(folder, bundle, version=version, files=files)
        shutil.copyfile(tmp_path / ONNX_FILE, bundle / ONNX_FILE)
        (store_root / "production.json").write_text(json.dumps({"version": version}))

    def cached() -> set[str]:
        """Versions in the cache as real folders (the planted symlink is not one)."""
        return {p.name for p in cache.iterdir() if p.name.startswith("v") and not p.is_symlink()}

    store_root = Path(store.root_uri)
    real = (folder / ONNX_FILE).read_bytes()
    promote("v20990101T000000Z-00000001", real)
    assert provider.refresh() and cached() == {"v20990101T000000Z-00000001"}
    promote("v20990101T000000Z-00000002", b"not an onnx model")  # fetched, fails to load
    assert not provider.refresh() and provider.predictor.version == "v20990101T000000Z-00000001"
    assert cached() == {"v20990101T000000Z-00000001"}
    promote("v20990101T000000Z-00000003", real)
    assert provider.refresh() and cached() == {"v20990101T000000Z-00000003"}
    assert (cache / ".partial-other-process").is_dir() and snapshot(victim)
    assert (cache / "v20000101T000000Z-00000000").is_symlink()


def test_a_manifest_that_is_not_text_is_a_bundle_error(
    trained_bundle: tuple[Path, Manifest], tmp_path: Path
) -> None:
    bundle = hostile_bundle(trained_bundle[0], tmp_path / "bundle")
    (bundle / MANIFEST_FILE).write_bytes(b'{"version": "\xff\xfe"}')
    with pytest.raises(BundleError, match="not UTF-8 text"):
        verify_bundle(bundle)  # a folder served as it is
    with pytest.raises(BundleError, match="not UTF-8 text"):
        fetch_bundle(str(bundle), tmp_path / "cache")
