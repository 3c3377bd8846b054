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
