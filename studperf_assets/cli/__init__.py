"""The ``studperf`` command line: a thin layer over the code location and the one-machine
platform (``main``: the parser and every command; ``errors``: one-line errors; ``terminal``:
logging and progress; ``databases``: the databases ``init-db`` creates on a server). The
training job in process is ``studperf_assets.local.training_run``.

Imports are deferred per command: ``predict`` must start fast, so it never loads Dagster,
MLflow or scikit-learn.
"""

from studperf_assets.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
