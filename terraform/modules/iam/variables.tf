variable "name_prefix" {
  type        = string
  description = "Prefix of role and policy names."
}

variable "input_stream_arn" {
  type        = string
  description = "Stream the Lambda reads."
}

variable "predictions_stream_arn" {
  type        = string
  description = "Stream the Lambda writes predictions to."
}

variable "errors_stream_arn" {
  type        = string
  description = "Stream the Lambda writes error records to."
}

variable "bucket_arn" {
  type        = string
  description = "Bundle and report bucket."
}

variable "model_store_prefix" {
  type        = string
  description = "Model store prefix in the bucket."
}

variable "reports_prefix" {
  type        = string
  description = "Monitoring prefix in the bucket."
}

variable "kms_key_arn" {
  type        = string
  description = "The stack's KMS key."
}

variable "failure_queue_arn" {
  type        = string
  description = "SQS queue of the event source mapping's on-failure destination."
}

variable "log_group_arn" {
  type        = string
  description = "The Lambda's log group."
}

variable "ses_identity_arn" {
  type        = string
  description = "SES identity alerts are sent from."
}

variable "io_prefix" {
  type        = string
  description = "Prefix of the asset values Dagster passes between steps (STUDPERF_IO_STORE)."
}

variable "compute_logs_prefix" {
  type        = string
  description = "Prefix of the runs' stdout/stderr (S3ComputeLogManager)."
}

variable "mlflow_prefix" {
  type        = string
  description = "Prefix of MLflow artifacts (written only by the tracking server)."
}

variable "dagster_repository_arn" {
  type        = string
  description = "ECR repository of the code-location image."
}

variable "dagster_log_group_arn" {
  type        = string
  description = "Log group of the Dagster platform's tasks."
}

variable "database_secret_arn" {
  type        = string
  description = "Secrets Manager secret with the database password."
}

variable "cluster_arn" {
  type        = string
  description = "ECS cluster of the Dagster platform."
}

variable "run_task_definition_arn" {
  type        = string
  description = "ARN of the run task definition's family, without revision."
}

variable "webserver_read_only" {
  type        = bool
  description = "The UI cannot launch or terminate runs; false lets it stop run tasks."
}
