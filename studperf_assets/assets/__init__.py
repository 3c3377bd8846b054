"""Assets by domain, each module with the checks that guard it: ingestion, training,
publishing (bundle and promotion), monitoring (reference data and prediction batches) and
reports (a batch's drift report, its checks and its metrics row). The sensors that drive
them are in ``studperf_assets.sensors``."""

import warnings

from dagster import BetaWarning, PreviewWarning

# Partitioned asset checks are a preview feature and dagster-mlflow is beta
# (docs/architecture.md#known-limits); the notices would otherwise open every run, sensor
# tick and CLI call.
warnings.filterwarnings("ignore", category=PreviewWarning)
warnings.filterwarnings("ignore", category=BetaWarning)
