"""Reading a file of a folder store that anyone upstream may have written: the model store,
the label folder, the predictions archive. Only a regular file under the folder is read,
opened without blocking (a FIFO's open waits for a writer for ever) and without following a
final symlink, and judged by what was opened, not by a check before the open that a swap
could undo. Pure: no Dagster.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from studperf_assets.lib.labels import ObjectTooLarge


class ObjectRefused(ObjectTooLarge):
    """An object the store will not read: not a regular file (a FIFO, a device, a folder)
    or outside the store's root. Refused like an oversize object, before it is read: a
    reader treats it as an unusable file, named, and is never blocked by it."""


def _kind(mode: int) -> str:
    kinds = [
        (stat.S_ISFIFO, "a FIFO"), (stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a device"),
        (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket"),
    ]  # fmt: skip
    return next((name for test, name in kinds if test(mode)), "not a file")


def open_regular(root: Path, path: Path, uri: str, max_bytes: int | None = None) -> BinaryIO:
    """``path`` opened for reading if it is a regular file under ``root``; ObjectRefused
    (naming ``uri``) otherwise, ObjectTooLarge if over ``max_bytes``."""
    root, resolved = root.resolve(), path.resolve()
    if not resolved.is_relative_to(root):
        raise ObjectRefused(f"{uri}: outside the store (it leads to {resolved})")
    fd = os.open(resolved, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    try:
        found = os.fstat(fd)
        if not stat.S_ISREG(found.st_mode):
            raise ObjectRefused(f"{uri}: not a regular file ({_kind(found.st_mode)})")
        if max_bytes is not None and found.st_size > max_bytes:
            raise ObjectTooLarge(
                f"{uri}: {found.st_size:,} bytes, over the {max_bytes:,}-byte limit"
            )
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def is_regular(root: Path, path: Path) -> bool:
    """Whether ``path`` is, right now, a regular file under ``root`` reached without a
    symlink at its end (what a reader that opens by name, such as DuckDB, may be given)."""
    try:
        found = path.lstat()
    except OSError:
        return False
    return stat.S_ISREG(found.st_mode) and path.resolve().is_relative_to(root.resolve())
