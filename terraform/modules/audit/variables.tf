variable "name" {
  type        = string
  description = "Name of the trail."
}

variable "bucket_name" {
  type        = string
  description = "Name of the bucket the trail writes its log files to (created here)."
}

variable "audited_bucket_arn" {
  type        = string
  description = "ARN of the bucket whose object writes are recorded (the model store's)."
}

variable "kms_key_arn" {
  type        = string
  description = "The stack's KMS key: encrypts the log files and the log bucket."
}

variable "retention_days" {
  type        = number
  description = "Days the audit log files are kept."
}
