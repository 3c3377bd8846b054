"""The Evidently UI's workspace: one ``studperf`` project, a drift and a quality snapshot
per monitored batch (``evidently ui --workspace …`` shows them). Not a Dagster resource, but
it writes files under a lock, so it lives beside the resources rather than in ``lib``.

Snapshots are written with the workspace's own local writer, not through ``Workspace``:
constructing a ``Workspace`` parses every snapshot ever stored, so a monitoring run would
grow slower with each batch (measured: 0.5 s at 23 snapshots). The project itself is
created once, through ``Workspace``, under a lock so that two first batches make one.

A snapshot's file is named by its name (``<window> drift``, ``<window> quality``: a UUID5
of it, ``snapshot_id``), so a window monitored again replaces its snapshots, and retention
(``delete_window_snapshots``, from the window sensor's retention pass) finds a window's
files without reading any snapshot.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

PROJECT = "studperf"
SNAPSHOT_KINDS = ("drift", "quality")  # the reports of a window, each a snapshot
_SNAPSHOT_NAMESPACE = uuid.UUID("0b6f3f7e-4f43-4c7a-9d55-5d1e0f2a9c11")
DESCRIPTION = "Drift and quality of every monitored prediction batch"


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    from filelock import FileLock

    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(folder / ".studperf.lock"):
        yield


def project_id(workspace: str) -> Any:
    """The ``studperf`` project's ID, creating the project and its dashboard on first use."""
    from evidently.ui.storage.local.base import LocalState

    state = LocalState(workspace)
    found = _find(state)
    if found is not None and _has_panels(state, found):
        return found
    with _locked(Path(workspace)):
        found = _find(state)
        if found is not None and _has_panels(state, found):
            return found
        from evidently.ui.workspace import Workspace

        local = Workspace(workspace)  # parses every snapshot: only here, once
        project = local.get_project(found) if found else local.create_project(PROJECT, DESCRIPTION)
        assert project is not None
        local.save_dashboard(project.id, dashboard_model())
        return project.id


def _has_panels(state: Any, project: Any) -> bool:
    """Whether the project's dashboard holds today's panels (a dashboard saved by an older
    version, e.g. with the target drift on the ``target`` column, is saved again)."""
    try:
        return _content(state.read_dashboard(project)) == _content(dashboard_model())
    except (OSError, ValueError):
        return False


def _content(dashboard: Any) -> list[tuple[str, list[Any]]]:
    """A dashboard's panels by title and plotted metrics (panel IDs are random)."""
    return [
        (panel.title, [(v.metric, sorted(v.metric_labels.items())) for v in panel.values])
        for panel in dashboard.panels
    ]


def dashboard_model() -> Any:
    """The dashboard, tabs and panels in one model (saved whole: Evidently 0.7's add_panel
    lists a panel twice in a tab that already exists)."""
    from evidently.sdk.models import DashboardModel, DashboardTabModel

    tabs: dict[str, list[Any]] = {}
    for tab, panel in panels():
        tabs.setdefault(tab, []).append(panel)
    return DashboardModel(
        tabs=[DashboardTabModel(title=t, panels=[p.id for p in ps]) for t, ps in tabs.items()],
        panels=[p for ps in tabs.values() for p in ps],
    )


def panels() -> list[tuple[str, Any]]:
    """(tab, panel) of the project's dashboard: drift and quality across batches."""
    from evidently.sdk.models import PanelMetric
    from evidently.sdk.panels import line_plot_panel

    from lambda_service.schema import FEATURE_NAMES
    from studperf_assets.lib.drift import TRUE_GRADE
    from studperf_assets.lib.drift_summary import PREDICTION

    def drift_of(column: str) -> Any:
        return PanelMetric(legend=column, metric="ValueDrift", metric_labels={"column": column})

    share = PanelMetric(
        legend="share", metric="DriftedColumnsCount", metric_labels={"value_type": "share"}
    )

    return [
        ("Drift", line_plot_panel(
            "Share of drifted features",
            [share],
            description="The data_drift check fails at 0.2", size="half",
        )),
        ("Drift", line_plot_panel(
            "Prediction drift (Jensen-Shannon)", [drift_of(PREDICTION)],
            description="The prediction_drift check fails above 0.15", size="half",
        )),
        ("Drift", line_plot_panel(
            "Drift score per feature", [drift_of(f) for f in FEATURE_NAMES],
            description="Normed Wasserstein (study time, absences), Jensen-Shannon (the rest)",
        )),
        ("Quality", line_plot_panel(
            "Target drift (Jensen-Shannon)", [drift_of(TRUE_GRADE)],
            description="Over the labelled rows of each batch", size="half",
        )),
        ("Quality", line_plot_panel(
            "f1-macro", [PanelMetric(legend="f1-macro", metric="F1Score")],
            description="Over the labelled rows; the check fails below 0.5", size="half",
        )),
    ]  # fmt: skip


