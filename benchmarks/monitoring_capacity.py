"""How much traffic the running stack monitors: `studperf up`, default intervals, one burst.

Baseline, in the same run: one batch alone (200 predictions), from `simulate` to its
monitoring run's SUCCESS. Then a burst of ``--batches`` batches at once (half calm, half
drifted), to the last run's SUCCESS. Printed (and written to
benchmarks/results/monitoring_capacity.json):

- seconds for the burst, batches and predictions monitored per minute;
- the burst over ``batches`` x the lone batch (below 1: runs overlap and queue well);
- alert e-mails sent for the burst (one per failing batch: the volume an on-call gets).

Usage: python benchmarks/monitoring_capacity.py [--batches 20]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from live_loop import REPO, Stack, running, successful_runs, wait_for

RESULTS = REPO / "benchmarks" / "results" / "monitoring_capacity.json"
BATCH = 200  # prediction_batch_sensor's batch size
DRIFT = "absences=8,study=0.5"


def monitored(instance: Any, count: int, timeout: float) -> float:
    """Wait until ``count`` monitoring runs have succeeded; returns when (time.time())."""
    wait_for(
        f"{count} monitoring runs",
        lambda: len(successful_runs(instance, "monitoring_job")) >= count,
        timeout,
    )
    return time.time()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batches", type=int, default=20, help="an even number")
    args = parser.parse_args()
    from dagster import DagsterInstance

    from studperf_assets.local.moto import sent_emails

    results: dict[str, Any] = {"machine": f"{os.cpu_count()} cores", "date": time.strftime("%F")}
    with running(Stack(Path(tempfile.mkdtemp(prefix="studperf-capacity-")) / "home")) as stack:
        instance = DagsterInstance.from_config(str(stack.home / "dagster"))
        started = time.time()
        stack.studperf("simulate", "--count", str(BATCH), "--seed", "1")
        lone = monitored(instance, 1, 300) - started
        print(f"one batch of {BATCH}: simulate -> monitoring SUCCESS in {lone:.1f}s (baseline)")

        half = args.batches // 2 * BATCH
        started = time.time()
        stack.studperf("simulate", "--count", str(half), "--seed", "2")
        stack.studperf("simulate", "--count", str(half), "--seed", "3", "--drift", DRIFT)
        burst = monitored(instance, 1 + args.batches, 60 * args.batches) - started
        time.sleep(35)  # two ticks of monitoring_alert_sensor after the last run
        emails = len(sent_emails(stack.env["AWS_ENDPOINT_URL"]))

    per_minute = args.batches / burst * 60
    ratio = burst / (args.batches * lone)
    results |= {
        "lone_batch_s": round(lone, 1),
        "burst_batches": args.batches,
        "burst_s": round(burst, 1),
        "batches_per_minute": round(per_minute, 1),
        "predictions_per_minute": round(per_minute * BATCH),
        "burst_over_batches_times_lone": round(ratio, 2),
        "alert_emails": emails,
    }
    print(
        f"{args.batches} batches ({args.batches * BATCH} predictions) at once: {burst:.1f}s; "
        f"{per_minute:.1f} batches ({per_minute * BATCH:,.0f} predictions) a minute"
    )
    print(f"burst / ({args.batches} x lone batch): {ratio:.2f}")
    print(f"alert e-mails for {args.batches // 2} drifted batches: {emails}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"-> {RESULTS}")


if __name__ == "__main__":
    main()
