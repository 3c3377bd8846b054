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
  description = "Records per Lambda invocation from Kinesis, at most (docs/serving.md, Batch size)."

  validation {
    condition     = var.batch_size >= 1 && var.batch_size <= 10000
    error_message = "batch_size must be 1-10000 (the Kinesis event source mapping's maximum)."
  }
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

variable "model_max_mb" {
  type        = number
  description = "The most one bundle's files may hold (MiB); the Lambda refuses a larger one. Its /tmp (512 MB) must hold two: the one serving and the one being fetched."
  default     = 64

  validation {
    condition     = var.model_max_mb > 0 && var.model_max_mb <= 200
    error_message = "model_max_mb must be between 1 and 200: two bundles share the Lambda's 512 MB /tmp."
  }
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

# --- The orchestration half: Dagster on ECS, RDS, MLflow ---

variable "dagster_image_tag" {
  type        = string
  description = "Code-location image tag in ECR (the git sha CD built): webserver, daemon, code location, runs, MLflow."
}

variable "vpc_id" {
  type        = string
  description = "An existing VPC for the tasks and the database; empty creates one (modules/network)."
  default     = ""
}

variable "private_subnet_ids" {
  type        = list(string)
  description = "With vpc_id: private subnets (two zones) with a route to a NAT gateway."
  default     = []
}

variable "public_subnet_ids" {
  type        = list(string)
  description = "With vpc_id and oidc: public subnets for the load balancer."
  default     = []
}

variable "vpc_cidr_block" {
  type        = string
  description = "Address range of the VPC created when vpc_id is empty."
  default     = "10.42.0.0/16"
}

variable "db_engine_major_version" {
  type        = string
  description = "PostgreSQL major version of the RDS instance."
  default     = "16"
}

variable "db_instance_class" {
  type        = string
  description = "RDS instance size."
}

variable "db_allocated_storage_gb" {
  type        = number
  description = "Initial RDS storage (gp3)."
}

variable "db_max_allocated_storage_gb" {
  type        = number
  description = "RDS storage autoscaling ceiling."
}

variable "db_multi_az" {
  type        = bool
  description = "A standby instance in a second zone."
}

variable "db_backup_retention_days" {
  type        = number
  description = "RDS automated backup retention."

  validation {
    condition     = var.db_backup_retention_days >= 7 && var.db_backup_retention_days <= 35
    error_message = "db_backup_retention_days must be 7-35."
  }
}

variable "db_password_version" {
  type        = number
  description = "Bump to rotate the database password (then roll the ECS services; docs/infrastructure.md)."
  default     = 1
}

variable "ui_domain" {
  type        = string
  description = "The UIs answer on dagster.<ui_domain> and mlflow.<ui_domain>."
}

variable "ui_certificate_arn" {
  type        = string
  description = "ACM certificate for dagster.<ui_domain> and mlflow.<ui_domain>."
}

variable "ui_allowed_cidrs" {
  type        = list(string)
  description = "Ranges that may reach the internal load balancer (VPN, peered VPCs); empty: the VPC."
  default     = []
}

variable "route53_zone_id" {
  type        = string
  description = "Hosted zone to create the two UI records in; empty: create them yourself."
  default     = ""
}

variable "oidc" {
  type = object({
    issuer                 = string
    authorization_endpoint = string
    token_endpoint         = string
    user_info_endpoint     = string
    client_id              = string
  })
  description = "Public UIs behind OIDC sign-in (ALB authenticate-oidc); null keeps them internal."
  default     = null
}

variable "oidc_client_secret" {
  type        = string
  description = "Secret of the OIDC client (pass with TF_VAR_oidc_client_secret; the ALB keeps it in state)."
  default     = ""
  sensitive   = true
}

variable "webserver_read_only" {
  type        = bool
  description = "The Dagster UI cannot launch or terminate runs (sensors and CLI still can)."
  default     = true
}

variable "task_sizes" {
  type = map(object({
    cpu    = number
    memory = number
  }))
  description = "Fargate CPU units and MiB per task: webserver, daemon, code_location, run, mlflow."

  validation {
    condition     = length(setsubtract(["webserver", "daemon", "code_location", "run", "mlflow"], keys(var.task_sizes))) == 0
    error_message = "task_sizes needs webserver, daemon, code_location, run and mlflow."
  }
}

variable "audit_retention_days" {
  type        = number
  description = "Days the audit trail's log files (who wrote which object to the project bucket) are kept."
  default     = 400

  validation {
    condition     = var.audit_retention_days >= 90
    error_message = "Keep audit logs at least 90 days."
  }
}

# --- The predictions archive (modules/archive): Firehose into the monitoring bucket ---

variable "archive_buffer_seconds" {
  type        = number
  description = "Firehose buffer interval: the longest a record waits before its archive object is written, so how long after a monitoring window closes its rows are all readable. 60 s: well inside a 5-minute window, and one object a minute per stream (1,440 a day) at low traffic."
  default     = 60

  validation {
    condition     = var.archive_buffer_seconds >= 0 && var.archive_buffer_seconds <= 900
    error_message = "archive_buffer_seconds must be 0-900 (Firehose's range)."
  }
}

variable "archive_buffer_mb" {
  type        = number
  description = "Firehose buffer size (MB, before compression): 64 MB holds about 100,000 predictions, so the interval decides below about 1,500 predictions/s and objects stay few and large above it."
  default     = 64

  validation {
    condition     = var.archive_buffer_mb >= 1 && var.archive_buffer_mb <= 128
    error_message = "archive_buffer_mb must be 1-128 (Firehose's range)."
  }
}

variable "archive_retention_days" {
  type        = number
  description = "Days archived prediction and error records are kept (an S3 lifecycle rule expires them)."
  default     = 30

  validation {
    condition     = var.archive_retention_days >= 1
    error_message = "archive_retention_days must be at least 1."
  }
}
