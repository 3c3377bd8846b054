"""The production configuration for real: Dagster and MLflow on PostgreSQL, bundles on S3
(moto server over HTTP)."""

import json
from collections.abc import Callable
from pathlib import Path

import boto3
import pytest
import sqlalchemy as sa
from dagster import instance_for_test
from mlflow.tracking import MlflowClient

from lambda_service.bundle import resolve_bundle_uri
from lambda_service.predictor import Predictor
from studperf_assets.definitions import make_definitions
from studperf_assets.deployment import Deployment
from studperf_assets.lib.trained import MODEL_NAME
from studperf_assets.local.training_run import run_training

pytestmark = pytest.mark.integration


def test_training_on_postgres_and_s3(
    pg_databases: Callable[[], str], s3_bucket: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    home = tmp_path_factory.mktemp("prod-home")
    # SQLAlchemy 2.1 defaults postgresql:// to psycopg 3: name psycopg2 explicitly.
    dagster_url, tracking_uri, metrics_url = (
        url.replace("postgresql://", "postgresql+psycopg2://")
        for url in (pg_databases(), pg_databases(), pg_databases())
    )
    store_uri = f"s3://{s3_bucket}/studperf"
    definitions = make_definitions(
        Deployment(
            kind="aws",
            home=home,
            model_store=store_uri,
            monitoring_store=f"s3://{s3_bucket}/monitoring",
            metrics_db_url=metrics_url,
            mlflow_tracking_uri=tracking_uri,
            mlflow_artifacts=(home / "mlartifacts").as_uri(),  # no MLflow server in this test
        )
    )
    overrides = {"storage": {"postgres": {"postgres_url": dagster_url}}}
    with instance_for_test(overrides=overrides) as instance:
        outcome = run_training(instance=instance, definitions=definitions)
        assert outcome.success, outcome.failures
        assert instance.get_run_by_id(outcome.run_id) is not None
    # Dagster's run and event tables really are in PostgreSQL
    with sa.create_engine(dagster_url).connect() as db:
        assert db.execute(sa.text("select count(*) from runs")).scalar_one() == 1
        assert db.execute(sa.text("select count(*) from event_logs")).scalar_one() > 20
    # the bundle and the production pointer are in S3
    s3 = boto3.client("s3")
    pointer = json.loads(
        s3.get_object(Bucket=s3_bucket, Key="studperf/production.json")["Body"].read()
    )
    assert outcome.bundle and pointer["version"] == outcome.bundle["version"]
    bundle_uri, version = resolve_bundle_uri(store_uri)
    assert version == pointer["version"]
    predictor = Predictor.from_uri(bundle_uri, home / "cache")
    assert predictor.version == version
    # MLflow's registry is in PostgreSQL
    champion = MlflowClient(tracking_uri, registry_uri=tracking_uri).get_model_version_by_alias(
        MODEL_NAME, "champion"
    )
    assert champion.tags["bundle_version"] == version


def test_the_postgres_instance_file_is_valid(
    pg_databases: Callable[[], str], tmp_path: Path
) -> None:
    """The package's dagster.postgres.yaml, as the CLI seeds it and the code-location image
    copies it, loaded by a process whose environment names the database (as a container's
    would)."""
    import os
    import subprocess
    import sys

    from studperf_assets.local.instance import seed_instance

    home = tmp_path / "dagster"
    seed_instance(home, "postgres")
    url = pg_databases().replace("postgresql://", "postgresql+psycopg2://")
    code = (
        "import sys; from dagster import DagsterInstance\n"
        "with DagsterInstance.from_config(sys.argv[1]) as instance:\n"
        "    print(type(instance.run_storage).__name__, type(instance.event_log_storage).__name__,"
        " len(instance.get_runs()))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(home)],
        env={**os.environ, "STUDPERF_DAGSTER_PG_URL": url},
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert result.stdout.split() == ["PostgresRunStorage", "PostgresEventLogStorage", "0"]
