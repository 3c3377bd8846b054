"""Links in alert e-mails open from a laptop: built on the UIs' base URLs, never a path."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

from studperf_assets.lib import alert_links


def test_only_web_links_are_links() -> None:
    assert alert_links.is_web("https://bucket.s3.amazonaws.com/r.html?X-Amz-Signature=1")
    assert alert_links.is_web("http://127.0.0.1:3000/runs/abc")
    assert not alert_links.is_web("file:///tmp/studperf/monitoring/reports/x/drift.html")
    assert not alert_links.is_web("/srv/studperf/monitoring/reports/x/drift.html")


def test_the_runs_filter_is_the_dagster_uis_own_tag_query() -> None:
    url = alert_links.dagster_runs_tagged("http://127.0.0.1:3000/", "studperf/incident", "12")
    parsed = urlparse(url)
    assert parsed.path == "/runs"
    assert parse_qs(parsed.query) == {"q[]": ["tag:studperf/incident=12"]}


def test_ui_routes() -> None:
    assert alert_links.dagster_run("http://d:3000/", "r1") == "http://d:3000/runs/r1"
    assert alert_links.evidently_project("http://e:8085", "") == "http://e:8085/"
    assert alert_links.evidently_snapshot("http://e:8085/", "p", "s") == (
        "http://e:8085/projects/p/reports/s"
    )
    assert alert_links.mlflow_model("http://m:5000/", "studperf-grade-class", "3") == (
        "http://m:5000/#/models/studperf-grade-class/versions/3"
    )
