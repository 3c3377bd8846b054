# Input, predictions and errors streams, KMS-encrypted.
resource "aws_kinesis_stream" "this" {
  for_each = var.streams

  name             = "${var.name_prefix}-${each.key}"
  shard_count      = each.value
  retention_period = var.retention_hours
  encryption_type  = "KMS"
  kms_key_id       = var.kms_key_arn

  stream_mode_details {
    stream_mode = "PROVISIONED"
  }
}
