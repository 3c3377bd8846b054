"""How fast does training read its CSV? ``parse_raw_csv`` on a large file, against a baseline
in the same run: the code as it was at an earlier commit (default: before the one CSV reader
and number parser), alternating fresh processes so that machine load hits both alike.

    python benchmarks/raw_csv.py [--baseline 1943bf5] [--rows 1000000] [--rounds 3]

The file is the bundled dataset repeated to ``--rows`` rows (StudentIDs made unique), written
as Excel writes "CSV UTF-8": a byte-order mark and CRLF line ends. Each run reports seconds
and peak memory (max RSS). Writes benchmarks/results/raw_csv.json.
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
RESULTS = REPO / "benchmarks" / "results" / "raw_csv.json"
TREES = ("lambda_service", "studperf_assets/__init__.py", "studperf_assets/lib")

# Runs in a fresh process whose sys.path starts with the tree under test.
MEASURE = """
import json, resource, sys, time
from pathlib import Path
from studperf_assets.lib.data import parse_raw_csv
payload = Path(sys.argv[1]).read_bytes()
started = time.perf_counter()
frame = parse_raw_csv(payload)
seconds = time.perf_counter() - started
assert len(frame) == int(sys.argv[2]), len(frame)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "peak_mb": peak}))
"""


def write_file(path: Path, rows: int) -> None:
    bundled = REPO / "studperf_assets" / "data" / "Student_performance_data.csv"
    header, *body = bundled.read_text().splitlines()
    with open(path, "w", encoding="utf-8-sig", newline="") as out:
        out.write(header + "\r\n")
        for i in range(rows):
            line = body[i % len(body)]
            out.write(f"{i + 1}{line[line.index(',') :]}\r\n")


def extract_tree(revision: str, target: Path) -> Path:
    """The modules ``parse_raw_csv`` needs, as they were at ``revision``."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", revision, *TREES],
        cwd=REPO, capture_output=True, check=True,
    ).stdout  # fmt: skip
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    return target


def measure(root: Path, path: Path, rows: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-c", MEASURE, str(path), str(rows)]
    result = subprocess.run(command, env=env, cwd=root, capture_output=True, text=True, check=True)
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", default="1943bf5")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="studperf-raw-csv-"))
    path = scratch / "students.csv"
    write_file(path, args.rows)
    trees = {"current": REPO, "baseline": extract_tree(args.baseline, scratch / "baseline")}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    for _ in range(args.rounds):  # A/B alternation
        for name, root in trees.items():
            runs[name].append(measure(root, path, args.rows))
    seconds = {n: statistics.median(r["seconds"] for r in measured) for n, measured in runs.items()}
    peak = {n: max(r["peak_mb"] for r in measured) for n, measured in runs.items()}
    ratio = seconds["current"] / seconds["baseline"]
    results = {
        "baseline_revision": args.baseline,
        "rows": args.rows,
        "file_mb": round(path.stat().st_size / 1e6, 1),
        "rounds": args.rounds,
        "machine": f"{os.cpu_count()} cores",
        "date": time.strftime("%F"),
        "seconds": {n: round(s, 2) for n, s in seconds.items()},
        "seconds_each_round": {n: [round(r["seconds"], 2) for r in m] for n, m in runs.items()},
        "peak_mb": {n: round(m) for n, m in peak.items()},
        "current_over_baseline": round(ratio, 3),
    }
    print(
        f"parse_raw_csv, {args.rows:,} rows: {seconds['current']:.2f} s now (peak "
        f"{peak['current']:.0f} MB), {seconds['baseline']:.2f} s at {args.baseline} (peak "
        f"{peak['baseline']:.0f} MB): {ratio:.2f}x"
    )
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"-> {RESULTS}")
    path.unlink()


if __name__ == "__main__":
    main()
