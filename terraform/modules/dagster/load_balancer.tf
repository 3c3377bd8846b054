# The two UIs behind one HTTPS load balancer, by host name: dagster.<ui_domain> and
# mlflow.<ui_domain>. Internal by default (reachable from the VPC, a VPN or a peered
# network); with var.oidc it is public and every request must sign in first.
locals {
  public       = var.oidc != null
  ui_cidrs     = local.public ? ["0.0.0.0/0"] : (length(var.ui_allowed_cidrs) > 0 ? var.ui_allowed_cidrs : [var.vpc_cidr_block])
  ui_hosts     = { webserver = "dagster.${var.ui_domain}", mlflow = "mlflow.${var.ui_domain}" }
  health_paths = { webserver = "/server_info", mlflow = "/health" }
}

resource "aws_lb" "ui" {
  #checkov:skip=CKV_AWS_91:ALB access logs can only go to an SSE-S3 bucket and this stack encrypts with its KMS key; the UIs log every request themselves.
  #checkov:skip=CKV2_AWS_28:Internal by default (no internet path to filter); put a WAF web ACL in front when var.oidc makes it public.
  name                       = "${var.name}-ui"
  internal                   = !local.public
  load_balancer_type         = "application"
  security_groups            = [aws_security_group.alb.id]
  subnets                    = local.public ? var.public_subnet_ids : var.private_subnet_ids
  drop_invalid_header_fields = true
  enable_deletion_protection = true

  lifecycle {
    precondition {
      condition     = !local.public || length(var.oidc_client_secret) > 0
      error_message = "A public load balancer (oidc set) needs oidc_client_secret."
    }
  }
}

resource "aws_lb_target_group" "ui" {
  #checkov:skip=CKV_AWS_378:TLS ends at the load balancer; the hop to the task stays inside the VPC between two security groups that admit only each other.
  for_each    = local.alb_targets
  name        = "${var.name}-${each.key}"
  port        = each.value
  protocol    = "HTTP"
  target_type = "ip"
  vpc_id      = var.vpc_id

  health_check {
    path    = local.health_paths[each.key]
    matcher = "200"
  }
}

resource "aws_lb_listener" "https" {
  load_balancer_arn = aws_lb.ui.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = var.ui_certificate_arn

  default_action {
    type = "fixed-response"

    fixed_response {
      content_type = "text/plain"
      message_body = "unknown host"
      status_code  = "404"
    }
  }
}

resource "aws_lb_listener_rule" "ui" {
  for_each     = local.alb_targets
  listener_arn = aws_lb_listener.https.arn

  condition {
    host_header {
      values = [local.ui_hosts[each.key]]
    }
  }

  # Public only: sign in with the organisation's OIDC provider before anything else.
  dynamic "action" {
    for_each = local.public ? [var.oidc] : []
    content {
      type = "authenticate-oidc"

      authenticate_oidc {
        issuer                     = action.value.issuer
        authorization_endpoint     = action.value.authorization_endpoint
        token_endpoint             = action.value.token_endpoint
        user_info_endpoint         = action.value.user_info_endpoint
        client_id                  = action.value.client_id
        client_secret              = var.oidc_client_secret
        on_unauthenticated_request = "authenticate"
      }
    }
  }

  action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.ui[each.key].arn
  }
}

resource "aws_route53_record" "ui" {
  for_each = var.route53_zone_id == "" ? {} : local.ui_hosts
  zone_id  = var.route53_zone_id
  name     = each.value
  type     = "A"

  alias {
    name                   = aws_lb.ui.dns_name
    zone_id                = aws_lb.ui.zone_id
    evaluate_target_health = true
  }
}
