"""Shared fixtures: a real moto server over HTTP, PostgreSQL databases, a trained bundle."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from dagster_aws.s3 import S3Resource
from hypothesis import HealthCheck, settings

from lambda_service.bundle import Manifest
from studperf_assets.local.moto import moto_server as local_moto_server
from studperf_assets.resources.model_store import S3ModelStore

# CI shares two cores with a moto server, PostgreSQL and Dagster: how fast hypothesis
# generates inputs is not what these properties are about (a too-slow health check failed
# a clean run once).
settings.register_profile("studperf", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("studperf")

REPO = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get("STUDPERF_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


KEEP_ENVIRONMENT = "STUDPERF_TESTS_KEEP_ENVIRONMENT"
OWN_VARIABLES = ("STUDPERF_", "MLFLOW_")


def pytest_configure(config: pytest.Config) -> None:
    """Belt and braces. In-process tests get their settings as parameters (``Deployment``,
    ``make_definitions``) and importing the code location reads nothing, so they pass in any
    environment (``test_configuration`` runs them under a hostile one with this off). The
    processes some tests start (``studperf up``, the daemon) inherit the environment, and a
    developer's own STUDPERF_*, MLFLOW_* or DAGSTER_HOME must not reach them."""
    if os.environ.get(KEEP_ENVIRONMENT):
        return
    for name in [n for n in os.environ if n.startswith(OWN_VARIABLES)]:
        del os.environ[name]
    os.environ.pop("DAGSTER_HOME", None)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """moto in server mode as a separate process; boto3 reaches it via AWS_ENDPOINT_URL."""
    with local_moto_server() as url:
        yield url


@pytest.fixture
def s3_bucket(moto_server: str) -> str:
    import boto3

    name = f"studperf-test-{uuid.uuid4().hex[:8]}"
    boto3.client("s3").create_bucket(Bucket=name)
    return name


@pytest.fixture
def pg_databases() -> Iterator[Callable[[], str]]:
    """Makes fresh PostgreSQL databases (dropped afterwards); each call returns its URL."""
    yield from _databases()


@pytest.fixture(scope="module")
def pg_databases_module() -> Iterator[Callable[[], str]]:
    """``pg_databases`` for a whole module."""
    yield from _databases()


def _databases() -> Iterator[Callable[[], str]]:
    import psycopg2

    admin = psycopg2.connect(PG_URL)
    admin.autocommit = True
    created: list[str] = []
    base = PG_URL.rsplit("/", 1)[0]

    def create() -> str:
        name = f"studperf_test_{uuid.uuid4().hex[:10]}"
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        return f"{base}/{name}"

    try:
        yield create
    finally:
        with admin.cursor() as cursor:
            for name in created:
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(scope="session")
def trained_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One full training run on the embedded defaults, shared by read-only tests."""
    from dagster import DagsterInstance

    from studperf_assets.definitions import make_definitions
    from studperf_assets.deployment import Deployment
    from studperf_assets.local.training_run import run_training

    home = tmp_path_factory.mktemp("studperf-home")
    definitions = make_definitions(Deployment(home=home))
    instance = DagsterInstance.ephemeral()
    outcome = run_training(instance=instance, definitions=definitions)
    assert outcome.success, outcome.failures
    return home


@pytest.fixture(scope="session")
def trained_bundle(trained_home: Path) -> tuple[Path, Manifest]:
    from lambda_service.bundle import verify_bundle

    store = trained_home / "model_store"
    (folder,) = sorted((store / "bundles").iterdir())
    return folder, verify_bundle(folder)


@pytest.fixture(scope="session")
def built_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel `pip install studperf` gets, built as a release is: from the sdist. Built in
    the checkout, setuptools would package whatever an earlier build left in build/lib,
    modules deleted since included."""
    uv = shutil.which("uv", path=str(Path(sys.executable).parent))
    assert uv, "make setup installs uv beside python"
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [uv, "build", "--out-dir", str(dist), str(REPO)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (wheel,) = dist.glob("*.whl")
    return wheel


@pytest.fixture
def code_location_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """For a test that loads the code location as Dagster does (``defs()`` reads this
    process's environment): the local defaults, whatever the shell holds."""
    for name in [n for n in os.environ if n.startswith(OWN_VARIABLES)]:
        monkeypatch.delenv(name)


@pytest.fixture
def s3_store(trained_bundle: tuple[Path, Manifest], s3_bucket: str) -> S3ModelStore:
    """The trained bundle, published and promoted in a model store on moto's S3."""
    folder, manifest = trained_bundle
    store = S3ModelStore(bucket=s3_bucket, prefix="models", s3=S3Resource())
    store.publish(folder, manifest.version)
    store.promote(manifest.version, {}, replacing=None)
    return store
