"""Assets by domain, each module with the checks that guard it: ingestion, training,
publishing (bundle and promotion) and monitoring (with its sensors beside it)."""

import warnings

from dagster import BetaWarning, PreviewWarning

# Partitioned asset checks are a preview feature and dagster-mlflow is beta
# (docs/architecture.md#known-limits); the notices would otherwise open every run, sensor
# tick and CLI call.
warnings.filterwarnings("ignore", category=PreviewWarning)
warnings.filterwarnings("ignore", category=BetaWarning)
