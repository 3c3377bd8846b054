"""Partitions of the monitoring assets."""

from dagster import DailyPartitionsDefinition, DynamicPartitionsDefinition

# One partition per monitoring window, keyed by its start (UTC, sortable: 2026-12-01T10:05:00Z),
# added by prediction_window_sensor; deleted after window_retention_days. Dynamic, not
# TimeWindowPartitionsDefinition: a window's length is not fixed (it grows by whole lengths
# until it holds min_window_rows) and a span without predictions has no partition.
monitoring_window_partitions = DynamicPartitionsDefinition(name="monitoring_windows")

# One partition per UTC day, for the daily rollup of the windows (``monitoring_daily``): a
# fixed calendar grid, so Dagster knows every day there is, backfills a range of them and
# shows which are missing; one partition a day, whatever the traffic. end_offset=0: the
# newest partition is the last day that has ended (today is not rolled up while it runs).
# The start is before the first windows this project recorded (a day without windows rolls
# up as an empty row).
monitoring_daily_partitions = DailyPartitionsDefinition(
    start_date="2026-11-01", timezone="UTC", end_offset=0
)
