"""The Evidently workspace's snapshots: named by their window, deleted by retention."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from studperf_assets.resources.evidently_workspace import (
    delete_snapshots_before,
    delete_window_snapshots,
    project_id,
    snapshot_id,
    snapshot_name,
)


def _snapshots(workspace: Path, windows: list[str]) -> Path:
    """The project, and a drift and quality snapshot file per window (the files' content is
    Evidently's business; retention goes by their names and ages)."""
    folder = workspace / str(project_id(str(workspace))) / "snapshots"
    folder.mkdir(parents=True, exist_ok=True)
    for window in windows:
        for kind in ("drift", "quality"):
            (folder / f"{snapshot_id(snapshot_name(window, kind))}.json").write_text("{}")
    return folder


def test_a_snapshot_id_is_fixed_by_its_name() -> None:
    assert snapshot_id("w1 drift") == snapshot_id("w1 drift") != snapshot_id("w1 quality")


def test_the_snapshots_of_retired_windows_are_deleted(tmp_path: Path) -> None:
    folder = _snapshots(tmp_path, ["20261201T1000Z", "20261201T1005Z"])
    assert delete_window_snapshots(str(tmp_path), ["20261201T1000Z", "never-monitored"]) == 2
    assert sorted(p.name for p in folder.glob("*.json")) == sorted(
        f"{snapshot_id(snapshot_name('20261201T1005Z', k))}.json" for k in ("drift", "quality")
    )


def test_snapshots_older_than_the_cutoff_are_deleted(tmp_path: Path) -> None:
    """Those written before snapshots were named by window (random IDs) go by age."""
    folder = _snapshots(tmp_path, ["recent"])
    legacy = folder / "01890a5d-ac96-774b-bcce-b302099a8057.json"
    legacy.write_text("{}")
    now = datetime.now(UTC)
    week_ago = (now - timedelta(days=8)).timestamp()
    os.utime(legacy, (week_ago, week_ago))
    assert delete_snapshots_before(str(tmp_path), now - timedelta(days=7)) == 1
    assert not legacy.exists() and len(list(folder.glob("*.json"))) == 2


def test_retention_creates_no_workspace(tmp_path: Path) -> None:
    missing = tmp_path / "none"
    assert delete_window_snapshots(str(missing), ["w"]) == 0
    assert delete_snapshots_before(str(missing), datetime.now(UTC)) == 0
    assert not missing.exists()


def test_a_dashboard_saved_by_an_older_version_is_saved_again(tmp_path: Path) -> None:
    """A home made before the target drift was plotted on the lettered ``true_grade`` kept a
    panel on the ``target`` column, which no new snapshot fills."""
    from evidently.sdk.models import DashboardModel, DashboardTabModel, PanelMetric
    from evidently.sdk.panels import line_plot_panel
    from evidently.ui.workspace import Workspace

    from studperf_assets.resources.evidently_workspace import dashboard_model

    workspace = str(tmp_path / "evidently")
    project = project_id(workspace)
    old = line_plot_panel(
        "Target drift (Jensen-Shannon)",
        [PanelMetric(legend="target", metric="ValueDrift", metric_labels={"column": "target"})],
    )
    stale = DashboardModel(tabs=[DashboardTabModel(title="Quality", panels=[old.id])], panels=[old])
    Workspace(workspace).save_dashboard(project, stale)
    assert project_id(workspace) == project  # the same project, its dashboard saved again
    saved = Workspace(workspace).get_project(project)
    assert saved is not None
    columns = {
        v.metric_labels.get("column") for p in saved.dashboard.model().panels for v in p.values
    }
    assert "true_grade" in columns and "target" not in columns
    assert len(saved.dashboard.model().panels) == len(dashboard_model().panels)
