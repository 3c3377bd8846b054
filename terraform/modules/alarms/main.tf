# CloudWatch alarms on the prediction Lambda, e-mailed through an encrypted SNS topic.
resource "aws_sns_topic" "alarms" {
  name              = "${var.function_name}-alarms"
  kms_master_key_id = var.kms_key_arn
}

resource "aws_sns_topic_subscription" "email" {
  for_each = toset(var.recipients)

  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = each.value
}

locals {
  alarms = {
    iterator-age = {
      metric      = "IteratorAge"
      statistic   = "Maximum"
      threshold   = var.iterator_age_ms
      description = "The Lambda is falling behind the input stream."
    }
    errors = {
      metric      = "Errors"
      statistic   = "Sum"
      threshold   = 0
      description = "Invocations failed (a batch is being retried or sent to the on-failure queue)."
    }
    throttles = {
      metric      = "Throttles"
      statistic   = "Sum"
      threshold   = 0
      description = "Invocations throttled by the reserved concurrency."
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "lambda" {
  for_each = local.alarms

  alarm_name          = "${var.function_name}-${each.key}"
  alarm_description   = each.value.description
  namespace           = "AWS/Lambda"
  metric_name         = each.value.metric
  statistic           = each.value.statistic
  dimensions          = { FunctionName = var.function_name }
  period              = 60
  evaluation_periods  = 5
  datapoints_to_alarm = 3
  threshold           = each.value.threshold
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}

resource "aws_cloudwatch_metric_alarm" "failed_batches" {
  alarm_name          = "${var.function_name}-on-failure-queue"
  alarm_description   = "Records reached the on-failure queue: they were not predicted."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  statistic           = "Maximum"
  dimensions          = { QueueName = var.failure_queue_name }
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
}
