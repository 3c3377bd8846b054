"""Training beside a busy neighbour: native threads capped (studperf's default) or not.

On the running platform a training run shares the machine with the daemon, monitoring
runs and the stream consumer. This times one whole training run (the Dagster graph, in a
fresh process) on an idle machine and beside one process that keeps a core busy, with
``TrainingSettings.native_threads`` at 1 (the default) and at the core count (what OpenMP
and BLAS take when nobody caps them: the baseline). Figures go to
benchmarks/results/training_contention.json.

    python benchmarks/training_contention.py
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results" / "training_contention.json"

_TRAIN = """
import json, sys, time
from pathlib import Path
from dagster import DagsterInstance
from studperf_assets.definitions import make_definitions
from studperf_assets.deployment import Deployment
from studperf_assets.local.training_run import run_training
home, threads = sys.argv[1], int(sys.argv[2])
definitions = make_definitions(Deployment(home=Path(home), training={"native_threads": threads}))
started = time.perf_counter()
outcome = run_training(instance=DagsterInstance.ephemeral(), definitions=definitions)
assert outcome.success, outcome.failures
print(json.dumps({"seconds": time.perf_counter() - started}))
"""


def train(threads: int, busy_neighbour: bool) -> float:
    """Seconds of one training run (imports excluded) with the given native thread cap."""
    neighbour = (
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy_neighbour else None
    )
    try:
        with tempfile.TemporaryDirectory() as home:
            ours = ("STUDPERF_", "MLFLOW_")
            env = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
            env.pop("OMP_NUM_THREADS", None)
            done = subprocess.run(
                [sys.executable, "-c", _TRAIN, home, str(threads)],
                env=env, capture_output=True, text=True, check=True, cwd=REPO,
            )  # fmt: skip
            return float(json.loads(done.stdout.strip().splitlines()[-1])["seconds"])
    finally:
        if neighbour is not None:
            neighbour.kill()
            neighbour.wait()


def main() -> None:
    cores = os.cpu_count() or 1
    machine = f"{platform.machine()}, {cores} cores, Python {platform.python_version()}"
    figures: dict[str, Any] = {}
    for busy in (False, True):
        condition = "busy_neighbour" if busy else "idle"
        capped = train(1, busy)
        uncapped = train(cores, busy)
        figures[condition] = {
            "native_threads_1_s": round(capped, 1),
            f"native_threads_{cores}_s": round(uncapped, 1),
            "uncapped_over_capped": round(uncapped / capped, 2),
        }
        print(
            f"{condition:>15}: 1 thread {capped:6.1f} s | {cores} threads {uncapped:6.1f} s "
            f"| ratio {uncapped / capped:.2f}x"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": machine,
                **figures,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"written to {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
