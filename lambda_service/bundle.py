"""The model-bundle format, shared by training (writer) and serving (reader).

A bundle is a folder (local or under an ``s3://`` prefix) holding:

- ``model.skops``: the scikit-learn Pipeline (scaler + model), the source of truth;
- ``model.onnx``: the same pipeline exported to ONNX, the lean form the Lambda serves;
- ``manifest.json``: version, schema, labels, metrics, lineage and the sha256 of each file.

A model store keeps bundles under ``bundles/<version>/`` and names the bundle a role
serves in a pointer at its root: ``production.json`` names the champion (a ``challenger``
pointer may stand beside it). ``read_pointer`` tells "no pointer yet" (None) from "a pointer
that cannot be read" (a BundleError, never None); ``pointers.swap_pointer`` moves one.

A model store is a trust boundary: whoever can write one object there must not get the
host. Every version and file name read from a manifest or a pointer must match a strict
pattern, and every path built from one must stay inside its bundle folder, cache or store;
a violation is a BundleError naming the bad value, raised before anything is touched.
Sizes are bounded too, so that no object in the store can fill the disk or hold up a batch
behind a hot swap: a pointer or manifest is at most ``MAX_TEXT_BYTES``, a manifest lists at
most ``MAX_BUNDLE_FILES`` files, and the files of one bundle add up to at most ``max_bytes``
(``DEFAULT_MAX_BUNDLE_BYTES`` unless the caller says otherwise), checked before a byte is
copied and again while copying.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
SKOPS_FILE = "model.skops"
ONNX_FILE = "model.onnx"
# The champion's held-out rows as its serving form scores them (inputs, grade,
# probabilities, true grade): what monitoring compares its windows with. Hashed like the
# model files; serving fetches it with them and never reads it.
REFERENCE_FILE = "reference.parquet"
BUNDLES_PREFIX = "bundles"
PRODUCTION = "production"  # the champion's pointer
POINTER_NAME_PATTERN = re.compile(r"[a-z][a-z0-9_-]{0,31}")
PRODUCTION_POINTER = f"{PRODUCTION}.json"
ONNX_INPUT_NAME = "features"
# vYYYYmmddTHHMMSSZ-<first 8 hex of the model file's sha256>: what training writes.
VERSION_PATTERN = re.compile(r"v\d{8}T\d{6}Z-[0-9a-f]{8}")
FILE_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}\.[a-z]{1,8}")
SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")
MAX_TEXT_BYTES = 1 << 20  # a production pointer or a manifest: a few kB in practice
MAX_BUNDLE_FILES = 8  # training writes three
DEFAULT_MAX_BUNDLE_BYTES = 256 << 20  # a bundle is ~150 kB; Lambda's /tmp is 512 MB
_CHUNK = 1 << 20


class BundleError(RuntimeError):
    """A bundle that is missing, incomplete or corrupt; the message names its URI."""


@dataclass
class Manifest:
    version: str
    created_at: str
    model_name: str
    model_family: str
    features: list[dict[str, Any]]
    class_labels: list[str]
    metrics: dict[str, dict[str, float]]
    training_data_sha256: str
    files: dict[str, str]
    mlflow_run_id: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, source: str = "manifest") -> Manifest:
        """Parse and check a manifest: a bad version or file name is a BundleError."""
        try:
            data = json.loads(text)
            manifest = cls(**data)
        except (ValueError, TypeError, RecursionError) as exc:
            raise BundleError(f"{source}: not a valid bundle manifest ({exc})") from exc
        check_version(manifest.version, source)
        if not isinstance(manifest.files, dict) or ONNX_FILE not in manifest.files:
            raise BundleError(f"{source}: the manifest lists no {ONNX_FILE}")
        if len(manifest.files) > MAX_BUNDLE_FILES:
            raise BundleError(
                f"{source}: the manifest lists {len(manifest.files)} files "
                f"(at most {MAX_BUNDLE_FILES})"
            )
        for name, digest in manifest.files.items():
            check_file_name(name, source)
            if not isinstance(digest, str) or not SHA256_PATTERN.fullmatch(digest):
                raise BundleError(f"{source}: {name!r} has no valid sha256 in the manifest")
        return manifest


def check_version(version: Any, where: str) -> str:
    """A bundle version as training writes it, or a BundleError naming the bad value."""
    if not isinstance(version, str) or not VERSION_PATTERN.fullmatch(version):
        raise BundleError(f"{where}: invalid bundle version {_shown(version)}")
    return version


def check_file_name(name: Any, where: str) -> str:
    """A plain file name (no folder, no '..', no absolute path), or a BundleError."""
    if not isinstance(name, str) or not FILE_NAME_PATTERN.fullmatch(name) or name == MANIFEST_FILE:
        raise BundleError(f"{where}: invalid file name in the manifest {_shown(name)}")
    return name


def inside(folder: Path, name: str, where: str) -> Path:
    """``folder / name``, refused unless it resolves to a direct child of ``folder``."""
    path = (folder / name).resolve()
    if path.parent != folder.resolve():
        raise BundleError(f"{where}: {_shown(name)} leaves {folder}")
    return path


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def bundle_key(version: str) -> str:
    """Path of a bundle relative to its store root."""
    return f"{BUNDLES_PREFIX}/{check_version(version, 'bundle key')}"


def verify_bundle(
    folder: Path, uri: str | None = None, max_bytes: int = DEFAULT_MAX_BUNDLE_BYTES
) -> Manifest:
    """Check every file a bundle lists against its sha256; return the manifest. Sizes are
    checked first, so an oversized file is refused without being read."""
    where = uri or str(folder)
    manifest_path = folder / MANIFEST_FILE
    if not manifest_path.is_file():
        raise BundleError(f"{where}: no {MANIFEST_FILE}; not a model bundle")
    manifest = Manifest.from_json(_read_local(manifest_path, where), where)
    paths = {name: inside(folder, name, where) for name in manifest.files}
    for name, path in paths.items():
        if not path.is_file():
            raise BundleError(f"{where}: {name} is missing")
    _check_total(sum(p.stat().st_size for p in paths.values()), max_bytes, where)
    for name, expected in manifest.files.items():
        actual = sha256_file(paths[name])
        if actual != expected:
            raise BundleError(
                f"{where}: {name} is corrupt (sha256 {actual[:12]}…, manifest {expected[:12]}…)"
            )
    return manifest


def _check_total(size: int, max_bytes: int, where: str) -> None:
    if size > max_bytes:
        raise BundleError(
            f"{where}: the bundle's files hold {size:,} bytes, more than the {max_bytes:,} "
            "allowed (MODEL_MAX_MB)"
        )


def split_s3_uri(uri: str) -> tuple[str, str]:
    rest = uri.removeprefix("s3://")
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise BundleError(f"{uri}: not an s3://bucket/prefix URI")
    return bucket, key.strip("/")


def _s3_client() -> Any:
    import boto3  # local import: only S3 users pay for it

    return boto3.client("s3")


def read_text(uri: str, s3: Any = None, limit: int = MAX_TEXT_BYTES) -> str:
    """Read a small text object (a pointer or manifest) from a local path or s3:// URI;
    one larger than ``limit`` bytes is a BundleError, refused before it is read."""
    return _read_tagged(uri, s3, limit)[0]


def _read_tagged(uri: str, s3: Any, limit: int = MAX_TEXT_BYTES) -> tuple[str, str | None]:
    """``read_text`` and, from S3, the object's ETag (the guard of a conditional write)."""
    if uri.startswith("s3://"):
        bucket, key = split_s3_uri(uri)
        response = (s3 or _s3_client()).get_object(Bucket=bucket, Key=key)
        size = int(response.get("ContentLength", 0))
        if size > limit:
            response["Body"].close()
            raise BundleError(f"{uri}: {size:,} bytes; at most {limit:,} are read")
        data = response["Body"].read(limit + 1)
        if len(data) > limit:
            raise BundleError(f"{uri}: more than {limit:,} bytes")
        return _text(data, uri), response.get("ETag")
    return _read_local(Path(uri), uri, limit), None


