"""Where bundles are published and which one is in production.

One interface, two implementations: a local folder (the embedded default) and an S3
prefix (dagster-aws's S3Resource, so ``AWS_ENDPOINT_URL`` points it at moto locally).
Both use the layout of ``lambda_service.bundle``, so the Lambda reads what they write, and
move pointers with ``lambda_service.pointers``: a promotion is a compare-and-swap against
the champion the bundle was checked against.
"""

import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dagster import ConfigurableResource
from dagster_aws.s3 import S3Resource
from pydantic import Field

from lambda_service.bundle import (
    MANIFEST_FILE,
    PRODUCTION,
    BundleError,
    Pointer,
    bundle_key,
    fetch_bundle,
    read_pointer,
    read_text,
    split_s3_uri,
)
from lambda_service.pointers import swap_pointer


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
