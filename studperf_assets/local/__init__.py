"""The one-machine platform: ``studperf up`` (``stack``, its ``events``, the Dagster
``instance`` and ``dagster dev``, the ``supervisor`` of its processes, the ``home_lock``),
the scripted tour (``demo``, with in-process sensor ``ticks``), and the local stand-ins for AWS
plumbing: moto (``moto``, ``moto_server``), the Kinesis event source mapping that calls
``lambda_handler`` (``poller``, its ``leases`` and ``stream_report``), the Lambda runtime it
calls it in (``lambda_runtime``: init phase, context object, where the handler's logs and
metrics go), Kinesis Data Firehose (``firehose``: the predictions archive), simulated
``traffic``, a part's size-rotated log (``rotating_log``) and a training run in process
(``training_run``).
Each stand-in says which AWS service it stands in for. Nothing in the code location imports
from here."""