def _read_local(path: Path, where: str, limit: int = MAX_TEXT_BYTES) -> str:
    with open(path, "rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise BundleError(f"{where}: {path.name} has more than {limit:,} bytes")
    return _text(data, where)


def _text(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BundleError(f"{where}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


@dataclass(frozen=True)
class Pointer:
    """A store's pointer ``<name>.json``: the bundle a role (production, ...) serves."""

    name: str
    version: str
    bundle_uri: str  # built from the version, never taken from the pointer's own text
    body: dict[str, Any]  # the whole pointer: version, bundle_uri, promoted_at, evidence
    etag: str | None = None  # S3's entity tag for the object read: a conditional write's guard


def pointer_uri(store_uri: str, name: str = PRODUCTION) -> str:
    if not isinstance(name, str) or not POINTER_NAME_PATTERN.fullmatch(name):
        raise BundleError(f"{store_uri}: invalid pointer name {_shown(name)}")
    return f"{store_uri.rstrip('/')}/{name}.json"


def s3_error_code(error: Exception) -> str | None:
    """The code of a botocore ClientError (NoSuchKey, PreconditionFailed, ...), else None."""
    response = getattr(error, "response", None)  # botocore's ClientError
    return response.get("Error", {}).get("Code") if isinstance(response, dict) else None


def _absent(error: Exception, uri: str, s3: Any) -> bool:
    """No such pointer: a missing file or folder, or S3's NoSuchKey (not a missing bucket).
    S3 answers AccessDenied instead of NoSuchKey to a reader who may not list the bucket
    (the Dagster role may list only its prefixes): then a listing of the key decides."""
    if isinstance(error, FileNotFoundError | NotADirectoryError):
        return True
    code = s3_error_code(error)
    if code in ("NoSuchKey", "404"):
        return True
    if code not in ("AccessDenied", "403") or not uri.startswith("s3://"):
        return False
    bucket, key = split_s3_uri(uri)
    try:
        listing = (s3 or _s3_client()).list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1)
    except Exception:  # noqa: BLE001 - may not list either: the read's own error stands
        return False
    return not any(item.get("Key") == key for item in listing.get("Contents", []))


def read_pointer(store_uri: str, name: str = PRODUCTION, s3: Any = None) -> Pointer | None:
    """The store's pointer ``name``, or None when the store has none yet. A pointer that is
    there but cannot be read, is not a JSON object naming a valid version, or leads out of
    the store is a BundleError naming it: never None, so that nobody takes an unreadable
    champion for no champion."""
    uri = pointer_uri(store_uri, name)
    try:
        text, etag = _read_tagged(uri, s3)
    except BundleError:
        raise
    except Exception as exc:
        if _absent(exc, uri, s3):
            return None
        raise BundleError(f"{uri}: the pointer cannot be read ({exc})") from exc
    try:
        body = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise BundleError(f"{uri}: the pointer is not JSON ({exc})") from None
    if not isinstance(body, dict) or "version" not in body:
        raise BundleError(f"{uri}: the pointer is not an object naming a version")
    version = check_version(body["version"], uri)  # a pointer must not lead out of the store
    bundle = f"{store_uri.rstrip('/')}/{bundle_key(version)}"
    if not bundle.startswith("s3://"):  # nor may a symlinked bundle folder, locally
        inside(Path(store_uri, BUNDLES_PREFIX), version, uri)
    return Pointer(name, version, bundle, body, etag)


def resolve_pointer(store_uri: str, name: str = PRODUCTION, s3: Any = None) -> tuple[str, str]:
    """Return (version, bundle URI) that a store's pointer names; no pointer is an error."""
    pointer = read_pointer(store_uri, name, s3)
    if pointer is None:
        raise BundleError(f"{pointer_uri(store_uri, name)}: no such pointer in the store")
    return pointer.version, pointer.bundle_uri


def resolve_production(store_uri: str, s3: Any = None) -> tuple[str, str]:
    """Return (version, bundle URI) that a store's production pointer names."""
    return resolve_pointer(store_uri, PRODUCTION, s3)


def fetch_bundle(
    uri: str, cache_dir: Path, s3: Any = None, max_bytes: int = DEFAULT_MAX_BUNDLE_BYTES
) -> tuple[Path, Manifest]:
    """Copy a bundle to ``cache_dir/<version>`` (once), verify its hashes, return it.

    ``uri`` is a bundle folder or ``s3://`` prefix. The cache is keyed by version, yet a
    cached copy is reused only if it is the bundle the store's manifest describes now: the
    same manifest text, and files that verify against its sha256. A half-written cache, or
    a manifest or file changed in the store under the same version, is fetched again, never
    served stale. The files may add up to ``max_bytes``: each is sized before it is copied,
    and a copy stops at the budget.
    """
    try:
        manifest_text = read_text(f"{uri.rstrip('/')}/{MANIFEST_FILE}", s3)
        manifest = Manifest.from_json(manifest_text, uri)
    except BundleError:
        raise
    except Exception as exc:
        raise BundleError(f"{uri}: cannot read the bundle manifest ({exc})") from exc
    target = inside(cache_dir, manifest.version, uri)  # checked before anything is touched
    if target.is_dir():
        cached = _cached(target, manifest_text, uri, max_bytes)
        if cached is not None:
            return target, cached
        shutil.rmtree(target, ignore_errors=True)
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=cache_dir, prefix=".partial-"))
    try:
        used = 0
        for name in manifest.files:
            src = f"{uri.rstrip('/')}/{name}"
            used += _copy(src, inside(staging, name, uri), s3, used, max_bytes, uri)
        (staging / MANIFEST_FILE).write_text(manifest_text)  # the one that was checked
        verified = verify_bundle(staging, uri, max_bytes)
        try:
            os.replace(staging, target)
        except OSError:
            if not target.is_dir():
                raise
            # another process sharing the cache (a second consumer on one home) was first
            shutil.rmtree(staging, ignore_errors=True)
            cached = _cached(target, manifest_text, uri, max_bytes)
            if cached is None:
                raise BundleError(
                    f"{uri}: the cache {target} holds another copy of {manifest.version} "
                    "than the store's manifest describes"
                ) from None
            verified = cached
    except BundleError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    except Exception as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise BundleError(f"{uri}: cannot fetch the bundle ({exc})") from exc
    return target, verified


