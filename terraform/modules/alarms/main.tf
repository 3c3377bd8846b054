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

# The share of input records that became error records, from the handler's EMF metrics
# (namespace studperf, the service-wide dimension set: summed over model versions). A
# producer sending bad data, or a schema change, shows here before anyone reads the
# errors stream.
resource "aws_cloudwatch_metric_alarm" "error_record_rate" {
  alarm_name          = "${var.function_name}-error-record-rate"
  alarm_description   = "More than ${var.error_record_rate * 100}% of input records were error records (see the errors stream)."
  evaluation_periods  = 3
  datapoints_to_alarm = 2
  threshold           = var.error_record_rate
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]

  metric_query {
    id          = "rate"
    expression  = "IF(records > 0, errors / records, 0)"
    label       = "error records / records"
    return_data = true
  }

  metric_query {
    id = "errors"
    metric {
      namespace   = var.metrics_namespace
      metric_name = "ErrorRecords"
      dimensions  = { service = var.metrics_service }
      period      = 300
      stat        = "Sum"
    }
  }

  metric_query {
    id = "records"
    metric {
      namespace   = var.metrics_namespace
      metric_name = "Records"
      dimensions  = { service = var.metrics_service }
      period      = 300
      stat        = "Sum"
    }
  }
}
