data "aws_caller_identity" "current" {}

locals {
  name          = "${var.project}-${var.environment}"
  function_name = "${local.name}-predict"
  bucket_name   = "${local.name}-${data.aws_caller_identity.current.account_id}"
  # Known before the Lambda module creates them, so IAM needs nothing from it.
  log_group_arn     = "arn:aws:logs:${var.aws_region}:${data.aws_caller_identity.current.account_id}:log-group:/aws/lambda/${local.function_name}"
  failure_queue     = "${local.function_name}-on-failure"
  failure_queue_arn = "arn:aws:sqs:${var.aws_region}:${data.aws_caller_identity.current.account_id}:${local.failure_queue}"

  # The orchestration half (Dagster on ECS, RDS, MLflow): names its IAM needs up front.
  cluster_name          = "${local.name}-dagster"
  cluster_arn           = "arn:aws:ecs:${var.aws_region}:${data.aws_caller_identity.current.account_id}:cluster/${local.cluster_name}"
  run_task_family       = "${local.name}-dagster-run"
  run_task_arn          = "arn:aws:ecs:${var.aws_region}:${data.aws_caller_identity.current.account_id}:task-definition/${local.run_task_family}"
  dagster_log_group     = "/studperf/${local.name}/dagster"
  dagster_log_group_arn = "arn:aws:logs:${var.aws_region}:${data.aws_caller_identity.current.account_id}:log-group:${local.dagster_log_group}"
  io_prefix             = "dagster/io"
  compute_logs_prefix   = "dagster/compute-logs"
  mlflow_prefix         = "mlflow"
  databases             = { dagster = "dagster", mlflow = "mlflow", monitoring = "monitoring" }
  # The predictions archive, in the monitoring store (studperf_assets.lib.archive.ARCHIVE_PREFIX).
  archive_prefix = "${var.reports_prefix}/archive"

  # An existing VPC when vpc_id is set, else the network module's.
  vpc_id             = var.vpc_id != "" ? var.vpc_id : module.network[0].vpc_id
  vpc_cidr_block     = var.vpc_id != "" ? data.aws_vpc.existing[0].cidr_block : module.network[0].cidr_block
  private_subnet_ids = var.vpc_id != "" ? var.private_subnet_ids : module.network[0].private_subnet_ids
  public_subnet_ids  = var.vpc_id != "" ? var.public_subnet_ids : module.network[0].public_subnet_ids
}

module "kms" {
  source = "./modules/kms"
  name   = local.name
}

module "s3" {
  source                 = "./modules/s3"
  bucket_name            = local.bucket_name
  kms_key_arn            = module.kms.key_arn
  reports_prefix         = var.reports_prefix
  archive_prefix         = local.archive_prefix
  archive_retention_days = var.archive_retention_days
}

module "audit" {
  source             = "./modules/audit"
  name               = "${local.name}-bucket-writes"
  bucket_name        = "${local.bucket_name}-audit"
  audited_bucket_arn = module.s3.bucket_arn
  kms_key_arn        = module.kms.key_arn
  retention_days     = var.audit_retention_days
}

module "kinesis" {
  source      = "./modules/kinesis"
  name_prefix = local.name
  streams = {
    input       = var.input_shard_count
    predictions = var.output_shard_count
    errors      = var.output_shard_count
  }
  retention_hours = var.stream_retention_hours
  kms_key_arn     = module.kms.key_arn
}

# Every prediction and error record, by time, in the monitoring bucket: monitoring reads
# windows of it, not the streams (whose retention is stream_retention_hours).
module "archive" {
  source      = "./modules/archive"
  name_prefix = local.name
  source_stream_arns = {
    predictions = module.kinesis.arns["predictions"]
    errors      = module.kinesis.arns["errors"]
  }
  bucket_arn         = module.s3.bucket_arn
  archive_prefix     = local.archive_prefix
  kms_key_arn        = module.kms.key_arn
  buffer_seconds     = var.archive_buffer_seconds
  buffer_mb          = var.archive_buffer_mb
  log_retention_days = var.log_retention_days
}

module "ecr" {
  source                = "./modules/ecr"
  name                  = "${local.name}-lambda"
  kms_key_arn           = module.kms.key_arn
  image_retention_count = var.image_retention_count
}

module "ses" {
  source = "./modules/ses"
  sender = var.alert_sender
}

module "iam" {
  source                  = "./modules/iam"
  name_prefix             = local.name
  input_stream_arn        = module.kinesis.arns["input"]
  predictions_stream_arn  = module.kinesis.arns["predictions"]
  errors_stream_arn       = module.kinesis.arns["errors"]
  bucket_arn              = module.s3.bucket_arn
  model_store_prefix      = var.model_store_prefix
  reports_prefix          = var.reports_prefix
  kms_key_arn             = module.kms.key_arn
  failure_queue_arn       = local.failure_queue_arn
  log_group_arn           = local.log_group_arn
  ses_identity_arn        = module.ses.identity_arn
  io_prefix               = local.io_prefix
  compute_logs_prefix     = local.compute_logs_prefix
  mlflow_prefix           = local.mlflow_prefix
  dagster_repository_arn  = module.ecr_dagster.repository_arn
  dagster_log_group_arn   = local.dagster_log_group_arn
  database_secret_arn     = module.rds.secret_arn
  cluster_arn             = local.cluster_arn
  run_task_definition_arn = local.run_task_arn
  webserver_read_only     = var.webserver_read_only
}