def _cached(target: Path, manifest_text: str, uri: str, max_bytes: int) -> Manifest | None:
    """The manifest of the cached copy ``target`` if it is the store's bundle now (the
    store's manifest text, every file verifying against its hashes), else None."""
    try:
        if _read_local(target / MANIFEST_FILE, uri) != manifest_text:
            return None
        return verify_bundle(target, uri, max_bytes)
    except (BundleError, OSError):
        return None


def prune_cache(cache_dir: Path, keep: set[str]) -> list[str]:
    """Delete the cached bundles not in ``keep``; return their versions. Only folders named
    like a version are touched (never a staging folder, a symlink or anything else), so a
    store that promotes one large bundle after another cannot fill the disk."""
    if not cache_dir.is_dir():
        return []
    removed = []
    for entry in sorted(cache_dir.iterdir()):
        if entry.name in keep or not VERSION_PATTERN.fullmatch(entry.name):
            continue
        if entry.is_symlink() or not entry.is_dir():
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry.name)
    return removed


def _copy(src: str, dest: Path, s3: Any, used: int, max_bytes: int, uri: str) -> int:
    """Copy one file while the bundle's total stays within ``max_bytes``; return its size."""
    if src.startswith("s3://"):
        bucket, key = split_s3_uri(src)
        response = (s3 or _s3_client()).get_object(Bucket=bucket, Key=key)
        body = response["Body"]
        try:
            _check_total(used + int(response.get("ContentLength", 0)), max_bytes, uri)
            return _stream(iter(lambda: body.read(_CHUNK), b""), dest, used, max_bytes, uri)
        finally:
            body.close()
    source = Path(src)
    inside(source.parent, source.name, src)  # a symlink out of the bundle folder is refused
    _check_total(used + source.stat().st_size, max_bytes, uri)
    with open(source, "rb") as fh:
        return _stream(iter(lambda: fh.read(_CHUNK), b""), dest, used, max_bytes, uri)


