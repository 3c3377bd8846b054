"""Where bundles are published and which one is in production.

One interface, two implementations: a local folder (the embedded default) and an S3
prefix (dagster-aws's S3Resource, so ``AWS_ENDPOINT_URL`` points it at moto locally).
Both use the layout of ``lambda_service.bundle``, so the Lambda reads what they write.
"""

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dagster import ConfigurableResource
from dagster_aws.s3 import S3Resource
from pydantic import Field

from lambda_service.bundle import (
    MANIFEST_FILE,
    PRODUCTION_POINTER,
    BundleError,
    bundle_key,
    fetch_bundle,
    read_text,
    resolve_production,
    split_s3_uri,
)


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

    def _write_pointer(self, text: str) -> None:
        raise NotImplementedError

    def _s3(self) -> Any:
        return None

    def fetch(self, version: str, cache_dir: Path) -> Path:
        """A verified local copy of a stored bundle."""
        folder, _ = fetch_bundle(self.bundle_uri(version), cache_dir, self._s3())
        return folder

    def production_version(self) -> str | None:
        """The promoted version, or None before the first promotion."""
        try:
            version, _ = resolve_production(self.root_uri, self._s3())
        except BundleError:
            return None
        return version

    def promote(self, version: str, evidence: dict[str, Any]) -> dict[str, Any]:
        """Point ``production`` at a published version; returns the pointer written."""
        # Refuse to point at something that is not there: read its manifest first.
        try:
            read_text(f"{self.bundle_uri(version)}/{MANIFEST_FILE}", self._s3())
        except Exception as exc:
            raise BundleError(
                f"{self.bundle_uri(version)}: cannot promote {version}: not published ({exc})"
            ) from exc
        pointer = {
            "version": version,
            "bundle_uri": self.bundle_uri(version),
            "promoted_at": datetime.now(UTC).isoformat(timespec="seconds"),
            **evidence,
        }
        self._write_pointer(json.dumps(pointer, indent=2, sort_keys=True))
        return pointer


class LocalModelStore(ModelStore):
    """A folder on disk: the default, needs no server."""

    root: str = Field(default=".studperf/model_store", description="Folder holding the store.")

    @property
    def root_uri(self) -> str:
        return str(Path(self.root).resolve())

    def publish(self, folder: Path, version: str) -> str:
        target = Path(self.bundle_uri(version))
        staging = target.with_name(f".{version}.partial")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(folder, staging)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging.rename(target)
        return str(target)

    def _write_pointer(self, text: str) -> None:
        path = Path(self.root_uri) / PRODUCTION_POINTER
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(path)  # atomic: readers see the old pointer or the new one


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

    def _write_pointer(self, text: str) -> None:
        _, prefix = split_s3_uri(f"{self.root_uri}/{PRODUCTION_POINTER}")
        self._s3().put_object(
            Bucket=self.bucket, Key=prefix, Body=text.encode(), ContentType="application/json"
        )
