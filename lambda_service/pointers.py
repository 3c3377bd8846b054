"""Moving a model store's pointer: a compare-and-swap, and never a partial pointer.

``swap_pointer`` points ``<name>.json`` at a version only if the pointer still names the
version the caller compared with (None: no pointer yet); otherwise it raises PointerMoved,
naming both versions, and changes nothing. So two trainings that checked their bundles
against the same champion cannot both promote: the second finds the pointer moved.

- A folder: an exclusive ``fcntl.flock`` on ``.<name>.lock`` beside the pointer is held
  around read, compare and write. The new pointer is written to a temporary file of its
  own (unique name, fsynced) and renamed over the old one, which is atomic on POSIX: a
  reader sees the old pointer or the new one, never a part of either.
- S3: a conditional PutObject, ``IfMatch`` the ETag of the pointer read (``IfNoneMatch='*'``
  when there was none). S3 refuses the write (412) if anyone wrote the pointer in between,
  and a single PutObject is never seen half-written.

Only training writes pointers; the Lambda never imports this module. The standard library
is enough: the lock is held for one small read and one rename, needing none of the timeouts
or re-entrancy of ``filelock`` (which ``studperf_assets`` uses for its leases), and this
module belongs with the pointer format in ``lambda_service``, whose requirements lack it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from lambda_service.bundle import (
    BundleError,
    Pointer,
    _s3_client,
    bundle_key,
    check_version,
    pointer_uri,
    read_pointer,
    s3_error_code,
    split_s3_uri,
)

# S3's answers to a conditional write that lost: the object changed (412), a concurrent
# conditional write to it is under way (409), or it was deleted since it was read (404).
LOST_RACE_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey"})


class PointerMoved(BundleError):
    """A compare-and-swap that lost: the pointer does not name the version compared with."""

    def __init__(self, uri: str, expected: str | None, found: str | None, proposed: str) -> None:
        self.expected, self.found, self.proposed = expected, found, proposed
        super().__init__(
            f"{uri}: {proposed} not promoted: it was checked against "
            f"{expected or 'no champion'}, but another promotion came first (the pointer "
            f"now names {found or 'nothing'}); nothing was changed"
        )


def swap_pointer(
    store_uri: str, name: str, body: dict[str, Any], expected: str | None, s3: Any = None
) -> Pointer:
    """Point ``name`` at ``body["version"]`` if it still names ``expected``; return the new
    pointer. PointerMoved if it does not, a BundleError if it cannot be read or written;
    in either case the pointer is left as it was."""
    uri = pointer_uri(store_uri, name)
    version = check_version(body.get("version"), uri)
    bundle = f"{store_uri.rstrip('/')}/{bundle_key(version)}"
    text = json.dumps(body, indent=2, sort_keys=True)
    if store_uri.startswith("s3://"):
        done = _swap_s3(store_uri, name, text, expected, version, s3 or _s3_client())
    else:
        done = _swap_local(Path(store_uri), name, text, expected, version)
    if isinstance(done, Pointer):  # it already named this version: nothing to do
        return done
    return Pointer(name, version, bundle, body, done)


def _compare(
    current: Pointer | None, expected: str | None, proposed: str, uri: str
) -> Pointer | None:
    """The current pointer if it already names ``proposed`` (two identical trainings in
    one second name one version: the promotion is done, not lost), else None when it
    names ``expected``; PointerMoved otherwise."""
    found = current.version if current else None
    if current is not None and found == proposed:
        return current
    if found != expected:
        raise PointerMoved(uri, expected, found, proposed)
    return None


def _swap_local(
    root: Path, name: str, text: str, expected: str | None, proposed: str
) -> Pointer | None:
    uri = pointer_uri(str(root), name)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{name}.lock", "a") as lock:  # never deleted: that would race
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        if done := _compare(read_pointer(str(root), name), expected, proposed, uri):
            return done
        try:
            _replace_atomically(Path(uri), text)
        except OSError as exc:
            raise BundleError(f"{uri}: cannot write the pointer ({exc})") from exc
    return None


def _replace_atomically(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file of its own, then rename it over ``path``."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o644)  # mkstemp's 0600 would hide it from other readers
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    folder = os.open(path.parent, os.O_RDONLY)  # the rename itself survives a crash
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def _swap_s3(
    store_uri: str, name: str, text: str, expected: str | None, proposed: str, s3: Any
) -> str | Pointer | None:
    """The new pointer's ETag, or the current pointer if it already names ``proposed``."""
    uri = pointer_uri(store_uri, name)
    current = read_pointer(store_uri, name, s3)
    if done := _compare(current, expected, proposed, uri):
        return done
    if current is not None and not current.etag:
        raise BundleError(f"{uri}: the store gave no ETag; cannot write the pointer safely")
    guard = {"IfMatch": current.etag} if current else {"IfNoneMatch": "*"}
    bucket, key = split_s3_uri(uri)
    try:
        response = s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=text.encode("utf-8"),
            ContentType="application/json",
            **guard,
        )
    except Exception as exc:
        if s3_error_code(exc) not in LOST_RACE_CODES:
            raise BundleError(f"{uri}: cannot write the pointer ({exc})") from exc
        now = read_pointer(store_uri, name, s3)
        if now is not None and now.version == proposed:  # the other writer promoted it too
            return now
        raise PointerMoved(uri, expected, now.version if now else None, proposed) from exc
    etag = response.get("ETag")
    return str(etag) if etag else None
