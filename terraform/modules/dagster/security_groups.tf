# One security group per kind of task; each rule names the one flow it allows. The daemon
# and the runs share a group: EcsRunLauncher starts runs with the daemon's own network
# configuration (use_current_ecs_task_config).
locals {
  task_groups = toset(["webserver", "daemon_and_runs", "code_location", "mlflow"])
  # who may reach whom, and on which port
  flows = {
    webserver_to_code_location = { from = "webserver", to = "code_location", port = 4000 }
    daemon_to_code_location    = { from = "daemon_and_runs", to = "code_location", port = 4000 }
    runs_to_mlflow             = { from = "daemon_and_runs", to = "mlflow", port = 5000 }
    code_location_to_mlflow    = { from = "code_location", to = "mlflow", port = 5000 }
  }
  alb_targets = { webserver = 3000, mlflow = 5000 }
}

resource "aws_security_group" "task" {
  #checkov:skip=CKV2_AWS_5:Attached to the ECS services through local.services (for_each), which checkov's graph does not follow.
  for_each    = local.task_groups
  name        = "${var.name}-${replace(each.key, "_", "-")}"
  description = "Dagster platform: ${replace(each.key, "_", " ")} tasks."
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "flow" {
  for_each                     = local.flows
  security_group_id            = aws_security_group.task[each.value.to].id
  description                  = replace(each.key, "_", " ")
  referenced_security_group_id = aws_security_group.task[each.value.from].id
  ip_protocol                  = "tcp"
  from_port                    = each.value.port
  to_port                      = each.value.port
}

resource "aws_vpc_security_group_egress_rule" "flow" {
  for_each                     = local.flows
  security_group_id            = aws_security_group.task[each.value.from].id
  description                  = replace(each.key, "_", " ")
  referenced_security_group_id = aws_security_group.task[each.value.to].id
  ip_protocol                  = "tcp"
  from_port                    = each.value.port
  to_port                      = each.value.port
}

resource "aws_vpc_security_group_egress_rule" "postgres" {
  for_each                     = local.task_groups
  security_group_id            = aws_security_group.task[each.key].id
  description                  = "PostgreSQL on RDS"
  referenced_security_group_id = var.database.security_group_id
  ip_protocol                  = "tcp"
  from_port                    = var.database.port
  to_port                      = var.database.port
}

# AWS APIs (ECR, Logs, Secrets Manager, Kinesis, SES, ECS) over HTTPS through the NAT; S3
# through the VPC's gateway endpoint. Nothing else leaves the tasks.
resource "aws_vpc_security_group_egress_rule" "aws_apis" {
  #checkov:skip=CKV_AWS_382:HTTPS to AWS service endpoints, whose addresses are not fixed; only port 443 is open.
  for_each          = local.task_groups
  security_group_id = aws_security_group.task[each.key].id
  description       = "AWS APIs over HTTPS"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_security_group" "alb" {
  name        = "${var.name}-dagster-alb"
  description = "Load balancer of the Dagster and MLflow UIs: HTTPS in, the two UIs out."
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "alb_https" {
  for_each          = toset(local.ui_cidrs)
  security_group_id = aws_security_group.alb.id
  description       = "HTTPS from ${each.key}"
  cidr_ipv4         = each.key
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_vpc_security_group_egress_rule" "alb_to_ui" {
  for_each                     = local.alb_targets
  security_group_id            = aws_security_group.alb.id
  description                  = "load balancer to the ${each.key} UI"
  referenced_security_group_id = aws_security_group.task[each.key].id
  ip_protocol                  = "tcp"
  from_port                    = each.value
  to_port                      = each.value
}

resource "aws_vpc_security_group_ingress_rule" "ui_from_alb" {
  for_each                     = local.alb_targets
  security_group_id            = aws_security_group.task[each.key].id
  description                  = "${each.key} UI from the load balancer"
  referenced_security_group_id = aws_security_group.alb.id
  ip_protocol                  = "tcp"
  from_port                    = each.value
  to_port                      = each.value
}
