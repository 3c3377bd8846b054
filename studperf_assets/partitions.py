"""Partitions of the monitoring assets."""

from dagster import DynamicPartitionsDefinition

# One partition per monitoring window, keyed by its start (UTC, sortable: 2026-12-01T10:05:00Z),
# added by prediction_window_sensor; deleted after window_retention_days. Dynamic, not
# TimeWindowPartitionsDefinition: a window's length is not fixed (it grows by whole lengths
# until it holds min_window_rows) and a span without predictions has no partition.
monitoring_window_partitions = DynamicPartitionsDefinition(name="monitoring_windows")
