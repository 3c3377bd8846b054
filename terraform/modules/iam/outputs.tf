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
  value = {
    execution     = aws_iam_role.ecs_execution.arn
    webserver     = aws_iam_role.webserver.arn
    daemon        = aws_iam_role.daemon.arn
    code_location = aws_iam_role.code_location.arn
    run           = aws_iam_role.run.arn
    mlflow        = aws_iam_role.mlflow.arn
  }
}
