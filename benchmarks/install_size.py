"""How big is an install, and how long does ``make setup`` take? Measured in one run for an
earlier revision (default: the one before the lean install) and for the working tree.

    python benchmarks/install_size.py [--baseline e4d80cc]

Each case is a fresh virtualenv in a temporary folder, installed the way ``make setup``
does (``uv pip install -c constraints.txt -e ".[dev]"``), with no bytecode, all of it
compiled, or the bytecode of what studperf processes import (``make setup`` now), plus the
runtime-only install (``pip install .``, no extras). uv's download cache is warm on this
machine, so the seconds are install time, not download time.
Writes benchmarks/results/install_size.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results" / "install_size.json"
UV = Path(sys.executable).parent / "uv"


def tree_at(revision: str | None, target: Path) -> Path:
    """The project's files at a revision (None: the working tree, tracked files only)."""
    if revision is None:
        files = subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard"],
            cwd=REPO, capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
        for name in files:
            if (REPO / name).is_file():
                (target / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / name, target / name)
        return target
    archive = subprocess.run(
        ["git", "archive", "--format=tar", revision], cwd=REPO, capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    return target


def megabytes(folder: Path) -> int:
    return int(
        subprocess.run(
            ["du", "-sm", str(folder)], capture_output=True, text=True, check=True
        ).stdout.split()[0]
    )


def install(tree: Path, venv: Path, target: str, bytecode: str) -> dict[str, float]:
    """``bytecode``: "none", "all" (uv --compile-bytecode) or "traced" (what make setup does
    now: scripts/compile_bytecode.py compiles what studperf processes import)."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    command = [str(UV), "pip", "install", "--python", python, "--quiet"]
    command += ["--compile-bytecode"] if bytecode == "all" else []
    command += ["-c", "constraints.txt", *target.split()]
    env = {**os.environ, "UV_LINK_MODE": "copy"}  # what a fresh machine gets: real files
    subprocess.run(command, cwd=tree, env=env, check=True)
    if bytecode == "traced":
        script = tree / "scripts" / "compile_bytecode.py"
        subprocess.run([python, str(script)], cwd=tree, env=env, check=True, capture_output=True)
    seconds = time.perf_counter() - started
    return {"megabytes": megabytes(venv), "seconds": round(seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", default="e4d80cc")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="studperf-install-"))
    trees = {
        args.baseline: tree_at(args.baseline, scratch / "baseline"),
        "now": tree_at(None, scratch / "now"),
    }
    cases = {
        f"{args.baseline} make setup (as it was: no bytecode)": (
            args.baseline,
            "-e .[dev]",
            "none",
        ),
        f"{args.baseline} make setup, all bytecode compiled": (args.baseline, "-e .[dev]", "all"),
        "now make setup (dev tools, bytecode of what runs)": ("now", "-e .[dev]", "traced"),
        "now make setup, all bytecode compiled": ("now", "-e .[dev]", "all"),
        "now runtime only (pip install ., bytecode of what runs)": ("now", ".", "traced"),
    }
    results: dict[str, object] = {"machine": f"{os.cpu_count()} cores", "date": time.strftime("%F")}
    for name, (tree, target, compiled) in cases.items():
        venv = scratch / f"venv-{len(results)}"
        figures = install(trees[tree], venv, target, compiled)
        results[name] = figures
        print(f"{name}: {figures['megabytes']:,} MB in {figures['seconds']} s")
        shutil.rmtree(venv)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"-> {RESULTS}")


if __name__ == "__main__":
    main()
