output "ecr_repository_url" {
  description = "Where CD pushes the Lambda image (<url>:<git sha>)."
  value       = module.ecr.repository_url
}

output "lambda_function_name" {
  description = "Function CD updates to the new image."
  value       = module.lambda.function_name
}

output "lambda_function_url" {
  description = "IAM-authenticated HTTPS prediction endpoint."
  value       = module.lambda.function_url
}

output "model_store_uri" {
  description = "STUDPERF_MODEL_STORE for training and MODEL_BUNDLE_URI for the Lambda."
  value       = "s3://${module.s3.bucket_name}/${var.model_store_prefix}"
}

output "bucket_name" {
  description = "Bundle and report bucket."
  value       = module.s3.bucket_name
}

output "stream_names" {
  description = "Input, predictions and errors streams."
  value       = module.kinesis.names
}

output "dagster_policy_arn" {
  description = "What studperf's Dagster code needs; the ECS code-location and run roles carry it, attach it to any other role that runs the code."
  value       = module.iam.dagster_policy_arn
}

output "alarm_topic_arn" {
  description = "SNS topic of the CloudWatch alarms."
  value       = module.alarms.topic_arn
}

output "dagster_cluster_name" {
  description = "ECS cluster of the Dagster platform."
  value       = module.dagster.cluster_name
}

output "dagster_service_names" {
  description = "Webserver, daemon, code location and MLflow services (CD waits for them)."
  value       = module.dagster.service_names
}

output "ui_urls" {
  description = "The Dagster and MLflow UIs (internal unless oidc is set)."
  value       = module.dagster.ui_urls
}

output "load_balancer_dns_name" {
  description = "Target of the two UI records when route53_zone_id is empty."
  value       = module.dagster.load_balancer_dns_name
}

output "database_secret_arn" {
  description = "Secret with the RDS master credentials (the password itself is in no output)."
  value       = module.rds.secret_arn
}

output "audit_log_bucket" {
  description = "Bucket of the trail that records who wrote which object to the project bucket."
  value       = module.audit.log_bucket_name
}
