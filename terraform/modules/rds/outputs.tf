# Addresses and ARNs only: the password is in neither the state nor these outputs.
output "address" {
  description = "Host name of the instance."
  value       = aws_db_instance.this.address
}

output "port" {
  description = "Port of the instance."
  value       = aws_db_instance.this.port
}

output "secret_arn" {
  description = "Secrets Manager secret with the master username and password (JSON)."
  value       = aws_secretsmanager_secret.master.arn
}

output "security_group_id" {
  description = "The instance's security group."
  value       = aws_security_group.this.id
}

output "master_username" {
  description = "User the tasks connect as."
  value       = var.master_username
}
