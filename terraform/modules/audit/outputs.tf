output "trail_arn" {
  description = "ARN of the trail that records object writes to the project bucket."
  value       = aws_cloudtrail.bucket_writes.arn
}

output "log_bucket_name" {
  description = "Bucket holding the audit log files (AWSLogs/<account>/CloudTrail/…)."
  value       = aws_s3_bucket.logs.id
}
