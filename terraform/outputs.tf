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
  description = "Attach to the role that runs the Dagster code location."
  value       = module.iam.dagster_policy_arn
}

output "alarm_topic_arn" {
  description = "SNS topic of the CloudWatch alarms."
  value       = module.alarms.topic_arn
}
