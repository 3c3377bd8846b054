output "lambda_role_arn" {
  description = "Execution role of the Lambda."
  value       = aws_iam_role.lambda.arn
}

output "dagster_policy_arn" {
  description = "Policy to attach to the role that runs the Dagster code location."
  value       = aws_iam_policy.dagster.arn
}

output "dagster_roles" {
  description = "Role ARNs of the Dagster platform's tasks, by task."
  value       = { for task, role in aws_iam_role.task : task => role.arn }
}
