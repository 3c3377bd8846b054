"""studperf's Dagster code location: training, (later) serving and monitoring assets."""
