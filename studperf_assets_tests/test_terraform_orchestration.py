"""The orchestration half in Terraform (modules/dagster, rds, network, iam/ecs.tf), read
statically: every service's image, ports, security groups, secrets and roles line up with
each other and with what the code and the Dagster instance read."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from studperf_assets.deployment import ENVIRONMENT_VARIABLES
from studperf_assets_tests.terraform_hcl import (
    TERRAFORM,
    blocks,
    locals_of,
    module_files,
    root_modules,
)

REPO = TERRAFORM.parent
DAGSTER = module_files("dagster")
SECRET_REFERENCE = "${var.database.secret_arn}:password::"


def _dagster_locals() -> dict[str, Any]:
    return locals_of(DAGSTER)


def _containers() -> dict[str, dict[str, Any]]:
    """Each container definition as ECS gets it: the shared defaults, then its settings."""
    local = _dagster_locals()
    defaults, settings = local["container_defaults"], local["container_settings"]
    for key, value in local["containers"].items():
        assert value == f"${{merge(local.container_defaults, local.container_settings.{key})}}"
    return {key: {**defaults, **settings[key]} for key in local["containers"]}


def _resources(type_: str, files: list[Path]) -> dict[str, dict[str, Any]]:
    return {name: body for _, name, body in blocks("resource", type_, files=files)}


def _policy(name: str) -> dict[str, dict[str, Any]]:
    documents = blocks("data", "aws_iam_policy_document", files=module_files("iam"))
    (body,) = [body for _, doc, body in documents if doc == name]
    return {statement["sid"]: statement for statement in body.get("statement", [])}


def _instance_config() -> dict[str, Any]:
    return dict(yaml.safe_load((REPO / "dagster.aws.yaml").read_text()))


def _env_references(value: Any) -> set[str]:
    """Every variable a Dagster config reads through ``{env: NAME}``."""
    if isinstance(value, dict):
        if set(value) == {"env"}:
            return {value["env"]}
        return set().union(*(_env_references(v) for v in value.values()))
    return set()


def test_every_task_runs_the_code_location_image_under_its_own_role() -> None:
    containers, tasks = _containers(), _dagster_locals()["tasks"]
    assert set(tasks) == {"webserver", "daemon", "code_location", "run", "mlflow"}
    for key, task in tasks.items():
        assert task["role"] == f"${{var.roles.{key}}}", key
        for container in task["containers"]:
            assert containers[container]["image"] == "${var.image}", container
            assert containers[container]["logConfiguration"] == "${local.logging}", container
            assert containers[container]["readonlyRootFilesystem"] is True, container
    roles = root_modules()["dagster"]["roles"]
    assert roles == "${module.iam.dagster_roles}"
    iam_locals = locals_of(module_files("iam"))
    assert set(iam_locals["task_roles"]) == set(tasks) | {"execution"}
    assert set(iam_locals["task_policies"]) == (set(tasks) - {"code_location"}) | {"execution"}
    image = root_modules()["dagster"]["image"]
    assert image == "${module.ecr_dagster.repository_url}:${var.dagster_image_tag}"
    (definition,) = _resources("aws_ecs_task_definition", DAGSTER).values()
    assert definition["execution_role_arn"] == "${var.roles.execution}"
    assert definition["task_role_arn"] == "${each.value.role}"
    assert definition["requires_compatibilities"] == ["FARGATE"]


def test_ports_line_up_across_containers_groups_and_the_load_balancer() -> None:
    local, containers = _dagster_locals(), _containers()

    def port(container: str) -> int:
        (mapping,) = containers[container]["portMappings"]
        return int(mapping["containerPort"])

    assert local["alb_targets"] == {"webserver": port("webserver"), "mlflow": port("mlflow")}
    for flow in local["flows"].values():
        assert flow["port"] == port(flow["to"]), flow
    # the webserver and the daemon load the code location over gRPC on its port
    assert local["workspace"] == ["--grpc-host", "${local.code_location}", "--grpc-port", "4000"]
    assert port("code_location") == 4000
    command = containers["code_location"]["command"]
    assert command[command.index("--port") + 1] == "4000"
    assert "studperf_assets.definitions" in command
    assert containers["code_location"]["healthCheck"]["command"][-1] == "4000"
    assert '"--port", "3000"' in containers["webserver"]["command"]
    for container in ("webserver", "daemon"):
        assert "local.workspace" in containers[container]["command"]
    assert local["mlflow_address"].endswith(f":{port('mlflow')}")
    mlflow = containers["mlflow"]["command"]
    assert mlflow[mlflow.index("--port") + 1] == str(port("mlflow"))


def test_every_flow_the_services_need_and_no_other() -> None:
    local = _dagster_locals()
    flows = {(f["from"], f["to"]) for f in local["flows"].values()}
    assert flows == {
        ("webserver", "code_location"),
        ("daemon_and_runs", "code_location"),
        ("daemon_and_runs", "mlflow"),
        ("code_location", "mlflow"),
    }
    services = local["services"]
    assert {s["security_group"] for s in services.values()} <= {f for pair in flows for f in pair}
    assert set(local["alb_targets"]) == {"webserver", "mlflow"}
    # RDS admits exactly the task groups, on 5432, and every task group may reach it
    assert root_modules()["rds"]["client_security_group_ids"] == (
        "${module.dagster.task_security_group_ids}"
    )
    rds_rules = _resources("aws_vpc_security_group_ingress_rule", module_files("rds"))
    assert rds_rules["clients"]["from_port"] == rds_rules["clients"]["to_port"] == 5432
    egress = _resources("aws_vpc_security_group_egress_rule", DAGSTER)
    assert egress["postgres"]["for_each"] == "${local.task_groups}"
    assert egress["aws_apis"]["from_port"] == egress["aws_apis"]["to_port"] == 443


def test_services_are_private_and_one_daemon_at_a_time() -> None:
    (service,) = _resources("aws_ecs_service", DAGSTER).values()
    (network,) = service["network_configuration"]
    assert network["assign_public_ip"] is False
    assert network["subnets"] == "${var.private_subnet_ids}"
    services = _dagster_locals()["services"]
    assert set(services) == {"webserver", "daemon", "code_location", "mlflow"}
    # the old daemon stops before the new one starts: never two schedulers
    assert services["daemon"]["max_percent"] == 100 and services["daemon"]["min_healthy"] == 0
    assert {s["discovery"] for s in services.values()} - {None} == {"code-location", "mlflow"}


def test_the_load_balancer_is_internal_unless_oidc_guards_it() -> None:
    (alb,) = _resources("aws_lb", DAGSTER).values()
    assert alb["internal"] == "${!local.public}"
    assert alb["drop_invalid_header_fields"] is True
    assert _dagster_locals()["public"] == "${var.oidc != null}"
    root = {name: body for _, name, body in blocks("variable", files=[TERRAFORM / "variables.tf"])}
    assert root["oidc"]["default"] is None
    assert root["webserver_read_only"]["default"] is True
    (listener,) = _resources("aws_lb_listener", DAGSTER).values()
    assert listener["protocol"] == "HTTPS" and "TLS13" in listener["ssl_policy"]
    (rule,) = _resources("aws_lb_listener_rule", DAGSTER).values()
    (sign_in,) = rule["dynamic"][0]["action"]["content"]
    assert sign_in["type"] == "authenticate-oidc"
    assert rule["dynamic"][0]["action"]["for_each"] == "${local.public ? [var.oidc] : []}"


def test_the_password_reaches_tasks_only_as_an_ecs_secret() -> None:
    local = _dagster_locals()
    assert local["password"] == [{"name": "PGPASSWORD", "valueFrom": SECRET_REFERENCE}]
    for name, container in _containers().items():
        assert container["secrets"] == "${local.password}", name
    # no URL or setting carries a password; libpq reads PGPASSWORD
    settings = {
        **local["platform_environment"],
        **root_modules()["dagster"]["studperf_environment"],
    }
    for value in settings.values():
        assert not re.search(r"://[^/@]+:[^/@]+@", str(value)), value
        assert "password" not in str(value).lower(), value
    assert local["postgres"].startswith("postgresql+psycopg2://${var.database.username}@")
    execution = _policy("ecs_execution")
    assert execution["InjectDatabasePassword"]["resources"] == ["${var.database_secret_arn}"]
    assert root_modules()["iam"]["database_secret_arn"] == "${module.rds.secret_arn}"
    assert root_modules()["dagster"]["database"]["secret_arn"] == "${module.rds.secret_arn}"


def test_the_password_is_write_only_and_in_no_output() -> None:
    (instance,) = _resources("aws_db_instance", module_files("rds")).values()
    assert "password" not in instance and instance["password_wo"].startswith("${ephemeral.")
    assert instance["storage_encrypted"] is True and instance["publicly_accessible"] is False
    assert instance["kms_key_id"] == "${var.kms_key_arn}"
    (version,) = _resources("aws_secretsmanager_secret_version", module_files("rds")).values()
    assert "secret_string" not in version and "secret_string_wo" in version
    (secret,) = _resources("aws_secretsmanager_secret", module_files("rds")).values()
    assert secret["kms_key_id"] == "${var.kms_key_arn}"
    assert [n for _, n, _ in blocks("ephemeral", "random_password")] == ["master"]
    for path, name, body in blocks("output"):
        assert not re.search(r"password|ephemeral\.", str(body["value"])), f"{path}: {name}"
    versions = (TERRAFORM / "versions.tf").read_text()
    assert 'required_version = ">= 1.11.0"' in versions  # write-only arguments


def test_task_environment_is_what_the_code_and_the_instance_read() -> None:
    local = _dagster_locals()
    studperf = root_modules()["dagster"]["studperf_environment"]
    platform = local["platform_environment"]
    instance_reads = _env_references(_instance_config())
    assert set(studperf) | set(platform) <= set(ENVIRONMENT_VARIABLES) | instance_reads | {
        "AWS_REGION"
    }
    assert instance_reads <= set(platform), instance_reads - set(platform)
    assert platform["STUDPERF_DEPLOYMENT"] == "aws"
    assert platform["DAGSTER_HOME"] == "/opt/dagster/aws"
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "cp dagster.aws.yaml /opt/dagster/aws/dagster.yaml" in dockerfile
    for needed in ("STUDPERF_MODEL_STORE", "STUDPERF_MONITORING_STORE", "STUDPERF_IO_STORE"):
        assert studperf[needed].startswith("s3://${module.s3.bucket_name}/"), needed
    assert platform["STUDPERF_DAGSTER_PG_URL"].endswith("${var.databases.dagster}${local.tls}")
    assert local["tls"] == "?sslmode=require"


def test_the_instance_launches_each_run_as_a_run_task() -> None:
    config = _instance_config()
    launcher = config["run_launcher"]
    assert launcher["class"] == "EcsRunLauncher"
    assert launcher["config"]["container_name"] == _containers()["run"]["name"]
    assert "command" not in _containers()["run"]  # the launcher sets it per run
    assert launcher["config"]["task_definition"] == {"env": "DAGSTER_RUN_TASK_DEFINITION"}
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["compute_logs"]["class"] == "S3ComputeLogManager"
    platform = _dagster_locals()["platform_environment"]
    assert platform["DAGSTER_RUN_TASK_DEFINITION"] == "${var.run_task_family}"
    # the daemon may start only that family, in its own cluster, and pass only its roles
    daemon = _policy("daemon")
    assert daemon["LaunchRunTasks"]["resources"] == ["${var.run_task_definition_arn}:*"]
    assert daemon["PassRunRoles"]["resources"] == [
        '${aws_iam_role.task["run"].arn}',
        '${aws_iam_role.task["execution"].arn}',
    ]
    # EcsRunLauncher quotes a failed run's log stream: <prefix>/run/<task id>
    prefix = _dagster_locals()["logging"]["options"]["awslogs-stream-prefix"]
    assert daemon["ReadFailedRunLogs"]["resources"] == [
        f"${{var.dagster_log_group_arn}}:log-stream:{prefix}/run/*"
    ]
    iam = root_modules()["iam"]
    assert iam["run_task_definition_arn"] == "${local.run_task_arn}"
    assert root_modules()["dagster"]["run_task_family"] == "${local.run_task_family}"


@pytest.mark.parametrize("section", ["storage", "run_launcher", "compute_logs", "run_coordinator"])
def test_dagster_aws_yaml_is_valid_for_its_classes(
    section: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each section's config passes its class's own schema (nothing is instantiated)."""
    from dagster._config import process_config

    config = _instance_config()[section]
    if section == "storage":
        module, name, value = "dagster_postgres", "DagsterPostgresStorage", config["postgres"]
    else:
        module, name, value = config["module"], config["class"], config.get("config", {})
    for variable in _env_references(value):
        monkeypatch.setenv(variable, "value-from-the-task")
    # Dagster resolves its legacy public paths (dagster.core.*) to the private package
    klass = getattr(
        importlib.import_module(module.replace("dagster.core.", "dagster._core.")), name
    )
    result = process_config(klass.config_type(), value)
    assert result.success, result.errors


