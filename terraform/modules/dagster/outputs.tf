output "cluster_name" {
  description = "ECS cluster of the Dagster platform (CD rolls its services)."
  value       = aws_ecs_cluster.this.name
}

output "service_names" {
  description = "The long-running services, by role."
  value       = { for key, service in aws_ecs_service.this : key => service.name }
}

output "task_security_group_ids" {
  description = "Security groups of the tasks, by role (RDS lets these in)."
  value       = { for key, group in aws_security_group.task : key => group.id }
}

output "ui_urls" {
  description = "Dagster and MLflow, through the load balancer."
  value       = { for key, host in local.ui_hosts : key => "https://${host}" }
}

output "load_balancer_dns_name" {
  description = "Point dagster.<ui_domain> and mlflow.<ui_domain> here if route53_zone_id is empty."
  value       = aws_lb.ui.dns_name
}
