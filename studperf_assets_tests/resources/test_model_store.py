"""The bundle format and both model stores (the S3 one against moto server over HTTP)."""

import json
import multiprocessing
import shutil
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from dagster_aws.s3 import S3Resource

from lambda_service.bundle import (
    MANIFEST_FILE,
    ONNX_FILE,
    REFERENCE_FILE,
    SKOPS_FILE,
    BundleError,
    Manifest,
    fetch_bundle,
    read_pointer,
    read_text,
    resolve_bundle_uri,
    verify_bundle,
)
from lambda_service.pointers import PointerMoved, swap_pointer
from studperf_assets.resources.model_store import (
    PREVIOUS,
    LocalModelStore,
    ModelStore,
    S3ModelStore,
)
from studperf_assets_tests import pointer_race
from studperf_assets_tests.bundle_edits import renamed, version


def _copy(bundle: Path, tmp_path: Path) -> Path:
    target = tmp_path / "bundle"
    shutil.copytree(bundle, target)
    return target


def test_manifest_describes_the_bundle(trained_bundle: tuple[Path, Manifest]) -> None:
    _, manifest = trained_bundle
    assert manifest.version.startswith("v") and manifest.version.endswith(
        manifest.files[SKOPS_FILE][:8]
    )
    assert set(manifest.files) == {SKOPS_FILE, ONNX_FILE, REFERENCE_FILE}
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
    assert store.production_version() is None and store.pointer() is None
    uri = store.publish(bundle, manifest.version)
    assert uri == store.bundle_uri(manifest.version)
    fetched = store.fetch(manifest.version, cache)
    assert verify_bundle(fetched).version == manifest.version
    pointer = store.promote(manifest.version, {"test_f1_macro": 0.6}, replacing=None)
    assert store.production_version() == manifest.version == pointer["version"]
    # every accepted spelling of the model URI leads to the same bundle
    for spelling in (uri, store.root_uri, f"{store.root_uri}/production.json"):
        resolved, _ = resolve_bundle_uri(spelling, store._s3())
        assert resolved == uri
    unpublished = "v20990101T000000Z-0badf00d"
    with pytest.raises(BundleError, match=f"cannot promote {unpublished}: not published"):
        store.promote(unpublished, {}, replacing=manifest.version)
    with pytest.raises(BundleError, match=r"invalid bundle version '\.\./\.\./elsewhere'"):
        store.promote("../../elsewhere", {}, replacing=manifest.version)
    _exercise_compare_and_swap(store, bundle, manifest, cache.parent)


def _exercise_compare_and_swap(
    store: ModelStore, bundle: Path, manifest: Manifest, scratch: Path
) -> None:
    """A promotion moves the pointer only from the version its bundle was checked against."""
    champion, challenger = manifest.version, version(1)
    store.publish(renamed(bundle, scratch / "challenger", challenger), challenger)
    pointer = f"{store.root_uri}/production.json"
    before = read_text(pointer, store._s3())
    stale = {
        None: f"it was checked against no champion, but .* now names {champion}",
        version(2): f"it was checked against {version(2)}, but .* now names {champion}",
    }
    for checked_against, message in stale.items():
        with pytest.raises(PointerMoved, match=f"{challenger} not promoted: {message}") as lost:
            store.promote(challenger, {}, replacing=checked_against)
        assert (lost.value.expected, lost.value.found) == (checked_against, champion)
        assert read_text(pointer, store._s3()) == before  # nothing changed
    store.promote(challenger, {"test_f1_macro": 0.7}, replacing=champion)
    assert store.production_version() == challenger
    # pointers other than production move the same way, and leave production alone
    assert store.pointer("challenger") is None
    store.promote(champion, {}, replacing=None, pointer="challenger")
    shadow = store.pointer("challenger")
    assert shadow and shadow.version == champion and shadow.bundle_uri.endswith(champion)
    assert store.production_version() == challenger
    with pytest.raises(BundleError, match=r"invalid pointer name '\.\./production'"):
        store.pointer("../production")


def test_local_store(trained_bundle: tuple[Path, Manifest], tmp_path: Path) -> None:
    folder, manifest = trained_bundle
    store = LocalModelStore(root=str(tmp_path / "store"))
    _exercise_store(store, folder, manifest, tmp_path / "cache")
    assert json.loads((tmp_path / "store" / "production.json").read_text())["version"] == (
        version(1)
    )
    # what promotion leaves beside the pointers: their lock files, no temporary file
    assert sorted(p.name for p in (tmp_path / "store").iterdir() if p.is_file()) == [
        ".challenger.lock",
        ".production.lock",
        "challenger.json",
        "production.json",
    ]


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


