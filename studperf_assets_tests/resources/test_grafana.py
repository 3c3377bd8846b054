"""The Grafana dashboards (deploy/grafana) against the real batch_metrics table.

Every panel's SQL runs on PostgreSQL over a table the monitoring code itself wrote (Grafana's
time macro replaced by the condition it expands to); the result columns must be what the
panel plots. The provisioning must name the datasource the dashboards use, and the compose
service must mount both.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from studperf_assets.resources.metrics_db import MetricsDatabase

REPO = Path(__file__).resolve().parents[2]
GRAFANA = REPO / "deploy" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))


def panels() -> list[tuple[str, dict[str, Any]]]:
    return [(path.name, p) for path in DASHBOARDS for p in json.loads(path.read_text())["panels"]]


def test_three_dashboards_on_the_provisioned_datasource() -> None:
    assert [p.stem for p in DASHBOARDS] == ["data-drift", "prediction-drift", "target-drift"]
    (source,) = yaml.safe_load(
        (GRAFANA / "provisioning/datasources/batch-metrics.yaml").read_text()
    )["datasources"]
    for _, panel in panels():
        assert panel["datasource"]["uid"] == source["uid"]
        assert all(t["datasource"]["uid"] == source["uid"] for t in panel["targets"])
    provider = yaml.safe_load((GRAFANA / "provisioning/dashboards/studperf.yaml").read_text())
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["grafana"]
    mounts = {m.split(":")[1] for m in compose["volumes"]}
    assert provider["providers"][0]["options"]["path"] in mounts
    assert "/etc/grafana/provisioning" in mounts
    variables = set(
        re.findall(
            r"\$\{(\w+)\}", (GRAFANA / "provisioning/datasources/batch-metrics.yaml").read_text()
        )
    )
    assert variables <= set(compose["environment"])


@pytest.fixture(scope="module")
def batch_metrics(pg_databases_module: Callable[[], str]) -> sa.Engine:
    """A batch_metrics table written by the monitoring code, three batches in it."""
    url = pg_databases_module().replace("postgresql://", "postgresql+psycopg2://")
    database = MetricsDatabase(url=url)
    now = datetime.now(UTC)
    for n, (share, target) in enumerate([(0.0, None), (0.11, 0.05), (0.22, 0.31)], start=1):
        database.record_batch(
            f"batch-{n:06d}",
            {
                "model_version": f"v2026112{n}T130346Z-2cb339a3", "rows": 200, "labelled_rows": 150,
                "drift_share": share, "prediction_drift": 0.04 * n, "target_drift": target,
                "f1_macro": target and 0.7, "accuracy": target and 0.8,  # None until labelled
                "feature_scores": {"Absences": 0.1 * n, "StudyTimeWeekly": 0.2 * n, "Music": 0.01},
                "report_uri": f"s3://bucket/reports/batch-{n:06d}/drift.html",
            },
        )  # fmt: skip
    engine = sa.create_engine(url)
    with engine.begin() as db:  # spread them in time, as batches are
        for n in (1, 2, 3):
            db.execute(
                sa.text("UPDATE batch_metrics SET updated_at = :at WHERE partition = :p"),
                {"at": now - timedelta(hours=4 - n), "p": f"batch-{n:06d}"},
            )
    return engine


def grafana_sql(sql: str) -> str:
    """Expand Grafana's time macro the way its PostgreSQL datasource does, for a last-day range."""
    return re.sub(
        r"\$__timeFilter\(([\w.]+)\)",
        r"\1 BETWEEN now() - interval '1 day' AND now()",
        sql,
    )


@pytest.mark.integration
@pytest.mark.parametrize(
    ("dashboard", "panel"), panels(), ids=[f"{d}:{p['title']}" for d, p in panels()]
)
def test_every_panel_query_runs_on_batch_metrics(
    batch_metrics: sa.Engine, dashboard: str, panel: dict[str, Any]
) -> None:
    (target,) = panel["targets"]
    with batch_metrics.connect() as db:
        result = db.execute(sa.text(grafana_sql(target["rawSql"])))
        columns, rows = list(result.keys()), result.all()
    assert rows, f"{dashboard} / {panel['title']}: no rows"
    if target["format"] == "time_series":
        assert columns[0] == "time" and isinstance(rows[0][0], datetime)
        values = columns[1:]
        if "metric" in columns:  # long format: a series per metric name
            assert columns == ["time", "metric", "value"]
            assert len({r[1] for r in rows}) > 1
        assert all(
            isinstance(r[columns.index(v)], float | int)
            for r in rows
            for v in values
            if v != "metric"
        )
    else:
        assert {"partition", "model_version", "report_uri"} <= set(columns)
