# One-time, per AWS account: the S3 bucket that holds Terraform state for every environment.
# Applied with local state (see docs/infrastructure.md#remote-state-step-by-step-once-per-aws-account); S3-native locking (use_lockfile)
# needs no DynamoDB table.
terraform {
  required_version = ">= 1.10.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.80"
    }
  }
}

provider "aws" {
  region = var.aws_region
}

variable "aws_region" {
  type        = string
  description = "Region of the state bucket."
}

variable "state_bucket" {
  type        = string
  description = "Name of the state bucket (globally unique: include the account id)."
}

resource "aws_kms_key" "state" {
  description             = "Terraform state"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.state_key.json
}

data "aws_caller_identity" "current" {}

data "aws_iam_policy_document" "state_key" {
  #checkov:skip=CKV_AWS_111:A key policy's "*" resource is the key itself (AWS requires it); grants go to this account only.
  #checkov:skip=CKV_AWS_356:A key policy's "*" resource is the key itself (AWS requires it); grants go to this account only.
  #checkov:skip=CKV_AWS_109:A key policy's "*" resource is the key itself (AWS requires it); grants go to this account only.
  statement {
    sid       = "AccountAdministersTheKey"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:aws:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }
}

resource "aws_s3_bucket" "state" {
  #checkov:skip=CKV_AWS_144:State is versioned in one region; replication is an account-level DR decision.
  #checkov:skip=CKV_AWS_18:Access logging needs another bucket; state is read and written by whoever runs Terraform, whose role assumptions the account's CloudTrail records (this stack's trail audits the project bucket, not this one).
  #checkov:skip=CKV2_AWS_62:Nothing consumes events of the state bucket.
  bucket = var.state_bucket

  lifecycle {
    prevent_destroy = true
  }
}

resource "aws_s3_bucket_versioning" "state" {
  bucket = aws_s3_bucket.state.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "state" {
  bucket = aws_s3_bucket.state.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.state.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "state" {
  bucket                  = aws_s3_bucket.state.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_lifecycle_configuration" "state" {
  bucket = aws_s3_bucket.state.id

  rule {
    id     = "keep-old-state-versions-90-days"
    status = "Enabled"

    filter {}

    noncurrent_version_expiration {
      noncurrent_days = 90
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
}

output "state_bucket" {
  description = "Put this name in envs/<env>/backend.hcl."
  value       = aws_s3_bucket.state.id
}