UNREADABLE = {
    "empty": b"",
    "cut short": b'{"version": "v2026',
    "not an object": b"[1, 2]",
    "no version": b'{"bundle_uri": "bundles/x"}',
    "a version out of the store": b'{"version": "../../victim"}',
    "not UTF-8": b"\xff\xfe{}",
}


def _unreadable_pointer_is_an_error(
    store: ModelStore, write: Any, read: Any, bundle: Path, v: str
) -> None:
    store.publish(bundle, v)
    pointer = f"{store.root_uri}/production.json"
    for content in UNREADABLE.values():
        write(content)
        # never None ("no champion yet"): an unreadable champion is not an absent one
        with pytest.raises(BundleError, match=pointer):
            store.production_version()
        for checked_against in (None, v):  # and it is never swapped out blind
            with pytest.raises(BundleError, match=pointer):
                store.promote(v, {}, replacing=checked_against)
        assert read() == content


def test_an_unreadable_local_pointer_is_an_error_and_left_alone(
    trained_bundle: tuple[Path, Manifest], tmp_path: Path
) -> None:
    folder, manifest = trained_bundle
    store = LocalModelStore(root=str(tmp_path / "store"))
    path = tmp_path / "store" / "production.json"

    def write(content: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)

    _unreadable_pointer_is_an_error(store, write, path.read_bytes, folder, manifest.version)
    path.unlink()
    path.mkdir()  # a folder where the pointer should be
    with pytest.raises(BundleError, match=f"{path}: the pointer cannot be read"):
        store.production_version()


@pytest.mark.integration
def test_an_unreadable_s3_pointer_is_an_error_and_left_alone(
    trained_bundle: tuple[Path, Manifest], s3_bucket: str
) -> None:
    folder, manifest = trained_bundle
    store = S3ModelStore(bucket=s3_bucket, prefix="models", s3=S3Resource())
    client = boto3.client("s3")

    def write(content: bytes) -> None:
        client.put_object(Bucket=s3_bucket, Key="models/production.json", Body=content)

    def read() -> bytes:
        return bytes(
            client.get_object(Bucket=s3_bucket, Key="models/production.json")["Body"].read()
        )

    _unreadable_pointer_is_an_error(store, write, read, folder, manifest.version)
    missing = S3ModelStore(bucket=f"{s3_bucket}-missing", prefix="models", s3=S3Resource())
    with pytest.raises(BundleError, match="NoSuchBucket"):  # a missing bucket is no "first bundle"
        missing.production_version()


class Intruder:
    """An S3 client through which another writer moves the pointer between our read of it
    and our write: the window a conditional write closes."""

    def __init__(self, client: Any, bucket: str, key: str, version: str) -> None:
        self.client, self.bucket, self.key, self.version = client, bucket, key, version
        self.intruded = False

    def get_object(self, **kwargs: Any) -> Any:
        try:
            return self.client.get_object(**kwargs)
        finally:
            if kwargs["Key"] == self.key and not self.intruded:
                self.intruded = True
                body = json.dumps({"version": self.version}).encode()
                self.client.put_object(Bucket=self.bucket, Key=self.key, Body=body)

    def put_object(self, **kwargs: Any) -> Any:
        return self.client.put_object(**kwargs)


@pytest.mark.integration
def test_s3_promotion_is_a_conditional_write(
    trained_bundle: tuple[Path, Manifest], s3_bucket: str, tmp_path: Path
) -> None:
    """Read, compare, then PutObject with IfMatch (IfNoneMatch='*' for the first promotion):
    a write landing in between makes ours fail, naming it, instead of overwriting it."""
    folder, _ = trained_bundle
    store = S3ModelStore(bucket=s3_bucket, prefix="models", s3=S3Resource())
    for n in (1, 2, 3):
        store.publish(renamed(folder, tmp_path / str(n), version(n)), version(n))
    client = boto3.client("s3")
    key = "models/production.json"
    for checked_against, ours, theirs in (
        (None, version(1), version(2)),
        (version(2), version(3), version(1)),
    ):
        # first: no pointer when read (IfNoneMatch), then one naming what the last round left
        racing = Intruder(client, s3_bucket, key, theirs)
        body = {"version": ours}
        with pytest.raises(PointerMoved, match=f"{ours} not promoted: .* now names {theirs}"):
            swap_pointer(store.root_uri, "production", body, checked_against, racing)
        assert racing.intruded and store.production_version() == theirs  # theirs stands
    etag = client.head_object(Bucket=s3_bucket, Key=key)["ETag"]
    written = swap_pointer(
        store.root_uri, "production", {"version": version(3)}, version(1), client
    )
    assert written.etag and written.etag != etag and store.production_version() == version(3)


