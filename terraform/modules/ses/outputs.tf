output "identity_arn" {
  description = "ARN of the sender identity (the only one the alerting role may use)."
  value       = aws_sesv2_email_identity.sender.arn
}
