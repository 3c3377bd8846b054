# Who wrote to the model store: a CloudTrail trail of S3 write data events on the project
# bucket (PutObject, DeleteObject, CopyObject, multipart…), so that every bundle, every
# production.json and every report can be traced to the principal that wrote it. The model
# store is a trust boundary; reads are not recorded (the Lambdas read the pointer every
# minute: many events, little to learn). Logs go to a bucket of their own, encrypted with
# the stack's key, with file validation (digest files) on.
data "aws_caller_identity" "current" {}

data "aws_region" "current" {}

locals {
  trail_arn = "arn:aws:cloudtrail:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:trail/${var.name}"
  log_path  = "AWSLogs/${data.aws_caller_identity.current.account_id}"
}

resource "aws_s3_bucket" "logs" {
  #checkov:skip=CKV_AWS_144:Audit logs stay in the region of the trail; copying them elsewhere is an account-level DR decision.
  #checkov:skip=CKV_AWS_18:This is the log bucket; logging access to it would need a third bucket, and CloudTrail management events record changes to it.
  #checkov:skip=CKV2_AWS_62:Nothing consumes events of the audit log bucket.
  bucket        = var.bucket_name
  force_destroy = false
}

resource "aws_s3_bucket_ownership_controls" "logs" {
  bucket = aws_s3_bucket.logs.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_versioning" "logs" {
  bucket = aws_s3_bucket.logs.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "logs" {
  bucket                  = aws_s3_bucket.logs.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_lifecycle_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id

  rule {
    id     = "expire-audit-logs"
    status = "Enabled"

    filter {}

    expiration {
      days = var.retention_days
    }

    noncurrent_version_expiration {
      noncurrent_days = 30
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
}

data "aws_iam_policy_document" "logs" {
  statement {
    sid       = "CloudTrailChecksTheBucket"
    actions   = ["s3:GetBucketAcl"]
    resources = [aws_s3_bucket.logs.arn]

    principals {
      type        = "Service"
      identifiers = ["cloudtrail.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceArn"
      values   = [local.trail_arn]
    }
  }

  statement {
    sid       = "CloudTrailWritesThisTrailOnly"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.logs.arn}/${local.log_path}/*"]

    principals {
      type        = "Service"
      identifiers = ["cloudtrail.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceArn"
      values   = [local.trail_arn]
    }
  }

  statement {
    sid       = "TLSOnly"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.logs.arn, "${aws_s3_bucket.logs.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "logs" {
  bucket = aws_s3_bucket.logs.id
  policy = data.aws_iam_policy_document.logs.json
}

resource "aws_cloudtrail" "bucket_writes" {
  #checkov:skip=CKV_AWS_67:It records S3 data events of one regional bucket; an organization trail is where all-region management events belong.
  #checkov:skip=CKV_AWS_252:The audit is read when a bundle is questioned; nothing subscribes to per-file delivery notices.
  #checkov:skip=CKV2_AWS_10:Queried from S3 (Athena or the CLI) when a bundle is questioned; no metric filter needs them in CloudWatch Logs.
  name                          = var.name
  s3_bucket_name                = aws_s3_bucket.logs.id
  kms_key_id                    = var.kms_key_arn
  enable_log_file_validation    = true
  include_global_service_events = false
  is_multi_region_trail         = false

  advanced_event_selector {
    name = "Object writes to the project bucket"

    field_selector {
      field  = "eventCategory"
      equals = ["Data"]
    }

    field_selector {
      field  = "resources.type"
      equals = ["AWS::S3::Object"]
    }

    field_selector {
      field  = "readOnly"
      equals = ["false"]
    }

    field_selector {
      field       = "resources.ARN"
      starts_with = ["${var.audited_bucket_arn}/"]
    }
  }

  # The bucket policy must let CloudTrail in before the trail checks it.
  depends_on = [aws_s3_bucket_policy.logs]
}
