environment                 = "prod"
aws_region                  = "eu-west-1"
image_tag                   = "set-by-cd"
model_store_prefix          = "studperf"
reports_prefix              = "monitoring"
input_shard_count           = 2
output_shard_count          = 2
stream_retention_hours      = 72
lambda_memory_mb            = 1024
lambda_timeout_seconds      = 60
lambda_reserved_concurrency = 10
batch_size                  = 10000
batching_window_seconds     = 5
max_retry_attempts          = 5
max_record_age_seconds      = 3600
model_refresh_seconds       = 60
put_max_attempts            = 5
log_retention_days          = 365
alert_sender                = "studperf-alerts@example.org"
alert_recipients            = ["ml-oncall@example.org"]
iterator_age_alarm_ms       = 30000
image_retention_count       = 50
dagster_image_tag           = "set-by-cd"
db_instance_class           = "db.t4g.small"
db_allocated_storage_gb     = 20
db_max_allocated_storage_gb = 100
db_multi_az                 = true
db_backup_retention_days    = 14
ui_domain                   = "prod.studperf.example.org"
ui_certificate_arn          = "arn:aws:acm:eu-west-1:111122223333:certificate/replace-me"
task_sizes = {
  webserver     = { cpu = 512, memory = 1024 }
  daemon        = { cpu = 512, memory = 1024 }
  code_location = { cpu = 1024, memory = 2048 }
  run           = { cpu = 2048, memory = 8192 }
  mlflow        = { cpu = 512, memory = 1024 }
}
