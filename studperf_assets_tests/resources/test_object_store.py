"""The local object store reads regular files under its root only: a FIFO, a device or a
symlink leading out of the root is refused at once with an error naming it, never opened
(a FIFO under ``labels/`` used to block the monitoring run that read it, for ever)."""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import pytest

from studperf_assets.lib.labels import LabelFileError, read_label_file
from studperf_assets.lib.regular_files import ObjectRefused
from studperf_assets.resources.object_store import LocalObjectStore


def _within(seconds: float, call: object) -> object:
    """``call()``'s result, or a test failure if it blocks (a FIFO open would)."""
    box: dict[str, object] = {}

    def run() -> None:
        try:
            box["value"] = call()  # type: ignore[operator]
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box["error"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        pytest.fail(f"blocked for {seconds}s")
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]


def test_non_regular_files_and_escaping_links_are_refused_not_opened(tmp_path: Path) -> None:
    store = LocalObjectStore(root=str(tmp_path / "store"))
    store.put_bytes("labels/ok.parquet", b"fine")
    labels = tmp_path / "store" / "labels"
    os.mkfifo(labels / "stuck.parquet")
    outside = tmp_path / "secret.txt"
    outside.write_bytes(b"not the store's")
    (labels / "escape.parquet").symlink_to(outside)
    (labels / "device.parquet").symlink_to("/dev/zero")
    (labels / "inside.parquet").symlink_to(labels / "ok.parquet")
    try:
        for key, why in [
            ("labels/stuck.parquet", "not a regular file (a FIFO)"),
            ("labels/escape.parquet", "outside the store"),
            ("labels/device.parquet", "outside the store"),
            ("../secret.txt", "outside the store"),
            ("labels", "not a regular file (a directory)"),
        ]:
            with pytest.raises(ObjectRefused, match=re.escape(why)):
                _within(5, lambda key=key: store.get_bytes(key, max_bytes=10))
            with pytest.raises(ObjectRefused):
                _within(5, lambda key=key: store.get_bytes(key))
        assert _within(5, lambda: store.get_bytes("labels/inside.parquet")) == b"fine"
        # a label file that is a FIFO is rejected by name, like any unusable label file
        with pytest.raises(LabelFileError, match="not a regular file"):
            _within(5, lambda: read_label_file(store, "labels/stuck.parquet"))
    finally:
        # unblock a reader a broken store left waiting on the FIFO
        fd = os.open(labels / "stuck.parquet", os.O_RDWR | os.O_NONBLOCK)
        os.close(fd)
