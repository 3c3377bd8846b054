"""The Evidently UI's workspace: one ``studperf`` project, a drift and a quality snapshot
per monitored batch (``evidently ui --workspace …`` shows them).

Snapshots are written with the workspace's own local writer, not through ``Workspace``:
constructing a ``Workspace`` parses every snapshot ever stored, so a monitoring run would
grow slower with each batch (measured: 0.5 s at 23 snapshots). The project itself is
created once, through ``Workspace``, under a lock so that two first batches make one.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PROJECT = "studperf"
DESCRIPTION = "Drift and quality of every monitored prediction batch"


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".studperf.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def project_id(workspace: str) -> Any:
    """The ``studperf`` project's ID, creating the project on first use."""
    from evidently.ui.storage.local.base import LocalState

    state = LocalState(workspace)
    found = _find(state)
    if found is not None:
        return found
    with _locked(Path(workspace)):
        found = _find(state)
        if found is not None:
            return found
        from evidently.ui.workspace import Workspace

        return Workspace(workspace).create_project(PROJECT, DESCRIPTION).id


def _find(state: Any) -> Any:
    for candidate in state.list_projects():
        try:
            if state.read_project(candidate).name == PROJECT:
                return candidate
        except (OSError, ValueError):  # a project folder being written right now
            continue
    return None


def add_snapshots(workspace: str, runs: Sequence[tuple[str, Any]]) -> None:
    """Store Evidently ``Snapshot`` objects, each under its name, in the project."""
    from evidently.legacy.core import new_id
    from evidently.ui.storage.local.base import LocalState

    state = LocalState(workspace)
    project = project_id(workspace)
    for name, snapshot in runs:
        snapshot.set_name(name)
        state.write_snapshot(project, new_id(), snapshot.to_snapshot_model())
