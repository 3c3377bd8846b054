output "function_name" {
  description = "Function name (CD updates its code)."
  value       = aws_lambda_function.this.function_name
}

output "function_arn" {
  description = "Function ARN."
  value       = aws_lambda_function.this.arn
}

output "function_url" {
  description = "IAM-authenticated HTTPS endpoint of the function."
  value       = aws_lambda_function_url.this.function_url
}

output "log_group_arn" {
  description = "The function's log group."
  value       = aws_cloudwatch_log_group.this.arn
}

output "failure_queue_arn" {
  description = "On-failure destination of the Kinesis event source mapping."
  value       = aws_sqs_queue.failures.arn
}