def _stream(chunks: Iterator[bytes], dest: Path, used: int, max_bytes: int, uri: str) -> int:
    """Write ``chunks`` to ``dest``, stopping as soon as the total passes ``max_bytes`` (an
    object that grows past the size it announced)."""
    written = 0
    with open(dest, "wb") as out:
        for chunk in chunks:
            written += len(chunk)
            _check_total(used + written, max_bytes, uri)
            out.write(chunk)
    return written


def resolve_bundle_uri(uri: str, s3: Any = None) -> tuple[str, str | None]:
    """Accept a bundle URI, a store root, or the store's ``production.json``.

    Returns (bundle URI, production pointer's version or None when a bundle was named).
    """
    base = uri.rstrip("/")
    if base.endswith(PRODUCTION_POINTER):
        version, bundle = resolve_production(base[: -len(PRODUCTION_POINTER)].rstrip("/"), s3)
        return bundle, version
    try:
        read_text(f"{base}/{MANIFEST_FILE}", s3)
        return base, None
    except Exception:  # noqa: BLE001 - not a bundle: maybe a store root
        pass
    pointer = read_pointer(base, PRODUCTION, s3)  # a store whose pointer is unreadable says so
    if pointer is None:
        raise BundleError(
            f"{uri}: neither a model bundle (no {MANIFEST_FILE}) nor a model store "
            f"(no {PRODUCTION_POINTER})"
        )
    return pointer.bundle_uri, pointer.version
