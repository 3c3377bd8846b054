"""Has the hardening made the Kinesis handler slower? Measured against a baseline in the
same run: ``lambda_service`` as it was at an earlier commit (default: the one before the
poison-record rules), on the same bundle, alternating A/B runs in fresh processes.

    python benchmarks/handler_regression.py [--baseline e4d80cc] [--records 20000] [--rounds 3]
    python benchmarks/handler_regression.py --entry handler --baseline REV [--rounds 3]

Each run scores ``--records`` valid records (plus one malformed in every hundred, so the
error path is exercised) through ``PredictionService.handle_kinesis`` with a no-op sink,
in batches of 1, 100 and 500, on one core. The current tree is also run on the same user
records packed as KPL aggregated records (up to 100 user records each, by aws-kinesis-agg,
the dev extra): the baseline cannot split them. Writes benchmarks/results/handler_regression.json.

``--entry handler`` measures what Lambda runs instead: each fresh process times its cold start
(importing ``lambda_service.handler``, which builds the service and loads the bundle from a
folder into an empty cache; then the first invocation), then sends the same batches through
``lambda_handler`` with a stand-in Lambda context, the service's sink swapped for the no-op
one. That includes what the handler adds around the service: its log line and EMF record per
batch (written to a pipe here, to CloudWatch in AWS), and whatever decorators it wears. No KPL
run. Writes benchmarks/results/handler_entry.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results" / "handler_regression.json"
ENTRY_RESULTS = REPO / "benchmarks" / "results" / "handler_entry.json"
BATCHES = (1, 100, 500)

# Runs inside a fresh process whose sys.path starts with the lambda_service tree under test.
MEASURE = """
import base64, json, sys, time
from pathlib import Path
from lambda_service.model_provider import ModelProvider
from lambda_service.service import PredictionService

class NoSink:
    def put(self, stream, entries):
        return []

bundle, records, batch = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
student = {"ParentalEducation": 2, "StudyTimeWeekly": 15.2, "Absences": 4, "Tutoring": 1,
           "ParentalSupport": 3, "Extracurricular": 1, "Sports": 0, "Music": 0, "Volunteering": 1}
def payload(i):
    body = {"student_id": i, "student": {**student, "Absences": i % 30}}
    return b"{not json" if i % 100 == 99 else json.dumps(body).encode()
def record(i, data):
    return {"kinesis": {"partitionKey": str(i), "sequenceNumber": str(i),
            "data": base64.b64encode(data).decode()}, "eventID": f"shardId-0:{i}"}
def aggregate(first, count):
    saved = list(sys.path)  # aws_kinesis_agg puts its own folder first on sys.path
    from aws_kinesis_agg.aggregator import RecordAggregator
    sys.path[:] = saved
    aggregator = RecordAggregator()
    for i in range(first, first + count):
        aggregator.add_user_record(str(i), payload(i))
    return record(first, bytes(aggregator.clear_and_get().get_contents()[2]))
if sys.argv[5] == "kpl":  # each batch of user records in aggregates of up to 100
    batches = [[aggregate(s, min(100, batch)) for s in range(b, b + batch, 100)]
               for b in range(0, records, batch)]
else:
    batches = [[record(i, payload(i)) for i in range(b, b + batch)]
               for b in range(0, records, batch)]
service = PredictionService(ModelProvider(str(bundle), Path(sys.argv[4])), NoSink(), "p", "e")
service.handle_kinesis(batches[0])  # warm
started = time.perf_counter()
for events in batches:
    outcome = service.handle_kinesis(events)
print(records / (time.perf_counter() - started))
"""

# Through the Lambda entry point, as Lambda calls it (the same events and no-op sink).
MEASURE_HANDLER = """
import base64, json, os, sys, time
started = time.perf_counter()
import lambda_service.handler as handler
imported = time.perf_counter()

class NoSink:
    def put(self, stream, entries):
        return []

class Context:  # what Powertools reads of Lambda's context object
    function_name = "studperf-benchmark"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:studperf-benchmark"
    def __init__(self, n):
        self.aws_request_id = f"benchmark-{n}"
    def get_remaining_time_in_millis(self):
        return 60_000

