"""Partitions of the monitoring assets."""

from dagster import DynamicPartitionsDefinition

# One partition per monitored batch of predictions, added by prediction_batch_sensor.
prediction_batch_partitions = DynamicPartitionsDefinition(name="prediction_batches")
