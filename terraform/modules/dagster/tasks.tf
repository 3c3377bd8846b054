# Task definitions. Container definitions are plain objects here (shared defaults, then what
# each container changes), encoded once below, so every image, port, secret and role is
# reviewable (and tested) in one place.
locals {
  namespace      = aws_service_discovery_private_dns_namespace.this.name
  code_location  = "code-location.${local.namespace}"
  mlflow_address = "mlflow.${local.namespace}:5000"
  # No password in any URL: libpq reads PGPASSWORD, which ECS injects from Secrets Manager.
  postgres = "postgresql+psycopg2://${var.database.username}@${var.database.address}:${var.database.port}"
  tls      = "?sslmode=require"

  # What the module adds to the code's settings (var.studperf_environment): the database
  # URLs, MLflow, and what the Dagster instance (dagster.aws.yaml) reads. Alert e-mails link the
  # Dagster and MLflow UIs; no Evidently UI runs in AWS (STUDPERF_EVIDENTLY_URL is unset, so
  # they link the presigned drift report instead).
  platform_environment = {
    STUDPERF_DEPLOYMENT          = "aws"
    STUDPERF_METRICS_DB_URL      = "${local.postgres}/${var.databases.monitoring}${local.tls}"
    MLFLOW_TRACKING_URI          = "http://${local.mlflow_address}"
    STUDPERF_DAGSTER_URL         = "https://dagster.${var.ui_domain}"
    STUDPERF_MLFLOW_URL          = "https://mlflow.${var.ui_domain}"
    AWS_REGION                   = var.aws_region
    DAGSTER_HOME                 = "/opt/dagster/aws"
    STUDPERF_DAGSTER_PG_URL      = "${local.postgres}/${var.databases.dagster}${local.tls}"
    DAGSTER_RUN_TASK_DEFINITION  = var.run_task_family
    STUDPERF_COMPUTE_LOGS_BUCKET = var.compute_logs.bucket
    STUDPERF_COMPUTE_LOGS_PREFIX = var.compute_logs.prefix
  }
  environment         = merge(var.studperf_environment, local.platform_environment)
  dagster_environment = [for name in sort(keys(local.environment)) : { name = name, value = local.environment[name] }]
  password            = [{ name = "PGPASSWORD", valueFrom = "${var.database.secret_arn}:password::" }]
  # Read-only root file systems: only /tmp, STUDPERF_HOME and the user's home (library
  # caches, e.g. matplotlib's) are writable, on the task's ephemeral storage.
  mounts = [
    { sourceVolume = "tmp", containerPath = "/tmp", readOnly = false },
    { sourceVolume = "studperf-home", containerPath = "/opt/studperf/home", readOnly = false },
    { sourceVolume = "user-home", containerPath = "/home/studperf", readOnly = false },
  ]
  workspace = ["--grpc-host", local.code_location, "--grpc-port", "4000"]
  # One log group; streams are dagster/<container>/<task id> (the daemon reads dagster/run/*).
  logging = {
    logDriver = "awslogs"
    options   = { awslogs-group = var.log_group_name, awslogs-region = var.aws_region, awslogs-stream-prefix = "dagster" }
  }

  # What every container shares; container_settings says what each one changes.
  container_defaults = {
    image                  = var.image
    essential              = true
    portMappings           = []
    environment            = local.dagster_environment
    secrets                = local.password
    mountPoints            = local.mounts
    readonlyRootFilesystem = true
    linuxParameters        = { initProcessEnabled = true }
    logConfiguration       = local.logging
  }
  container_settings = {
    webserver = {
      name         = "webserver"
      command      = concat(["dagster-webserver", "--host", "0.0.0.0", "--port", "3000"], var.webserver_read_only ? ["--read-only"] : [], local.workspace)
      portMappings = [{ containerPort = 3000, protocol = "tcp" }]
    }
    daemon = {
      name    = "daemon"
      command = concat(["dagster-daemon", "run"], local.workspace)
    }
    code_location = {
      name         = "code-location"
      command      = ["dagster", "code-server", "start", "--host", "0.0.0.0", "--port", "4000", "--module-name", "studperf_assets.definitions"]
      dependsOn    = [{ containerName = "db-init", condition = "SUCCESS" }]
      portMappings = [{ containerPort = 4000, protocol = "tcp" }]
      healthCheck = {
        command     = ["CMD", "dagster", "api", "grpc-health-check", "--port", "4000"]
        interval    = 30
        timeout     = 10
        retries     = 3
        startPeriod = 120
      }
    }
    # EcsRunLauncher sets the command of the container named "run" for each run.
    run = {
      name = "run"
    }
    mlflow = {
      name = "mlflow"
      command = [
        "mlflow", "server", "--host", "0.0.0.0", "--port", "5000", "--workers", "2",
        "--backend-store-uri", "${local.postgres}/${var.databases.mlflow}${local.tls}",
        "--artifacts-destination", var.mlflow_artifacts_uri,
        # Host headers it answers: its service name, its UI name, and health checks by IP.
        "--allowed-hosts", "${local.mlflow_address},mlflow.${var.ui_domain},10.*,172.*,192.168.*",
      ]
      dependsOn    = [{ containerName = "db-init", condition = "SUCCESS" }]
      portMappings = [{ containerPort = 5000, protocol = "tcp" }]
      environment  = [{ name = "AWS_REGION", value = var.aws_region }]
    }
    # An init container of the MLflow and code-location tasks: creates the MLflow and
    # monitoring databases if missing (RDS creates only Dagster's), then exits.
    db_init = {
      name        = "db-init"
      essential   = false
      command     = ["studperf", "init-db", "--databases", var.databases.mlflow, var.databases.monitoring, "--monitoring-database", var.databases.monitoring]
      environment = [{ name = "STUDPERF_DAGSTER_PG_URL", value = local.environment.STUDPERF_DAGSTER_PG_URL }]
    }
  }
  containers = {
    webserver     = merge(local.container_defaults, local.container_settings.webserver)
    daemon        = merge(local.container_defaults, local.container_settings.daemon)
    code_location = merge(local.container_defaults, local.container_settings.code_location)
    run           = merge(local.container_defaults, local.container_settings.run)
    mlflow        = merge(local.container_defaults, local.container_settings.mlflow)
    db_init       = merge(local.container_defaults, local.container_settings.db_init)
  }

  # Each task: its family, its role and its containers (init container first).
  tasks = {
    webserver     = { family = "${var.name}-dagster-webserver", role = var.roles.webserver, containers = ["webserver"] }
    daemon        = { family = "${var.name}-dagster-daemon", role = var.roles.daemon, containers = ["daemon"] }
    code_location = { family = "${var.name}-dagster-code-location", role = var.roles.code_location, containers = ["db_init", "code_location"] }
    run           = { family = var.run_task_family, role = var.roles.run, containers = ["run"] }
    mlflow        = { family = "${var.name}-mlflow", role = var.roles.mlflow, containers = ["db_init", "mlflow"] }
  }
}

resource "aws_ecs_task_definition" "this" {
  for_each                 = local.tasks
  family                   = each.value.family
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.sizes[each.key].cpu
  memory                   = var.sizes[each.key].memory
  execution_role_arn       = var.roles.execution
  task_role_arn            = each.value.role
  container_definitions    = jsonencode([for name in each.value.containers : local.containers[name]])

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  volume {
    name = "tmp"
  }

  volume {
    name = "studperf-home"
  }

  volume {
    name = "user-home"
  }
}
