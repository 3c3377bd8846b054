variable "name" {
  type        = string
  description = "Name prefix of the VPC and its parts."
}

variable "cidr_block" {
  type        = string
  description = "The VPC's address range (/16 to /20; subnets are /20 of a /16)."
}

variable "kms_key_arn" {
  type        = string
  description = "The stack's KMS key (flow log encryption)."
}

variable "log_retention_days" {
  type        = number
  description = "Retention of the VPC flow logs."
}

variable "availability_zones" {
  type        = list(string)
  description = "The two zones of the subnets (named, so the network never moves when AWS adds a zone)."

  validation {
    condition     = length(var.availability_zones) == 2
    error_message = "availability_zones must name two zones."
  }
}