def test_concurrent_promotions_from_several_processes(
    trained_bundle: tuple[Path, Manifest], tmp_path: Path
) -> None:
    """Four processes promote 15 bundles each, each against the champion it just read,
    while a fifth reads the pointer: no promotion fails but by losing the compare-and-swap,
    the reader always parses a whole pointer, and the winners form one chain from the first
    champion to the last (no two winners replaced the same champion). Before, promotions
    collided on one temporary name (FileNotFoundError) and readers saw an empty pointer."""
    folder, manifest = trained_bundle
    store = LocalModelStore(root=str(tmp_path / "store"))
    store.publish(folder, manifest.version)
    store.promote(manifest.version, {}, replacing=None)
    workers, rounds = 4, 15
    plans = [[version(100 * w + r) for r in range(rounds)] for w in range(workers)]
    context = multiprocessing.get_context("spawn")
    start, stop, results = context.Barrier(workers + 1), context.Event(), context.Queue()
    root = str(tmp_path / "store")
    promoters = [
        context.Process(target=pointer_race.promoter, args=(root, plan, start, results))
        for plan in plans
    ]
    reader = context.Process(target=pointer_race.reader, args=(root, start, stop, results))
    for process in [*promoters, reader]:
        process.start()
    outcomes = [results.get(timeout=300) for _ in range(workers * rounds)]
    stop.set()
    (_, reads, problems, problem_count) = results.get(timeout=60)
    for process in [*promoters, reader]:
        process.join(timeout=60)
        assert process.exitcode == 0
    assert [o for o in outcomes if o[0] == "error"] == []
    assert problem_count == 0, problems
    assert reads > 0
    won = {champion: new for kind, champion, new in outcomes if kind == "won"}
    winners = [o for o in outcomes if o[0] == "won"]
    assert len(won) == len(winners) >= 1  # never two promotions from the same champion
    chain, at = [], manifest.version
    while at in won:
        at = won[at]
        chain.append(at)
    assert len(chain) == len(winners) and store.production_version() == chain[-1]


class Unlisted:
    """S3 as a role that may not list the bucket sees it: a missing key reads as
    AccessDenied, not NoSuchKey (the Dagster role may list only its own prefixes)."""

    def __init__(self, client: Any, deny_every_read: bool = False) -> None:
        self.client, self.deny_every_read = client, deny_every_read

    def get_object(self, **kwargs: Any) -> Any:
        denied = ClientError({"Error": {"Code": "AccessDenied", "Message": "denied"}}, "GetObject")
        if self.deny_every_read:
            raise denied
        try:
            return self.client.get_object(**kwargs)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "NoSuchKey":
                raise denied from None
            raise

    def list_objects_v2(self, **kwargs: Any) -> Any:
        return self.client.list_objects_v2(**kwargs)

    def put_object(self, **kwargs: Any) -> Any:
        return self.client.put_object(**kwargs)


@pytest.mark.integration
def test_a_missing_s3_pointer_read_as_access_denied_is_still_no_pointer(s3_bucket: str) -> None:
    """The first promotion in AWS: no pointer yet, and S3 says AccessDenied for it. A listing
    of the key tells "not there" (the first bundle) from "there but not readable" (an error)."""
    client = boto3.client("s3")
    root = f"s3://{s3_bucket}/models"
    assert read_pointer(root, s3=Unlisted(client)) is None
    swap_pointer(root, "production", {"version": version(1)}, None, Unlisted(client))
    pointer = read_pointer(root, s3=Unlisted(client))
    assert pointer is not None and pointer.version == version(1)
    with pytest.raises(BundleError, match=f"{root}/production.json: .*AccessDenied"):
        read_pointer(root, s3=Unlisted(client, deny_every_read=True))


