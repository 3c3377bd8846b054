"""Write the Grafana dashboards of deploy/grafana, for both monitoring databases.

One definition of every panel, two dialects: ``dashboards/`` reads PostgreSQL (Grafana's own
datasource: docker-compose, RDS) and ``dashboards-sqlite/`` reads the SQLite file
``studperf up`` writes (the frser-sqlite-datasource plugin). Panels plot by window start (the
partition key), never by when a row was last written, so a re-run window keeps its place;
thresholds are ``MonitoringSettings``' defaults, the numbers the checks fail at.

    python scripts/grafana_dashboards.py          # rewrite the JSON files
    python scripts/grafana_dashboards.py --check  # exit 1 if they are not what this writes
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from studperf_assets.resources.monitoring import MonitoringSettings  # noqa: E402

GRAFANA = REPO / "deploy" / "grafana"
FOLDERS = {"postgres": GRAFANA / "dashboards", "sqlite": GRAFANA / "dashboards-sqlite"}
DATASOURCES = {
    "postgres": {"type": "grafana-postgresql-datasource", "uid": "studperf-monitoring"},
    "sqlite": {"type": "frser-sqlite-datasource", "uid": "studperf-monitoring-sqlite"},
}
# Only window keys (2026-12-01T14:42:00Z) have a time; rows from before windows are skipped.
WINDOW_KEY = "m.partition LIKE '____-__-__T__:__:__Z'"
# A window's start in Unix seconds: Grafana's time column on both datasources.
WINDOW_START = {
    "postgres": "CAST(EXTRACT(EPOCH FROM CAST(m.partition AS timestamptz)) AS bigint)",
    "sqlite": "CAST(strftime('%s', m.partition) AS INTEGER)",
}
FEATURE_SCORES = {
    "postgres": "json_each_text(CAST(m.feature_scores AS json)) s",
    "sqlite": "json_each(m.feature_scores) s",
}
FLOAT = {"postgres": "double precision", "sqlite": "REAL"}
# The dashboard's time range, on window starts. The SQLite plugin has only $__timeFilter (it
# reads a text key with strftime), PostgreSQL's compares as given: seconds, then.
IN_RANGE = {
    "postgres": f"{WINDOW_START['postgres']} BETWEEN $__unixEpochFrom() AND $__unixEpochTo()",
    "sqlite": "$__timeFilter(m.partition)",
}
DEFAULTS = MonitoringSettings()


@dataclass(frozen=True)
class Panel:
    title: str
    sql: str  # {time}, {window}, {in_range}, {features}, {float} are filled per dialect
    description: str = ""
    kind: str = "timeseries"  # or "table"
    unit: str = "none"
    thresholds: tuple[tuple[str, float], ...] = ()  # (colour, value) above the green base
    width: int = 12


def _series(select: str, extra: str = "") -> str:
    """A time series over the windows in the dashboard's range, oldest first."""
    where = f"{{window}} AND {{in_range}}{extra}"
    return f"SELECT {{time}} AS time, {select}\nFROM batch_metrics m\nWHERE {where}\nORDER BY 1"


DASHBOARDS: dict[str, tuple[str, str, list[Panel]]] = {
    "data-drift": (
        "studperf · data drift",
        "Drift of the nine input features, window by window (batch_metrics).",
        [
            Panel(
                "Share of drifted features",
                _series('m.drift_share AS "drift share"'),
                f"The data_drift check fails at {DEFAULTS.data_drift_share:g}.",
                unit="percentunit",
                thresholds=(("red", DEFAULTS.data_drift_share),),
            ),
            Panel(
                "Drift score per feature",
                "SELECT {time} AS time, s.key AS metric, CAST(s.value AS {float}) AS value\n"
                "FROM batch_metrics m, {features}\n"
                "WHERE {window} AND {in_range}\nORDER BY 1, 2",
                f"A categorical feature drifts above {DEFAULTS.categorical_drift_score:g} "
                f"(Jensen-Shannon), study time and absences above "
                f"{DEFAULTS.numerical_drift_score:g} (normed Wasserstein).",
                thresholds=(
                    ("orange", DEFAULTS.categorical_drift_score),
                    ("red", DEFAULTS.numerical_drift_score),
                ),
            ),
            Panel(
                "Windows",
                "SELECT m.partition AS window_start, m.model_version, m.rows,\n"
                "  round(CAST(m.drift_share AS numeric), 3) AS drift_share, m.report_uri\n"
                "FROM batch_metrics m\nWHERE {window} AND {in_range}\n"
                "ORDER BY m.partition DESC\nLIMIT 200",
                "The newest windows first, with their drift report.",
                kind="table",
                width=24,
            ),
        ],
    ),
    "prediction-drift": (
        "studperf · prediction drift",
        "How far the distribution of predicted grades moved from the reference's (batch_metrics).",
        [
            Panel(
                "Prediction drift (Jensen-Shannon)",
                _series('m.prediction_drift AS "prediction drift"'),
                f"The prediction_drift check fails above {DEFAULTS.prediction_drift_score:g}.",
                thresholds=(("red", DEFAULTS.prediction_drift_score),),
                width=16,
            ),
            Panel(
                "Predictions per window, by model version",
                _series("m.model_version AS metric, m.rows AS value"),
                width=8,
            ),
        ],
    ),
    "target-drift": (
        "studperf · target drift and quality",
        "Drift of the true grades and the quality of the predictions over the labelled rows "
        "(batch_metrics).",
        [
            Panel(
                "Target drift (Jensen-Shannon)",
                _series('m.target_drift AS "target drift"', " AND m.target_drift IS NOT NULL"),
                "Over the labelled rows of each window; no check fails on it.",
            ),
            Panel(
                "f1-macro and accuracy",
                _series('m.f1_macro AS "f1-macro", m.accuracy', " AND m.f1_macro IS NOT NULL"),
                f"The performance check fails below {DEFAULTS.f1_floor:g} once "
                f"{DEFAULTS.min_labelled_for_f1} rows are labelled.",
                thresholds=(("red", DEFAULTS.f1_floor),),
            ),
            Panel(
                "Share of the window labelled",
                _series('CAST(m.labelled_rows AS {float}) / NULLIF(m.rows, 0) AS "labelled share"'),
                unit="percentunit",
                width=24,
            ),
        ],
    ),
}