records, batch = int(sys.argv[2]), int(sys.argv[3])
student = {"ParentalEducation": 2, "StudyTimeWeekly": 15.2, "Absences": 4, "Tutoring": 1,
           "ParentalSupport": 3, "Extracurricular": 1, "Sports": 0, "Music": 0, "Volunteering": 1}
def payload(i):
    body = {"student_id": i, "student": {**student, "Absences": i % 30}}
    return b"{not json" if i % 100 == 99 else json.dumps(body).encode()
def record(i, data):
    return {"kinesis": {"partitionKey": str(i), "sequenceNumber": str(i),
            "data": base64.b64encode(data).decode()}, "eventID": f"shardId-0:{i}"}
events = [{"Records": [record(i, payload(i)) for i in range(b, b + batch)]}
          for b in range(0, records, batch)]
service = handler.COLD_START.get()
service.sink, service.predictions_stream, service.errors_stream = NoSink(), "p", "e"
first = time.perf_counter()
handler.lambda_handler(events[0], Context(0))  # the first invocation: the rest of the cold start
cold = time.perf_counter() - first
started_warm = time.perf_counter()
for n, event in enumerate(events, 1):
    response = handler.lambda_handler(event, Context(n))
warm = time.perf_counter() - started_warm
sys.stdout.write("\\n" + json.dumps({"import_s": imported - started, "first_invoke_s": cold,
                                    "records_per_s": records / warm}) + "\\n")
"""


def extract_tree(revision: str, target: Path) -> Path:
    """``lambda_service`` as it was at ``revision``, in a folder of its own."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", revision, "lambda_service"],
        cwd=REPO, capture_output=True, check=True,
    ).stdout  # fmt: skip
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    return target


def measure(
    root: Path, bundle: Path, records: int, batch: int, cache: Path, packing: str = "plain"
) -> float:
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1", "LOG_LEVEL": "WARNING"}
    command = [sys.executable, "-c", MEASURE, str(bundle), str(records), str(batch), str(cache)]
    command.append(packing)
    result = subprocess.run(command, env=env, cwd=root, capture_output=True, text=True, check=True)
    return float(result.stdout.strip().splitlines()[-1])


def measure_handler(root: Path, bundle: Path, records: int, batch: int, cache: Path) -> dict:
    """One fresh process through ``lambda_handler``: its cold start and warm rate."""
    env = {
        **os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1", "LOG_LEVEL": "WARNING",
        "MODEL_BUNDLE_URI": str(bundle), "MODEL_CACHE_DIR": tempfile.mkdtemp(dir=cache),
    }  # fmt: skip
    for name in ("PREDICTIONS_STREAM_NAME", "ERRORS_STREAM_NAME", "AWS_ENDPOINT_URL"):
        env.pop(name, None)
    command = [sys.executable, "-c", MEASURE_HANDLER, str(bundle), str(records), str(batch)]
    result = subprocess.run(command, env=env, cwd=root, capture_output=True, text=True, check=True)
    figures: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return figures


