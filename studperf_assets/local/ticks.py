"""A sensor's tick and the runs it asks for, in this process: what the Dagster daemon does
with them, for the scripted demo and the tests. (The running platform leaves it to the daemon;
``studperf_assets_tests/local/test_live_loop.py`` tests that path.)"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from dagster import (
    DagsterInstance,
    Definitions,
    ExecuteInProcessResult,
    RunRequest,
    SensorResult,
    SkipReason,
    build_sensor_context,
)


@dataclass
class Tick:
    """What one evaluation returned, and the cursor the next evaluation starts from."""

    sensor: str
    result: Any  # SensorResult | SkipReason | RunRequest | None
    cursor: str | None

    @property
    def run_requests(self) -> list[RunRequest]:
        if isinstance(self.result, SensorResult):
            return list(self.result.run_requests or [])
        return [self.result] if isinstance(self.result, RunRequest) else []

    @property
    def skip_message(self) -> str | None:
        if isinstance(self.result, SkipReason):
            return self.result.skip_message
        if isinstance(self.result, SensorResult) and self.result.skip_reason:
            return self.result.skip_reason.skip_message
        return None


def tick(
    definitions: Definitions,
    instance: DagsterInstance,
    resources: Mapping[str, Any],
    sensor: str,
    cursor: str | None = None,
    log_filter: logging.Filter | None = None,
) -> Tick:
    """Evaluate ``sensor`` once from ``cursor``, against the instance, with these resources.
    ``log_filter`` goes on the sensor's log (``events.ReadableEvents``: the demo's lines)."""
    with build_sensor_context(instance=instance, cursor=cursor, resources=resources) as context:
        if log_filter is not None:
            context.log.addFilter(log_filter)
        result = definitions.resolve_sensor_def(sensor)(context)
        after = context.cursor
    if isinstance(result, SensorResult) and result.cursor is not None:
        after = result.cursor
    return Tick(sensor, result, after)


def run_requested(
    definitions: Definitions,
    instance: DagsterInstance,
    requested: Tick,
    run_config: Mapping[str, Any] | None = None,
) -> Iterator[tuple[RunRequest, ExecuteInProcessResult]]:
    """Add the partitions the tick asks for, then run each request with its sensor's job
    (failures are returned, not raised). ``run_config`` is merged into each request's."""
    if isinstance(requested.result, SensorResult):
        for added in requested.result.dynamic_partitions_requests or []:
            names = list(getattr(added, "partition_keys", None) or [])
            instance.add_dynamic_partitions(str(added.partitions_def_name), names)
    sensor = definitions.resolve_sensor_def(requested.sensor)
    for request in requested.run_requests:
        job_name = request.job_name or sensor.job_name
        if job_name is None:
            raise ValueError(f"{requested.sensor} requested a run without naming a job")
        job = definitions.resolve_job_def(job_name)
        yield (
            request,
            job.execute_in_process(
                run_config={**(request.run_config or {}), **(run_config or {})},
                partition_key=request.partition_key,
                instance=instance,
                tags=request.tags,
                raise_on_error=False,
            ),
        )
