"""Monitoring resources: thresholds and windows, SES alerts. Monitoring reads the predictions
archive (``lib.archive``, through ``ObjectStore.archive()``), never the stream.

The monitoring database (metrics, alerts, ground-truth index) is ``metrics_db``.
"""

from typing import Any

import boto3
from dagster import AssetCheckSeverity, ConfigurableResource
from pydantic import Field

from studperf_assets.deployment import DEFAULT_RECIPIENTS, DEFAULT_SENDER
from studperf_assets.lib.drift_summary import DEFAULT_SAMPLE_ROWS
from studperf_assets.lib.windows import WindowRules


class MonitoringSettings(ConfigurableResource):
    window_seconds: int = Field(
        default=300, description="A monitoring window's length (60 in the local stack)."
    )
    min_window_rows: int = Field(
        default=200, description="A window grows by whole lengths until it holds this many rows."
    )
    max_window_wait_seconds: int = Field(
        default=1800, description="After this long a smaller window closes, marked small."
    )
    window_settle_seconds: int = Field(
        default=90,
        description="A window closes this long after its end (Firehose's buffer + margin).",
    )
    window_retention_days: int = Field(
        default=7,
        description="Per-window partitions and their files (HTML reports, asset values, "
        "Evidently snapshots) are deleted after this many days, once their day is rolled up "
        "(daily_metrics).",
    )
    archive_retention_days: int = Field(
        default=30,
        ge=1,
        description="Objects of a folder store's predictions archive are deleted after this "
        "many days (never fewer than window_retention_days); in AWS an S3 lifecycle rule "
        "(Terraform's archive_retention_days, the same default) expires them instead.",
    )
    drift_sample_rows: int = Field(
        default=DEFAULT_SAMPLE_ROWS,
        ge=1,
        description="Rows of a window the drift tests and Evidently's pages compare, a seeded "
        "sample (counts and quality are over every row); the window's stored value holds only "
        "these, so it does not grow with traffic.",
    )
    data_drift_share: float = Field(
        default=0.2, description="Data drift check fails at this share of drifted features."
    )
    prediction_drift_score: float = Field(
        default=0.15, description="Prediction drift check fails above this Jensen-Shannon distance."
    )
    numerical_drift_score: float = Field(
        default=0.2, description="A continuous feature drifts above this normed Wasserstein."
    )
    categorical_drift_score: float = Field(
        default=0.15, description="An ordinal or binary feature drifts above this Jensen-Shannon."
    )
    f1_floor: float = Field(default=0.5, description="Performance check fails below this f1-macro.")
    min_labelled_for_f1: int = Field(
        default=50, description="Labelled rows needed before f1 is judged."
    )
    drift_severity: AssetCheckSeverity = Field(
        default=AssetCheckSeverity.WARN, description="Severity of the drift checks."
    )
    performance_severity: AssetCheckSeverity = Field(
        default=AssetCheckSeverity.ERROR, description="Severity of the performance check."
    )
    min_new_labels_for_retraining: int = Field(
        default=200, description="Labelled production rows needed to retrain."
    )
    retraining_cooldown_seconds: int = Field(
        default=3600, description="Minimum time between sensor-started retrainings."
    )
    incident_reminder_seconds: int = Field(
        default=3600, description="At most one reminder e-mail per open incident this often."
    )
    alert_failure_seconds: int = Field(
        default=300,
        description="E-mails SES refuses for this long are an incident of their own, and "
        "fail the alert sensor's ticks (shown in the UI and by studperf up).",
    )
    stuck_run_seconds: int = Field(
        default=900,
        description="A monitoring or training run still queued or started (not finished) "
        "this long is an incident (a safety net under the daemon's run monitoring).",
    )
    incident_resolve_after_passing: int = Field(
        default=3,
        ge=1,
        description="A failed-checks incident is resolved after this many consecutive "
        "monitored windows passed its checks.",
    )
    evidently_workspace: str = Field(
        default=".studperf/evidently", description="Evidently UI workspace folder."
    )

    def window_rules(self) -> WindowRules:
        return WindowRules(
            window_seconds=self.window_seconds,
            min_window_rows=self.min_window_rows,
            max_window_wait_seconds=self.max_window_wait_seconds,
            settle_seconds=self.window_settle_seconds,
        )


class AlertSender(ConfigurableResource):
    """E-mail through SES (moto server locally via AWS_ENDPOINT_URL)."""

    sender: str = Field(default=DEFAULT_SENDER, description="Verified SES sender.")
    recipients: list[str] = Field(default=list(DEFAULT_RECIPIENTS), description="Alert recipients.")

    dagster_url: str = Field(
        default="http://127.0.0.1:3000", description="Base URL of the Dagster UI, for run links."
    )
    evidently_url: str = Field(
        default="http://127.0.0.1:8085",
        description="Base URL of the Evidently UI, for report and dashboard links (empty: none).",
    )
    mlflow_url: str = Field(
        default="http://127.0.0.1:5005",
        description="Base URL of the MLflow UI, for model version links (empty: none).",
    )

    def run_url(self, run_id: str) -> str:
        return f"{self.dagster_url.rstrip('/')}/runs/{run_id}"

    def send(self, subject: str, text: str, html: str | None = None) -> str:
        """One e-mail: a plain-text part, and an HTML part when given."""
        body: Any = {"Text": {"Data": text, "Charset": "UTF-8"}}
        if html is not None:
            body["Html"] = {"Data": html, "Charset": "UTF-8"}
        response = boto3.client("ses").send_email(
            Source=self.sender,
            Destination={"ToAddresses": list(self.recipients)},
            Message={"Subject": {"Data": subject, "Charset": "UTF-8"}, "Body": body},
        )
        return str(response["MessageId"])
