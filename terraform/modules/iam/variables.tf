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
