"""Links in alert e-mails: built on the UIs' base URLs (settings), never a server's file path,
so that they open from the on-call's laptop. Pure functions: the sensors find the IDs."""

from __future__ import annotations

from urllib.parse import quote, urlencode


def is_web(url: str) -> bool:
    """Only http(s) links go into an e-mail: a file:// URL or a path names the server's disk."""
    return url.lower().startswith(("http://", "https://"))


def _base(url: str) -> str:
    return url.rstrip("/")


def dagster_run(dagster_url: str, run_id: str) -> str:
    return f"{_base(dagster_url)}/runs/{run_id}"


def dagster_runs_tagged(dagster_url: str, tag: str, value: str) -> str:
    """The Dagster UI's runs list filtered by a tag (its own ``q[]=tag:key=value`` form):
    valid before the run exists, so an e-mail can point at a retraining not started yet."""
    return f"{_base(dagster_url)}/runs?{urlencode({'q[]': f'tag:{tag}={value}'})}"


def dagster_sensors(dagster_url: str) -> str:
    return f"{_base(dagster_url)}/automation"


def evidently_project(evidently_url: str, project_id: str) -> str:
    """The project's dashboard (the UI's root, which lists projects, without an ID)."""
    if not project_id:
        return f"{_base(evidently_url)}/"
    return f"{_base(evidently_url)}/projects/{project_id}"


def evidently_snapshot(evidently_url: str, project_id: str, snapshot_id: str) -> str:
    return f"{_base(evidently_url)}/projects/{project_id}/reports/{snapshot_id}"


def mlflow_model(mlflow_url: str, model_name: str, version: str = "") -> str:
    """A registered model's page in the MLflow UI, or one of its versions."""
    page = f"{_base(mlflow_url)}/#/models/{quote(model_name, safe='')}"
    return f"{page}/versions/{quote(version, safe='')}" if version else page
