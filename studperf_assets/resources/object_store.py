"""Where monitoring keeps files: archived batches (Parquet), HTML reports and labels.

A local folder by default, an S3 prefix in production (the bucket's ``monitoring/``
prefix in Terraform); one interface, two implementations, like the model store.
"""

import io
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
from dagster import ConfigurableResource
from dagster_aws.s3 import S3Resource
from pydantic import Field

from studperf_assets.lib.archive import ArchiveSource, FolderArchive, S3Archive
from studperf_assets.lib.labels import ObjectChanged, ObjectTooLarge
from studperf_assets.lib.regular_files import open_regular


def _check_size(uri: str, size: int, max_bytes: int) -> None:
    if size > max_bytes:
        raise ObjectTooLarge(f"{uri}: {size:,} bytes, over the {max_bytes:,}-byte limit")


def _file_version(stat: os.stat_result) -> str:
    """A file's version in a folder store: its size and mtime_ns (a rewrite changes them)."""
    return f"{stat.st_size}-{stat.st_mtime_ns}"


def _etag(etag: Any) -> str:
    return str(etag or "").strip('"') or "no-etag"


class ObjectStore(ConfigurableResource):
    def put_bytes(
        self, key: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> str:
        """Write an object; returns its URI."""
        raise NotImplementedError

    def get_bytes(self, key: str, max_bytes: int | None = None) -> bytes:
        """An object's bytes; ObjectTooLarge, before it is read, if over ``max_bytes``."""
        raise NotImplementedError

    def put_bytes_if_absent(self, key: str, data: bytes) -> bool:
        """Create an object only if no object has that key (atomic); False if one had."""
        raise NotImplementedError

    def exists(self, key: str) -> bool:
        raise NotImplementedError

    def list_keys(self, prefix: str, start_after: str = "") -> list[str]:
        """Keys under a prefix (sorted), only those after ``start_after`` if given: a
        store keyed by time lists only what is new."""
        raise NotImplementedError

    def list_versions(self, prefix: str) -> dict[str, str]:
        """Keys under a prefix -> their version: S3's ETag, or size and mtime_ns in a folder.
        A file rewritten under the same key has a new version."""
        raise NotImplementedError

    def get_versioned(self, key: str, max_bytes: int | None = None) -> tuple[bytes, str]:
        """An object's bytes and the version they are (``list_versions``'s); ObjectChanged
        if it changed while it was read, ObjectTooLarge as ``get_bytes``."""
        raise NotImplementedError

    def uri(self, key: str) -> str:
        raise NotImplementedError

    def browse_url(self, key: str) -> str:
        """A link for operators (the Dagster UI): a file URL, or the S3 console."""
        raise NotImplementedError

    def share_url(self, key: str, seconds: int = 7 * 24 * 3600) -> str:
        """A link for a recipient (alert e-mails): a file URL, or a presigned S3 URL."""
        raise NotImplementedError

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix`` (retention); returns how many."""
        raise NotImplementedError

    def archive(self) -> ArchiveSource:
        """The predictions archive in this store (``lib.archive``): a FolderArchive of a
        folder, an S3Archive of a bucket and prefix."""
        raise NotImplementedError

    def put_frame(self, key: str, frame: pd.DataFrame) -> str:
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        return self.put_bytes(key, buffer.getvalue())

    def get_frame(self, key: str) -> pd.DataFrame:
        return pd.read_parquet(io.BytesIO(self.get_bytes(key)))


class LocalObjectStore(ObjectStore):
    root: str = Field(default=".studperf/monitoring", description="Folder of the store.")

    def _path(self, key: str) -> Path:
        return Path(self.root).resolve() / key

    def put_bytes(
        self, key: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> str:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
        return str(path)

    def put_bytes_if_absent(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.link(tmp, path)  # fails if the key exists; readers never see half a file
            return True
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)

    def get_bytes(self, key: str, max_bytes: int | None = None) -> bytes:
        """A regular file under the root only. It is opened without blocking (a FIFO's open
        would wait for a writer for ever) and judged by what was opened, not by a check
        before the open that a swap could undo."""
        with self._open_regular(key, max_bytes) as handle:
            return handle.read()

    def _open_regular(self, key: str, max_bytes: int | None) -> Any:
        """The file of ``key`` opened for reading, if it is a regular file under the root
        (ObjectRefused otherwise) within ``max_bytes`` (ObjectTooLarge otherwise)."""
        return open_regular(self._path(""), self._path(key), self.uri(key), max_bytes)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list_keys(self, prefix: str, start_after: str = "") -> list[str]:
        base = self._path(prefix)
        if not base.is_dir():
            return []
        root = self._path("")
        keys: list[str] = []
        for folder, subfolders, files in os.walk(base):
            relative = Path(folder).relative_to(root).as_posix()
            relative = "" if relative == "." else relative + "/"
            # Skip whole folders whose keys all sort before start_after (old partitions).
            subfolders[:] = [
                d for d in subfolders if start_after[: len(relative + d) + 1] <= relative + d + "/"
            ]
            keys += [
                relative + name
                for name in files
                if not name.startswith(".") and relative + name > start_after
            ]
        return sorted(keys)

    def list_versions(self, prefix: str) -> dict[str, str]:
        versions = {}
        for key in self.list_keys(prefix):
            try:
                versions[key] = _file_version(self._path(key).stat())
            except OSError:  # gone (or unreadable) since it was listed: as if not there yet
                continue
        return versions

    def get_versioned(self, key: str, max_bytes: int | None = None) -> tuple[bytes, str]:
        with self._open_regular(key, max_bytes) as fh:  # the same refusals as get_bytes
            before = os.fstat(fh.fileno())
            data = fh.read()
            after = os.fstat(fh.fileno())
        if _file_version(after) != _file_version(before) or len(data) != before.st_size:
            raise ObjectChanged(f"{self.uri(key)}: changed while it was read")
        return data, _file_version(before)

    def uri(self, key: str) -> str:
        return str(self._path(key))

    def delete_prefix(self, prefix: str) -> int:
        keys = self.list_keys(prefix)
        for key in keys:
            self._path(key).unlink(missing_ok=True)
        return len(keys)

    def archive(self) -> ArchiveSource:
        return FolderArchive(self._path(""))

    def browse_url(self, key: str) -> str:
        return self._path(key).as_uri()

    def share_url(self, key: str, seconds: int = 7 * 24 * 3600) -> str:
        return self._path(key).as_uri()


class S3ObjectStore(ObjectStore):
    bucket: str = Field(description="Bucket of the store.")
    prefix: str = Field(default="monitoring", description="Key prefix of the store.")
    s3: S3Resource

    def _key(self, key: str) -> str:
        return f"{self.prefix.strip('/')}/{key}".lstrip("/")

    def _client(self) -> Any:
        return self.s3.get_client()

    def put_bytes(
        self, key: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> str:
        self._client().put_object(
            Bucket=self.bucket, Key=self._key(key), Body=data, ContentType=content_type
        )
        return self.uri(key)

    def put_bytes_if_absent(self, key: str, data: bytes) -> bool:
        from botocore.exceptions import ClientError

        try:
            self._client().put_object(
                Bucket=self.bucket, Key=self._key(key), Body=data, IfNoneMatch="*"
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412"):
                return False
            raise
        return True

    def get_bytes(self, key: str, max_bytes: int | None = None) -> bytes:
        response = self._client().get_object(Bucket=self.bucket, Key=self._key(key))
        if max_bytes is not None:
            try:
                _check_size(self.uri(key), int(response["ContentLength"]), max_bytes)
            except ObjectTooLarge:
                response["Body"].close()
                raise
        return bytes(response["Body"].read())

    def exists(self, key: str) -> bool:
        response = self._client().list_objects_v2(
            Bucket=self.bucket, Prefix=self._key(key), MaxKeys=1
        )
        return any(o["Key"] == self._key(key) for o in response.get("Contents", []))

    def list_keys(self, prefix: str, start_after: str = "") -> list[str]:
        paginator = self._client().get_paginator("list_objects_v2")
        base = self._key("")
        options = {"StartAfter": self._key(start_after)} if start_after else {}
        keys = []
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix), **options):
            keys += [o["Key"][len(base) :] for o in page.get("Contents", [])]
        return sorted(keys)

    def list_versions(self, prefix: str) -> dict[str, str]:
        paginator = self._client().get_paginator("list_objects_v2")
        base = self._key("")
        versions = {}
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
            for item in page.get("Contents", []):
                versions[item["Key"][len(base) :]] = _etag(item.get("ETag"))
        return dict(sorted(versions.items()))

    def get_versioned(self, key: str, max_bytes: int | None = None) -> tuple[bytes, str]:
        # one GET: the ETag is the version of exactly the bytes it returns
        response = self._client().get_object(Bucket=self.bucket, Key=self._key(key))
        if max_bytes is not None:
            try:
                _check_size(self.uri(key), int(response["ContentLength"]), max_bytes)
            except ObjectTooLarge:
                response["Body"].close()
                raise
        return bytes(response["Body"].read()), _etag(response.get("ETag"))

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def delete_prefix(self, prefix: str) -> int:
        keys = self.list_keys(prefix)
        client = self._client()
        for start in range(0, len(keys), 1000):  # DeleteObjects takes 1,000 keys at most
            chunk = [{"Key": self._key(k)} for k in keys[start : start + 1000]]
            client.delete_objects(Bucket=self.bucket, Delete={"Objects": chunk, "Quiet": True})
        return len(keys)

    def archive(self) -> ArchiveSource:
        return S3Archive(self._client(), self.bucket, self.prefix)

    def browse_url(self, key: str) -> str:
        from urllib.parse import quote

        return (
            f"https://s3.console.aws.amazon.com/s3/object/{self.bucket}"
            f"?prefix={quote(self._key(key), safe='')}"
        )

    def share_url(self, key: str, seconds: int = 7 * 24 * 3600) -> str:
        return str(
            self._client().generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": self._key(key)},
                ExpiresIn=min(seconds, 7 * 24 * 3600),  # SigV4's own limit
            )
        )
