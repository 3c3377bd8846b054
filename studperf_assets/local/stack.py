"""``studperf up``: the live local platform in the foreground, nothing to configure.

moto (S3, Kinesis, SES) on ``STUDPERF_AWS_PORT``; the Dagster webserver and daemon (sensors
running) on ``STUDPERF_UI_PORT``; the stream consumer (``studperf stream``: each batch of the
input stream goes to ``lambda_handler`` in its process, whose service hot-swaps); the archive
(``local.firehose``, Firehose's stand-in: the predictions and errors streams into the
monitoring store's ``archive/``); the Evidently UI on ``STUDPERF_EVIDENTLY_PORT``; the MLflow
UI on ``STUDPERF_MLFLOW_PORT`` over the deployment's tracking database. State lives
under ``STUDPERF_HOME``; ``stack.env`` there lets another shell talk to the same stack. SIGINT
or SIGTERM stops every process it started (see ``local.supervisor``). One stack per home
(``local.home_lock``): a second start is refused while the first lives; a start after a
crash stops what the crashed stack left running, then starts.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from lambda_service.bundle import PRODUCTION_POINTER
from studperf_assets.deployment import DAGSTER_FOLDER, DEFAULT_SENDER, LOCAL_FILES, Deployment
from studperf_assets.lib.mlflow_story import experiment_url
from studperf_assets.local.events import EventFollower
from studperf_assets.local.home_lock import HomeError, describe_process, own_home, port_holders
from studperf_assets.local.instance import DEFAULT_STORAGE, seed_instance, start_dagster_dev
from studperf_assets.local.moto import AWS_TEST_ENV, MOTO_SERVER
from studperf_assets.local.rotating_log import (
    DEFAULT_BACKUPS,
    DEFAULT_MAX_BYTES,
    rotation_from_environment,
)
from studperf_assets.local.supervisor import StackFailure, StopRequested, Supervisor

BUCKET = "studperf-local"
STREAMS = {
    "input": "studperf-input",
    "predictions": "studperf-predictions",
    "errors": "studperf-errors",
}
RECIPIENTS = "ml-oncall@example.org"
MODEL_REFRESH_SECONDS = 10  # the consumer re-reads the production pointer this often
# The archive stand-in (local/firehose.py) writes an object per shard this often: short, so
# that a 60-second monitoring window is archived soon after it closes (Firehose: terraform).
ARCHIVE_BUFFER_SECONDS = 10
# Monitoring windows on the local stack (production defaults: 300 s windows, 90 s settle,
# 30 min maximum wait): a minute long, closed 15 s after their end (the stand-in's 10 s
# buffer plus a margin), and a window short of 200 rows waits at most 90 s, so that a
# 400-row `studperf simulate` burst is monitored within about a minute and a half.
LOCAL_MONITORING = {
    "window_seconds": 60,
    "min_window_rows": 200,
    "max_window_wait_seconds": 90,
    "window_settle_seconds": 15,
}


# The MLflow UI only shows runs and the registry: without its job runner (GenAI scorers, trace
# archival; a third process of about 250 MB polling every minute).
MLFLOW_UI_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


@dataclass
class StackPorts:
    aws: int = 4566
    ui: int = 3000
    evidently: int = 8085
    mlflow: int = 5005  # not 5000 (macOS AirPlay) nor 5001 (docker-compose's MLflow)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> StackPorts:
        """Each port from its variable (``PORT_VARIABLES``), else the field's default."""
        return cls(
            **{
                port: int(environ[variable])
                for port, variable in PORT_VARIABLES.items()
                if variable in environ
            }
        )


PORT_VARIABLES = {
    "aws": "STUDPERF_AWS_PORT",
    "ui": "STUDPERF_UI_PORT",
    "evidently": "STUDPERF_EVIDENTLY_PORT",
    "mlflow": "STUDPERF_MLFLOW_PORT",
}


