"""studperf's Dagster code location and command line.

``definitions`` (the one ``Definitions``), ``deployment`` (the local/aws switch and every
setting), ``jobs``, ``assets/`` (ingestion, training, publishing, monitoring with their checks
and sensors), ``resources/``, ``lib/`` (pure logic), ``serving/`` (local stand-ins for Lambda's
plumbing), ``cli``/``demo``/``stack`` (``studperf`` commands, the scripted tour, ``studperf up``).
"""
