"""``studperf``: a thin command line over the Dagster graph and the model bundle.

Imports are deferred per command: ``predict`` must start fast, so it never loads Dagster,
MLflow or scikit-learn.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from studperf_assets.deployment import (
    DAGSTER_FOLDER,
    SERVER_DATABASES,
    Deployment,
    home_from_environment,
)

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


def deployment() -> Deployment:
    """This shell's deployment settings (see ``studperf_assets.deployment``)."""
    return Deployment.from_environment()


def prepare_dagster_home(home: Path | None = None) -> Path:
    """The Dagster instance folder: DAGSTER_HOME, or $STUDPERF_HOME/dagster, seeded from the
    package's instance templates (``local.instance``). This command's own environment then
    names it, for the processes it starts."""
    from studperf_assets.local.instance import DEFAULT_STORAGE, seed_instance

    home = (
        home or Path(os.environ.get("DAGSTER_HOME") or home_from_environment() / DAGSTER_FOLDER)
    ).resolve()
    seed_instance(home, os.environ.get("STUDPERF_DAGSTER_STORAGE", DEFAULT_STORAGE))
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def cmd_train(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    source = args.data or deployment().data_source
    problem, notes = _unreadable_training_file(source)
    if problem:
        print(f"studperf train: {problem}", file=sys.stderr)
        return 2
    for note in notes:  # what the reader ignored (invisible characters around a name)
        print(f"studperf train: {note}")
    print("studperf train: loading the Dagster definitions…", flush=True)
    prepare_dagster_home()
    from studperf_assets.definitions import make_definitions
    from studperf_assets.local.training_run import run_training

    outcome = run_training(definitions=make_definitions(deployment()), source=source)
    for line in outcome.summary_lines():
        print(line)
    print(f"elapsed {time.perf_counter() - started:.1f}s", flush=True)
    if not outcome.success:
        print("training failed: " + "; ".join(outcome.failures), file=sys.stderr)
        return 1
    print(outcome.bundle_uri)
    return 0


def _unreadable_training_file(source: str) -> tuple[str | None, list[str]]:
    """Why a local training file cannot be read (encoding, delimiter, header: what
    ``predict`` checks too), said before Dagster starts, and the reader's notes (what it
    ignored, as ``predict`` says them too); its rows are the asset's to check."""
    from studperf_assets.lib.csv_input import CsvFileError, read_table
    from studperf_assets.lib.data import RAW_COLUMNS

    if not source or source.startswith("s3://"):
        return None, []
    try:
        return None, read_table(Path(source).read_bytes(), source, RAW_COLUMNS).notes
    except (CsvFileError, OSError) as exc:
        return str(exc), []


def cmd_predict(args: argparse.Namespace) -> int:
    from lambda_service.bundle import BundleError, resolve_bundle_uri
    from lambda_service.predictor import Predictor
    from studperf_assets.lib.batch_scoring import score_file
    from studperf_assets.lib.csv_input import CsvFileError

    try:
        bundle_uri, _ = resolve_bundle_uri(args.model)
        predictor = Predictor.from_uri(bundle_uri, deployment().home / "cache" / "bundles")
        report = score_file(predictor, Path(args.input), Path(args.output))
    except (BundleError, CsvFileError, OSError) as exc:
        print(f"studperf predict: {exc}", file=sys.stderr)
        return 2
    for row, reason in report.errors:
        print(f"row {row}: {reason}", file=sys.stderr)
    for note in report.notes:  # invisible characters ignored, no StudentID column
        print(note)
    for name in report.cleaned:
        print(f"removed {name}, left half-written by an earlier run that was killed")
    if report.neutralised:
        print(
            f"{report.neutralised} StudentID cells started like a spreadsheet formula "
            "(= + - @, tab, carriage return): written with a leading ' so they stay text"
        )
    print(
        f"scored {report.scored} of {report.rows} rows with {predictor.version}; "
        f"{len(report.errors)} failed -> {args.output}"
    )
    return 1 if report.errors else 0


def _serving_environment(args: argparse.Namespace) -> None:
    """Flags override the Lambda's own environment variables (see lambda_service.config)."""
    if args.model:
        os.environ["MODEL_BUNDLE_URI"] = args.model
    settings = deployment()
    os.environ.setdefault(
        "MODEL_BUNDLE_URI", settings.model_store or str(settings.home / "model_store")
    )
    os.environ.setdefault("MODEL_CACHE_DIR", str(deployment().home / "cache" / "bundles"))


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from lambda_service.config import build_service
    from lambda_service.web import create_app

    _serving_environment(args)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PREDICTIONS_STREAM_NAME", "ERRORS_STREAM_NAME")
    }
    service = build_service(env)
    app = create_app(service)
    url = f"http://{args.host}:{args.port}"
    print(
        f"studperf serve: {url} (API docs {url}/docs) with {service.provider.predictor.version}",
        flush=True,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0


def cmd_stream(args: argparse.Namespace) -> int:
    """Lambda's Kinesis path in this process: the handler module's init phase (its service
    built from the environment set here), then ``lambda_handler`` per batch (``poller``)."""
    import signal

    import boto3

    from studperf_assets.local.lambda_runtime import init_handler, lambda_logs_here
    from studperf_assets.local.leases import ShardLeases
    from studperf_assets.local.poller import (
        Checkpoints,
        KinesisPoller,
        OutageTooLong,
        start_riding_outages,
    )

    _serving_environment(args)
    for name, value in (
        ("PREDICTIONS_STREAM_NAME", args.predictions_stream),
        ("ERRORS_STREAM_NAME", args.errors_stream),
    ):
        if value:
            os.environ[name] = value
    from studperf_assets.local.stream_report import BatchLines, StreamReport

    state = deployment().home / "stream"
    report = StreamReport(logging.getLogger("studperf.stream"))
    lambda_logs_here()  # the handler logs through this command's log handlers
    handler = init_handler()  # imports lambda_service.handler: its cold start, as in Lambda
    logging.getLogger("studperf").addHandler(BatchLines(report))  # the handler's batch lines
    try:  # an endpoint that is away when the consumer starts is waited for, as later on
        service = start_riding_outages(
            handler.COLD_START.ready, "loading the model", args.outage_budget
        )
        poller = start_riding_outages(
            lambda: KinesisPoller(
                boto3.client("kinesis"),
                args.input_stream,
                handler.lambda_handler,
                batch_size=args.batch_size,
                starting_position=args.starting_position,
                checkpoints=Checkpoints(state / f"{args.input_stream}.checkpoints.json"),
                max_retries=args.max_retries,
                on_failure=state / f"{args.input_stream}.on-failure.jsonl",
                outage_budget=args.outage_budget,
                leases=ShardLeases(state, args.input_stream),  # one reader per shard per home
                max_readers=args.max_readers,
            ),
            args.input_stream,
            args.outage_budget,
        )
    except OutageTooLong as outage:
        print(f"studperf stream: {outage}; nothing was read", file=sys.stderr)
        return 1

    def stop(_signum: int, _frame: object) -> None:  # each reader finishes its batch, then stops
        poller.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log = logging.getLogger("studperf.stream")
    log.info(
        "consuming %s with %s -> %s / %s (checkpoints in %s)",
        args.input_stream, service.provider.predictor.version, service.predictions_stream,
        service.errors_stream, state,
    )  # fmt: skip
    try:
        stats = poller.run(until_idle=args.until_idle, on_poll=report.poll)
    except OutageTooLong as outage:
        print(
            f"studperf stream: {outage}; the checkpoint holds, restart to resume", file=sys.stderr
        )
        return 1
    print(
        f"{stats.records} records in {stats.batches} batches; {stats.retried_batches} retried, "
        f"{stats.discarded_records} sent to the on-failure file, "
        f"{stats.outage_retries} outage retries"
    )
    return 0


def archive_source(store: str) -> Any:
    """The archive of a monitoring store: a folder, or s3://bucket/prefix (boto3's client)."""
    from studperf_assets.lib.archive import FolderArchive, S3Archive

    if store.startswith("s3://"):
        import boto3

        from lambda_service.bundle import split_s3_uri

        bucket, prefix = split_s3_uri(store)
        return S3Archive(boto3.client("s3"), bucket, prefix)
    return FolderArchive(Path(store).resolve())


def cmd_archive(args: argparse.Namespace) -> int:
    import functools
    import signal

    import boto3

    from studperf_assets.local.firehose import ArchiveStats, FirehoseStandIn, run
    from studperf_assets.local.leases import ShardLeases
    from studperf_assets.local.poller import Checkpoints, OutageTooLong, start_riding_outages

    home = deployment().home
    store = args.store or deployment().monitoring_store or str(home / "monitoring")
    archive = archive_source(store)
    state = home / "archive"
    client = boto3.client("kinesis")
    stats = ArchiveStats()
    pairs = [item.partition("=")[::2] for item in args.stream]

    def standin(stream: str, kind: str) -> FirehoseStandIn:
        return FirehoseStandIn(
            client, stream, kind, archive, Checkpoints(state / f"{stream}.checkpoints.json"),
            leases=ShardLeases(state, stream, "studperf archive"),
            buffer_seconds=args.buffer_seconds,
            buffer_bytes=int(args.buffer_mb * 1024 * 1024),
            stats=stats,
        )  # fmt: skip

    try:  # an endpoint that is away at the start is waited for, as later on
        standins = [
            start_riding_outages(functools.partial(standin, s, k), s, args.outage_budget)
            for s, k in pairs
        ]
    except OutageTooLong as outage:
        print(f"studperf archive: {outage}; nothing was read", file=sys.stderr)
        return 1
    stop = {"now": False}

    def on_signal(_signum: int, _frame: object) -> None:  # write what is buffered, then stop
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    logging.getLogger("studperf.archive").info(
        "archiving %s into %s (buffer %.0f s / %.1f MB; a stand-in for Kinesis Data Firehose)",
        ", ".join(f"{s} as {k}" for s, k in pairs), archive.uri(""), args.buffer_seconds,
        args.buffer_mb,
    )  # fmt: skip
    try:
        run(standins, until_idle=args.until_idle, outage_budget=args.outage_budget,
            stopping=lambda: stop["now"])  # fmt: skip
    except OutageTooLong as outage:
        print(
            f"studperf archive: {outage}; the checkpoint holds, restart to resume", file=sys.stderr
        )
        return 1
    print(
        f"{stats.records} records archived in {stats.objects} objects "
        f"({stats.recovered_objects} written again after a crash); {stats.per_kind}"
    )
    return 0


def cmd_init_aws(args: argparse.Namespace) -> int:
    """Create the bucket and streams the stack uses and verify the alert sender (moto
    locally; Terraform does it in AWS)."""
    import boto3

    from studperf_assets.local.moto import ensure_bucket, ensure_stream

    ensure_bucket(boto3.client("s3"), args.bucket)
    kinesis = boto3.client("kinesis")
    for name in args.streams:
        ensure_stream(kinesis, name)
    # moto verifies at once; real SES e-mails a link that someone must follow
    boto3.client("ses").verify_email_identity(EmailAddress=args.sender)
    print(f"bucket {args.bucket}; streams {', '.join(args.streams)}; SES sender {args.sender}")
    return 0


def cmd_init_db(args: argparse.Namespace) -> int:
    """Create the MLflow and monitoring databases beside Dagster's (RDS makes only one) and
    migrate the monitoring database's schema (idempotent: what CD runs at every deploy)."""
    from studperf_assets.cli.databases import ensure_databases

    if not args.server_url:
        print("init-db needs --server-url or STUDPERF_DAGSTER_PG_URL", file=sys.stderr)
        return 2
    created = ensure_databases(args.server_url, args.databases)
    print(f"databases {', '.join(args.databases)}: created {', '.join(created) or 'none'}")
    if args.monitoring_database in args.databases:
        import sqlalchemy as sa

        from studperf_assets.resources.metrics_db import MetricsDatabase

        url = sa.make_url(args.server_url).set(database=args.monitoring_database)
        revision = MetricsDatabase(url=url.render_as_string(hide_password=False)).migrate()
        print(f"monitoring database {args.monitoring_database}: schema at revision {revision}")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    import boto3

    from studperf_assets.cli.terminal import Progress
    from studperf_assets.lib.simulation import Drift
    from studperf_assets.local.traffic import simulate, training_generator
    from studperf_assets.resources import resources_for

    try:
        drift = Drift.parse(args.drift)
    except ValueError as exc:
        print(f"studperf simulate: {exc}", file=sys.stderr)
        return 2
    with Progress(args.count, "students", logging.getLogger("studperf.simulate")) as progress:
        report = simulate(
            boto3.client("kinesis"),
            args.stream,
            resources_for(deployment())["object_store"],  # reserves the IDs; holds the labels
            training_generator(seed=args.seed),
            args.count,
            drift=drift,
            rate=args.rate,
            label_delay=args.label_delay,
            labels=not args.no_labels,
            progress=progress.to,
        )
    print(
        f"sent {report.sent} students to {args.stream} in {report.seconds:.1f}s "
        f"({report.retried} retried); {report.labels_written} labels due in {args.label_delay:g}s"
        + (f"; drift {args.drift}" if args.drift else "")
    )
    return 0


def label_delay(text: str) -> float:
    """``--label-delay``, checked before anything is sent: labels named in the past cannot
    be written, and a file named further ahead than ``SCHEDULE_HORIZON`` is read at once
    (a clock that is wrong), so only 0 to the horizon delivers labels when it says."""
    from studperf_assets.lib.labels import SCHEDULE_HORIZON

    horizon = SCHEDULE_HORIZON.total_seconds()
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds <= horizon:  # NaN too
        raise argparse.ArgumentTypeError(
            f"{text!r}: labels can be delayed 0 to {horizon:g} seconds"
        )
    return seconds


def needs_local_aws(command: str) -> bool:
    """``demo`` and ``up`` start a moto server: say how to get it, rather than fail."""
    try:
        import moto  # noqa: F401
    except ImportError:
        print(
            f"studperf {command} starts a local AWS (moto), which this install lacks: "
            "pip install 'studperf[local]'",
            file=sys.stderr,
        )
        return False
    return True


def cmd_demo(args: argparse.Namespace) -> int:
    """Train, serve, monitor, alert, retrain and hot-swap, on one machine."""
    import warnings

    if not needs_local_aws("demo"):
        return 2
    warnings.filterwarnings("ignore")  # library preview/beta notices drown the step lines
    home = Path(args.home or home_from_environment() / "demo").resolve()
    if home.exists() and not args.keep:
        shutil.rmtree(home)
    home.mkdir(parents=True, exist_ok=True)
    prepare_dagster_home(home / "dagster")
    from studperf_assets.cli.terminal import progress_enabled
    from studperf_assets.local.demo import print_summary, run_demo

    summary = run_demo(home, batch_size=args.batch_size, progress=progress_enabled())
    print_summary(summary)
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    """``dagster dev`` on loopback, stopped with all its children on SIGINT/SIGTERM.

    For browsing a state (``make train``'s, the demo's): the sensors start stopped here,
    unless STUDPERF_SENSORS says otherwise; ``studperf up`` is the platform with them running."""
    from studperf_assets.local.home_lock import HomeError, own_home
    from studperf_assets.local.instance import start_dagster_dev
    from studperf_assets.local.rotating_log import rotation_from_environment
    from studperf_assets.local.supervisor import StackFailure, StopRequested, Supervisor

    home = deployment().home
    log_max_bytes, log_backups = rotation_from_environment(os.environ)  # refused before anything
    try:  # its daemon would share the instance with another stack's: one stack per home
        ownership = own_home(home, "studperf ui")
    except HomeError as taken:
        print(f"studperf ui: {taken}", file=sys.stderr)
        return 2
    prepare_dagster_home()
    os.environ.setdefault("STUDPERF_SENSORS", "stopped")
    # dagster dev runs in the instance folder: a relative home would move with it
    os.environ["STUDPERF_HOME"] = str(home)
    supervisor = Supervisor(
        home / "logs", home=home, log_max_bytes=log_max_bytes, log_backups=log_backups
    )
    with StopRequested(supervisor):
        try:
            child = start_dagster_dev(supervisor, args.port, os.environ, restart=False)
            print(f"Dagster UI: http://127.0.0.1:{args.port} (log: {child.log})", flush=True)
            while not supervisor.stopping:
                supervisor.check()
                time.sleep(0.5)
        except StackFailure as failure:
            print(f"studperf ui: {failure}", file=sys.stderr)
            return 1
        finally:
            supervisor.stop()
            ownership.release()
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    """The live local platform (see ``studperf_assets.local.stack``)."""
    if not needs_local_aws("up"):
        return 2
    from studperf_assets.local.stack import Stack, StackPorts, run_stack

    stack = Stack.from_environment(
        os.environ, StackPorts.from_environment(os.environ), lambda line: print(line, flush=True)
    )
    return run_stack(stack)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="studperf",
        description="Train, serve and monitor the student grade-class model. "
        "`make up` (studperf up) runs the platform; `make demo` (studperf demo) tours it.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_model_commands(sub)
    _add_stream_commands(sub)
    _add_platform_commands(sub)
    return parser


def _add_model_commands(sub: Subparsers) -> None:
    train = sub.add_parser("train", help="materialize the training graph (embedded defaults)")
    train.add_argument("--data", help="raw CSV path or s3:// URI (default: bundled dataset)")
    train.set_defaults(func=cmd_train)
    predict = sub.add_parser("predict", help="score a CSV with a model bundle")
    predict.add_argument("--model", required=True, help="bundle, store root or production.json URI")
    predict.add_argument("--input", required=True, help="CSV with the raw feature columns")
    predict.add_argument("--output", required=True, help="CSV to write predictions to")
    predict.set_defaults(func=cmd_predict)
    serve = sub.add_parser("serve", help="the prediction web service (FastAPI) on 127.0.0.1")
    serve.add_argument(
        "--model", help="bundle, store root or production.json URI (default: local store)"
    )
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--host", default="127.0.0.1", help="0.0.0.0 only inside a container")
    serve.set_defaults(func=cmd_serve)


def _add_stream_commands(sub: Subparsers) -> None:
    stream = sub.add_parser(
        "stream",
        help="poll a Kinesis stream and call lambda_handler with Lambda's event, in this process",
    )
    stream.add_argument("--input-stream", required=True)
    stream.add_argument("--predictions-stream", help="default: $PREDICTIONS_STREAM_NAME")
    stream.add_argument("--errors-stream", help="default: $ERRORS_STREAM_NAME")
    stream.add_argument(
        "--model", help="bundle, store root or production.json URI (default: local store)"
    )
    stream.add_argument(
        "--batch-size",
        type=int,
        default=10_000,  # poller.DEFAULT_BATCH_SIZE: GetRecords' maximum (docs/serving.md)
        help="records per GetRecords and per handler call, at most (default 10000)",
    )
    stream.add_argument(
        "--max-readers",
        type=int,
        default=16,  # poller.DEFAULT_MAX_READERS
        help="shards read at once, one thread each; more are left to other consumers",
    )
    stream.add_argument(
        "--starting-position", choices=["TRIM_HORIZON", "LATEST"], default="TRIM_HORIZON"
    )
    stream.add_argument("--max-retries", type=int, default=3)
    stream.add_argument("--until-idle", type=int, default=None, help="stop after N empty polls")
    stream.add_argument(
        "--outage-budget",
        type=float,
        default=300.0,
        help="seconds of endpoint failure to ride out before exiting non-zero",
    )
    stream.set_defaults(func=cmd_stream)
    archive = sub.add_parser(
        "archive",
        help="copy the predictions and errors streams to the archive (a Firehose stand-in)",
    )
    archive.add_argument(
        "--stream",
        action="append",
        required=True,
        metavar="STREAM=KIND",
        help="a stream and its archive kind (predictions or errors); repeat for each",
    )
    archive.add_argument(
        "--store", help="folder or s3://bucket/prefix (default: the monitoring store)"
    )
    archive.add_argument("--buffer-seconds", type=float, default=60.0)
    archive.add_argument("--buffer-mb", type=float, default=5.0)
    archive.add_argument("--until-idle", type=int, default=None, help="stop after N empty polls")
    archive.add_argument("--outage-budget", type=float, default=300.0)
    archive.set_defaults(func=cmd_archive)
    simulate = sub.add_parser("simulate", help="send synthetic students to the input stream")
    simulate.add_argument("--stream", default="studperf-input")
    simulate.add_argument("--count", type=int, default=1000)
    simulate.add_argument(
        "--rate", type=float, default=None, help="records per second (default: as fast as possible)"
    )
    simulate.add_argument(
        "--drift", default="", help="e.g. absences=8,study=0.5 or raw:StudyTimeWeekly=5"
    )
    simulate.add_argument(
        "--label-delay",
        type=label_delay,
        default=0.0,
        help="seconds until labels arrive (0 to 3600: monitoring holds a label file back "
        "at most an hour)",
    )
    simulate.add_argument("--no-labels", action="store_true", help="send no ground truth")
    simulate.add_argument("--seed", type=int, default=0)
    simulate.set_defaults(func=cmd_simulate)


def _add_platform_commands(sub: Subparsers) -> None:
    demo = sub.add_parser("demo", help="the whole loop on one machine (moto as local AWS)")
    demo.add_argument("--home", help="state folder (default: $STUDPERF_HOME/demo, replaced)")
    demo.add_argument("--batch-size", type=int, default=200)
    demo.add_argument("--keep", action="store_true", help="keep an existing demo folder")
    demo.set_defaults(func=cmd_demo)
    init_aws = sub.add_parser("init-aws", help="create the bucket and streams (local AWS)")
    init_aws.add_argument("--bucket", default="studperf-local")
    init_aws.add_argument(
        "--streams",
        nargs="+",
        default=["studperf-input", "studperf-predictions", "studperf-errors"],
    )
    init_aws.add_argument(
        "--sender", default=deployment().alert_sender, help="SES sender to verify"
    )
    init_aws.set_defaults(func=cmd_init_aws)
    init_db = sub.add_parser(
        "init-db", help="create the MLflow and monitoring databases on a PostgreSQL server"
    )
    init_db.add_argument(
        "--server-url",
        default=os.environ.get("STUDPERF_DAGSTER_PG_URL", ""),
        help="a database URL on the server, no password (libpq reads PGPASSWORD); "
        "default: $STUDPERF_DAGSTER_PG_URL",
    )
    init_db.add_argument("--databases", nargs="+", default=list(SERVER_DATABASES))
    init_db.add_argument(
        "--monitoring-database",
        default=SERVER_DATABASES[1],
        help="which of them is the monitoring database, migrated to the newest schema",
    )
    init_db.set_defaults(func=cmd_init_db)
    ui = sub.add_parser("ui", help="start dagster dev on 127.0.0.1")
    ui.add_argument("--port", type=int, default=3000)
    ui.set_defaults(func=cmd_ui)
    up = sub.add_parser(
        "up", help="the live local platform: moto, Dagster (sensors running), stream, Evidently"
    )
    up.set_defaults(func=cmd_up)


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)  # defaults come from the settings
        from studperf_assets.cli.terminal import configure

        configure()
        return int(args.func(args))
    except Exception as error:
        from studperf_assets.cli.errors import one_line

        said = one_line(error)
        if said is None:
            raise
        logging.getLogger("studperf").debug("in full:", exc_info=True)
        print(f"studperf: {said[1]}", file=sys.stderr)
        return said[0]


if __name__ == "__main__":
    sys.exit(main())
