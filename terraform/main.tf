data "aws_caller_identity" "current" {}

locals {
  name          = "${var.project}-${var.environment}"
  function_name = "${local.name}-predict"
  bucket_name   = "${local.name}-${data.aws_caller_identity.current.account_id}"
  # Known before the Lambda module creates them, so IAM needs nothing from it.
  log_group_arn     = "arn:aws:logs:${var.aws_region}:${data.aws_caller_identity.current.account_id}:log-group:/aws/lambda/${local.function_name}"
  failure_queue     = "${local.function_name}-on-failure"
  failure_queue_arn = "arn:aws:sqs:${var.aws_region}:${data.aws_caller_identity.current.account_id}:${local.failure_queue}"
}

module "kms" {
  source = "./modules/kms"
  name   = local.name
}

module "s3" {
  source         = "./modules/s3"
  bucket_name    = local.bucket_name
  kms_key_arn    = module.kms.key_arn
  reports_prefix = var.reports_prefix
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
  source                 = "./modules/iam"
  name_prefix            = local.name
  input_stream_arn       = module.kinesis.arns["input"]
  predictions_stream_arn = module.kinesis.arns["predictions"]
  errors_stream_arn      = module.kinesis.arns["errors"]
  bucket_arn             = module.s3.bucket_arn
  model_store_prefix     = var.model_store_prefix
  reports_prefix         = var.reports_prefix
  kms_key_arn            = module.kms.key_arn
  failure_queue_arn      = local.failure_queue_arn
  log_group_arn          = local.log_group_arn
  ses_identity_arn       = module.ses.identity_arn
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
