"""The Grafana dashboards (deploy/grafana) against the real batch_metrics table, on both
databases.

Every panel's SQL runs on the database its datasource reads — PostgreSQL (docker-compose,
RDS) and the SQLite file ``studperf up`` writes (frser-sqlite-datasource) — over rows the
monitoring code itself wrote, with the datasource's macros expanded as it expands them; the
result must be what the panel plots, at each window's start. The JSON files must be what
``scripts/grafana_dashboards.py`` writes, on the datasource their provisioning names, with
the checks' thresholds drawn.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from studperf_assets.lib.windows import window_key, window_start
from studperf_assets.resources.metrics_db import MetricsDatabase
from studperf_assets.resources.monitoring import MonitoringSettings

REPO = Path(__file__).resolve().parents[2]
GRAFANA = REPO / "deploy" / "grafana"
SETUPS = {  # dialect -> (dashboards, provisioning)
    "postgres": (GRAFANA / "dashboards", GRAFANA / "provisioning"),
    "sqlite": (GRAFANA / "dashboards-sqlite", GRAFANA / "provisioning-sqlite"),
}
NOW = datetime.now(UTC).replace(microsecond=0)
FROM, TO = NOW - timedelta(days=1), NOW  # the dashboard's time range in the tests


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location(
        "grafana_dashboards", REPO / "scripts/grafana_dashboards.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def panels(dialect: str) -> list[tuple[str, dict[str, Any]]]:
    folder = SETUPS[dialect][0]
    return [
        (path.name, p)
        for path in sorted(folder.glob("*.json"))
        for p in json.loads(path.read_text())["panels"]
    ]


def test_the_dashboards_are_what_the_script_writes() -> None:
    for path, text in _generator().files().items():
        assert path.read_text() == text, f"{path}: run python scripts/grafana_dashboards.py"
    for folder, _ in SETUPS.values():
        assert sorted(p.stem for p in folder.glob("*.json")) == [
            "data-drift",
            "prediction-drift",
            "target-drift",
        ]


@pytest.mark.parametrize("dialect", sorted(SETUPS))
def test_every_panel_reads_the_provisioned_datasource(dialect: str) -> None:
    _, provisioning = SETUPS[dialect]
    (source,) = yaml.safe_load((provisioning / "datasources/batch-metrics.yaml").read_text())[
        "datasources"
    ]
    ref = {"type": source["type"], "uid": source["uid"]}
    for _, panel in panels(dialect):
        assert panel["datasource"] == ref
        assert [t["datasource"] for t in panel["targets"]] == [ref]
    provider = yaml.safe_load((provisioning / "dashboards/studperf.yaml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards/studperf"


def test_compose_mounts_the_postgresql_setup() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["grafana"]
    mounts = {m.split(":")[0].removeprefix("./"): m.split(":")[1] for m in compose["volumes"]}
    assert mounts["deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    assert mounts["deploy/grafana/dashboards"] == "/var/lib/grafana/dashboards/studperf"
    text = (GRAFANA / "provisioning/datasources/batch-metrics.yaml").read_text()
    assert set(re.findall(r"\$\{(\w+)\}", text)) <= set(compose["environment"])


@pytest.mark.parametrize("dialect", sorted(SETUPS))
def test_the_checks_thresholds_are_drawn(dialect: str) -> None:
    """Each panel of a checked number draws the line its check fails at (the settings'
    defaults)."""
    defaults = MonitoringSettings()
    drawn = {
        panel["title"]: [
            s["value"] for s in panel["fieldConfig"]["defaults"]["thresholds"]["steps"][1:]
        ]
        for _, panel in panels(dialect)
        if panel["type"] == "timeseries"
        and panel["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] == "line"
    }
    assert drawn == {
        "Share of drifted features": [defaults.data_drift_share],
        "Drift score per feature": [
            defaults.categorical_drift_score,
            defaults.numerical_drift_score,
        ],
        "Prediction drift (Jensen-Shannon)": [defaults.prediction_drift_score],
        "f1-macro and accuracy": [defaults.f1_floor],
    }


WINDOWS = [window_key(NOW - timedelta(hours=h)) for h in (3, 2, 1)]
OUT_OF_RANGE = window_key(NOW - timedelta(days=3))
BEFORE_WINDOWS = "batch-000001"  # a row from before windows: no time, never plotted


def _write_rows(url: str) -> None:
    database = MetricsDatabase(url=url)
    keys = [BEFORE_WINDOWS, OUT_OF_RANGE, *WINDOWS]
    for n, key in enumerate(keys, start=1):
        share, target = [(0.0, None), (0.11, 0.05), (0.22, 0.31)][n % 3]
        database.record_batch(
            key,
            {
                "model_version": f"v2026112{n % 2}T130346Z-2cb339a3",
                "rows": 200, "labelled_rows": 150,
                "drift_share": share, "prediction_drift": 0.04 * n, "target_drift": target,
                "f1_macro": target and 0.7, "accuracy": target and 0.8,  # None until labelled
                "feature_scores": {"Absences": 0.1 * n, "StudyTimeWeekly": 0.2 * n, "Music": 0.01},
                "report_uri": f"s3://bucket/reports/{key}/drift.html",
            },
        )  # fmt: skip
    # The first window was re-run just now: it keeps its place (its start), not its write time.
    database.record_batch(
        WINDOWS[0], {**database.batches([WINDOWS[0]])[0], "feature_scores": {"Absences": 0.5}}
    )


@pytest.fixture(scope="module")
def databases(
    pg_databases_module: Callable[[], str], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, sa.Engine]:
    urls = {
        "postgres": pg_databases_module().replace("postgresql://", "postgresql+psycopg2://"),
        "sqlite": f"sqlite:///{tmp_path_factory.mktemp('grafana') / 'monitoring.db'}",
    }
    for url in urls.values():
        _write_rows(url)
    return {dialect: sa.create_engine(url) for dialect, url in urls.items()}


def expand_macros(sql: str, dialect: str) -> str:
    """Grafana's macros as each datasource expands them for the range [FROM, TO]: the
    PostgreSQL datasource's epoch macros, the SQLite plugin's $__timeFilter (its Go source:
    a text column through strftime)."""
    start, end = int(FROM.timestamp()), int(TO.timestamp())
    if dialect == "postgres":
        return sql.replace("$__unixEpochFrom()", str(start)).replace("$__unixEpochTo()", str(end))
    return re.sub(
        r"\$__timeFilter\(([^)]*)\)",
        lambda m: (
            f"CAST(CASE WHEN typeof({m[1]}) = 'integer' THEN {m[1]} "
            f'ELSE strftime("%s", {m[1]}) END AS INTEGER) BETWEEN {start} AND {end}'
        ),
        sql,
    )


def _query(target: dict[str, Any]) -> tuple[str, bool]:
    """The SQL and whether it is a time series, from either datasource's target."""
    if "rawSql" in target:
        return target["rawSql"], target["format"] == "time_series"
    assert target["rawQueryText"] == target["queryText"]
    series = target["queryType"] == "time series"
    assert target["timeColumns"] == (["time"] if series else [])
    return target["queryText"], series