def sql_for(panel: Panel, dialect: str) -> str:
    sql = panel.sql.format(
        time=WINDOW_START[dialect],
        window=WINDOW_KEY,
        features=FEATURE_SCORES[dialect],
        float=FLOAT[dialect],
        in_range=IN_RANGE[dialect],
    )
    if dialect == "sqlite":  # SQLite has no numeric type to cast to before rounding
        sql = sql.replace("round(CAST(m.drift_share AS numeric), 3)", "round(m.drift_share, 3)")
    return sql


def _target(panel: Panel, dialect: str) -> dict[str, Any]:
    sql = sql_for(panel, dialect)
    source = DATASOURCES[dialect]
    if dialect == "postgres":
        return {
            "refId": "A",
            "datasource": source,
            "format": "table" if panel.kind == "table" else "time_series",
            "rawQuery": True,
            "editorMode": "code",
            "rawSql": sql,
        }
    return {
        "refId": "A",
        "datasource": source,
        "queryType": "table" if panel.kind == "table" else "time series",
        "queryText": sql,
        "rawQueryText": sql,
        "timeColumns": [] if panel.kind == "table" else ["time"],
    }


def _panel(number: int, panel: Panel, dialect: str, x: int, y: int) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [{"color": "green", "value": None}]
    steps += [{"color": colour, "value": value} for colour, value in panel.thresholds]
    body: dict[str, Any] = {
        "id": number,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCES[dialect],
        "gridPos": {"x": x, "y": y, "w": panel.width, "h": 8},
        "targets": [_target(panel, dialect)],
    }
    if panel.kind == "table":
        body["fieldConfig"] = {"defaults": {}, "overrides": []}
        body["options"] = {"showHeader": True}
        return body
    body["fieldConfig"] = {
        "defaults": {
            "unit": panel.unit,
            "custom": {
                "drawStyle": "line",
                "showPoints": "always",
                "thresholdsStyle": {"mode": "line" if panel.thresholds else "off"},
            },
            "thresholds": {"mode": "absolute", "steps": steps},
        },
        "overrides": [],
    }
    body["options"] = {
        "legend": {"displayMode": "list", "placement": "bottom"},
        "tooltip": {"mode": "multi"},
    }
    return body


def dashboard(name: str, dialect: str) -> dict[str, Any]:
    title, description, panels = DASHBOARDS[name]
    laid_out, x, y = [], 0, 0
    for number, panel in enumerate(panels, start=1):
        if x + panel.width > 24:
            x, y = 0, y + 8
        laid_out.append(_panel(number, panel, dialect, x, y))
        x += panel.width
    suffix = "" if dialect == "postgres" else "-sqlite"
    return {
        "uid": f"studperf-{name}{suffix}",
        "title": title + ("" if dialect == "postgres" else " (SQLite)"),
        "description": description,
        "tags": ["studperf", "monitoring"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "editable": False,
        "time": {"from": "now-7d", "to": "now"},
        "panels": laid_out,
        "templating": {"list": []},
        "annotations": {"list": []},
    }


def files() -> dict[Path, str]:
    return {
        folder / f"{name}.json": json.dumps(dashboard(name, dialect), indent=2) + "\n"
        for dialect, folder in FOLDERS.items()
        for name in DASHBOARDS
    }


def main() -> int:
    check = "--check" in sys.argv[1:]
    stale = []
    for path, text in files().items():
        if path.exists() and path.read_text() == text:
            continue
        stale.append(path.relative_to(REPO))
        if not check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if check and stale:
        print(f"stale: {', '.join(map(str, stale))}; run python scripts/grafana_dashboards.py")
        return 1
    print("rewrote " + (", ".join(map(str, stale)) if stale else "nothing: all current"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
