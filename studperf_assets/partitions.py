"""Partitions of the monitoring assets."""

from dagster import DynamicPartitionsDefinition

# One partition per monitored batch of predictions, added by prediction_batch_sensor.
prediction_batch_partitions = DynamicPartitionsDefinition(name="prediction_batches")

# One partition per monitoring window, keyed by its start (UTC, sortable: 2026-12-01T10:05:00Z),
# added by prediction_window_sensor; deleted after window_retention_days.
monitoring_window_partitions = DynamicPartitionsDefinition(name="monitoring_windows")
