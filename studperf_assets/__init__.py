"""studperf: the Dagster code location, its command line and the one-machine platform.

The code location: ``definitions`` (built by a function), ``deployment`` (local or aws, and
every setting), ``jobs``, ``partitions``, ``constants``, ``assets/`` by domain with the checks
beside them, ``sensors/`` (one module per sensor), ``resources/``, and ``lib/`` (logic free of
Dagster wiring). Beside it, and never imported by it: ``cli/`` (the ``studperf`` command) and
``local/`` (``studperf up``, the demo, and the local stand-ins for AWS plumbing).
"""
