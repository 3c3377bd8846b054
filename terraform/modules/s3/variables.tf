variable "bucket_name" {
  type        = string
  description = "Name of the bundle and report bucket."
}

variable "kms_key_arn" {
  type        = string
  description = "KMS key for SSE-KMS."
}

variable "reports_prefix" {
  type        = string
  description = "Prefix of monitoring reports, expired after report_retention_days."
}

variable "report_retention_days" {
  type        = number
  description = "Days monitoring reports are kept."
  default     = 365
}

variable "noncurrent_version_days" {
  type        = number
  description = "Days an overwritten object version is kept (e.g. an old production pointer)."
  default     = 90
}

variable "archive_prefix" {
  type        = string
  description = "Prefix of the predictions archive (Firehose's objects), expired after archive_retention_days."
}

variable "archive_retention_days" {
  type        = number
  description = "Days archived records are kept."
}
