# One PostgreSQL instance for the orchestration half: Dagster's storage (the initial
# database), the MLflow backend and the monitoring batch_metrics (both made by
# `studperf init-db`). The master password is generated ephemerally and written only to
# RDS and Secrets Manager (write-only arguments): it is in no state file, plan or output.
# Tasks get it as PGPASSWORD from the secret; their URLs carry no password.
resource "aws_db_subnet_group" "this" {
  name       = var.name
  subnet_ids = var.subnet_ids
}

resource "aws_security_group" "this" {
  name        = "${var.name}-postgres"
  description = "PostgreSQL: reachable on 5432 from the Dagster and MLflow tasks only."
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "clients" {
  for_each                     = var.client_security_group_ids
  security_group_id            = aws_security_group.this.id
  description                  = "PostgreSQL from the ${each.key} tasks"
  referenced_security_group_id = each.value
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
}

ephemeral "random_password" "master" {
  length           = 32
  override_special = "!#$%^&*()-_=+[]{}<>:?" # no / @ " or space: RDS refuses them
}

resource "aws_db_parameter_group" "this" {
  name   = var.name
  family = "postgres${var.engine_major_version}"

  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }

  parameter {
    name  = "log_min_duration_statement"
    value = "1000"
  }
}

resource "aws_db_instance" "this" {
  #checkov:skip=CKV_AWS_161:The tasks authenticate with the Secrets Manager password; IAM auth tokens expire every 15 minutes, which Dagster's pooled connections cannot renew.
  #checkov:skip=CKV_AWS_118:Enhanced monitoring needs its own role and costs more than the instance at this size; CloudWatch basic metrics and Performance Insights cover it.
  #checkov:skip=CKV_AWS_157:Multi-AZ is a per-environment choice (var.multi_az, on in prod); stg runs single-AZ to halve its cost.
  identifier                            = var.name
  engine                                = "postgres"
  engine_version                        = var.engine_major_version
  instance_class                        = var.instance_class
  allocated_storage                     = var.allocated_storage_gb
  max_allocated_storage                 = var.max_allocated_storage_gb
  storage_type                          = "gp3"
  storage_encrypted                     = true
  kms_key_id                            = var.kms_key_arn
  db_name                               = var.dagster_database
  username                              = var.master_username
  password_wo                           = ephemeral.random_password.master.result
  password_wo_version                   = var.password_version
  db_subnet_group_name                  = aws_db_subnet_group.this.name
  vpc_security_group_ids                = [aws_security_group.this.id]
  parameter_group_name                  = aws_db_parameter_group.this.name
  publicly_accessible                   = false
  multi_az                              = var.multi_az
  backup_retention_period               = var.backup_retention_days
  copy_tags_to_snapshot                 = true
  deletion_protection                   = true
  skip_final_snapshot                   = false
  final_snapshot_identifier             = "${var.name}-final"
  auto_minor_version_upgrade            = true
  iam_database_authentication_enabled   = false
  performance_insights_enabled          = true
  performance_insights_kms_key_id       = var.kms_key_arn
  performance_insights_retention_period = 7
  enabled_cloudwatch_logs_exports       = ["postgresql", "upgrade"]
}

resource "aws_secretsmanager_secret" "master" {
  #checkov:skip=CKV2_AWS_57:Rotation is bumping var.password_version and rolling the services (docs/infrastructure.md); an automatic rotation would change the password under running tasks that read it once at start.
  name                    = "${var.name}/postgres"
  description             = "Master credentials of ${var.name}: JSON with username and password."
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = 7
}

# The same ephemeral value as the instance's, in one apply: the secret always matches.
resource "aws_secretsmanager_secret_version" "master" {
  secret_id = aws_secretsmanager_secret.master.id
  secret_string_wo = jsonencode({
    username = var.master_username
    password = ephemeral.random_password.master.result
  })
  secret_string_wo_version = var.password_version
}
