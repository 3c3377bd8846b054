variable "name" {
  type        = string
  description = "Repository name."
}

variable "kms_key_arn" {
  type        = string
  description = "KMS key for image encryption."
}

variable "image_retention_count" {
  type        = number
  description = "Images kept; older ones expire."
}
