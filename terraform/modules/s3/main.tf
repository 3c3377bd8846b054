# Model bundles (and the production pointer) plus monitoring reports.
resource "aws_s3_bucket" "this" {
  #checkov:skip=CKV_AWS_144:Cross-region replication is a disaster-recovery choice; bundles are rebuilt from Git and the dataset.
  #checkov:skip=CKV_AWS_18:Writes are audited by the audit module's trail (CloudTrail S3 data events, who wrote which object); server access logs would add a bucket for the same.
  #checkov:skip=CKV2_AWS_62:No consumer of bucket event notifications; the Lambda polls the production pointer.
  bucket        = var.bucket_name
  force_destroy = false
}

resource "aws_s3_bucket_versioning" "this" {
  bucket = aws_s3_bucket.this.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "this" {
  bucket                  = aws_s3_bucket.this.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  bucket = aws_s3_bucket.this.id

  lifecycle {
    precondition {
      condition     = var.archive_retention_days <= var.report_retention_days
      error_message = "archive_retention_days must not exceed report_retention_days: the reports rule covers the archive's prefix and would expire it first."
    }
  }

  rule {
    id     = "expire-old-reports"
    status = "Enabled"

    filter {
      prefix = "${var.reports_prefix}/"
    }

    expiration {
      days = var.report_retention_days
    }
  }

  # The archive lies under the reports prefix too: where two rules expire an object, S3
  # applies the sooner, so the archive's own rule decides only if it is the shorter.
  rule {
    id     = "expire-archive"
    status = "Enabled"

    filter {
      prefix = "${var.archive_prefix}/"
    }

    expiration {
      days = var.archive_retention_days
    }
  }

  rule {
    id     = "tidy-versions-and-uploads"
    status = "Enabled"

    filter {}

    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_days
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
}
