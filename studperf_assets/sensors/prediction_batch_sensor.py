"""prediction_batch_sensor: every ``batch_size`` new predictions on the stream become a
partition of the monitoring assets and a run of ``monitoring_job``."""

import json
import re
from typing import Any

from dagster import RunRequest, SensorEvaluationContext, SensorResult, SkipReason

from studperf_assets.jobs import IN_PROCESS
from studperf_assets.partitions import prediction_batch_partitions
from studperf_assets.resources.monitoring import MonitoringSettings, PredictionStream

MAX_BATCHES_PER_TICK = 20
PARTITIONS_NAME = str(prediction_batch_partitions.name)
BATCH_KEY = re.compile(r"batch-(\d+)")


def batch_key(number: int) -> str:
    return f"batch-{number:06d}"


def last_batch_number(context: SensorEvaluationContext) -> int:
    """The highest batch number the instance knows: numbering continues after a restart
    with a new stream (or a lost cursor) instead of reusing a key."""
    keys = context.instance.get_dynamic_partitions(PARTITIONS_NAME)
    numbers = [int(m.group(1)) for k in keys if (m := BATCH_KEY.fullmatch(k))]
    return max(numbers, default=0)


def prediction_batch_sensor(
    context: SensorEvaluationContext,
    prediction_stream: PredictionStream,
    monitoring_settings: MonitoringSettings,
) -> SensorResult | SkipReason:
    """Every ``batch_size`` new predictions become a partition and a monitoring run.

    The cursor holds each shard's last sequence number; a partition's run is told the exact
    range it covers (the sensor reads to count, the run reads that range again), so batches
    never overlap and none is lost. A recreated stream starts over from its beginning."""
    state: dict[str, Any] = json.loads(context.cursor) if context.cursor else {}
    stream = prediction_stream.identity()
    positions: dict[str, str] = state.get("positions", {}) if state.get("stream") == stream else {}
    number = max(int(state.get("count", 0)), last_batch_number(context))
    requests, keys = [], []
    for _ in range(MAX_BATCHES_PER_TICK):
        records, after = prediction_stream.read(positions, limit=monitoring_settings.batch_size)
        if len(records) < monitoring_settings.batch_size:
            break
        number += 1
        key = batch_key(number)
        config = {"after": positions, "until": after}
        requests.append(
            RunRequest(
                run_key=key,
                partition_key=key,
                run_config={**IN_PROCESS, "ops": {"prediction_batches": {"config": config}}},
            )
        )
        keys.append(key)
        positions = after
    cursor = json.dumps({"stream": stream, "positions": positions, "count": number})
    if not requests:
        if cursor != context.cursor:
            context.update_cursor(cursor)
        return SkipReason(f"fewer than {monitoring_settings.batch_size} new predictions")
    return SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[prediction_batch_partitions.build_add_request(keys)],
        cursor=cursor,
    )
