variable "name" {
  type        = string
  description = "Identifier of the instance and prefix of its parts."
}

variable "vpc_id" {
  type        = string
  description = "VPC of the instance."
}

variable "subnet_ids" {
  type        = list(string)
  description = "Private subnets (two zones at least) of the instance."
}

variable "client_security_group_ids" {
  type        = map(string)
  description = "Security groups allowed to connect on 5432, by the name of the tasks they hold."
}

variable "kms_key_arn" {
  type        = string
  description = "The stack's KMS key: storage, Performance Insights and the secret."
}

variable "engine_major_version" {
  type        = string
  description = "PostgreSQL major version (minor upgrades are automatic)."
}

variable "instance_class" {
  type        = string
  description = "Instance size, e.g. db.t4g.micro (stg) or db.t4g.small (prod)."
}

variable "allocated_storage_gb" {
  type        = number
  description = "Initial gp3 storage."
}

variable "max_allocated_storage_gb" {
  type        = number
  description = "Storage autoscaling ceiling."
}

variable "multi_az" {
  type        = bool
  description = "A standby in a second zone (prod)."
}

variable "backup_retention_days" {
  type        = number
  description = "Automated backup retention."
}

variable "dagster_database" {
  type        = string
  description = "The initial database: Dagster's storage."
}

variable "master_username" {
  type        = string
  description = "Master user of the instance (the tasks connect as it)."
}

variable "password_version" {
  type        = number
  description = "Bump to generate and store a new master password (then roll the services)."
}
