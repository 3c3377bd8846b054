variable "name" {
  type        = string
  description = "Prefix of every resource (project-environment)."
}

variable "aws_region" {
  type        = string
  description = "Region of the stack (log configuration of the tasks)."
}

variable "vpc_id" {
  type        = string
  description = "VPC of the tasks and the load balancer."
}

variable "vpc_cidr_block" {
  type        = string
  description = "The VPC's range: who may reach the internal load balancer by default."
}

variable "private_subnet_ids" {
  type        = list(string)
  description = "Subnets of the tasks (and of the load balancer unless it is public)."
}

variable "public_subnet_ids" {
  type        = list(string)
  description = "Subnets of a public load balancer (only used with oidc)."
}

variable "image" {
  type        = string
  description = "Code-location image (<ECR repository URL>:<git sha>): every task runs it."
}

variable "kms_key_arn" {
  type        = string
  description = "The stack's KMS key (logs)."
}

variable "log_retention_days" {
  type        = number
  description = "Retention of the tasks' logs."
}

variable "roles" {
  type = object({
    execution     = string
    webserver     = string
    daemon        = string
    code_location = string
    run           = string
    mlflow        = string
  })
  description = "Role ARNs per task (modules/iam): least privilege each."
}

variable "log_group_name" {
  type        = string
  description = "Log group of every task (its ARN is in the execution role's policy)."
}

variable "run_task_family" {
  type        = string
  description = "Family of the run task definition (the daemon's role may run only it)."
}

variable "cluster_name" {
  type        = string
  description = "ECS cluster name (its ARN is in the daemon's policy)."
}

variable "database" {
  type = object({
    address           = string
    port              = number
    username          = string
    secret_arn        = string
    security_group_id = string
  })
  description = "The RDS instance: where, as whom, and the secret holding the password."
}

variable "databases" {
  type = object({
    dagster    = string
    mlflow     = string
    monitoring = string
  })
  description = "Database names on the instance."
}

variable "studperf_environment" {
  type        = map(string)
  description = "Settings of the code location and its runs (STUDPERF_*; no secrets)."
}

variable "compute_logs" {
  type = object({
    bucket = string
    prefix = string
  })
  description = "Where runs write their stdout/stderr (S3ComputeLogManager)."
}

variable "mlflow_artifacts_uri" {
  type        = string
  description = "s3:// destination of MLflow artifacts (served through the tracking server)."
}

variable "ui_domain" {
  type        = string
  description = "Domain of the UIs: dagster.<domain> and mlflow.<domain>."
}

variable "ui_certificate_arn" {
  type        = string
  description = "ACM certificate covering dagster.<ui_domain> and mlflow.<ui_domain>."
}

variable "ui_allowed_cidrs" {
  type        = list(string)
  description = "Who may reach the load balancer on 443; empty means the VPC's range."
}

variable "route53_zone_id" {
  type        = string
  description = "Private or public hosted zone for the UI records; empty: create them elsewhere."
}

variable "oidc" {
  type = object({
    issuer                 = string
    authorization_endpoint = string
    token_endpoint         = string
    user_info_endpoint     = string
    client_id              = string
  })
  default     = null
  description = "Set to make the load balancer public behind OIDC sign-in; null keeps it internal."
}

variable "oidc_client_secret" {
  type        = string
  default     = ""
  sensitive   = true
  description = "The OIDC client's secret (the ALB API takes it in clear: it is in state)."
}

variable "webserver_read_only" {
  type        = bool
  description = "Start the Dagster UI read-only (no launches, no terminations from the UI)."
}

variable "sizes" {
  type = map(object({
    cpu    = number
    memory = number
  }))
  description = "Fargate CPU units and memory (MiB) per task: webserver, daemon, code_location, run, mlflow."
}
