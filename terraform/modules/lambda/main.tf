# The prediction Lambda: container image, Kinesis event source with partial-batch
# responses, an on-failure destination, X-Ray, bounded concurrency and logs.
resource "aws_cloudwatch_log_group" "this" {
  name              = "/aws/lambda/${var.function_name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

resource "aws_sqs_queue" "failures" {
  name                      = "${var.function_name}-on-failure"
  kms_master_key_id         = var.kms_key_arn
  message_retention_seconds = 1209600
}

resource "aws_lambda_function" "this" {
  #checkov:skip=CKV_AWS_117:No private resources to reach; a VPC would add NAT or endpoints for Kinesis and S3 for nothing.
  #checkov:skip=CKV_AWS_272:Code signing does not apply to container images; ECR tags are immutable and scanned instead.
  function_name                  = var.function_name
  role                           = var.role_arn
  package_type                   = "Image"
  image_uri                      = "${var.repository_url}:${var.image_tag}"
  architectures                  = ["x86_64"]
  memory_size                    = var.memory_mb
  timeout                        = var.timeout_seconds
  reserved_concurrent_executions = var.reserved_concurrency
  kms_key_arn                    = var.kms_key_arn

  environment {
    variables = var.environment
  }

  tracing_config {
    mode = "Active"
  }

  # The handler writes JSON lines (aws-lambda-powertools) and CloudWatch EMF metrics; JSON
  # here makes the platform's own lines JSON too, and filters levels before they are billed.
  logging_config {
    log_format            = "JSON"
    log_group             = aws_cloudwatch_log_group.this.name
    application_log_level = var.log_level
    system_log_level      = "WARN"
  }

  dead_letter_config {
    target_arn = aws_sqs_queue.failures.arn
  }

  depends_on = [aws_cloudwatch_log_group.this]
}

resource "aws_lambda_event_source_mapping" "input" {
  event_source_arn                   = var.input_stream_arn
  function_name                      = aws_lambda_function.this.arn
  starting_position                  = "LATEST"
  batch_size                         = var.batch_size
  maximum_batching_window_in_seconds = var.batching_window_seconds
  function_response_types            = ["ReportBatchItemFailures"]
  bisect_batch_on_function_error     = true
  maximum_retry_attempts             = var.max_retry_attempts
  maximum_record_age_in_seconds      = var.max_record_age_seconds
  parallelization_factor             = 1

  destination_config {
    on_failure {
      destination_arn = aws_sqs_queue.failures.arn
    }
  }
}

# HTTP predictions (POST /predict, GET /health, GET /model) for IAM-signed callers.
resource "aws_lambda_function_url" "this" {
  function_name      = aws_lambda_function.this.function_name
  authorization_type = "AWS_IAM"
}
