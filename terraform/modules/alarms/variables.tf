variable "function_name" {
  type        = string
  description = "Lambda function the alarms watch."
}

variable "failure_queue_name" {
  type        = string
  description = "On-failure queue whose depth is alarmed."
}

variable "iterator_age_ms" {
  type        = number
  description = "Iterator age alarm threshold (ms)."
}

variable "recipients" {
  type        = list(string)
  description = "E-mail addresses subscribed to the alarm topic."
}

variable "kms_key_arn" {
  type        = string
  description = "Key of the encrypted alarm topic."
}

variable "error_record_rate" {
  type        = number
  description = "Alarm when more than this share of input records become error records (0-1)."
  default     = 0.05

  validation {
    condition     = var.error_record_rate > 0 && var.error_record_rate < 1
    error_message = "error_record_rate is a share between 0 and 1."
  }
}

variable "metrics_namespace" {
  type        = string
  description = "Namespace of the handler's EMF metrics (lambda_service/observability.py)."
  default     = "studperf"
}

variable "metrics_service" {
  type        = string
  description = "The service dimension of the handler's EMF metrics."
  default     = "studperf"
}
