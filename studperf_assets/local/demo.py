"""``studperf demo``: the whole life of a model on one machine, nothing to configure.

moto server (started and stopped here) is the local AWS for Kinesis and SES; Dagster,
MLflow, the model store and the monitoring store are the embedded defaults under the
demo's home. Sensors are evaluated by the demo itself, one tick each, as the daemon would
evaluate them; every run lands in the Dagster instance that ``studperf ui`` opens later.

Monitoring reads the predictions archive, which Kinesis Data Firehose writes in AWS and
``studperf archive`` (``local.firehose``, a STAND-IN for that managed service) writes under
``studperf up``. The demo runs the same stand-in in process, once each burst of traffic is
scored, so the archive is written before the window sensor ticks. Its windows are one
second long and close at ``batch_size`` rows, with no settle time (everything is flushed
before the tick): each burst of traffic is one window, so the tour takes seconds, not the
minutes that real windows (60 s under ``studperf up``, 5 min in production) would.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from dagster import DagsterInstance, RunRequest

from studperf_assets.definitions import make_definitions
from studperf_assets.deployment import Deployment
from studperf_assets.lib.archive import read_window
from studperf_assets.lib.simulation import Drift
from studperf_assets.local.events import ReadableEvents
from studperf_assets.local.firehose import FirehoseStandIn
from studperf_assets.local.firehose import run as run_archive
from studperf_assets.local.lambda_runtime import init_handler, lambda_logs_here
from studperf_assets.local.moto import ensure_stream, moto_server, sent_emails
from studperf_assets.local.poller import Checkpoints, KinesisPoller
from studperf_assets.local.ticks import Tick, run_requested, tick
from studperf_assets.local.traffic import simulate, training_generator
from studperf_assets.local.training_run import TrainingOutcome, outcome_of, quiet, run_training

STREAMS = {
    "input": "studperf-input",
    "predictions": "studperf-predictions",
    "errors": "studperf-errors",
}
DRIFT = Drift(absences_added=8, study_time_factor=0.5)
WINDOW_SECONDS = 1  # the demo's window length: each burst is one window (see above)


@dataclass
class DemoSummary:
    home: Path
    bundles: list[dict[str, Any]] = field(default_factory=list)  # + "promoted"
    batches: list[dict[str, Any]] = field(default_factory=list)  # partition, drift, checks
    emails: list[dict[str, Any]] = field(default_factory=list)
    retraining_run: str | None = None
    versions_served: list[str] = field(default_factory=list)  # output records, in order
    steps: list[tuple[str, float]] = field(default_factory=list)

    @property
    def reports(self) -> Path:
        return self.home / "monitoring" / "reports"


class Demo:
    def __init__(
        self, home: Path, batch_size: int, echo: Callable[[str], None], progress: bool = False
    ) -> None:
        self.home, self.batch_size, self.echo = home, batch_size, echo
        self.show_progress = progress
        self.summary = DemoSummary(home=home)
        self.deployment = Deployment(
            home=home,
            predictions_stream=STREAMS["predictions"],
            monitoring={
                "window_seconds": WINDOW_SECONDS,
                "min_window_rows": batch_size,
                "max_window_wait_seconds": 60,
                "window_settle_seconds": 0,
                "min_new_labels_for_retraining": batch_size,
            },
        )
        self.definitions = make_definitions(self.deployment)
        self.resources = dict(self.definitions.resources or {})
        self.generator = training_generator(seed=42)
        self.step_number = 0

    @contextmanager
    def step(self, title: str) -> Iterator[None]:
        self.step_number += 1
        self.echo(f"[{self.step_number}/6] {title} …")
        started = time.perf_counter()
        yield
        seconds = time.perf_counter() - started
        self.summary.steps.append((title, seconds))
        self.echo(f"      done in {seconds:.1f}s")

    def progress(self, items: Iterable[Any], total: int, what: str) -> Any:
        if not self.show_progress:
            return items
        from tqdm import tqdm

        return tqdm(items, total=total, desc=f"      {what}", leave=False)

    def tick(self, name: str) -> Tick:
        """One evaluation of a sensor against the instance, with the demo's resources. Its
        event records read as ``studperf up`` prints them, not as JSON."""
        return tick(
            self.definitions, self.instance, self.resources, name, log_filter=ReadableEvents()
        )

    def run_requested(self, requested: Tick) -> Iterator[tuple[RunRequest, Any]]:
        """What the daemon would launch for the tick, run here (and quietly)."""
        runs = run_requested(self.definitions, self.instance, requested, quiet())
        return self.progress(runs, len(requested.run_requests), "runs")

    def run(self, calm_batches: int, drifted_batches: int) -> DemoSummary:
        dagster_home = self.home / "dagster"
        dagster_home.mkdir(parents=True, exist_ok=True)
        undo = lambda_logs_here()  # the handler logs through this process's log handlers
        try:
            return self._run(dagster_home, calm_batches, drifted_batches)
        finally:
            undo()

    def _run(self, dagster_home: Path, calm_batches: int, drifted_batches: int) -> DemoSummary:
        with (
            moto_server() as self.moto_url,
            DagsterInstance.from_config(str(dagster_home)) as self.instance,
        ):
            self.kinesis = boto3.client("kinesis")
            for name in STREAMS.values():
                ensure_stream(self.kinesis, name)
            boto3.client("ses").verify_email_identity(EmailAddress=self.deployment.alert_sender)
            self.echo(
                f"local AWS: moto server at {self.moto_url}; streams {', '.join(STREAMS.values())}"
            )
            self.train_first_bundle()
            self.stream_traffic(calm_batches, drifted_batches)
            self.monitor()
            self.alert()
            self.retrain()
            self.hot_swap()
        return self.summary

    def _record(self, outcome: TrainingOutcome) -> None:
        if outcome.bundle:
            promoted = outcome.production is not None
            self.summary.bundles.append({**outcome.bundle, "promoted": promoted})
            verdict = "production" if promoted else "kept out: " + "; ".join(outcome.failures)[:300]
            self.echo(
                f"      bundle {outcome.bundle['version']} ({outcome.bundle['model_family']}) "
                f"test f1-macro {outcome.bundle['test_f1_macro']:.4f} -> {verdict}"
            )

    def train_first_bundle(self) -> None:
        with self.step("train, check and publish the first bundle"):
            first = run_training(
                instance=self.instance, definitions=self.definitions, log_level="WARNING"
            )
            if not first.success:
                raise RuntimeError(f"training failed: {first.failures}")
            self._record(first)
        # Lambda's init phase in this process, on the demo's settings: the handler module's
        # service reads the store's production pointer before every batch (refresh 0)
        handler = init_handler(
            {
                **os.environ,  # the moto server's endpoint and credentials
                "MODEL_BUNDLE_URI": str(self.home / "model_store"),
                "MODEL_CACHE_DIR": str(self.home / "cache"),
                "MODEL_REFRESH_SECONDS": "0",
                "PREDICTIONS_STREAM_NAME": STREAMS["predictions"],
                "ERRORS_STREAM_NAME": STREAMS["errors"],
            }
        )
        handler.COLD_START.ready()  # the first bundle serves, or the demo stops here
        self.poller = KinesisPoller(
            self.kinesis,
            STREAMS["input"],
            handler.lambda_handler,  # what Lambda calls, with the event Lambda delivers
            batch_size=500,
            checkpoints=Checkpoints(self.home / "stream" / "checkpoints.json"),
            sleep=lambda _s: None,
        )
        archive = self.resources["object_store"].archive()
        self.archivers = [
            FirehoseStandIn(
                self.kinesis,
                STREAMS[kind],
                kind,
                archive,
                Checkpoints(self.home / "archive" / f"{STREAMS[kind]}.checkpoints.json"),
            )
            for kind in ("predictions", "errors")
        ]
        self.started = datetime.now(UTC).replace(microsecond=0)  # key times are in seconds

    def score_and_archive(self) -> Any:
        """Score what is on the input stream, then archive it (the Firehose stand-in, in
        process); then wait out the window, so that the next burst is a window of its own."""
        stats = self.poller.run(until_idle=1, poll_interval=0)
        run_archive(self.archivers, until_idle=1, poll_interval=0, sleep=lambda _s: None)
        time.sleep(WINDOW_SECONDS + 0.1)
        return stats

    def stream_traffic(self, calm: int, drifted: int) -> None:
        with self.step("stream simulated traffic through lambda_handler (as studperf stream)"):
            store = self.resources["object_store"]
            for drift in [None] * calm + [DRIFT] * drifted:
                simulate(
                    self.kinesis, STREAMS["input"], store, self.generator, self.batch_size, drift
                )
                stats = self.score_and_archive()  # the poller's counts since it started
            self.echo(
                f"      {calm * self.batch_size} students from the training population, then "
                f"{drifted * self.batch_size} drifted (8 more absences, half the study time)"
            )
            self.echo(
                f"      {stats.records} records -> {STREAMS['predictions']} in {stats.batches} "
                "Lambda batches, archived by the Firehose stand-in (in process)"
            )

    def monitor(self) -> None:
        with self.step("materialize the monitoring windows (drift reports, checks)"):
            batches = self.tick("prediction_window_sensor")
            if not batches.run_requests:
                raise RuntimeError(f"no window closed: {batches.skip_message}")
            for request, run in self.run_requested(batches):
                checks = {e.check_name: e.passed for e in run.get_asset_check_evaluations()}
                report = run.output_for_node("drift_report")
                batch = {
                    "partition": request.partition_key,
                    "drift_share": report["drift_share"],
                    "drifted": report["drifted_features"],
                    "f1_macro": report["f1_macro"],
                    "failed_checks": sorted(c for c, ok in checks.items() if not ok),
                }
                self.summary.batches.append(batch)
                self.echo(
                    f"      {batch['partition']}: drift share {batch['drift_share']:.2f}; "
                    f"failed checks: {', '.join(batch['failed_checks']) or 'none'}"
                )

    def alert(self) -> None:
        with self.step("alert: failing checks open an incident, e-mailed to the on-call (SES)"):
            before = len(sent_emails(self.moto_url))
            self.tick("monitoring_alert_sensor")
            self.summary.emails = sent_emails(self.moto_url)[before:]
            for email in self.summary.emails:
                self.echo(
                    f"      to {', '.join(email['destinations']['ToAddresses'])}: "
                    f"{email['subject']}"
                )
            if self.summary.emails:
                body = as_text(self.summary.emails[0]["body"]).replace("\n", "\n      | ")
                self.echo(f"      first e-mail, read back from the local SES:\n      | {body}")

    def retrain(self) -> None:
        with self.step("retrain on the labelled batches (retraining_sensor), champion check"):
            decision = self.tick("retraining_sensor")
            if not decision.run_requests:
                raise RuntimeError(f"the retraining sensor did not fire: {decision.skip_message}")
            ((request, training),) = self.run_requested(decision)
            self.echo(
                f"      retraining_sensor -> {training.job_def.name}, trigger "
                f"{request.tags.get('studperf/trigger')}"
            )
            self.summary.retraining_run = training.run_id
            self._record(outcome_of(training))

    def hot_swap(self) -> None:
        with self.step("more traffic: the Lambda hot-swaps to the promoted bundle"):
            store = self.resources["object_store"]
            simulate(self.kinesis, STREAMS["input"], store, self.generator, 50, labels=False)
            self.score_and_archive()
            archive = self.resources["object_store"].archive()
            served = read_window(archive, self.started, datetime.now(UTC)).predictions
            self.summary.versions_served = served["model_version"].tolist()
            seen = list(dict.fromkeys(self.summary.versions_served))
            self.echo(f"      versions in the output records, in order: {' -> '.join(seen)}")


def as_text(html: str) -> str:
    """An HTML e-mail as a terminal shows it (moto keeps the HTML part of what it got)."""
    import html as entities
    import re

    text = re.sub(r"</(tr|p|h3|table)>|<br>", "\n", html)
    text = re.sub(r"</t[dh]>", "  ", text)
    text = re.sub(r"<[^>]+>", "", text)
    return "\n".join(line.rstrip() for line in entities.unescape(text).splitlines() if line.strip())


def run_demo(
    home: Path,
    batch_size: int = 200,
    calm_batches: int = 2,
    drifted_batches: int = 2,
    echo: Callable[[str], None] = print,
    progress: bool = False,
) -> DemoSummary:
    """The scripted tour on a local deployment of its own at ``home``; ``progress`` draws
    progress bars (the CLI asks for them on a terminal)."""
    warnings.filterwarnings("ignore")  # library beta/deprecation notices drown the step lines
    return Demo(home, batch_size, echo, progress).run(calm_batches, drifted_batches)


def print_summary(summary: DemoSummary, echo: Callable[[str], None] = print) -> None:
    echo("\nsummary")
    for bundle in summary.bundles:
        state = "promoted" if bundle["promoted"] else "not promoted"
        echo(f"  bundle {bundle['version']}: test f1-macro {bundle['test_f1_macro']:.4f} ({state})")
    for batch in summary.batches:
        drifted = ", ".join(batch["drifted"]) or "no drifted features"
        echo(
            f"  {batch['partition']}: drift share {batch['drift_share']:.2f} ({drifted}), "
            f"f1-macro {batch['f1_macro']:.3f}"
        )
    echo(
        f"  alert e-mails sent: {len(summary.emails)} (one per incident opened: checks failing "
        "on consecutive windows are one incident)"
    )
    echo(f"  retraining run: {summary.retraining_run}")
    echo(f"  HTML reports: {summary.reports}")
    dashboard = summary.home / "evidently"
    echo(f"  Evidently dashboard: {script('evidently')} ui --workspace {dashboard}")
    echo(f"  total {sum(seconds for _, seconds in summary.steps):.0f}s in the six steps")
    echo(
        "\nopen the Dagster UI on this state:\n"
        f"  STUDPERF_HOME={summary.home} {script('studperf')} ui"
    )


def script(name: str) -> str:
    """A console script of this installation, as a user would type it: ``.venv/bin/studperf``
    in a checkout, the full path when studperf was installed elsewhere."""
    path = Path(sys.executable).parent / name
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