def test_webserver_and_mlflow_roles_touch_only_their_prefixes() -> None:
    webserver = _policy("webserver")
    actions = {a for s in webserver.values() for a in s["actions"]}
    assert actions == {"s3:ListBucket", "s3:GetObject", "kms:Decrypt", "ecs:DescribeTaskDefinition"}
    assert webserver["ReadComputeLogs"]["resources"] == [
        "${var.bucket_arn}/${var.compute_logs_prefix}/*"
    ]
    mlflow = _policy("mlflow")
    assert mlflow["ReadWriteArtifacts"]["resources"] == ["${var.bucket_arn}/${var.mlflow_prefix}/*"]
    run = _policy("run")
    assert run["WriteComputeLogs"]["resources"] == [
        "${var.bucket_arn}/${var.compute_logs_prefix}/*"
    ]
    code = _policy("dagster")
    assert (
        "${var.bucket_arn}/${var.io_prefix}/*"
        in code["ReadWriteModelStoreReportsAndAssetValues"]["resources"]
    )


def test_the_code_location_deletes_only_old_bundles_and_window_files() -> None:
    """Retention deletes bundles (after a promotion) and the files of expired windows; the
    pointers are never deleted, only replaced, and the archive is the lifecycle rule's."""
    deleting = {
        sid: s for sid, s in _policy("dagster").items() if "s3:DeleteObject" in s["actions"]
    }
    assert list(deleting) == ["DeleteOldBundlesAndWindowFiles"]
    assert deleting["DeleteOldBundlesAndWindowFiles"]["resources"] == [
        "${var.bucket_arn}/${var.model_store_prefix}/bundles/*",
        "${var.bucket_arn}/${var.reports_prefix}/reports/*",
        "${var.bucket_arn}/${var.io_prefix}/*",
    ]


def test_the_network_is_created_only_without_an_existing_vpc() -> None:
    network = root_modules()["network"]
    assert network["count"] == '${var.vpc_id == "" ? 1 : 0}'
    subnets = _resources("aws_subnet", module_files("network"))
    assert "map_public_ip_on_launch" not in subnets["private"]
    assert _resources("aws_flow_log", module_files("network"))
    assert _resources("aws_default_security_group", module_files("network"))
    endpoint = _resources("aws_vpc_endpoint", module_files("network"))["s3"]
    assert endpoint["vpc_endpoint_type"] == "Gateway"