def main_handler(args: argparse.Namespace, scratch: Path, bundle: Path) -> None:
    """``--entry handler``: cold start and per-batch time through ``lambda_handler``."""
    trees = {"current": REPO, "baseline": extract_tree(args.baseline, scratch / "baseline")}
    runs: dict[str, dict[int, list[dict]]] = {name: {b: [] for b in BATCHES} for name in trees}
    cache = scratch / "caches"
    cache.mkdir()
    for _ in range(args.rounds):  # A/B alternation: drift in machine load hits both alike
        for batch in BATCHES:
            for name, root in trees.items():
                runs[name][batch].append(measure_handler(root, bundle, args.records, batch, cache))

    def median(name: str, key: str, batch: int | None = None) -> float:
        chosen = runs[name][batch] if batch else [r for b in BATCHES for r in runs[name][b]]
        return statistics.median(r[key] for r in chosen)

    results: dict[str, object] = {
        "entry": "lambda_handler",
        "baseline_revision": args.baseline,
        "records": args.records,
        "rounds": args.rounds,
        "machine": f"{os.cpu_count()} cores",
        "date": time.strftime("%F"),
    }
    for name in trees:
        results[name] = {
            "cold_import_s_median": round(median(name, "import_s"), 4),
            "cold_import_s_max": round(
                max(r["import_s"] for b in BATCHES for r in runs[name][b]), 4
            ),
            "first_invoke_ms_median": round(median(name, "first_invoke_s") * 1000, 2),
            "records_per_s": {str(b): round(median(name, "records_per_s", b)) for b in BATCHES},
            "ms_per_batch": {
                str(b): round(b / median(name, "records_per_s", b) * 1000, 4) for b in BATCHES
            },
        }
    for name in trees:
        figures: dict = results[name]  # type: ignore[assignment]
        print(
            f"{name}: cold start import {figures['cold_import_s_median']:.3f} s "
            f"(max {figures['cold_import_s_max']:.3f}), first invocation "
            f"{figures['first_invoke_ms_median']:.1f} ms"
        )
    for batch in BATCHES:
        current = median("current", "records_per_s", batch)
        baseline = median("baseline", "records_per_s", batch)
        results[f"current_over_baseline_{batch}"] = round(current / baseline, 3)
        print(
            f"batch {batch}: {batch / current * 1000:.3f} ms per batch now ({current:,.0f} "
            f"records/s), {batch / baseline * 1000:.3f} ms at {args.baseline} "
            f"({current / baseline:.2f}x the rate)"
        )
    ENTRY_RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"-> {ENTRY_RESULTS}")


def trained_bundle(home: Path) -> Path:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STUDPERF_", "MLFLOW_"))}
    env |= {"STUDPERF_HOME": str(home)}
    subprocess.run(
        [sys.executable, "-m", "studperf_assets.cli", "train"],
        env=env, cwd=REPO, capture_output=True, check=True,
    )  # fmt: skip
    return next((home / "model_store" / "bundles").iterdir())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", default="e4d80cc")
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--entry",
        choices=["service", "handler"],
        default="service",
        help="service: PredictionService.handle_kinesis (and KPL); handler: lambda_handler, "
        "with the cold start",
    )
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="studperf-handler-"))
    bundle = trained_bundle(scratch / "home")
    if args.entry == "handler":
        main_handler(args, scratch, bundle)
        return
    trees = {"current": REPO, "baseline": extract_tree(args.baseline, scratch / "baseline")}
    runs = [*trees, "current_kpl"]
    rates: dict[str, dict[int, list[float]]] = {name: {b: [] for b in BATCHES} for name in runs}
    for _ in range(args.rounds):  # A/B alternation: drift in machine load hits both alike
        for batch in BATCHES:
            for name, root in trees.items():
                rate = measure(root, bundle, args.records, batch, scratch / f"cache-{name}")
                rates[name][batch].append(rate)
            rate = measure(REPO, bundle, args.records, batch, scratch / "cache-current", "kpl")
            rates["current_kpl"][batch].append(rate)
    results = {
        "baseline_revision": args.baseline,
        "records": args.records,
        "rounds": args.rounds,
        "machine": f"{os.cpu_count()} cores",
        "date": time.strftime("%F"),
        "records_per_s": {
            name: {str(b): round(statistics.median(r)) for b, r in by_batch.items()}
            for name, by_batch in rates.items()
        },
    }
    for batch in BATCHES:
        current = statistics.median(rates["current"][batch])
        baseline = statistics.median(rates["baseline"][batch])
        kpl = statistics.median(rates["current_kpl"][batch])
        results[f"current_over_baseline_{batch}"] = round(current / baseline, 3)
        results[f"kpl_over_plain_{batch}"] = round(kpl / current, 3)
        print(
            f"batch {batch}: {current:,.0f} records/s now, {baseline:,.0f} at {args.baseline} "
            f"({current / baseline:.2f}x); as KPL aggregates {kpl:,.0f} user records/s "
            f"({kpl / current:.2f}x plain)"
        )
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"-> {RESULTS}")


if __name__ == "__main__":
    main()
