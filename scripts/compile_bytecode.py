"""Compile the bytecode of every module a studperf process imports, and nothing else.

These machines (and the images) set PYTHONDONTWRITEBYTECODE=1, so a module without compiled
bytecode is compiled from source by every process that imports it: every run, step, sensor
evaluation and code-server start. Compiling the whole environment would avoid that too, but
it doubles the bytecode on disk for modules no process loads (plotly's ~10,000 validators,
the test suites packages ship, sympy, the dev tools); so each kind of process is started
here, its imports are traced, and exactly those files are compiled.

Usage: python scripts/compile_bytecode.py   (run by ``make setup``)
"""

from __future__ import annotations

import importlib
import py_compile
import subprocess
import sys
from pathlib import Path

# What each kind of process imports: the code location, a monitoring step, a training step,
# the Dagster services, the stream consumer, the local AWS, the Evidently UI, the CLI.
ENTRY_POINTS = {
    "code location": ["studperf_assets.definitions", "studperf_assets.cli"],
    "monitoring": [
        "studperf_assets.lib.drift", "studperf_assets.resources.evidently_workspace",
        "evidently.ui.workspace",
    ],
    "training": [
        "studperf_assets.lib.models", "studperf_assets.lib.onnx_export",
        "studperf_assets.lib.bundle_builder", "studperf_assets.lib.mlflow_model",
        "dagster_mlflow.resources", "mlflow.sklearn", "mlflow.pyfunc", "skops.io",
        "matplotlib.pyplot",
    ],
    "dagster services": [
        "dagster._cli", "dagster._daemon.daemon", "dagster._grpc.server",
        "dagster_webserver.cli", "dagster_webserver.webserver", "dagster_graphql",
        "dagster_postgres", "dagster._core.execution.api",
    ],
    "serving": [
        "lambda_service.handler", "lambda_service.web", "uvicorn", "studperf_assets.local.stack",
    ],
    "local aws": [
        "studperf_assets.local.moto_server", "moto.server", "moto.s3.models",
        "moto.kinesis.models", "moto.ses.models",
    ],
    "evidently ui": ["evidently.cli", "evidently.ui.service.app"],
}  # fmt: skip

TRACE = """
import importlib, json, sys, warnings
warnings.filterwarnings("ignore")
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except Exception as exc:  # an optional entry point missing from this install
        print(f"skipped {name}: {type(exc).__name__}: {exc}", file=sys.stderr)
print(json.dumps(sorted({m.__file__ for m in list(sys.modules.values())
                         if getattr(m, "__file__", None) and m.__file__.endswith(".py")})))
"""


def imported_files(modules: list[str]) -> set[str]:
    """Every .py file a fresh process imports when it imports ``modules``."""
    result = subprocess.run(
        [sys.executable, "-c", TRACE, *modules], capture_output=True, text=True, check=True
    )
    sys.stderr.write(result.stderr)
    import json

    return set(json.loads(result.stdout.strip().splitlines()[-1]))


def main() -> None:
    """Trace one kind of process at a time and compile what it imported before tracing the
    next: the later traces then load the shared part (Dagster, pandas) from bytecode instead
    of compiling it again in memory."""
    importlib.invalidate_caches()
    compiled: set[str] = set()
    for modules in ENTRY_POINTS.values():
        for path in sorted(imported_files(modules) - compiled):
            if Path(path).is_file():
                py_compile.compile(path, doraise=False, quiet=1)
                compiled.add(path)
    print(f"compiled the bytecode of {len(compiled)} modules the studperf processes import")


if __name__ == "__main__":
    main()
