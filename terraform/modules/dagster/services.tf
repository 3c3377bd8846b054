# Long-running services. Runs and db-init are not services: the daemon's EcsRunLauncher
# starts a run task per run, and CD runs db-init once per deploy.
locals {
  services = {
    webserver = {
      security_group = "webserver"
      discovery      = null
      target_group   = "webserver"
      # the UI is stateless: roll with the new task up before the old one stops
      min_healthy = 100
      max_percent = 200
    }
    # Exactly one daemon, ever: the old task stops before the new one starts.
    daemon = {
      security_group = "daemon_and_runs"
      discovery      = null
      target_group   = null
      min_healthy    = 0
      max_percent    = 100
    }
    code_location = {
      security_group = "code_location"
      discovery      = "code-location"
      target_group   = null
      min_healthy    = 100
      max_percent    = 200
    }
    mlflow = {
      security_group = "mlflow"
      discovery      = "mlflow"
      target_group   = "mlflow"
      min_healthy    = 100
      max_percent    = 200
    }
  }
}

resource "aws_ecs_service" "this" {
  for_each                           = local.services
  name                               = replace(each.key, "_", "-")
  cluster                            = aws_ecs_cluster.this.id
  task_definition                    = aws_ecs_task_definition.this[each.key].arn
  desired_count                      = 1
  launch_type                        = "FARGATE"
  platform_version                   = "LATEST"
  deployment_minimum_healthy_percent = each.value.min_healthy
  deployment_maximum_percent         = each.value.max_percent
  enable_execute_command             = false
  propagate_tags                     = "SERVICE"

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.task[each.value.security_group].id]
    assign_public_ip = false
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  dynamic "service_registries" {
    for_each = each.value.discovery == null ? [] : [each.value.discovery]
    content {
      registry_arn = aws_service_discovery_service.this[service_registries.value].arn
    }
  }

  dynamic "load_balancer" {
    for_each = each.value.target_group == null ? [] : [each.value.target_group]
    content {
      target_group_arn = aws_lb_target_group.ui[load_balancer.value].arn
      container_name   = local.containers[each.key].name
      container_port   = local.alb_targets[load_balancer.value]
    }
  }

  depends_on = [aws_lb_listener_rule.ui]
}
