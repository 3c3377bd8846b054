output "names" {
  description = "Stream suffix to stream name."
  value       = { for key, stream in aws_kinesis_stream.this : key => stream.name }
}

output "arns" {
  description = "Stream suffix to stream ARN."
  value       = { for key, stream in aws_kinesis_stream.this : key => stream.arn }
}
