"""Render the environment-variable tables of docs/configuration.md from the code.

The rows are the variables the code declares it reads, in its own order:
``studperf_assets.deployment.ENVIRONMENT_VARIABLES`` (the code location and its commands) and
``lambda_service.config.ENVIRONMENT_VARIABLES`` (the Lambda), followed by the variables the
platform reads for them (the Dagster instance on ECS, libpq, boto3). Every default the code
decides is read from the code: the fields of ``Deployment`` and ``StackPorts``, the
constants of ``deployment``, ``local.instance``, ``local.moto_server``, ``cli.terminal`` and
``lambda_service.config``; only the meanings (and defaults that are not values, such as "set
by Terraform") are written here, once. A variable the code reads without a meaning below,
or a meaning for a variable nobody reads, is an error: the table cannot fall behind the code.

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
from studperf_assets.cli import terminal  # noqa: E402
from studperf_assets.local import instance, moto_server, stack  # noqa: E402

DOC = REPO / "docs" / "configuration.md"
COMMAND = ".venv/bin/python scripts/docs_configuration.py"
TABLES = ("code-location", "lambda")


def _field_default(cls: type, name: str) -> object:
    """The default of a dataclass field (a ``default_factory`` is called)."""
    field = next(f for f in dataclasses.fields(cls) if f.name == name)
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


def _shown(value: object) -> str:
    """A default as the table shows it: in code marks; a tuple comma-separated, a whole
    float as an integer."""
    if isinstance(value, tuple):
        value = ",".join(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"`{value}`"


def _deployment(name: str) -> str:
    return _shown(_field_default(deployment.Deployment, name))


def _under_home(path: str) -> str:
    return f"$STUDPERF_HOME/{path}" if path else "$STUDPERF_HOME"


_FILES, _FOLDERS = deployment.LOCAL_FILES, deployment.LOCAL_STORE_FOLDERS

# Variable -> (default, meaning); each default read from the code.
CODE_LOCATION: dict[str, tuple[str, str]] = {
    "STUDPERF_DEPLOYMENT": (
        _deployment("kind"),
        "`local` or `aws` ([above](#one-switch-local-or-aws))",
    ),
    "STUDPERF_HOME": (
        f"`./{deployment.DEFAULT_HOME}`",
        "working folder: Dagster instance, MLflow, stores, asset values",
    ),
    "STUDPERF_DATA_SOURCE": ("bundled CSV", "raw CSV path or `s3://bucket/key`"),
    "STUDPERF_MODEL_STORE": (
        _shown(_under_home(_FOLDERS["model_store"])),
        "a folder (`local`), `s3://bucket/prefix` (`aws`)",
    ),
    "STUDPERF_MONITORING_STORE": (
        _shown(_under_home(_FOLDERS["monitoring_store"])),
        "batches, reports, labels: a folder or `s3://bucket/prefix`",
    ),
    "STUDPERF_IO_STORE": (
        f"{_shown(_under_home(_FOLDERS['io_store']))} / "
        f"`s3://<monitoring bucket>/{deployment.AWS_IO_STORE_PREFIX}`",
        "where asset values pass between steps (Parquet, skops, JSON; never pickles)",
    ),
    "STUDPERF_METRICS_DB_URL": (
        _shown(f"sqlite:///{_under_home(_FILES['metrics_db_url'])}"),
        "the monitoring database: per-batch metrics, sent alerts, the ground-truth index "
        "(`postgresql+psycopg2://…` in production)",
    ),
    "MLFLOW_TRACKING_URI": (
        _shown(f"sqlite:///{_under_home(_FILES['mlflow_tracking_uri'])}"),
        "MLflow tracking and registry",
    ),
    "STUDPERF_MLFLOW_EXPERIMENT": (_deployment("mlflow_experiment"), "MLflow experiment"),
    "STUDPERF_MLFLOW_ARTIFACTS": (
        f"{_shown(_under_home(_FILES['mlflow_artifacts']))} (`local`); the server's (`aws`)",
        "artifact root for a new experiment",
    ),
    "STUDPERF_PREDICTIONS_STREAM": (
        _deployment("predictions_stream"),
        "stream the batch sensor reads",
    ),
    "STUDPERF_ALERT_SENDER": (_deployment("alert_sender"), "SES sender"),
    "STUDPERF_ALERT_RECIPIENTS": (_deployment("alert_recipients"), "comma-separated recipients"),
    "STUDPERF_DAGSTER_URL": (
        _deployment("dagster_url"),
        "base of the run links in alert e-mails (`studperf up` sets it)",
    ),
    "STUDPERF_EVIDENTLY_URL": (
        f"{_deployment('evidently_url')} (`local`); empty (`aws`)",
        "base of the Evidently UI links in alert e-mails (`studperf up` sets it; empty: no "
        "Evidently link, as in AWS, which serves no Evidently UI)",
    ),
    "STUDPERF_MLFLOW_URL": (
        _deployment("mlflow_url"),
        "base of the MLflow UI links in alert e-mails (Terraform sets `https://mlflow.<domain>`; "
        "empty: none)",
    ),
    "STUDPERF_SENSORS": (
        _shown(
            deployment.sensors_setting(
                bool(_field_default(deployment.Deployment, "sensors_running"))
            )
        ),
        "`stopped` deploys the four sensors and the daily rollup's schedule stopped "
        "(`studperf ui` sets it for browsing)",
    ),
    "STUDPERF_SENSOR_INTERVAL": (
        _deployment("sensor_interval_seconds"),
        "seconds between sensor ticks (`late_labels_sensor`, `retraining_sensor`: twice that)",
    ),
    "STUDPERF_MONITORING": (
        "none",
        "`MonitoringSettings` fields as a JSON object, over their defaults (`studperf up` sets "
        '`{"window_seconds": 60, "min_window_rows": 200, …}`; see '
        "[Monitoring windows](monitoring.md#monitoring-windows))",
    ),
    "DAGSTER_HOME": (
        _shown(_under_home(deployment.DAGSTER_FOLDER)),
        "Dagster instance folder, seeded from the package (`studperf_assets/instance/dagster.yaml`,"
        " the repository's `dagster.yaml`) if it holds none",
    ),
    "STUDPERF_DAGSTER_STORAGE": (
        _shown(instance.DEFAULT_STORAGE),
        "`postgres` seeds `studperf_assets/instance/dagster.postgres.yaml` instead; any other "
        "value is refused",
    ),
    "STUDPERF_DAGSTER_PG_URL": ("—", "Dagster's PostgreSQL URL when `postgres` is chosen"),
    **{
        stack.PORT_VARIABLES[port]: (
            _shown(_field_default(stack.StackPorts, port)),
            f"`studperf up`'s {what} port on 127.0.0.1",
        )
        for port, what in (
            ("aws", "local AWS (moto)"),
            ("ui", "Dagster UI"),
            ("evidently", "Evidently UI"),
            ("mlflow", "MLflow UI (not started when `MLFLOW_TRACKING_URI` is a server)"),
        )
    },
    moto_server.RETENTION_VARIABLE: (
        _shown(moto_server.DEFAULT_RETENTION_SECONDS),
        "seconds the local AWS (moto) keeps a stream's records; Kinesis keeps 24 h",
    ),
    "STUDPERF_LOG_FORMAT": (
        _shown(terminal.FORMATS[0]),
        "`json` for JSON log lines from every command",
    ),
    "STUDPERF_LOG_LEVEL": (
        _shown(terminal.DEFAULT_LEVEL),
        "the commands' own log level; `DEBUG` adds, among others, the traceback behind a "
        "one-line AWS error",
    ),
    "STUDPERF_LOG_MAX_BYTES": (
        "`10485760` (10 MiB)",
        "`studperf up` and `studperf ui`: a part's log in `$STUDPERF_HOME/logs` is rotated "
        "when it would pass this size (at least 4096; see [Retention](operations.md#retention))",
    ),
    "STUDPERF_LOG_BACKUPS": (
        "`5`",
        "rotated logs kept per part (`<part>.log.1` … `.5`), the oldest dropped",
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
    "MODEL_REFRESH_SECONDS": (
        _shown(lambda_config.DEFAULT_REFRESH_SECONDS),
        "how often the production pointer is re-checked",
    ),
    "MODEL_CACHE_DIR": (_shown(lambda_config.DEFAULT_CACHE_DIR), "bundle cache"),
    "MODEL_MAX_MB": (
        f"`{DEFAULT_MAX_BUNDLE_BYTES >> 20}` (Terraform sets `model_max_mb`, 64)",
        "the most one bundle's files may hold, in MiB; a larger bundle is a `BundleError`. In "
        "Lambda two bundles must fit `/tmp` (512 MB) and the one serving must fit memory, so "
        "the Terraform variable is validated to at most 200",
    ),
    "PUT_MAX_ATTEMPTS": (
        _shown(lambda_config.DEFAULT_PUT_MAX_ATTEMPTS),
        "PutRecords attempts before a record is reported for retry",
    ),
    "LOG_LEVEL": (_shown(lambda_config.DEFAULT_LOG_LEVEL), "the log level"),
}
LAMBDA_PLATFORM: dict[str, tuple[str, str]] = {
    "AWS_ENDPOINT_URL, AWS_REGION": ("AWS defaults", "moto locally, nothing in AWS"),
}


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
    code = [(name, *CODE_LOCATION[name]) for name in deployment.ENVIRONMENT_VARIABLES]
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
