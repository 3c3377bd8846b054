"""Where bundles are published and which one is in production.

One interface, two implementations: a local folder (the embedded default) and an S3
prefix (dagster-aws's S3Resource, so ``AWS_ENDPOINT_URL`` points it at moto locally).
Both use the layout of ``lambda_service.bundle``, so the Lambda reads what they write, and
move pointers with ``lambda_service.pointers``: a promotion is a compare-and-swap against
the champion the bundle was checked against.

Bundles are deleted only by ``prune_bundles``, after a promotion (``production_model``): every
bundle a pointer names, the previous champion (a Lambda may be loading the bundle the pointer
named a moment ago) and the newest ``keep_newest`` others stay (``lib.retention``).
"""

import shutil
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dagster import ConfigurableResource
from dagster_aws.s3 import S3Resource
from pydantic import Field

from lambda_service.bundle import (
    BUNDLES_PREFIX,
    MANIFEST_FILE,
    POINTER_NAME_PATTERN,
    PRODUCTION,
    VERSION_PATTERN,
    BundleError,
    Pointer,
    bundle_key,
    fetch_bundle,
    read_pointer,
    read_text,
    split_s3_uri,
)
from lambda_service.pointers import swap_pointer
from studperf_assets.lib.retention import bundles_to_delete

# The field of a pointer naming the version it replaced (the previous champion).
PREVIOUS = "previous_version"


class ModelStore(ConfigurableResource):
    """Publishes bundle folders and moves the ``production`` pointer."""

    @property
    def root_uri(self) -> str:
        raise NotImplementedError

    def bundle_uri(self, version: str) -> str:
        return f"{self.root_uri}/{bundle_key(version)}"

    def publish(self, folder: Path, version: str) -> str:
        """Copy a bundle folder into the store (manifest last) and return its URI."""
        raise NotImplementedError

    def _s3(self) -> Any:
        return None

    def fetch(self, version: str, cache_dir: Path) -> Path:
        """A verified local copy of a stored bundle."""
        folder, _ = fetch_bundle(self.bundle_uri(version), cache_dir, self._s3())
        return folder

    def pointer(self, name: str = PRODUCTION) -> Pointer | None:
        """The pointer ``name`` (``production``: the champion); None only when the store
        has none yet. One that cannot be read is a BundleError, never None."""
        return read_pointer(self.root_uri, name, self._s3())

    def production_version(self) -> str | None:
        """The promoted version, or None before the first promotion; a BundleError when
        the production pointer is there but cannot be read."""
        current = self.pointer(PRODUCTION)
        return current.version if current else None

    def promote(
        self,
        version: str,
        evidence: dict[str, Any],
        *,
        replacing: str | None,
        pointer: str = PRODUCTION,
    ) -> dict[str, Any]:
        """Point ``pointer`` at a published version if it still names ``replacing`` (the
        version the bundle was checked against; None: no pointer yet). Returns the pointer
        written; PointerMoved (naming both versions) when another promotion came first,
        and then nothing is changed."""
        # Refuse to point at something that is not there: read its manifest first.
        s3 = self._s3()
        try:
            read_text(f"{self.bundle_uri(version)}/{MANIFEST_FILE}", s3)
        except Exception as exc:
            raise BundleError(
                f"{self.bundle_uri(version)}: cannot promote {version}: not published ({exc})"
            ) from exc
        body = {
            "version": version,
            "bundle_uri": self.bundle_uri(version),
            "promoted_at": datetime.now(UTC).isoformat(timespec="seconds"),
            **evidence,
        }
        return swap_pointer(self.root_uri, pointer, body, replacing, s3).body

    # ---- retention -------------------------------------------------------------------------
    def bundle_versions(self) -> list[str]:
        """The versions published in the store (sorted), whatever their state."""
        raise NotImplementedError

    def pointer_names(self) -> list[str]:
        """The names of the pointers at the store's root (``production``, ``challenger``…)."""
        raise NotImplementedError

    def delete_bundle(self, version: str) -> None:
        """Delete one bundle; a reader then finds no manifest, never a half bundle that
        verifies."""
        raise NotImplementedError

    def prune_bundles(self, keep_newest: int, previous: str | None = None) -> list[str]:
        """Delete the bundles no longer needed; returns their versions (oldest first).

        Kept: every bundle a pointer names (``production``, a ``challenger``…), the previous
        champion (``previous``, and the one the production pointer records it replaced),
        bundles newer than the champion (candidates still in their checks) and the
        ``keep_newest`` newest others. A pointer that cannot be read is a BundleError and
        nothing is deleted: an unknown pointer might name any bundle."""
        pointers = [self.pointer(name) for name in self.pointer_names()]
        named = [p.version for p in pointers if p is not None]
        production = next((p for p in pointers if p is not None and p.name == PRODUCTION), None)
        recorded = production.body.get(PREVIOUS) if production else None
        protected = [*named, previous, recorded if isinstance(recorded, str) else None]
        doomed = bundles_to_delete(
            self.bundle_versions(),
            protected,
            keep_newest,
            production.version if production else None,
        )
        for version in doomed:
            self.delete_bundle(version)
        return doomed


