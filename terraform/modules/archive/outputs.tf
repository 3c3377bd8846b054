output "delivery_stream_names" {
  description = "Archive kind to delivery stream name."
  value       = { for kind, stream in aws_kinesis_firehose_delivery_stream.this : kind => stream.name }
}

output "role_arn" {
  description = "The role the delivery streams assume."
  value       = aws_iam_role.firehose.arn
}