CASES = [(d, name, p) for d in sorted(SETUPS) for name, p in panels(d)]


@pytest.mark.integration
@pytest.mark.parametrize(
    ("dialect", "dashboard", "panel"), CASES, ids=[f"{d}:{n}:{p['title']}" for d, n, p in CASES]
)
def test_every_panel_query_returns_its_windows(
    databases: dict[str, sa.Engine], dialect: str, dashboard: str, panel: dict[str, Any]
) -> None:
    (target,) = panel["targets"]
    sql, series = _query(target)
    assert "$__" not in expand_macros(sql, dialect)
    with databases[dialect].connect() as db:
        result = db.execute(sa.text(expand_macros(sql, dialect).replace(":", r"\:")))
        columns, rows = list(result.keys()), result.all()
    assert rows, f"{dashboard} / {panel['title']}: no rows"
    if not series:
        assert {"window_start", "model_version", "report_uri"} <= set(columns)
        assert sorted({r[columns.index("window_start")] for r in rows}) == WINDOWS
        return
    starts = {int(window_start(k).timestamp()) for k in WINDOWS}
    assert columns[0] == "time"
    assert {int(r[0]) for r in rows} <= starts  # plotted at window starts, in range only
    if "metric" in columns:  # long format: a series per metric name
        assert columns == ["time", "metric", "value"]
        assert len({r[1] for r in rows}) > 1
    for row in rows:
        values = [v for v in row[1:] if not isinstance(v, str)]  # a metric's name is text
        assert all(isinstance(v, float | int) or v is None for v in values), row
    if "target drift" not in columns and "f1-macro" not in columns:  # every window has these
        assert {int(r[0]) for r in rows} == starts
