"""The ``studperf`` command line: a thin layer over the code location and the one-machine
platform (``main``: the parser and every command; ``errors``: one-line errors; ``terminal``:
logging and progress; ``training_run``: the training job in process; ``databases``: the
databases ``init-db`` creates on a server).

Imports are deferred per command: ``predict`` must start fast, so it never loads Dagster,
MLflow or scikit-learn.
"""

from studperf_assets.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
