# Least privilege: the named streams, the bucket prefix, the key, the queue, the log group.
# No "*" in any action or resource of these policies.
data "aws_iam_policy_document" "assume_lambda" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "lambda" {
  name               = "${var.name_prefix}-lambda"
  assume_role_policy = data.aws_iam_policy_document.assume_lambda.json
}

data "aws_iam_policy_document" "lambda" {
  statement {
    sid = "ReadInputStream"
    actions = [
      "kinesis:DescribeStream",
      "kinesis:DescribeStreamSummary",
      "kinesis:GetRecords",
      "kinesis:GetShardIterator",
      "kinesis:ListShards",
    ]
    resources = [var.input_stream_arn]
  }

  statement {
    sid       = "WriteOutputStreams"
    actions   = ["kinesis:PutRecord", "kinesis:PutRecords"]
    resources = [var.predictions_stream_arn, var.errors_stream_arn]
  }

  statement {
    sid     = "ReadModelStore"
    actions = ["s3:GetObject"]
    resources = [
      "${var.bucket_arn}/${var.model_store_prefix}/production.json",
      "${var.bucket_arn}/${var.model_store_prefix}/bundles/*",
    ]
  }

  statement {
    sid       = "UseStackKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }

  statement {
    sid       = "OnFailureDestination"
    actions   = ["sqs:SendMessage"]
    resources = [var.failure_queue_arn]
  }

  statement {
    sid       = "WriteOwnLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${var.log_group_arn}:log-stream:*"]
  }
}

resource "aws_iam_role_policy" "lambda" {
  name   = "${var.name_prefix}-lambda"
  role   = aws_iam_role.lambda.id
  policy = data.aws_iam_policy_document.lambda.json
}

# X-Ray's PutTraceSegments has no resource-level permissions: AWS's managed policy is the
# narrowest grant there is, and it is not ours to widen.
resource "aws_iam_role_policy_attachment" "xray" {
  role       = aws_iam_role.lambda.name
  policy_arn = "arn:aws:iam::aws:policy/AWSXRayDaemonWriteAccess"
}

# What studperf's Dagster code needs (training, monitoring, sensors): the code-location and
# run task roles (ecs.tf) carry it, and so can any other role that runs the code location.
data "aws_iam_policy_document" "dagster" {
  statement {
    sid       = "ListOwnPrefixes"
    actions   = ["s3:ListBucket"]
    resources = [var.bucket_arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${var.model_store_prefix}/*", "${var.reports_prefix}/*", "${var.io_prefix}/*"]
    }
  }

  statement {
    sid     = "ReadWriteModelStoreReportsAndAssetValues"
    actions = ["s3:GetObject", "s3:PutObject"]
    resources = [
      "${var.bucket_arn}/${var.model_store_prefix}/*",
      "${var.bucket_arn}/${var.reports_prefix}/*",
      "${var.bucket_arn}/${var.io_prefix}/*",
    ]
  }

  # Retention (docs/operations.md#retention): old bundles after a promotion; the files of
  # windows past window_retention_days. Never the pointers: they are only ever replaced.
  statement {
    sid     = "DeleteOldBundlesAndWindowFiles"
    actions = ["s3:DeleteObject"]
    resources = [
      "${var.bucket_arn}/${var.model_store_prefix}/bundles/*",
      "${var.bucket_arn}/${var.reports_prefix}/reports/*",
      "${var.bucket_arn}/${var.io_prefix}/*",
    ]
  }

  statement {
    sid = "ReadPredictions"
    actions = [
      "kinesis:DescribeStreamSummary",
      "kinesis:GetRecords",
      "kinesis:GetShardIterator",
      "kinesis:ListShards",
    ]
    resources = [var.predictions_stream_arn]
  }

  statement {
    sid       = "SendAlerts"
    actions   = ["ses:SendEmail"]
    resources = [var.ses_identity_arn]
  }

  statement {
    sid       = "UseStackKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }
}

resource "aws_iam_policy" "dagster" {
  name        = "${var.name_prefix}-dagster"
  description = "Training and monitoring: model store, reports, asset values, predictions stream, SES alerts."
  policy      = data.aws_iam_policy_document.dagster.json
}
