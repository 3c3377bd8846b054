variable "name_prefix" {
  type        = string
  description = "Prefix of the delivery streams, role and log groups."
}

variable "source_stream_arns" {
  type        = map(string)
  description = "Archive kind (predictions, errors) to the Kinesis stream it copies."
}

variable "bucket_arn" {
  type        = string
  description = "The monitoring bucket."
}

variable "archive_prefix" {
  type        = string
  description = "Key prefix of the archive: the monitoring store's prefix then archive (studperf_assets.lib.archive)."
}

variable "kms_key_arn" {
  type        = string
  description = "KMS key of the streams, the bucket and the log groups."
}

variable "buffer_seconds" {
  type        = number
  description = "Firehose buffer interval: the longest a record waits before its object is written."
}

variable "buffer_mb" {
  type        = number
  description = "Firehose buffer size (MB, before compression): an object is written when this much is buffered."
}

variable "log_retention_days" {
  type        = number
  description = "CloudWatch Logs retention of the delivery streams' error logs."
}
