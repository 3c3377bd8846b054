"""The running system, measured: `studperf up` with its default sensor intervals.

Figures (printed, and written to benchmarks/results/live_loop.json):

- import of ``studperf_assets.definitions`` in a fresh process (what every run, step and
  code-server start pays; target <= 5 s);
- seconds from the drifted traffic being sent to the first alert e-mail (target <= 120 s);
- seconds from the drifted traffic to the first prediction by the promoted bundle
  (target <= 300 s), with a trickle of traffic flowing meanwhile;
- per run the sensors launched: seconds from launch (RUN_STARTING) to SUCCESS and CPU
  seconds of the run process and its children (monitoring, 200 rows: target <= 20 s;
  training: <= 60 s);
- unless ``--no-executors``: the same runs submitted through the webserver with the
  in-process and then the multiprocess executor, so the default is chosen with numbers.

Usage: python benchmarks/live_loop.py [--no-executors] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

RESULTS = REPO / "benchmarks" / "results" / "live_loop.json"
DRIFT = "absences=8,study=0.5"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
OUR_PREFIXES = ("STUDPERF_", "MLFLOW_", "DAGSTER_", "AWS_")


def user_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(OUR_PREFIXES)}


def fresh_import_seconds(repeats: int) -> list[float]:
    code = (
        "import time; t = time.perf_counter(); import studperf_assets.definitions; "
        "print(time.perf_counter() - t)"
    )
    command = [sys.executable, "-c", code]
    env = user_environment()
    return [
        float(subprocess.run(command, capture_output=True, text=True, env=env, check=True).stdout)
        for _ in range(repeats)
    ]


class CpuSampler(threading.Thread):
    """Samples the CPU time of the stack's run processes (spawned by the code server) from
    /proc every 0.1 s: user + system, their waited-for children included."""

    def __init__(self, home: Path) -> None:
        super().__init__(daemon=True)
        self.marker = f"STUDPERF_HOME={home}".encode()
        self.cpu: dict[int, float] = {}
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            for entry in Path("/proc").iterdir():
                if entry.name.isdigit():
                    self._sample(entry)
            time.sleep(0.1)

    def _sample(self, entry: Path) -> None:
        try:
            if b"spawn_main" not in (entry / "cmdline").read_bytes():
                return
            if self.marker not in (entry / "environ").read_bytes().split(b"\0"):
                return
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return
        ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))  # utime stime cutime cstime
        self.cpu[int(entry.name)] = ticks / CLOCK_TICKS


class Stack:
    """`studperf up` in a subprocess, as a user starts it; stopped with SIGTERM."""

    def __init__(self, home: Path) -> None:
        from studperf_assets.local.moto import free_port

        self.home = home
        self.ports = {name: str(free_port()) for name in ("AWS", "UI", "EVIDENTLY")}
        self.env = user_environment() | {"STUDPERF_HOME": str(home)}
        self.env |= {f"STUDPERF_{name}_PORT": port for name, port in self.ports.items()}
        self.ready_s = 0.0

    def start(self) -> None:
        started = time.perf_counter()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "studperf_assets.cli", "up"],
            env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        assert self.process.stdout is not None
        line = ""
        while not line.startswith("ready "):
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError("studperf up exited before it was ready")
        self.ready_s = time.perf_counter() - started
        # the events it prints after ready are read on, so that the pipe never fills
        self.events: list[str] = []
        stdout = self.process.stdout
        threading.Thread(target=lambda: self.events.extend(stdout), daemon=True).start()
        from benchmarks.shell import sourced_environment

        fields = dict(part.split("=", 1) for part in line.split()[1:])
        self.env = sourced_environment(Path(fields["env"]), self.env)

    def stop(self) -> None:
        from studperf_assets.local.supervisor import processes_with

        started = time.perf_counter()
        if getattr(self, "process", None) is not None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)
        left = processes_with("STUDPERF_HOME", str(self.home))
        print(f"stack stopped in {time.perf_counter() - started:.1f}s; processes left: {left}")

    def studperf(self, *args: str) -> None:
        command = [sys.executable, "-m", "studperf_assets.cli", *args]
        subprocess.run(command, env=self.env, check=True, capture_output=True)

    def client(self, service: str) -> Any:
        import boto3

        session: Any = boto3.session.Session()
        return session.client(
            service,
            endpoint_url=self.env["AWS_ENDPOINT_URL"],
            region_name=self.env["AWS_REGION"],
            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
        )


@contextmanager
def running(stack: Stack) -> Iterator[Stack]:
    try:  # a start that fails half-way is stopped too
        stack.start()
        yield stack
    finally:
        stack.stop()


def wait_for(what: str, condition: Callable[[], Any], timeout: float, every: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"{what}: not within {timeout:.0f}s")


def run_figures(instance: Any, run_id: str, sampler: CpuSampler) -> dict[str, float]:
    """Launch-to-success seconds and CPU seconds of one run, from its event log."""
    from dagster import DagsterEventType

    launched = succeeded = 0.0
    pid = -1
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        message = entry.message or ""
        if event is None:
            continue
        if event.event_type == DagsterEventType.RUN_STARTING:
            launched = entry.timestamp
        elif event.event_type == DagsterEventType.RUN_SUCCESS:
            succeeded = entry.timestamp
        elif "Started process for run (pid:" in message:
            pid = int(message.split("pid:")[1].split(")")[0])
    return {
        "launch_to_success_s": round(succeeded - launched, 2),
        "cpu_s": round(sampler.cpu.get(pid, float("nan")), 2),
    }


def successful_runs(instance: Any, job: str) -> list[Any]:
    from dagster import DagsterRunStatus, RunsFilter

    success = [DagsterRunStatus.SUCCESS]
    return list(instance.get_runs(filters=RunsFilter(job_name=job, statuses=success)))


def drift_timings(stack: Stack, instance: Any, results: dict[str, Any]) -> None:
    """Calm traffic, then drifted traffic: time to the first alert, and to the first
    prediction by the bundle that the retraining promoted."""
    from benchmarks.streams import read_stream
    from studperf_assets.local.moto import sent_emails
    from studperf_assets.local.traffic import simulate, training_generator
    from studperf_assets.resources.object_store import LocalObjectStore

    first = json.loads((stack.home / "model_store" / "production.json").read_text())["version"]
    kinesis = stack.client("kinesis")
    stack.studperf("simulate", "--count", "400", "--seed", "1")
    wait_for("the calm window", lambda: len(successful_runs(instance, "monitoring_job")) >= 1, 300)
    store = LocalObjectStore(root=str(stack.home / "monitoring"))
    generator = training_generator(seed=9)
    trickling = threading.Event()

    def trickle() -> None:  # steady traffic, so the swap shows in the output stream
        while not trickling.is_set():
            simulate(kinesis, "studperf-input", store, generator, 5, labels=False)
            time.sleep(2)

    sent_at = time.time()
    stack.studperf("simulate", "--count", "400", "--seed", "2", "--drift", DRIFT)
    threading.Thread(target=trickle, daemon=True).start()

    def first_alert() -> float:
        subjects = [m["subject"] for m in sent_emails(stack.env["AWS_ENDPOINT_URL"])]
        drifted = any("OPEN: drift incident" in s for s in subjects)
        return time.time() if drifted else 0.0

    alert_at = wait_for("the first drift alert", first_alert, 600)
    results["drift_to_first_alert_s"] = round(alert_at - sent_at, 1)
    print(f"drifted traffic -> first alert e-mail: {alert_at - sent_at:.1f}s (target <= 120 s)")

    def first_new_prediction() -> float:
        for record in read_stream(kinesis, "studperf-predictions"):
            if record["model_version"] != first:
                stamp = record["predicted_at"].replace("Z", "+00:00")
                return datetime.fromisoformat(stamp).timestamp()
        return 0.0

    swapped_at = wait_for("the promoted bundle serving", first_new_prediction, 900, every=2)
    trickling.set()
    results["drift_to_promoted_prediction_s"] = round(swapped_at - sent_at, 1)
    print(
        "drifted traffic -> first prediction by the promoted bundle: "
        f"{swapped_at - sent_at:.1f}s (target <= 300 s)"
    )


def sensor_launched_runs(instance: Any, sampler: CpuSampler) -> dict[str, Any]:
    figures = {}
    for job in ("monitoring_job", "training_job"):
        for run in successful_runs(instance, job):
            sensor = run.tags.get("dagster/sensor_name")
            if sensor:
                name = f"{job}:{run.tags.get('dagster/partition', sensor)}"
                figures[name] = run_figures(instance, run.run_id, sampler)
    for name, row in sorted(figures.items()):
        print(f"  {name}: launch -> success {row['launch_to_success_s']}s, CPU {row['cpu_s']}s")
    return figures


def finished_run(instance: Any, run_id: str) -> Any:
    run = instance.get_run_by_id(run_id)
    return run if run.is_finished else None


def window_tags(instance: Any) -> dict[str, str]:
    """The partition and end of the first window the sensor monitored: a re-run of it."""
    from studperf_assets.constants import WINDOW_END_TAG

    first = min(
        successful_runs(instance, "monitoring_job"), key=lambda r: r.tags["dagster/partition"]
    )
    return {k: first.tags[k] for k in ("dagster/partition", WINDOW_END_TAG)}


def compare_executors(
    stack: Stack, instance: Any, sampler: CpuSampler, repeats: int
) -> dict[str, Any]:
    """The same runs, submitted through the webserver (queued, launched by the daemon),
    with each executor."""
    from dagster import DagsterRunStatus
    from dagster_graphql import DagsterGraphQLClient

    client = DagsterGraphQLClient("127.0.0.1", port_number=int(stack.ports["UI"]))
    comparison: dict[str, Any] = {}
    plan: tuple[tuple[str, int, dict[str, str]], ...] = (
        ("monitoring_job", repeats, window_tags(instance)),
        ("training_job", 1, {}),
    )
    for job, times, tags in plan:
        for executor in ("in_process", "multiprocess"):
            runs = []
            for _ in range(times):
                config: dict[str, Any] = {"execution": {"config": {executor: {}}}}
                run_id = client.submit_job_execution(job, run_config=config, tags=tags)
                run = wait_for(job, partial(finished_run, instance, run_id), 900)
                assert run.status == DagsterRunStatus.SUCCESS, (job, executor, run.status)
                runs.append(run_figures(instance, run_id, sampler))
            row = {
                "launch_to_success_s": statistics.median(r["launch_to_success_s"] for r in runs),
                "cpu_s": statistics.median(r["cpu_s"] for r in runs),
                "runs": runs,
            }
            comparison[f"{job}:{executor}"] = row
            print(
                f"  {job} {executor}: launch -> success {row['launch_to_success_s']}s, "
                f"CPU {row['cpu_s']}s (median of {times})"
            )
        ratio = (
            comparison[f"{job}:multiprocess"]["launch_to_success_s"]
            / comparison[f"{job}:in_process"]["launch_to_success_s"]
        )
        comparison[f"{job}:multiprocess_over_in_process"] = round(ratio, 2)
        print(f"  {job}: multiprocess takes {ratio:.2f}x the in-process time")
    return comparison


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--no-executors", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from dagster import DagsterInstance

    results: dict[str, Any] = {"machine": f"{os.cpu_count()} cores", "date": time.strftime("%F")}
    imports = fresh_import_seconds(args.repeats)
    median = statistics.median(imports)
    runs = [round(x, 2) for x in imports]
    results["import_definitions_s"] = {"median": round(median, 2), "runs": runs}
    print(f"import studperf_assets.definitions: {median:.2f}s median (target <= 5 s)")
    with running(Stack(Path(tempfile.mkdtemp(prefix="studperf-live-")) / "home")) as stack:
        results["stack_ready_s"] = round(stack.ready_s, 1)
        print(f"studperf up: ready in {stack.ready_s:.1f}s (includes training the first bundle)")
        sampler = CpuSampler(stack.home)
        sampler.start()
        instance = DagsterInstance.from_config(str(stack.home / "dagster"))
        drift_timings(stack, instance, results)
        time.sleep(1)
        results["sensor_launched_runs"] = sensor_launched_runs(instance, sampler)
        if not args.no_executors:
            results["executors"] = compare_executors(stack, instance, sampler, args.repeats)
        sampler.stopped.set()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"-> {RESULTS}")


if __name__ == "__main__":
    main()
