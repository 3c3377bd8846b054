variable "name_prefix" {
  type        = string
  description = "Prefix of the stream names."
}

variable "streams" {
  type        = map(number)
  description = "Stream suffix to shard count (input, predictions, errors)."
}

variable "retention_hours" {
  type        = number
  description = "Record retention in hours."
}

variable "kms_key_arn" {
  type        = string
  description = "KMS key for stream encryption."
}