@pytest.mark.integration
@pytest.mark.parametrize("backend", ["folder", "s3"])
def test_a_pointer_already_naming_my_version_is_a_done_promotion(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Field fault: two identical trainings in the same second name the same version; the
    second found the pointer naming its own version and failed with "v… not promoted: …
    the pointer now names v…" (the same version). Its promotion is done."""
    if backend == "s3":
        bucket = request.getfixturevalue("s3_bucket")
        root, client = f"s3://{bucket}/models", boto3.client("s3")
    else:
        root, client = str(tmp_path / "store"), None
    swap_pointer(root, "production", {"version": version(1)}, None, client)
    first = swap_pointer(root, "production", {"version": version(2)}, version(1), client)
    again = swap_pointer(root, "production", {"version": version(2)}, version(1), client)
    assert again.version == first.version == version(2)
    assert read_pointer(root, "production", client).version == version(2)  # type: ignore[union-attr]


# ---- retention: old bundles deleted after a promotion, never one still needed ----------------


def _fake_bundle(tmp_path: Path, n: int) -> Path:
    """A published-looking bundle (a manifest and a file): retention reads no model."""
    folder = tmp_path / "fake" / str(n)
    folder.mkdir(parents=True)
    (folder / MANIFEST_FILE).write_text(json.dumps({"version": version(n)}))
    (folder / ONNX_FILE).write_bytes(b"onnx")
    return folder


def _promoted_history(store: ModelStore, tmp_path: Path) -> None:
    """Bundles 1-7 published; production went 1 -> 3 -> 6; a challenger pointer names 2;
    7 is a candidate newer than the champion, still in its checks."""
    for n in range(1, 8):
        store.publish(_fake_bundle(tmp_path, n), version(n))
    store.promote(version(1), {}, replacing=None)
    store.promote(version(3), {PREVIOUS: version(1)}, replacing=version(1))
    store.promote(version(6), {PREVIOUS: version(3)}, replacing=version(3))
    store.promote(version(2), {}, replacing=None, pointer="challenger")


def _exercise_retention(store: ModelStore, tmp_path: Path) -> None:
    _promoted_history(store, tmp_path)
    assert store.bundle_versions() == [version(n) for n in range(1, 8)]
    assert store.pointer_names() == ["challenger", "production"]
    # kept: 6 (production), 3 (the previous champion, recorded in the pointer), 2 (the
    # challenger), 7 (newer than the champion) and the newest other, 5; deleted: 1 and 4
    assert store.prune_bundles(keep_newest=1) == [version(1), version(4)]
    assert store.bundle_versions() == [version(n) for n in (2, 3, 5, 6, 7)]
    with pytest.raises(BundleError, match="not published"):  # gone: nothing can name it
        store.promote(version(4), {}, replacing=version(6))
    # with no other bundle kept, the previous champion still stays: a Lambda that read the
    # pointer a moment before the promotion may be loading it right now
    assert store.prune_bundles(keep_newest=0) == [version(5)]
    assert store.bundle_versions() == [version(n) for n in (2, 3, 6, 7)]
    assert store.production_version() == version(6)
    assert store.prune_bundles(keep_newest=0) == []  # nothing more to delete


def test_local_store_keeps_the_bundles_still_needed(tmp_path: Path) -> None:
    store = LocalModelStore(root=str(tmp_path / "store"))
    _exercise_retention(store, tmp_path)
    bundles = tmp_path / "store" / "bundles"
    assert sorted(p.name for p in bundles.iterdir()) == [version(n) for n in (2, 3, 6, 7)]


@pytest.mark.integration
def test_s3_store_keeps_the_bundles_still_needed(s3_bucket: str, tmp_path: Path) -> None:
    store = S3ModelStore(bucket=s3_bucket, prefix="models", s3=S3Resource())
    _exercise_retention(store, tmp_path)
    keys = {o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=s3_bucket)["Contents"]}
    assert {k.split("/")[2] for k in keys if k.startswith("models/bundles/")} == {
        version(n) for n in (2, 3, 6, 7)
    }
    assert {"models/production.json", "models/challenger.json"} <= keys


def test_the_previous_champion_is_kept_when_the_pointer_does_not_record_it(
    tmp_path: Path,
) -> None:
    """A pointer written before pointers recorded what they replaced: the caller names it."""
    store = LocalModelStore(root=str(tmp_path / "store"))
    for n in (1, 2, 3):
        store.publish(_fake_bundle(tmp_path, n), version(n))
    store.promote(version(1), {}, replacing=None)
    store.promote(version(3), {}, replacing=version(1))
    assert store.prune_bundles(keep_newest=0, previous=version(1)) == [version(2)]
    assert store.bundle_versions() == [version(1), version(3)]


def test_nothing_is_deleted_before_a_first_promotion_or_past_an_unreadable_pointer(
    tmp_path: Path,
) -> None:
    store = LocalModelStore(root=str(tmp_path / "store"))
    for n in (1, 2, 3):
        store.publish(_fake_bundle(tmp_path, n), version(n))
    assert store.prune_bundles(keep_newest=0) == []  # no champion yet
    store.promote(version(3), {}, replacing=None)
    (tmp_path / "store" / "challenger.json").write_text("{not json")
    with pytest.raises(BundleError, match=r"challenger\.json"):
        store.prune_bundles(keep_newest=0)  # it might name any bundle
    assert store.bundle_versions() == [version(1), version(2), version(3)]