def _find(state: Any) -> Any:
    for candidate in state.list_projects():
        try:
            if state.read_project(candidate).name == PROJECT:
                return candidate
        except (OSError, ValueError):  # a project folder being written right now
            continue
    return None


MAX_SNAPSHOTS = 2000  # the newest kept (two per window: a week of 5-minute windows)


def snapshot_name(window: str, kind: str) -> str:
    """The name of a window's snapshot (``kind``: one of ``SNAPSHOT_KINDS``)."""
    return f"{window} {kind}"


def snapshot_id(name: str) -> uuid.UUID:
    """A snapshot's ID, fixed by its name: its file is ``snapshots/<id>.json``."""
    return uuid.uuid5(_SNAPSHOT_NAMESPACE, name)


def add_snapshots(
    workspace: str, runs: Sequence[tuple[str, Any]], keep: int = MAX_SNAPSHOTS
) -> None:
    """Store Evidently ``Snapshot`` objects, each under its name (and an ID fixed by it), in
    the project; then delete the oldest beyond ``keep``, so the workspace does not grow
    with traffic, whatever retention does."""
    from evidently.ui.storage.local.base import LocalState

    state = LocalState(workspace)
    project = project_id(workspace)
    for name, snapshot in runs:
        snapshot.set_name(name)
        state.write_snapshot(project, snapshot_id(name), snapshot.to_snapshot_model())
    folder = Path(workspace) / str(project) / "snapshots"
    with _locked(Path(workspace)):
        stored = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime)
        for old in stored[: max(0, len(stored) - keep)]:
            old.unlink(missing_ok=True)


def _snapshot_folder(workspace: str) -> Path | None:
    """The project's snapshot folder, or None when there is no workspace or project yet
    (retention never creates one)."""
    if not Path(workspace).is_dir():
        return None
    from evidently.ui.storage.local.base import LocalState

    project = _find(LocalState(workspace))
    return None if project is None else Path(workspace) / str(project) / "snapshots"


def delete_window_snapshots(workspace: str, windows: Iterable[str]) -> int:
    """Delete the snapshots of these windows (retention); returns how many files went."""
    folder = _snapshot_folder(workspace)
    if folder is None:
        return 0
    deleted = 0
    for window in windows:
        for kind in SNAPSHOT_KINDS:
            path = folder / f"{snapshot_id(snapshot_name(window, kind))}.json"
            if path.is_file():
                path.unlink(missing_ok=True)
                deleted += 1
    return deleted


def delete_snapshots_before(workspace: str, cutoff: datetime) -> int:
    """Delete the snapshots written before ``cutoff`` (a snapshot is written after its
    window, so its window is older still): those of windows whose partition went before
    snapshots were named by window, or while the sensor was not running. Returns how many."""
    folder = _snapshot_folder(workspace)
    if folder is None or not folder.is_dir():
        return 0
    deleted = 0
    with _locked(Path(workspace)):
        for path in folder.glob("*.json"):
            try:
                if path.stat().st_mtime < cutoff.timestamp():
                    path.unlink()
                    deleted += 1
            except FileNotFoundError:
                continue
    return deleted


def find_project_id(workspace: str) -> str:
    """The ``studperf`` project's ID if the workspace holds it, else "" (never creates it:
    the alert e-mail links to it, read-only)."""
    from evidently.ui.storage.local.base import LocalState

    if not Path(workspace).is_dir():
        return ""
    found = _find(LocalState(workspace))
    return str(found) if found is not None else ""
