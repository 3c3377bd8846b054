"""The local full stack, the images and the workflows, checked without Docker or GitHub."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from lambda_service.config import ENVIRONMENT_VARIABLES as LAMBDA_ENV
from studperf_assets.deployment import ENVIRONMENT_VARIABLES as STUDPERF_ENV

REPO = Path(__file__).resolve().parent.parent
AWS_ENV = {
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
}
KNOWN_ENV = set(STUDPERF_ENV) | set(LAMBDA_ENV) | AWS_ENV | {"MLFLOW_S3_ENDPOINT_URL"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((REPO / "docker-compose.yml").read_text()))


def ours(service: dict[str, Any]) -> bool:
    return service.get("image") == "studperf:local"


def listening_port(service: dict[str, Any]) -> int | None:
    """The port a service's command listens on (-p N, --port N, --port=N)."""
    command = service.get("command") or []
    for i, word in enumerate(command):
        if word in ("-p", "--port"):
            return int(command[i + 1])
        if str(word).startswith("--port="):
            return int(str(word).split("=", 1)[1])
    return None


def test_services(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {
        "postgres", "moto", "init-aws", "mlflow", "code-location",
        "dagster-webserver", "dagster-daemon", "stream", "predictions", "dashboard", "grafana",
    }  # fmt: skip


def test_the_stream_consumer_closes_the_loop(compose: dict[str, Any]) -> None:
    """`simulate`'s traffic is scored into the stream the sensors read, by the bundle that
    training promotes in the store; the consumer waits (restarts) for the first bundle."""
    from studperf_assets.cli import build_parser
    from studperf_assets.deployment import Deployment

    services = compose["services"]
    consumer = services["stream"]
    command = consumer["command"]
    assert command[:2] == ["studperf", "stream"] and consumer["restart"] == "on-failure"

    def option(name: str) -> str:
        return str(command[command.index(name) + 1])

    parser = build_parser()
    created = parser.parse_args(["init-aws"]).streams
    assert option("--input-stream") == parser.parse_args(["simulate"]).stream
    assert {option("--input-stream"), option("--predictions-stream")} <= set(created)
    assert option("--errors-stream") in created
    code_location = services["code-location"]["environment"]
    sensors_read = Deployment.from_environment(code_location).predictions_stream
    assert option("--predictions-stream") == sensors_read
    assert option("--model") == code_location["STUDPERF_MODEL_STORE"]


def test_every_setting_the_code_names_is_listed_and_documented() -> None:
    """A STUDPERF_* name anywhere in the code is in ENVIRONMENT_VARIABLES and in the table of
    docs/configuration.md (STUDPERF_STACK_ID, STUDPERF_STACK_HOME and STUDPERF_STACK_PART are
    the supervisor's own markers, set, never read from a user)."""
    sources = [*(REPO / "studperf_assets").rglob("*.py"), *(REPO / "lambda_service").rglob("*.py")]
    named = {m for f in sources for m in re.findall(r"\bSTUDPERF_[A-Z_]+\b", f.read_text())}
    named -= {"STUDPERF_STACK_ID", "STUDPERF_STACK_HOME", "STUDPERF_STACK_PART"}
    assert named <= set(STUDPERF_ENV), named - set(STUDPERF_ENV)
    documented = (REPO / "docs" / "configuration.md").read_text()
    undocumented = {
        n for n in STUDPERF_ENV if n.startswith("STUDPERF_") and f"`{n}`" not in documented
    }
    assert not undocumented, undocumented


def test_environment_is_what_the_code_reads(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if ours(service):
            unknown = set(service["environment"]) - KNOWN_ENV
            assert not unknown, f"{name} sets variables nothing reads: {unknown}"


def test_urls_point_at_the_services_that_serve_them(compose: dict[str, Any]) -> None:
    services = compose["services"]
    moto_port = int(services["moto"]["ports"][0].rsplit(":", 1)[1])
    mlflow_port = listening_port(services["mlflow"])
    databases = {services["postgres"]["environment"]["POSTGRES_DB"]}
    init_sql = (REPO / "deploy" / "postgres-init.sql").read_text()
    databases |= set(re.findall(r"CREATE DATABASE (\w+)", init_sql))
    for name, service in services.items():
        if not ours(service):
            continue
        env = service["environment"]
        endpoint = urlparse(env["AWS_ENDPOINT_URL"])
        assert (endpoint.hostname, endpoint.port) == ("moto", moto_port), name
        tracking = urlparse(env["MLFLOW_TRACKING_URI"])
        assert (tracking.hostname, tracking.port) == ("mlflow", mlflow_port), name
        pg = urlparse(env["STUDPERF_DAGSTER_PG_URL"])
        assert pg.scheme == "postgresql+psycopg2" and pg.hostname == "postgres", name
        assert pg.path.strip("/") in databases
    backend = next(a for a in services["mlflow"]["command"] if a.startswith("--backend-store-uri="))
    assert urlparse(backend.split("=", 1)[1]).path.strip("/") in databases


def test_published_ports_reach_the_listening_ports(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        port = listening_port(service)
        for mapping in service.get("ports", []):
            host_ip, _host, container = mapping.split(":")
            assert host_ip == "127.0.0.1", f"{name} publishes beyond loopback"
            if port is not None:
                assert int(container) == port, name


def test_store_bucket_is_created_and_code_location_matches_workspace(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    store = urlparse(services["code-location"]["environment"]["STUDPERF_MODEL_STORE"])
    command = services["init-aws"]["command"]
    assert command[command.index("--bucket") + 1] == store.hostname
    (grpc,) = yaml.safe_load((REPO / "workspace.docker.yaml").read_text())["load_from"]
    server = grpc["grpc_server"]
    assert server["host"] == "code-location"
    assert server["port"] == listening_port(services["code-location"])
    assert "studperf_assets.definitions" in services["code-location"]["command"]


def test_mlflow_answers_the_host_name_its_clients_use(compose: dict[str, Any]) -> None:
    """MLflow 3 refuses Host headers outside --allowed-hosts (403), private IPs by default."""
    services = compose["services"]
    tracking = urlparse(services["code-location"]["environment"]["MLFLOW_TRACKING_URI"])
    flags = [f for f in services["mlflow"]["command"] if f.startswith("--allowed-hosts=")]
    (allowed,) = flags
    assert tracking.netloc in allowed.split("=", 1)[1].split(",")


def test_compose_runs_the_moto_the_tests_run(compose: dict[str, Any]) -> None:
    """The stack's local AWS is the release the suite passes against (constraints.txt);
    moto publishes motoserver/moto:<version> with every PyPI release."""
    pinned = re.search(r"^moto==(\S+)$", (REPO / "constraints.txt").read_text(), re.MULTILINE)
    assert pinned is not None
    assert compose["services"]["moto"]["image"] == f"motoserver/moto:{pinned.group(1)}"


def test_dockerfiles_copy_what_exists() -> None:
    for dockerfile in (REPO / "Dockerfile", REPO / "lambda_service" / "Dockerfile"):
        for line in dockerfile.read_text().splitlines():
            if line.startswith("COPY "):
                for source in line.split()[1:-1]:
                    assert (REPO / source).exists(), f"{dockerfile}: {source}"
    # the instance on PostgreSQL: the package's template, copied in with studperf_assets/
    seeded = 'cp studperf_assets/instance/dagster.postgres.yaml "$DAGSTER_HOME/dagster.yaml"'
    assert seeded in (REPO / "Dockerfile").read_text()
    assert (REPO / "studperf_assets" / "instance" / "dagster.postgres.yaml").is_file()


def test_code_changes_do_not_rebuild_the_dependency_layer() -> None:
    """The image installs its dependencies from pyproject.toml before any code is copied."""
    lines = (REPO / "Dockerfile").read_text().replace("\\\n", " ").splitlines()
    first_code = next(i for i, line in enumerate(lines) if "studperf_assets/" in line)
    installs = [i for i, line in enumerate(lines) if "pip install" in line]
    assert installs[0] < first_code
    dependency_layer = lines[installs[0]]
    copied_before = {
        source
        for line in lines[: installs[0]]
        if line.startswith("COPY ")
        for source in line.split()[1:-1]
    }
    assert copied_before == {"pyproject.toml", "constraints.txt"}
    listing = re.search(r'python -c "([^"]+)" > (\S+)', dependency_layer)
    assert listing, dependency_layer
    listed = subprocess.run(
        [sys.executable, "-c", listing.group(1)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    with (REPO / "pyproject.toml").open("rb") as handle:
        assert listed == tomllib.load(handle)["project"]["dependencies"]
    assert f"-r {listing.group(2)}" in dependency_layer
    assert "--no-deps ." in lines[installs[1]]  # the code layer adds no dependency


def test_the_code_location_package_carries_its_data(built_wheel: Path) -> None:
    """What `pip install .` puts in the image: both packages and the dataset, no tests, and
    exactly the modules the repository tracks (none left over from an earlier build)."""
    wheel = built_wheel
    names = set(zipfile.ZipFile(wheel).namelist())
    tracked = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "studperf_assets/*.py",
         "lambda_service/*.py"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert {n for n in names if n.endswith(".py")} == set(tracked)
    assert "studperf_assets/data/Student_performance_data.csv" in names
    assert "studperf_assets/data/README.md" in names
    assert "studperf_assets/instance/dagster.yaml" in names  # what the CLI seeds DAGSTER_HOME with
    assert "studperf_assets/instance/dagster.postgres.yaml" in names
    assert "lambda_service/handler.py" in names and "studperf_assets/definitions.py" in names
    assert not any(n.startswith("studperf_assets_tests/") for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert (
        "studperf = studperf_assets.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
    )


def _workflow(name: str) -> dict[str, Any]:
    data = yaml.safe_load((REPO / ".github" / "workflows" / name).read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as True
    return dict(data)


def test_ci_workflow_runs_every_gate() -> None:
    ci = _workflow("ci.yml")
    assert "pull_request" in ci["on"]
    steps = " ".join(
        str(step.get("run", "")) + str(step.get("uses", ""))
        for job in ci["jobs"].values()
        for step in job["steps"]
    )
    for needed in (
        "make test",
        "make lint",
        "make iac",
        "terraform fmt -check",
        "terraform init -backend=false",
        "terraform validate",
        "hashicorp/setup-terraform",
    ):
        assert needed in steps, needed


def test_cd_workflow_builds_by_sha_and_gates_prod() -> None:
    cd = _workflow("cd.yml")
    assert cd["on"]["push"]["branches"] == ["main"]
    build = " ".join(str(s.get("run", "")) for s in cd["jobs"]["image"]["steps"])
    assert 'docker build -f lambda_service/Dockerfile -t "$REPOSITORY:$GITHUB_SHA"' in build
    assert 'docker build -f Dockerfile -t "$REPOSITORY:$GITHUB_SHA"' in build  # Dagster, MLflow
    repositories = [
        s["env"]["REPOSITORY"]
        for s in cd["jobs"]["image"]["steps"]
        if "REPOSITORY" in s.get("env", {})
    ]
    assert [r.rsplit("/", 1)[1] for r in repositories] == [
        "studperf-stg-lambda",
        "studperf-stg-dagster",
    ]
    assert set(cd["jobs"]["deploy-prod"]["needs"]) == {"image", "deploy-stg"}
    assert cd["jobs"]["deploy-prod"]["with"]["environment"] == "prod"
    deploy = _workflow("deploy.yml")
    apply_job = deploy["jobs"]["apply"]
    assert apply_job["environment"] == "${{ inputs.environment }}"  # prod approval lives there
    runs = " ".join(str(s.get("run", "")) for s in apply_job["steps"])
    assert "terraform apply" in runs and "image_tag=${{ inputs.image_tag }}" in runs
    assert "dagster_image_tag=${{ inputs.image_tag }}" in runs
    assert "for image in lambda dagster" in runs  # prod promotes both images
    assert "aws ecs wait services-stable" in runs
    assert runs.index("terraform apply") < runs.index("aws ecs wait services-stable")
    outputs = (REPO / "terraform" / "outputs.tf").read_text()
    for name in re.findall(r"terraform output -(?:raw|json) (\w+)", runs):
        assert f'output "{name}"' in outputs, name