@dataclass
class Stack:
    home: Path
    ports: StackPorts
    settings: dict[str, str] = field(default_factory=dict)  # extra STUDPERF_* for children
    echo: Callable[[str], None] = print
    # the deployment's settings: every location the stack uses comes from them (the home
    # is only their default); None: the defaults under ``home``
    deployment: Deployment | None = None
    dagster_home_setting: Path | None = None  # DAGSTER_HOME; None: home/dagster
    dagster_storage: str = DEFAULT_STORAGE  # STUDPERF_DAGSTER_STORAGE
    log_max_bytes: int = DEFAULT_MAX_BYTES  # STUDPERF_LOG_MAX_BYTES: a part's log rotates
    log_backups: int = DEFAULT_BACKUPS  # STUDPERF_LOG_BACKUPS: rotated logs kept per part
    tracking_server: str = ""  # MLFLOW_TRACKING_URI when set: its UI is listed, none started

    @classmethod
    def from_environment(
        cls, environ: Mapping[str, str], ports: StackPorts, echo: Callable[[str], None] = print
    ) -> Stack:
        deployment = Deployment.from_environment(environ)
        dagster_home = environ.get("DAGSTER_HOME")
        log_max_bytes, log_backups = rotation_from_environment(environ)
        return cls(
            home=deployment.home,
            ports=ports,
            echo=echo,
            deployment=deployment,
            dagster_home_setting=Path(dagster_home).resolve() if dagster_home else None,
            dagster_storage=environ.get("STUDPERF_DAGSTER_STORAGE", DEFAULT_STORAGE),
            log_max_bytes=log_max_bytes,
            log_backups=log_backups,
            tracking_server=environ.get("MLFLOW_TRACKING_URI", ""),
        )

    @property
    def settings_of(self) -> Deployment:
        return self.deployment or Deployment(home=self.home)

    @property
    def model_store(self) -> Path:
        return Path(self.settings_of.local_store("model_store"))

    @property
    def dagster_home(self) -> Path:
        return self.dagster_home_setting or self.home / DAGSTER_FOLDER

    def stream_argv(self, studperf: list[str]) -> list[str]:
        """The stream consumer, on the deployment's model store."""
        return [
            *studperf, "stream", "--input-stream", STREAMS["input"],
            "--predictions-stream", STREAMS["predictions"], "--errors-stream", STREAMS["errors"],
            "--model", str(self.model_store),
        ]  # fmt: skip

    @property
    def aws_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.aws}"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.ui}"

    @property
    def evidently_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.evidently}"

    @property
    def tracking_uri(self) -> str:
        """The home's MLflow database (the UI the stack starts reads it)."""
        return f"sqlite:///{self.settings_of.home / LOCAL_FILES['mlflow_tracking_uri']}"

    @property
    def mlflow_server(self) -> bool:
        """Whether the stack starts an MLflow UI: only over the home's own database (with
        ``MLFLOW_TRACKING_URI`` set, tracking and its UI are elsewhere)."""
        return not self.settings_of.mlflow_tracking_uri

    @property
    def mlflow_url(self) -> str:
        """The MLflow UI: the stack's, or a tracking server's (without credentials); "" if
        tracking goes to a database the stack does not serve."""
        if self.mlflow_server:
            return f"http://127.0.0.1:{self.ports.mlflow}"
        parts = urllib.parse.urlsplit(self.tracking_server)
        if parts.scheme not in ("http", "https"):
            return ""
        netloc = parts.netloc.rpartition("@")[2]  # without credentials; host and port kept
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc, query="", fragment=""))

    def mlflow_argv(self, python: str) -> list[str]:
        """MLflow's own server, on loopback, one worker, over the tracking database; a run's
        artifacts are read where the run wrote them (its artifact URI)."""
        d = self.settings_of
        artifacts = d.mlflow_artifacts or (d.home / LOCAL_FILES["mlflow_artifacts"]).as_uri()
        return [
            python, "-m", "mlflow", "server", "--host", "127.0.0.1",
            "--port", str(self.ports.mlflow), "--workers", "1",
            "--backend-store-uri", self.tracking_uri, "--default-artifact-root", artifacts,
        ]  # fmt: skip

    def local_ports(self) -> list[int]:
        """The ports on 127.0.0.1 this stack listens on."""
        ports = [self.ports.aws, self.ports.ui, self.ports.evidently]
        return [*ports, self.ports.mlflow] if self.mlflow_server else ports

    def environment(self) -> dict[str, str]:
        """What every part of the stack (and ``stack.env``) is told."""
        return {
            **AWS_TEST_ENV,
            "AWS_ENDPOINT_URL": self.aws_url,
            "STUDPERF_HOME": str(self.home),
            "DAGSTER_HOME": str(self.dagster_home),
            **self._locations(),
            "STUDPERF_PREDICTIONS_STREAM": STREAMS["predictions"],
            "STUDPERF_ALERT_SENDER": DEFAULT_SENDER,
            "STUDPERF_ALERT_RECIPIENTS": RECIPIENTS,
            "STUDPERF_DAGSTER_URL": self.ui_url,
            "STUDPERF_EVIDENTLY_URL": self.evidently_url,
            "STUDPERF_MLFLOW_URL": self.mlflow_url,  # "" when the stack serves no MLflow UI
            "STUDPERF_MONITORING": json.dumps(LOCAL_MONITORING, separators=(",", ":")),
            **self.settings,
        }

    def _locations(self) -> dict[str, str]:
        """The deployment's location settings that are set, for the parts and ``stack.env``
        (another shell then reads and writes the same stores)."""
        d = self.settings_of
        named = {
            "STUDPERF_MODEL_STORE": d.model_store,
            "STUDPERF_MONITORING_STORE": d.monitoring_store,
            "STUDPERF_IO_STORE": d.io_store,
            "STUDPERF_DATA_SOURCE": d.data_source,
        }
        return {variable: value for variable, value in named.items() if value}

    def write_env_file(self) -> Path:
        path = self.home / "stack.env"
        scripts = Path(sys.executable).parent  # where this installation's `studperf` is
        lines = [
            f"# Written by `studperf up` at {datetime.now(UTC).isoformat(timespec='seconds')}.",
            "# `source` it so that studperf simulate / predict talk to this stack.",
            *(f"export {k}={shlex.quote(v)}" for k, v in sorted(self.environment().items())),
            f'export PATH={shlex.quote(str(scripts))}:"$PATH"',
        ]
        path.write_text("\n".join(lines) + "\n")
        return path


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def wait_for_http(url: str, supervisor: Supervisor, what: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if supervisor.stopping:
            raise StackFailure(f"stopped while waiting for {what}")
        supervisor.check()
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status < 500:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise StackFailure(f"{what} did not answer at {url} within {timeout:.0f}s")


def init_local_aws(stack: Stack) -> None:
    """The bucket, the three streams and a verified SES sender (an unverified sender would
    have every alert rejected)."""
    import boto3

    from studperf_assets.local.moto import ensure_bucket, ensure_stream

    session = boto3.session.Session(
        aws_access_key_id=AWS_TEST_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=AWS_TEST_ENV["AWS_SECRET_ACCESS_KEY"],
        region_name=AWS_TEST_ENV["AWS_REGION"],
    )
    ensure_bucket(session.client("s3", endpoint_url=stack.aws_url), BUCKET)
    kinesis = session.client("kinesis", endpoint_url=stack.aws_url)
    for name in STREAMS.values():
        ensure_stream(kinesis, name)
    session.client("ses", endpoint_url=stack.aws_url).verify_email_identity(
        EmailAddress=DEFAULT_SENDER
    )


def migrate_monitoring_database(env: Mapping[str, str], home: Path) -> None:
    """The monitoring database's schema, migrated once before any part uses it (the parts
    would each check it anyway; a start that fails here says so before anything runs)."""
    from studperf_assets.resources.metrics_db import MetricsDatabase

    url = env.get("STUDPERF_METRICS_DB_URL") or f"sqlite:///{home / LOCAL_FILES['metrics_db_url']}"
    MetricsDatabase(url=url).migrate()


def has_production_bundle(stack: Stack) -> bool:
    pointer = stack.model_store / PRODUCTION_POINTER
    try:
        return bool(json.loads(pointer.read_text()).get("version"))
    except (OSError, ValueError):
        return False


def run_stack(stack: Stack) -> int:
    """Own the home, start everything, print ``ready``, supervise until SIGINT/SIGTERM/SIGHUP;
    stop everything. Exit status 2 when the home or a port is taken."""
    try:
        ownership = own_home(stack.home, "studperf up", stack.echo)
    except HomeError as taken:
        stack.echo(f"studperf up: {taken}")
        return 2
    try:
        return _run_owned(stack)
    finally:
        ownership.release()


def _run_owned(stack: Stack) -> int:
    # after own_home: what a dead owner left is gone, and its sockets closed with it
    busy = [p for p in stack.local_ports() if not port_free(p)]
    if busy:
        holders = sorted({pid for port in busy for pid in port_holders(port)})
        by = f" by {'; '.join(map(describe_process, holders))}" if holders else ""
        stack.echo(
            f"studperf up: port(s) {', '.join(map(str, busy))} on 127.0.0.1 in use{by}, "
            f"not by a stack of {stack.home.resolve()}: stop it, or give this stack other "
            f"ports ({', '.join(PORT_VARIABLES.values())})"
        )
        return 2
    supervisor = Supervisor(
        stack.home / "logs",
        echo=stack.echo,
        home=stack.home,
        log_max_bytes=stack.log_max_bytes,
        log_backups=stack.log_backups,
    )
    env = {**os.environ, **stack.environment()}
    python = sys.executable
    studperf = [python, "-m", "studperf_assets.cli"]
    with StopRequested(supervisor):
        try:
            supervisor.start(
                "moto",
                [python, "-m", MOTO_SERVER, "-H", "127.0.0.1", "-p", str(stack.ports.aws)],
                env,
                restart=False,  # its state is in memory: a restart would lose the streams
            )
            wait_for_http(f"{stack.aws_url}/moto-api/", supervisor, "moto")
            init_local_aws(stack)
            env_file = stack.write_env_file()
            seed_instance(stack.dagster_home, stack.dagster_storage)
            migrate_monitoring_database(env, stack.home)
            if not has_production_bundle(stack):
                stack.echo("no production bundle yet: training the first one (studperf train)")
                if supervisor.run_to_end("first-training", [*studperf, "train"], env):
                    raise StackFailure(
                        f"the first training failed; see {supervisor.log_dir}/first-training.log"
                    )
            start_dagster_dev(supervisor, stack.ports.ui, env)
            supervisor.start(
                "stream",
                stack.stream_argv(studperf),
                {**env, "MODEL_REFRESH_SECONDS": str(MODEL_REFRESH_SECONDS)},
            )
            # Firehose's part: every prediction and error record into the monitoring store's
            # archive. Its own process, as Firehose is its own service: a scorer that dies
            # or restarts does not stop the archive, and the two do not share a GIL.
            supervisor.start(
                "archive",
                [
                    *studperf, "archive",
                    "--stream", f"{STREAMS['predictions']}=predictions",
                    "--stream", f"{STREAMS['errors']}=errors",
                    "--buffer-seconds", str(ARCHIVE_BUFFER_SECONDS),
                ],
                env,
            )  # fmt: skip
            (stack.home / "evidently").mkdir(parents=True, exist_ok=True)
            supervisor.start(
                "evidently",
                [
                    python, "-m", "evidently.cli", "ui", "--host", "127.0.0.1",
                    "--port", str(stack.ports.evidently),
                    "--workspace", str(stack.home / "evidently"),
                ],
                env,
            )  # fmt: skip
            if stack.mlflow_server:  # after the first training: one writer creates its tables
                supervisor.start("mlflow", stack.mlflow_argv(python), {**env, **MLFLOW_UI_ENV})
            wait_for_http(f"{stack.ui_url}/server_info", supervisor, "the Dagster webserver")
            wait_for_http(stack.evidently_url, supervisor, "the Evidently UI")
            if stack.mlflow_server:
                wait_for_http(f"{stack.mlflow_url}/health", supervisor, "the MLflow UI")
            stack.echo(
                f"ready dagster={stack.ui_url} evidently={stack.evidently_url} "
                f"mlflow={experiment_url(stack.mlflow_url) if stack.mlflow_url else 'none'} "
                f"aws={stack.aws_url} env={env_file} logs={supervisor.log_dir}"
            )
            stack.echo(f"  in another shell: source {env_file} && studperf simulate --count 400")
            events = EventFollower(supervisor.log_dir, stack.echo)
            events.start()
            try:
                while not supervisor.stopping:
                    supervisor.check()
                    time.sleep(1)
            finally:
                events.stopped.set()
            return 0
        except StackFailure as failure:
            stack.echo(f"studperf up: {failure}")
            return 1
        finally:
            left = supervisor.stop()
            stack.echo("stopped" + (f"; still running: {left}" if left else ""))
