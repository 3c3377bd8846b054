variable "function_name" {
  type        = string
  description = "Lambda function name."
}

variable "role_arn" {
  type        = string
  description = "Execution role."
}

variable "repository_url" {
  type        = string
  description = "ECR repository of the image."
}

variable "image_tag" {
  type        = string
  description = "Image tag (git sha)."
}

variable "memory_mb" {
  type        = number
  description = "Memory size (MB)."
}

variable "timeout_seconds" {
  type        = number
  description = "Timeout per invocation (s)."
}

variable "reserved_concurrency" {
  type        = number
  description = "Reserved concurrent executions."
}

variable "kms_key_arn" {
  type        = string
  description = "Key for environment variables, logs and the failure queue."
}

variable "environment" {
  type        = map(string)
  description = "Environment the handler reads (see lambda_service/handler.py)."
}

variable "input_stream_arn" {
  type        = string
  description = "Kinesis stream that triggers the function."
}

variable "batch_size" {
  type        = number
  description = "Records per invocation."
}

variable "batching_window_seconds" {
  type        = number
  description = "Maximum batching window (s)."
}

variable "max_retry_attempts" {
  type        = number
  description = "Retries before the on-failure destination."
}

variable "max_record_age_seconds" {
  type        = number
  description = "Maximum record age before the on-failure destination (s)."
}

variable "log_retention_days" {
  type        = number
  description = "Log retention (days)."
}

variable "log_level" {
  type        = string
  description = "Application log level (the handler's LOG_LEVEL): DEBUG, INFO, WARN or ERROR."
  default     = "INFO"

  validation {
    condition     = contains(["DEBUG", "INFO", "WARN", "ERROR"], var.log_level)
    error_message = "log_level must be DEBUG, INFO, WARN or ERROR."
  }
}