class LocalModelStore(ModelStore):
    """A folder on disk: the default, needs no server."""

    root: str = Field(default=".studperf/model_store", description="Folder holding the store.")

    @property
    def root_uri(self) -> str:
        return str(Path(self.root).resolve())

    def publish(self, folder: Path, version: str) -> str:
        """Copied to a staging folder of its own, then renamed into place (atomic): two
        trainings publishing at once never share a staging name."""
        target = Path(self.bundle_uri(version))
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{version}.", suffix=".tmp"))
        try:
            shutil.copytree(folder, staging, dirs_exist_ok=True)
            staging.rename(target)  # refused if the version is already there
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            if _same_manifest(folder, target):  # published already: bundles are immutable
                return str(target)
            raise BundleError(f"{target}: cannot publish {version} ({exc})") from exc
        return str(target)

    def bundle_versions(self) -> list[str]:
        folder = Path(self.root_uri, BUNDLES_PREFIX)
        if not folder.is_dir():
            return []
        return sorted(
            p.name for p in folder.iterdir() if VERSION_PATTERN.fullmatch(p.name) and p.is_dir()
        )

    def pointer_names(self) -> list[str]:
        root = Path(self.root_uri)
        if not root.is_dir():
            return []
        return sorted(
            p.stem
            for p in root.glob("*.json")
            if POINTER_NAME_PATTERN.fullmatch(p.stem) and not p.name.startswith(".")
        )

    def delete_bundle(self, version: str) -> None:
        """Renamed out of its place first (atomic: the bundle is there whole or not at
        all), then removed."""
        target = Path(self.bundle_uri(version))
        doomed = target.with_name(f".{version}.{uuid.uuid4().hex[:8]}.deleting")
        try:
            target.rename(doomed)
        except FileNotFoundError:
            return  # deleted already
        shutil.rmtree(doomed, ignore_errors=True)


def _same_manifest(folder: Path, target: Path) -> bool:
    try:
        return (folder / MANIFEST_FILE).read_bytes() == (target / MANIFEST_FILE).read_bytes()
    except OSError:
        return False


class S3ModelStore(ModelStore):
    """An S3 prefix, through dagster-aws (moto server locally via AWS_ENDPOINT_URL)."""

    bucket: str = Field(description="Bucket holding the store.")
    prefix: str = Field(default="studperf", description="Key prefix of the store.")
    s3: S3Resource

    @property
    def root_uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix.strip('/')}".rstrip("/")

    def _s3(self) -> Any:
        return self.s3.get_client()

    def publish(self, folder: Path, version: str) -> str:
        uri = self.bundle_uri(version)
        _, key_prefix = split_s3_uri(uri)
        client = self._s3()
        files = sorted(p.name for p in folder.iterdir() if p.is_file())
        # The manifest goes last: a bundle without one is visibly incomplete.
        for name in sorted(files, key=lambda n: n == MANIFEST_FILE):
            client.upload_file(str(folder / name), self.bucket, f"{key_prefix}/{name}")
        return uri

    def _root_key(self) -> str:
        return split_s3_uri(self.root_uri)[1].rstrip("/")

    def _listed(self, prefix: str, delimiter: bool = False) -> tuple[list[str], list[str]]:
        """(keys, common prefixes) under ``prefix`` (one level with ``delimiter``)."""
        options = {"Delimiter": "/"} if delimiter else {}
        keys: list[str] = []
        folders: list[str] = []
        paginator = self._s3().get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, **options):
            keys += [item["Key"] for item in page.get("Contents", [])]
            folders += [item["Prefix"] for item in page.get("CommonPrefixes", [])]
        return keys, folders

    def bundle_versions(self) -> list[str]:
        base = f"{self._root_key()}/{BUNDLES_PREFIX}/".lstrip("/")
        _, folders = self._listed(base, delimiter=True)
        names = (f[len(base) :].rstrip("/") for f in folders)
        return sorted(n for n in names if VERSION_PATTERN.fullmatch(n))

    def pointer_names(self) -> list[str]:
        base = f"{self._root_key()}/".lstrip("/")
        keys, _ = self._listed(base, delimiter=True)
        stems = (k[len(base) :].removesuffix(".json") for k in keys if k.endswith(".json"))
        return sorted(s for s in stems if POINTER_NAME_PATTERN.fullmatch(s))

    def delete_bundle(self, version: str) -> None:
        """The manifest first, so that a bundle being deleted is visibly incomplete."""
        _, key_prefix = split_s3_uri(self.bundle_uri(version))
        keys, _ = self._listed(f"{key_prefix}/")
        manifest = f"{key_prefix}/{MANIFEST_FILE}"
        client = self._s3()
        if manifest in keys:
            client.delete_object(Bucket=self.bucket, Key=manifest)
        rest = [k for k in keys if k != manifest]
        for start in range(0, len(rest), 1000):  # DeleteObjects takes 1,000 keys at most
            chunk = [{"Key": k} for k in rest[start : start + 1000]]
            client.delete_objects(Bucket=self.bucket, Delete={"Objects": chunk, "Quiet": True})