module "lambda" {
  source          = "./modules/lambda"
  function_name   = local.function_name
  role_arn        = module.iam.lambda_role_arn
  repository_url  = module.ecr.repository_url
  image_tag       = var.image_tag
  memory_mb       = var.lambda_memory_mb
  timeout_seconds = var.lambda_timeout_seconds
  # Exactly the variables lambda_service/handler.py reads.
  environment = {
    MODEL_BUNDLE_URI        = "s3://${module.s3.bucket_name}/${var.model_store_prefix}"
    PREDICTIONS_STREAM_NAME = module.kinesis.names["predictions"]
    ERRORS_STREAM_NAME      = module.kinesis.names["errors"]
    MODEL_REFRESH_SECONDS   = tostring(var.model_refresh_seconds)
    MODEL_CACHE_DIR         = "/tmp/studperf-bundles"
    MODEL_MAX_MB            = tostring(var.model_max_mb)
    PUT_MAX_ATTEMPTS        = tostring(var.put_max_attempts)
  }
  reserved_concurrency    = var.lambda_reserved_concurrency
  kms_key_arn             = module.kms.key_arn
  input_stream_arn        = module.kinesis.arns["input"]
  batch_size              = var.batch_size
  batching_window_seconds = var.batching_window_seconds
  max_retry_attempts      = var.max_retry_attempts
  max_record_age_seconds  = var.max_record_age_seconds
  log_retention_days      = var.log_retention_days

  # The role's policy must exist before the event source mapping is validated.
  depends_on = [module.iam]
}

module "alarms" {
  source             = "./modules/alarms"
  function_name      = module.lambda.function_name
  failure_queue_name = local.failure_queue
  iterator_age_ms    = var.iterator_age_alarm_ms
  recipients         = var.alert_recipients
  kms_key_arn        = module.kms.key_arn
}

# --- The orchestration half: Dagster on ECS Fargate, RDS PostgreSQL, an MLflow server ---

data "aws_vpc" "existing" {
  count = var.vpc_id != "" ? 1 : 0
  id    = var.vpc_id
}

module "network" {
  source             = "./modules/network"
  count              = var.vpc_id == "" ? 1 : 0
  name               = local.name
  cidr_block         = var.vpc_cidr_block
  availability_zones = ["${var.aws_region}a", "${var.aws_region}b"]
  kms_key_arn        = module.kms.key_arn
  log_retention_days = var.log_retention_days
}

module "ecr_dagster" {
  source                = "./modules/ecr"
  name                  = "${local.name}-dagster"
  kms_key_arn           = module.kms.key_arn
  image_retention_count = var.image_retention_count
}

module "rds" {
  source                    = "./modules/rds"
  name                      = local.name
  vpc_id                    = local.vpc_id
  subnet_ids                = local.private_subnet_ids
  client_security_group_ids = module.dagster.task_security_group_ids
  kms_key_arn               = module.kms.key_arn
  engine_major_version      = var.db_engine_major_version
  instance_class            = var.db_instance_class
  allocated_storage_gb      = var.db_allocated_storage_gb
  max_allocated_storage_gb  = var.db_max_allocated_storage_gb
  multi_az                  = var.db_multi_az
  backup_retention_days     = var.db_backup_retention_days
  dagster_database          = local.databases.dagster
  master_username           = "studperf"
  password_version          = var.db_password_version
}

module "dagster" {
  source             = "./modules/dagster"
  name               = local.name
  aws_region         = var.aws_region
  vpc_id             = local.vpc_id
  vpc_cidr_block     = local.vpc_cidr_block
  private_subnet_ids = local.private_subnet_ids
  public_subnet_ids  = local.public_subnet_ids
  image              = "${module.ecr_dagster.repository_url}:${var.dagster_image_tag}"
  kms_key_arn        = module.kms.key_arn
  log_retention_days = var.log_retention_days
  log_group_name     = local.dagster_log_group
  cluster_name       = local.cluster_name
  run_task_family    = local.run_task_family
  roles              = module.iam.dagster_roles
  database = {
    address           = module.rds.address
    port              = module.rds.port
    username          = module.rds.master_username
    secret_arn        = module.rds.secret_arn
    security_group_id = module.rds.security_group_id
  }
  databases = local.databases
  # Settings the code reads (studperf_assets.deployment); the module adds the database
  # URLs, MLflow and the Dagster instance's own.
  studperf_environment = {
    STUDPERF_MODEL_STORE        = "s3://${module.s3.bucket_name}/${var.model_store_prefix}"
    STUDPERF_MONITORING_STORE   = "s3://${module.s3.bucket_name}/${var.reports_prefix}"
    STUDPERF_IO_STORE           = "s3://${module.s3.bucket_name}/${local.io_prefix}"
    STUDPERF_PREDICTIONS_STREAM = module.kinesis.names["predictions"]
    STUDPERF_ALERT_SENDER       = var.alert_sender
    STUDPERF_ALERT_RECIPIENTS   = join(",", var.alert_recipients)
  }
  compute_logs         = { bucket = module.s3.bucket_name, prefix = local.compute_logs_prefix }
  mlflow_artifacts_uri = "s3://${module.s3.bucket_name}/${local.mlflow_prefix}"
  ui_domain            = var.ui_domain
  ui_certificate_arn   = var.ui_certificate_arn
  ui_allowed_cidrs     = var.ui_allowed_cidrs
  route53_zone_id      = var.route53_zone_id
  oidc                 = var.oidc
  oidc_client_secret   = var.oidc_client_secret
  webserver_read_only  = var.webserver_read_only
  sizes                = var.task_sizes
}
