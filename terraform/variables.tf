variable "project" {
  type        = string
  description = "Name prefix of every resource."
  default     = "studperf"
}

variable "environment" {
  type        = string
  description = "Deployment environment: stg or prod."

  validation {
    condition     = contains(["stg", "prod"], var.environment)
    error_message = "environment must be stg or prod."
  }
}

variable "aws_region" {
  type        = string
  description = "AWS region of the stack."
}

variable "image_tag" {
  type        = string
  description = "Lambda image tag in ECR: the git sha CD built (tags are immutable)."
}

variable "model_store_prefix" {
  type        = string
  description = "Key prefix of the model store in the bucket (bundles/ and production.json)."
  default     = "studperf"
}

variable "reports_prefix" {
  type        = string
  description = "Key prefix of monitoring reports and archived prediction batches."
  default     = "monitoring"
}

variable "input_shard_count" {
  type        = number
  description = "Shards of the input stream."
}

variable "output_shard_count" {
  type        = number
  description = "Shards of the predictions and errors streams."
}

variable "stream_retention_hours" {
  type        = number
  description = "Kinesis retention: how long a record can wait to be retried or re-read."
}

variable "lambda_memory_mb" {
  type        = number
  description = "Lambda memory (MB); CPU scales with it."
}

variable "lambda_timeout_seconds" {
  type        = number
  description = "Lambda timeout per invocation."
}

variable "lambda_reserved_concurrency" {
  type        = number
  description = "Reserved concurrency: caps cost and protects other functions."
}

variable "batch_size" {
  type        = number
  description = "Records per Lambda invocation from Kinesis."
}

variable "batching_window_seconds" {
  type        = number
  description = "How long Lambda waits to fill a batch."
}

variable "max_retry_attempts" {
  type        = number
  description = "Retries of a failing batch before it goes to the on-failure destination."

  validation {
    condition     = var.max_retry_attempts >= 0 && var.max_retry_attempts <= 10
    error_message = "max_retry_attempts must be bounded (0-10)."
  }
}

variable "max_record_age_seconds" {
  type        = number
  description = "Records older than this are not retried but sent to the on-failure destination."

  validation {
    condition     = var.max_record_age_seconds >= 60 && var.max_record_age_seconds <= 86400
    error_message = "max_record_age_seconds must be bounded (60-86400)."
  }
}

variable "model_refresh_seconds" {
  type        = number
  description = "How often the Lambda re-checks the production pointer (hot swap)."
}

variable "put_max_attempts" {
  type        = number
  description = "PutRecords attempts before a record is reported back to Lambda for retry."
}

variable "log_retention_days" {
  type        = number
  description = "CloudWatch Logs retention of the Lambda's logs."
}

variable "alert_sender" {
  type        = string
  description = "SES-verified sender of drift and alarm e-mails."
}

variable "alert_recipients" {
  type        = list(string)
  description = "Who receives drift alerts and CloudWatch alarms."
}

variable "iterator_age_alarm_ms" {
  type        = number
  description = "Alarm when the Lambda falls this far behind the input stream (ms)."
}

variable "image_retention_count" {
  type        = number
  description = "How many Lambda images ECR keeps."
}
