# One role per kind of Dagster task, each with only what its process calls. Three actions
# have no resource-level permissions in AWS and are granted on "*" (named in
# studperf_assets_tests/test_terraform.py): ecr:GetAuthorizationToken,
# ecs:DescribeTaskDefinition and ec2:DescribeNetworkInterfaces.
data "aws_caller_identity" "current" {}

data "aws_iam_policy_document" "assume_ecs_tasks" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

# The roles, by task, and the inline policy of each (documents below).
locals {
  # arn:aws:ecs:<region>:<account>:task/<cluster>/<id>: the tasks of this cluster only
  cluster_tasks = "${replace(var.cluster_arn, ":cluster/", ":task/")}/*"
  task_roles = {
    execution     = "ecs-execution" # ECS itself, starting any task: image, logs, password
    webserver     = "dagster-webserver"
    daemon        = "dagster-daemon"
    code_location = "dagster-code-location"
    run           = "dagster-run"
    mlflow        = "mlflow"
  }
  task_policies = {
    execution = data.aws_iam_policy_document.ecs_execution.json
    webserver = data.aws_iam_policy_document.webserver.json
    daemon    = data.aws_iam_policy_document.daemon.json
    run       = data.aws_iam_policy_document.run.json
    mlflow    = data.aws_iam_policy_document.mlflow.json
  }
}

resource "aws_iam_role" "task" {
  for_each           = local.task_roles
  name               = "${var.name_prefix}-${each.value}"
  assume_role_policy = data.aws_iam_policy_document.assume_ecs_tasks.json
}

resource "aws_iam_role_policy" "task" {
  for_each = local.task_policies
  name     = "${var.name_prefix}-${local.task_roles[each.key]}"
  role     = aws_iam_role.task[each.key].id
  policy   = each.value
}

# The code location evaluates sensors and serves definitions; runs materialize assets.
# Both need what studperf's code touches (main.tf: the dagster policy).
resource "aws_iam_role_policy_attachment" "studperf_code" {
  for_each   = toset(["code_location", "run"])
  role       = aws_iam_role.task[each.key].name
  policy_arn = aws_iam_policy.dagster.arn
}

# ECS itself, starting any of the tasks: pull the image, write logs, read the password.
data "aws_iam_policy_document" "ecs_execution" {
  statement {
    sid = "PullCodeLocationImage"
    actions = [
      "ecr:BatchCheckLayerAvailability",
      "ecr:BatchGetImage",
      "ecr:GetDownloadUrlForLayer",
    ]
    resources = [var.dagster_repository_arn]
  }

  statement {
    sid       = "LogInToEcr"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid       = "WriteTaskLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${var.dagster_log_group_arn}:log-stream:*"]
  }

  statement {
    sid       = "InjectDatabasePassword"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [var.database_secret_arn]
  }

  statement {
    sid       = "DecryptPasswordAndImage"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
  }
}

# Runs also write their stdout/stderr (the S3 compute log manager).
data "aws_iam_policy_document" "run" {
  statement {
    sid       = "ListComputeLogs"
    actions   = ["s3:ListBucket"]
    resources = [var.bucket_arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${var.compute_logs_prefix}/*"]
    }
  }

  statement {
    sid       = "WriteComputeLogs"
    actions   = ["s3:GetObject", "s3:PutObject"]
    resources = ["${var.bucket_arn}/${var.compute_logs_prefix}/*"]
  }
}

# The daemon: sensors are evaluated in the code location, so it needs only the run
# launcher's calls: start a run task of the run family in this cluster, watch and stop it.
data "aws_iam_policy_document" "daemon" {
  statement {
    sid       = "LaunchRunTasks"
    actions   = ["ecs:RunTask"]
    resources = ["${var.run_task_definition_arn}:*"]

    condition {
      test     = "ArnEquals"
      variable = "ecs:cluster"
      values   = [var.cluster_arn]
    }
  }

  statement {
    sid       = "TagRunTasksAtLaunch"
    actions   = ["ecs:TagResource"]
    resources = [local.cluster_tasks]

    condition {
      test     = "StringEquals"
      variable = "ecs:CreateAction"
      values   = ["RunTask"]
    }
  }

  statement {
    sid       = "WatchAndStopRuns"
    actions   = ["ecs:DescribeTasks", "ecs:StopTask"]
    resources = [local.cluster_tasks]
  }

  statement {
    sid       = "PassRunRoles"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.task["run"].arn, aws_iam_role.task["execution"].arn]

    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ecs-tasks.amazonaws.com"]
    }
  }

  # EcsRunLauncher reads the run task definition and its own task's subnets and groups
  # (use_current_ecs_task_config); neither call can be scoped to a resource.
  statement {
    sid       = "ReadLaunchConfiguration"
    actions   = ["ecs:DescribeTaskDefinition", "ec2:DescribeNetworkInterfaces"]
    resources = ["*"]
  }

  statement {
    sid       = "ReadFailedRunLogs"
    actions   = ["logs:GetLogEvents"]
    resources = ["${var.dagster_log_group_arn}:log-stream:dagster/run/*"]
  }
}

# The webserver reads: run logs from S3 and the run launcher's configuration. Launches
# from the UI are queued in the database and started by the daemon.
data "aws_iam_policy_document" "webserver" {
  statement {
    sid       = "ListComputeLogs"
    actions   = ["s3:ListBucket"]
    resources = [var.bucket_arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${var.compute_logs_prefix}/*"]
    }
  }

  statement {
    sid       = "ReadComputeLogs"
    actions   = ["s3:GetObject"]
    resources = ["${var.bucket_arn}/${var.compute_logs_prefix}/*"]
  }

  statement {
    sid       = "DecryptComputeLogs"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
  }

  statement {
    sid       = "ReadLaunchConfiguration"
    actions   = ["ecs:DescribeTaskDefinition"]
    resources = ["*"]
  }

  # Only when the UI may terminate runs (webserver_read_only = false).
  dynamic "statement" {
    for_each = var.webserver_read_only ? [] : [local.cluster_tasks]
    content {
      sid       = "TerminateRunsFromTheUi"
      actions   = ["ecs:DescribeTasks", "ecs:StopTask"]
      resources = [statement.value]
    }
  }
}

# The MLflow server proxies every artifact upload and download: only it touches mlflow/.
data "aws_iam_policy_document" "mlflow" {
  statement {
    sid       = "ListArtifacts"
    actions   = ["s3:ListBucket"]
    resources = [var.bucket_arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${var.mlflow_prefix}/*"]
    }
  }

  statement {
    sid       = "ReadWriteArtifacts"
    actions   = ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"]
    resources = ["${var.bucket_arn}/${var.mlflow_prefix}/*"]
  }

  statement {
    sid       = "UseStackKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }
}

