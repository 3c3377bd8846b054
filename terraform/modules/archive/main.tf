# The predictions archive: one Kinesis Data Firehose delivery stream per output stream
# (predictions, errors) into the monitoring bucket, in the layout the monitoring code reads
# (studperf_assets/lib/archive.py; locally studperf_assets/local/firehose.py stands in):
#   <archive_prefix>/<kind>/yyyy/MM/dd/HH/<stream>-<version>-yyyy-MM-dd-HH-mm-ss-<uuid>.gz
# GZIP JSON lines: each record as the Lambda wrote it, a newline appended by Firehose's own
# AppendDelimiterToRecord processor (no Lambda transform, no Glue table to keep in step with
# the record schema). The time in the keys is the arrival time (UTC) of each object's oldest
# record. Firehose reads a Kinesis source at least once; a record it delivers twice carries
# the same idempotency_key, which readers may use.
data "aws_caller_identity" "current" {}

data "aws_region" "current" {}

locals {
  account = data.aws_caller_identity.current.account_id
  region  = data.aws_region.current.name
  names   = { for kind in keys(var.source_stream_arns) : kind => "${var.name_prefix}-${kind}-archive" }
}

resource "aws_cloudwatch_log_group" "this" {
  for_each = local.names

  name              = "/aws/kinesisfirehose/${each.value}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

resource "aws_cloudwatch_log_stream" "delivery" {
  for_each = local.names

  name           = "DestinationDelivery"
  log_group_name = aws_cloudwatch_log_group.this[each.key].name
}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["firehose.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account]
    }
  }
}

resource "aws_iam_role" "firehose" {
  name               = "${var.name_prefix}-archive-firehose"
  assume_role_policy = data.aws_iam_policy_document.assume.json
}

# Least privilege: read the two source streams, write (and list, for multipart uploads)
# under the archive prefix only, use the key only through Kinesis and S3, write its logs.
data "aws_iam_policy_document" "firehose" {
  statement {
    sid       = "ReadTheSourceStreams"
    actions   = ["kinesis:DescribeStream", "kinesis:DescribeStreamSummary", "kinesis:GetShardIterator", "kinesis:GetRecords", "kinesis:ListShards"]
    resources = values(var.source_stream_arns)
  }

  statement {
    sid       = "WriteTheArchive"
    actions   = ["s3:AbortMultipartUpload", "s3:GetObject", "s3:PutObject"]
    resources = ["${var.bucket_arn}/${var.archive_prefix}/*"]
  }

  statement {
    sid       = "FindTheBucket"
    actions   = ["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"]
    resources = [var.bucket_arn]
  }

  statement {
    sid       = "DecryptTheStreams"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["kinesis.${local.region}.amazonaws.com"]
    }
  }

  statement {
    sid       = "EncryptTheArchive"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [var.kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${local.region}.amazonaws.com"]
    }

    condition {
      test     = "StringLike"
      variable = "kms:EncryptionContext:aws:s3:arn"
      values   = [var.bucket_arn, "${var.bucket_arn}/${var.archive_prefix}/*"]
    }
  }

  statement {
    sid       = "WriteItsLogs"
    actions   = ["logs:PutLogEvents"]
    resources = [for kind, group in aws_cloudwatch_log_group.this : "${group.arn}:log-stream:*"]
  }
}

resource "aws_iam_role_policy" "firehose" {
  name   = "archive"
  role   = aws_iam_role.firehose.id
  policy = data.aws_iam_policy_document.firehose.json
}

resource "aws_kinesis_firehose_delivery_stream" "this" {
  #checkov:skip=CKV_AWS_240:Firehose refuses server-side encryption on a delivery stream whose source is a Kinesis stream; the source streams are KMS-encrypted and the objects are written with kms_key_arn.
  #checkov:skip=CKV_AWS_241:Firehose refuses server-side encryption on a delivery stream whose source is a Kinesis stream; the source streams are KMS-encrypted and the objects are written with kms_key_arn.
  for_each = local.names

  name        = each.value
  destination = "extended_s3"

  kinesis_source_configuration {
    kinesis_stream_arn = var.source_stream_arns[each.key]
    role_arn           = aws_iam_role.firehose.arn
  }

  extended_s3_configuration {
    role_arn            = aws_iam_role.firehose.arn
    bucket_arn          = var.bucket_arn
    prefix              = "${var.archive_prefix}/${each.key}/!{timestamp:yyyy/MM/dd/HH}/"
    error_output_prefix = "${var.archive_prefix}/failed/${each.key}/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd/HH}/"
    buffering_interval  = var.buffer_seconds
    buffering_size      = var.buffer_mb
    compression_format  = "GZIP"
    kms_key_arn         = var.kms_key_arn

    processing_configuration {
      enabled = true

      processors {
        type = "AppendDelimiterToRecord"
      }
    }

    cloudwatch_logging_options {
      enabled         = true
      log_group_name  = aws_cloudwatch_log_group.this[each.key].name
      log_stream_name = aws_cloudwatch_log_stream.delivery[each.key].name
    }
  }

  # The role's policy must exist before Firehose first reads the stream.
  depends_on = [aws_iam_role_policy.firehose]
}
