"""Render the environment-variable tables of docs/configuration.md from the code.

The rows are the variables the code declares it reads, in its own order:
``studperf_assets.deployment.ENVIRONMENT_VARIABLES`` (the code location and its commands) and
``lambda_service.config.ENVIRONMENT_VARIABLES`` (the Lambda), followed by the variables the
platform reads for them (the Dagster instance on ECS, libpq, boto3). Defaults that are fields
of ``Deployment`` or constants of the Lambda are read from there; the meanings are written
here, once. A variable the code reads without a meaning below, or a meaning for a variable
nobody reads, is an error: the table cannot fall behind the code.

    .venv/bin/python scripts/docs_configuration.py           # rewrite the tables in place
    .venv/bin/python scripts/docs_configuration.py --check   # exit 1 if they are not current

``studperf_assets_tests/test_docs.py`` runs the check.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from lambda_service import config as lambda_config  # noqa: E402
from lambda_service.bundle import DEFAULT_MAX_BUNDLE_BYTES  # noqa: E402
from studperf_assets import deployment  # noqa: E402

DOC = REPO / "docs" / "configuration.md"
COMMAND = ".venv/bin/python scripts/docs_configuration.py"
TABLES = ("code-location", "lambda")

# Variable -> the Deployment field whose default is the variable's default.
DEPLOYMENT_FIELDS = {
    "STUDPERF_DEPLOYMENT": "kind",
    "STUDPERF_MLFLOW_EXPERIMENT": "mlflow_experiment",
    "STUDPERF_PREDICTIONS_STREAM": "predictions_stream",
    "STUDPERF_ALERT_SENDER": "alert_sender",
    "STUDPERF_ALERT_RECIPIENTS": "alert_recipients",
    "STUDPERF_DAGSTER_URL": "dagster_url",
    "STUDPERF_SENSOR_INTERVAL": "sensor_interval_seconds",
}

# Variable -> (default, meaning). A default of None is read from DEPLOYMENT_FIELDS.
CODE_LOCATION: dict[str, tuple[str | None, str]] = {
    "STUDPERF_DEPLOYMENT": (None, "`local` or `aws` ([above](#one-switch-local-or-aws))"),
    "STUDPERF_HOME": (
        "`./.studperf`",
        "working folder: Dagster instance, MLflow, stores, asset values",
    ),
    "STUDPERF_DATA_SOURCE": ("bundled CSV", "raw CSV path or `s3://bucket/key`"),
    "STUDPERF_MODEL_STORE": (
        "`$STUDPERF_HOME/model_store`",
        "a folder (`local`), `s3://bucket/prefix` (`aws`)",
    ),
    "STUDPERF_MONITORING_STORE": (
        "`$STUDPERF_HOME/monitoring`",
        "batches, reports, labels: a folder or `s3://bucket/prefix`",
    ),
    "STUDPERF_IO_STORE": (
        "`$STUDPERF_HOME` / `s3://<monitoring bucket>/dagster-io`",
        "where asset values pass between steps (Parquet, skops, JSON; never pickles)",
    ),
    "STUDPERF_METRICS_DB_URL": (
        "`sqlite:///$STUDPERF_HOME/monitoring.db`",
        "the monitoring database: per-batch metrics, sent alerts, the ground-truth index "
        "(`postgresql+psycopg2://…` in production)",
    ),
    "MLFLOW_TRACKING_URI": ("`sqlite:///$STUDPERF_HOME/mlflow.db`", "MLflow tracking and registry"),
    "STUDPERF_MLFLOW_EXPERIMENT": (None, "MLflow experiment"),
    "STUDPERF_MLFLOW_ARTIFACTS": (
        "`$STUDPERF_HOME/mlartifacts` (`local`); the server's (`aws`)",
        "artifact root for a new experiment",
    ),
    "STUDPERF_PREDICTIONS_STREAM": (None, "stream the batch sensor reads"),
    "STUDPERF_ALERT_SENDER": (None, "SES sender"),
    "STUDPERF_ALERT_RECIPIENTS": (None, "comma-separated recipients"),
    "STUDPERF_DAGSTER_URL": (
        None,
        "base of the run links in alert e-mails (`studperf up` sets it)",
    ),
    "STUDPERF_SENSORS": (
        "`running`",
        "`stopped` deploys the four sensors and the daily rollup's schedule stopped "
        "(`studperf ui` sets it for browsing)",
    ),
    "STUDPERF_SENSOR_INTERVAL": (
        None,
        "seconds between sensor ticks (`late_labels_sensor`, `retraining_sensor`: twice that)",
    ),
    "STUDPERF_MONITORING": (
        "none",
        "`MonitoringSettings` fields as a JSON object, over their defaults (`studperf up` sets "
        '`{"window_seconds": 60, "min_window_rows": 200, …}`; see '
        "[Monitoring windows](monitoring.md#monitoring-windows))",
    ),
    "DAGSTER_HOME": (
        "`$STUDPERF_HOME/dagster`",
        "Dagster instance folder, seeded from the package (`studperf_assets/instance/dagster.yaml`,"
        " the repository's `dagster.yaml`) if it holds none",
    ),
    "STUDPERF_DAGSTER_STORAGE": (
        "`sqlite`",
        "`postgres` seeds `studperf_assets/instance/dagster.postgres.yaml` instead; any other "
        "value is refused",
    ),
    "STUDPERF_DAGSTER_PG_URL": ("—", "Dagster's PostgreSQL URL when `postgres` is chosen"),
    "STUDPERF_AWS_PORT": ("`4566`", "`studperf up`'s local AWS (moto) port on 127.0.0.1"),
    "STUDPERF_UI_PORT": ("`3000`", "`studperf up`'s Dagster UI port on 127.0.0.1"),
    "STUDPERF_EVIDENTLY_PORT": ("`8085`", "`studperf up`'s Evidently UI port on 127.0.0.1"),
    "STUDPERF_LOCAL_KINESIS_RETENTION": (
        "`900`",
        "seconds the local AWS (moto) keeps a stream's records; Kinesis keeps 24 h",
    ),
    "STUDPERF_LOG_FORMAT": ("`human`", "`json` for JSON log lines from every command"),
    "STUDPERF_LOG_LEVEL": (
        "`INFO`",
        "the commands' own log level; `DEBUG` adds, among others, the traceback behind a "
        "one-line AWS error",
    ),
}

# Read for the code location by the platform, not by studperf's code.
PLATFORM: dict[str, tuple[str, str]] = {
    "DAGSTER_RUN_TASK_DEFINITION": (
        "set by Terraform",
        "read by `dagster.aws.yaml` on ECS: the run task family",
    ),
    "STUDPERF_COMPUTE_LOGS_BUCKET": (
        "set by Terraform",
        "read by `dagster.aws.yaml` on ECS: the bucket compute logs go to",
    ),
    "STUDPERF_COMPUTE_LOGS_PREFIX": (
        "set by Terraform",
        "read by `dagster.aws.yaml` on ECS: their prefix",
    ),
    "PGPASSWORD": (
        "—",
        "read by libpq when a PostgreSQL URL has no password (ECS injects it from Secrets Manager)",
    ),
    "AWS_ENDPOINT_URL, AWS_REGION, credentials": (
        "AWS defaults",
        "standard boto3 variables; the endpoint points at moto locally, unset in AWS",
    ),
}

LAMBDA: dict[str, tuple[str, str]] = {
    "MODEL_BUNDLE_URI": (
        "—",
        "a bundle (`s3://…/bundles/<version>` or folder), a store root, or its "
        "`production.json` (followed and hot-swapped)",
    ),
    "PREDICTIONS_STREAM_NAME": ("—", "output stream for predictions"),
    "ERRORS_STREAM_NAME": ("—", "output stream for error records"),
    "MODEL_REFRESH_SECONDS": ("`60`", "how often the production pointer is re-checked"),
    "MODEL_CACHE_DIR": ("`/tmp/studperf-bundles`", "bundle cache"),
    "MODEL_MAX_MB": (
        f"`{DEFAULT_MAX_BUNDLE_BYTES >> 20}` (Terraform sets `model_max_mb`, 64)",
        "the most one bundle's files may hold, in MiB; a larger bundle is a `BundleError`. In "
        "Lambda two bundles must fit `/tmp` (512 MB) and the one serving must fit memory, so "
        "the Terraform variable is validated to at most 200",
    ),
    "PUT_MAX_ATTEMPTS": ("`5`", "PutRecords attempts before a record is reported for retry"),
    "LOG_LEVEL": ("`INFO`", "the log level"),
}
LAMBDA_PLATFORM: dict[str, tuple[str, str]] = {
    "AWS_ENDPOINT_URL, AWS_REGION": ("AWS defaults", "moto locally, nothing in AWS"),
}


def _deployment_default(variable: str) -> str:
    name = DEPLOYMENT_FIELDS[variable]
    field = next(f for f in dataclasses.fields(deployment.Deployment) if f.name == name)
    value = field.default
    if isinstance(value, tuple):
        value = ",".join(value)
    return f"`{value}`"


def _table(rows: list[tuple[str, str, str]]) -> str:
    lines = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for names, default, meaning in rows:
        parts = [n.strip() for n in names.split(",")]
        shown = ", ".join(f"`{n}`" if n.isupper() else n for n in parts)
        lines.append(f"| {shown} | {default} | {meaning} |")
    return "\n".join(lines)


def _check_names(declared: tuple[str, ...], described: Mapping[str, object], what: str) -> None:
    undescribed = [n for n in declared if n not in described]
    unread = [n for n in described if n not in declared]
    if undescribed or unread:
        raise SystemExit(
            f"{what}: the code reads {undescribed} without a meaning in {__file__}, "
            f"which describes {unread} that the code does not declare"
        )


def tables() -> dict[str, str]:
    """The two tables, keyed by the name in their marker comments."""
    _check_names(deployment.ENVIRONMENT_VARIABLES, CODE_LOCATION, "code location")
    _check_names(lambda_config.ENVIRONMENT_VARIABLES, LAMBDA, "Lambda")
    code = [
        (name, _deployment_default(name) if default is None else default, meaning)
        for name in deployment.ENVIRONMENT_VARIABLES
        for default, meaning in [CODE_LOCATION[name]]
    ]
    code += [(name, default, meaning) for name, (default, meaning) in PLATFORM.items()]
    lam = [(name, *LAMBDA[name]) for name in lambda_config.ENVIRONMENT_VARIABLES]
    lam += [(name, default, meaning) for name, (default, meaning) in LAMBDA_PLATFORM.items()]
    return {"code-location": _table(code), "lambda": _table(lam)}


def markers(name: str) -> tuple[str, str]:
    return (
        f"<!-- BEGIN {name} variables: generated by {COMMAND}; do not edit -->",
        f"<!-- END {name} variables -->",
    )


def render(text: str) -> str:
    """``text`` with the content between each pair of markers replaced by its table."""
    for name, table in tables().items():
        begin, end = markers(name)
        head, found, rest = text.partition(begin)
        _, found_end, tail = rest.partition(end)
        if not (found and found_end):
            raise SystemExit(f"{DOC}: the markers {begin!r} … {end!r} are missing")
        text = f"{head}{begin}\n{table}\n{end}{tail}"
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the tables are stale")
    args = parser.parse_args()
    current = DOC.read_text()
    wanted = render(current)
    if wanted == current:
        return 0
    if args.check:
        print(f"{DOC.relative_to(REPO)} is not current: run {COMMAND}", file=sys.stderr)
        return 1
    DOC.write_text(wanted)
    print(f"rewrote the variable tables of {DOC.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
