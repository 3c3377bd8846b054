"""Sustained load on the running platform: `studperf up` with the local stack's defaults,
fed by `studperf simulate` at a steady rate, calm then drifted (then calm again).

Default load (issue 21): 1,000 predictions/s for 10 minutes (600,000 records), calm for the
first 5 and drifted (absences +8, study time x0.5) for the second 5; then ``--calm-after``
minutes of calm traffic, so that the drift incident can resolve.

Printed, and written to benchmarks/results/sustained_load.json:

- records sent, scored (the consumer's per-minute events), archived (lines of the archive's
  objects, distinct idempotency keys) and monitored (rows of the windows' metrics): all equal;
- the consumer's throughput against the offered rate;
- lag from a window's end to its monitoring run's success (p50, p95; target p95 <= 90 s);
- seconds from the drift's start to the first drift e-mail (target <= 120 s);
- the e-mails sent (target: one OPEN for the drift incident, one RESOLVED after calm);
- monitoring partitions created against windows elapsed (target <= 1 per window);
- CPU-seconds per 1,000 predictions monitored (monitoring runs, their children included),
  against 32, the figure of one partition per 200 predictions read from the stream (issue 21,
  measured before windows; that design no longer exists to be re-run here);
- peak RSS of each part of the stack (all its processes, summed, sampled every second);
- bytes written per 1,000 predictions: the archive, and the rest of the monitoring store
  (reports, snapshots, the IO manager's values) with the Evidently workspace; the windows'
  asset values apart; and the monitoring database (SQLite: the prediction index, the labels
  and the metrics).

Usage: python benchmarks/sustained_load.py [--rate 1000] [--calm 5] [--drifted 5]
                                           [--calm-after 4]   (minutes)
A short smoke run: --rate 200 --calm 1 --drifted 1 --calm-after 0
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from live_loop import REPO, CpuSampler, Stack, run_figures, running, wait_for

RESULTS = REPO / "benchmarks" / "results" / "sustained_load.json"
DRIFT = "absences=8,study=0.5"
BATCH_DESIGN_CPU_PER_1000 = 32.0  # issue 21: one partition per 200 predictions, stream-read
PART_VARIABLE = b"STUDPERF_STACK_PART="


class PartSampler(threading.Thread):
    """Peak resident memory of each part of one stack: the sum of VmRSS over the processes
    whose environment names the part (``STUDPERF_STACK_PART=<stack>/<part>``), every second.
    Run processes inherit the part that launched them (the daemon's code server)."""

    def __init__(self, home: Path) -> None:
        super().__init__(daemon=True)
        self.home = f"STUDPERF_HOME={home}".encode()
        self.peak_mb: dict[str, float] = {}
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            now: dict[str, float] = {}
            for entry in Path("/proc").iterdir():
                if entry.name.isdigit():
                    part, rss = self._sample(entry)
                    if part:
                        now[part] = now.get(part, 0.0) + rss
            for part, mb in now.items():
                self.peak_mb[part] = max(self.peak_mb.get(part, 0.0), round(mb, 1))
            time.sleep(1)

    def _sample(self, entry: Path) -> tuple[str, float]:
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            if self.home not in environ:
                return "", 0.0
            part = next((v for v in environ if v.startswith(PART_VARIABLE)), b"")
            name = part[len(PART_VARIABLE) :].decode().rsplit("/", 1)[-1]
            status = (entry / "status").read_text()
        except OSError:
            return "", 0.0
        rss_kb = next((int(x.split()[1]) for x in status.splitlines() if x.startswith("VmRSS")), 0)
        return name or "other", rss_kb / 1024


def database_bytes(home: Path) -> int:
    """The monitoring database's SQLite files (the file, its WAL and shared memory)."""
    return sum(p.stat().st_size for p in home.glob("monitoring.db*") if p.is_file())


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0


def archived(store: Path) -> dict[str, int]:
    """Lines in the archive's objects, and distinct idempotency keys of the predictions."""
    counts = {"predictions": 0, "errors": 0, "distinct_predictions": 0}
    keys: set[str] = set()
    for kind in ("predictions", "errors"):
        for path in sorted((store / "archive" / kind).rglob("*.gz")):
            for line in gzip.decompress(path.read_bytes()).splitlines():
                if not line.strip():
                    continue
                counts[kind] += 1
                if kind == "predictions":
                    keys.add(str(json.loads(line).get("idempotency_key")))
    counts["distinct_predictions"] = len(keys)
    return counts


def consumer_counts(log: Path) -> dict[str, int]:
    """Totals of the consumer's per-minute events (``consumer minute``) in its log."""
    from studperf_assets.lib.loop_events import CONSUMER_MINUTE, parse

    totals = {"records": 0, "predicted": 0, "errors": 0, "batches": 0}
    for line in log.read_text(errors="replace").splitlines() if log.is_file() else []:
        event = parse(line)
        if event is not None and event.name == CONSUMER_MINUTE:
            for name in totals:
                totals[name] += int(event.fields.get(name) or 0)
    return totals


def monitored_rows(home: Path) -> dict[str, int]:
    from studperf_assets.resources.metrics_db import MetricsDatabase

    database = MetricsDatabase(url=f"sqlite:///{home / 'monitoring.db'}")
    batches = database.batches()
    return {"windows": len(batches), "rows": sum(int(b["rows"]) for b in batches)}


class AlertWatch(threading.Thread):
    """When each incident e-mail went out: the alert sensor's ``incident`` events (emitted
    once SES has accepted the e-mail), read from the stack's ``dagster.log`` as they are
    written (polled every second). Not moto's SES listing: ``/moto-api/data.json`` dumps all
    of moto's state, every Kinesis record included: polled every second it slowed the stack
    down, and after 840,000 records one call outlasted its 10 s timeout (measured)."""

    def __init__(self, log: Path) -> None:
        super().__init__(daemon=True)
        self.log = log
        self.seen: list[tuple[float, str]] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        from studperf_assets.lib.loop_events import INCIDENT, parse

        offset, partial = 0, b""
        while not self.stopped.is_set():
            try:
                with self.log.open("rb") as handle:
                    if handle.seek(0, os.SEEK_END) < offset:
                        offset = 0  # rotated: a new, shorter log
                    handle.seek(offset)
                    data = partial + handle.read()
                    offset = handle.tell()
            except OSError:
                data = b""
            *lines, partial = data.split(b"\n")
            for line in lines:
                event = parse(line.decode(errors="replace"))
                if event is not None and event.name == INCIDENT:
                    subject = f"{event.fields['notice']}: {event.fields['title']}"
                    self.seen.append((time.time(), subject))
            time.sleep(1)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def window_lags(instance: Any) -> list[float]:
    """Seconds from each window's end to the success of the window sensor's run of it."""
    from dagster import DagsterRunStatus, RunsFilter

    from studperf_assets.constants import WINDOW_END_TAG
    from studperf_assets.lib.windows import window_start

    records = instance.get_run_records(
        RunsFilter(
            job_name="monitoring_job",
            statuses=[DagsterRunStatus.SUCCESS],
            tags={"dagster/sensor_name": "prediction_window_sensor"},
        )
    )
    return [
        r.end_time - window_start(r.dagster_run.tags[WINDOW_END_TAG]).timestamp()
        for r in records
        if r.end_time and WINDOW_END_TAG in r.dagster_run.tags
    ]


def window_costs(instance: Any, sampler: CpuSampler, home: Path) -> dict[str, Any]:
    """CPU-seconds of each window's first monitoring run against its rows, and the least
    squares line through them: a fixed cost per window plus a cost per 1,000 rows (what
    scales a window to another rate)."""
    from dagster import RunsFilter

    from studperf_assets.resources.metrics_db import MetricsDatabase

    rows = {
        b["partition"]: int(b["rows"])
        for b in MetricsDatabase(url=f"sqlite:///{home / 'monitoring.db'}").batches()
    }
    runs = instance.get_runs(
        filters=RunsFilter(
            job_name="monitoring_job", tags={"dagster/sensor_name": "prediction_window_sensor"}
        )
    )
    points = []
    for run in runs:
        cpu = run_figures(instance, run.run_id, sampler)["cpu_s"]
        key = run.tags.get("dagster/partition", "")
        if key in rows and not math.isnan(cpu):
            points.append((rows[key], cpu))
    if len(points) < 2 or len({x for x, _ in points}) < 2:
        return {"points": points}
    slope, intercept = statistics.linear_regression(*zip(*points, strict=True))
    return {
        "points": sorted(points),
        "fixed_cpu_s": round(intercept, 2),
        "cpu_s_per_1000_rows": round(slope * 1000, 3),
    }


def run_cpu(instance: Any, sampler: CpuSampler, job: str) -> float:
    from dagster import RunsFilter

    runs = instance.get_runs(filters=RunsFilter(job_name=job))
    figures = [run_figures(instance, run.run_id, sampler)["cpu_s"] for run in runs]
    return sum(f for f in figures if not math.isnan(f))  # NaN: a process not sampled


def simulate(stack: Stack, count: int, rate: float, seed: int, drift: str | None) -> None:
    args = ["simulate", "--count", str(count), "--rate", str(rate), "--seed", str(seed)]
    stack.studperf(*args, *(["--drift", drift] if drift else []))


def send_phases(stack: Stack, args: argparse.Namespace) -> tuple[int, float, float]:
    """The load, phase by phase; returns (records sent, seconds, when the drift started)."""
    phases = [(args.calm, None, 31), (args.drifted, DRIFT, 32), (args.calm_after, None, 33)]
    sent, started, drift_at = 0, time.time(), 0.0
    for minutes, drift, seed in phases:
        count = round(minutes * 60 * args.rate)
        if not count:
            continue
        if drift:
            drift_at = time.time()
        phase_started = time.time()
        simulate(stack, count, args.rate, seed, drift)
        sent += count
        took = time.time() - phase_started
        kind = "drifted" if drift else "calm"
        print(f"sent {count:,} ({kind}) in {took:.0f}s: {count / took:,.0f}/s", flush=True)
    return sent, time.time() - started, drift_at


def wait_until_monitored(stack: Stack, sent: int, timeout: float) -> None:
    def caught_up() -> bool:
        done = monitored_rows(stack.home)["rows"]
        print(f"  monitored {done:,} of {sent:,}", flush=True)
        return done >= sent

    try:
        wait_for("every prediction monitored", caught_up, timeout, every=15)
    except TimeoutError as late:
        print(f"NOT caught up: {late}", flush=True)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Run the stack under the load; the raw figures."""
    from dagster import DagsterInstance

    home = Path(tempfile.mkdtemp(prefix="studperf-sustained-")) / "home"
    with running(Stack(home)) as stack:
        print(f"studperf up: ready in {stack.ready_s:.1f}s", flush=True)
        instance = DagsterInstance.from_config(str(stack.home / "dagster"))
        cpu, parts = CpuSampler(stack.home), PartSampler(stack.home)
        alerts = AlertWatch(stack.home / "logs" / "dagster.log")
        for thread in (cpu, parts, alerts):
            thread.start()
        store, evidently = stack.home / "monitoring", stack.home / "evidently"
        io_values = stack.home / "assets"  # the IO manager's store: the home, prefix assets/
        before = folder_bytes(store) + folder_bytes(evidently) + folder_bytes(io_values)
        io_before, db_before = folder_bytes(io_values), database_bytes(stack.home)
        started = time.time()
        sent, load_s, drift_at = send_phases(stack, args)
        wait_until_monitored(stack, sent, args.catch_up)
        caught_up_s = time.time() - started
        time.sleep(40)  # two alert-sensor ticks after the last window
        for thread in (cpu, parts, alerts):
            thread.stopped.set()
        archive_bytes = folder_bytes(store / "archive")
        raw = {
            "sent": sent,
            "load_s": load_s,
            "caught_up_s": caught_up_s,
            "drift_at": drift_at,
            "consumer": consumer_counts(stack.home / "logs" / "stream.log"),
            "archive": archived(store),
            "monitored": monitored_rows(stack.home),
            "lags": window_lags(instance),
            "partitions": len(instance.get_dynamic_partitions("monitoring_windows")),
            "monitoring_cpu": run_cpu(instance, cpu, "monitoring_job"),
            "training_cpu": run_cpu(instance, cpu, "training_job"),
            "window_costs": window_costs(instance, cpu, stack.home),
            "archive_bytes": archive_bytes,
            "io_value_bytes": folder_bytes(io_values) - io_before,
            "database_bytes": database_bytes(stack.home) - db_before,
            "other_bytes": folder_bytes(store)
            + folder_bytes(evidently)
            + folder_bytes(io_values)
            - before
            - archive_bytes,
            "bytes_by_folder": {
                str(p.relative_to(stack.home)): folder_bytes(p)
                for folder in (stack.home, store)
                for p in folder.iterdir()
                if p.is_dir()
            },
            "emails": list(alerts.seen),
            "peak_rss_mb": dict(sorted(parts.peak_mb.items())),
        }
    shutil.rmtree(home.parent, ignore_errors=True)
    return raw


def summarize(raw: dict[str, Any]) -> dict[str, Any]:
    consumer, archive, lags = raw["consumer"], raw["archive"], raw["lags"]
    per_1000 = 1000 / max(raw["monitored"]["rows"], 1)
    cpu_per_1000 = raw["monitoring_cpu"] * per_1000
    first_alert = next(
        (t - raw["drift_at"] for t, s in raw["emails"] if "drift incident" in s), None
    )
    return {
        "records": {
            "sent": raw["sent"],
            "scored": consumer["predicted"] + consumer["errors"],
            "consumer_records": consumer["records"],
            "archived_predictions": archive["predictions"],
            "archived_distinct_predictions": archive["distinct_predictions"],
            "archived_errors": archive["errors"],
            "monitored": raw["monitored"]["rows"],
        },
        "offered_per_s": round(raw["sent"] / raw["load_s"], 1),
        "consumer_batches": consumer["batches"],
        "window_lag_s": {
            "p50": round(statistics.median(lags), 1) if lags else None,
            "p95": round(percentile(lags, 0.95), 1),
            "windows": len(lags),
        },
        "drift_to_first_alert_s": round(first_alert, 1) if first_alert is not None else None,
        "emails": [s for _, s in raw["emails"]],
        "partitions": raw["partitions"],
        "minutes_elapsed": round(raw["caught_up_s"] / 60, 1),
        "monitoring_cpu_s": round(raw["monitoring_cpu"], 1),
        "training_cpu_s": round(raw["training_cpu"], 1),
        "window_cpu": raw["window_costs"],
        "monitoring_cpu_s_per_1000": round(cpu_per_1000, 3),
        "cpu_reduction_vs_batches": round(BATCH_DESIGN_CPU_PER_1000 / max(cpu_per_1000, 1e-9), 1),
        "peak_rss_mb": raw["peak_rss_mb"],
        "archive_bytes_per_1000": round(raw["archive_bytes"] * per_1000),
        "other_store_bytes_per_1000": round(raw["other_bytes"] * per_1000),
        "io_value_bytes_per_1000": round(raw["io_value_bytes"] * per_1000),
        "database_bytes_per_1000": round(raw["database_bytes"] * per_1000),
        "bytes_by_folder": raw["bytes_by_folder"],
        "load_s": round(raw["load_s"], 1),
        "caught_up_s": round(raw["caught_up_s"], 1),
    }


def report(results: dict[str, Any]) -> None:
    r = results["records"]
    print(
        f"records: sent {r['sent']:,}, scored {r['scored']:,}, archived "
        f"{r['archived_distinct_predictions']:,} (+{r['archived_errors']} errors, "
        f"{r['archived_predictions'] - r['archived_distinct_predictions']} duplicates), "
        f"monitored {r['monitored']:,}"
    )
    print(f"offered {results['offered_per_s']:,}/s over {results['load_s']:.0f}s")
    print(f"window lag (end -> monitored): {results['window_lag_s']} (target p95 <= 90 s)")
    print(f"drift start -> first drift e-mail: {results['drift_to_first_alert_s']} s (<= 120 s)")
    print(f"e-mails: {results['emails']}")
    print(f"partitions: {results['partitions']} in {results['minutes_elapsed']} minutes")
    print(
        f"monitoring CPU: {results['monitoring_cpu_s_per_1000']} CPU-s per 1,000 predictions; "
        f"{results['cpu_reduction_vs_batches']}x fewer than {BATCH_DESIGN_CPU_PER_1000:g}"
    )
    costs = results["window_cpu"]
    if "fixed_cpu_s" in costs:
        print(
            f"a window's run: {costs['fixed_cpu_s']} CPU-s fixed + "
            f"{costs['cpu_s_per_1000_rows']} CPU-s per 1,000 rows ({len(costs['points'])} runs)"
        )
    print(f"peak RSS (MB): {results['peak_rss_mb']}")
    print(
        f"bytes per 1,000 predictions: archive {results['archive_bytes_per_1000']:,}, "
        f"other monitoring files {results['other_store_bytes_per_1000']:,} (of which the "
        f"windows' asset values {results['io_value_bytes_per_1000']:,}); the monitoring "
        f"database {results['database_bytes_per_1000']:,} (its index and the labels)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=1000.0, help="records per second")
    parser.add_argument("--calm", type=float, default=5.0, help="minutes of calm traffic")
    parser.add_argument("--drifted", type=float, default=5.0, help="minutes of drifted traffic")
    parser.add_argument("--calm-after", type=float, default=4.0, help="minutes of calm after")
    parser.add_argument("--catch-up", type=float, default=900.0, help="seconds to wait after")
    args = parser.parse_args()
    results: dict[str, Any] = {
        "machine": f"{os.cpu_count()} cores",
        "date": time.strftime("%F"),
        "load": {k: getattr(args, k) for k in ("rate", "calm", "drifted", "calm_after")},
    }
    results |= summarize(measure(args))
    report(results)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"-> {RESULTS}")


if __name__ == "__main__":
    main()
