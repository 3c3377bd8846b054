"""The studperf code location's definitions, built by functions.

Importing this module does no work and reads no environment. Dagster's loader calls ``defs``
(a lazy ``@definitions`` entry) when it loads the code location; that is the one place the
deployment (``STUDPERF_DEPLOYMENT`` and every other setting) is read from the environment.
The CLI, the demo and the tests call ``make_definitions`` with a deployment of their own.
"""

from __future__ import annotations

from dagster import (
    Definitions,
    definitions,
    load_asset_checks_from_modules,
    load_assets_from_modules,
)

from studperf_assets.assets import ingestion, monitoring, publishing, reports, rollup, training
from studperf_assets.deployment import Deployment
from studperf_assets.jobs import JOBS
from studperf_assets.resources import resources_for
from studperf_assets.schedules import build_schedules
from studperf_assets.sensors import build_sensors

ASSET_MODULES = [ingestion, training, publishing, monitoring, reports, rollup]


def make_definitions(deployment: Deployment) -> Definitions:
    """Assets, checks, jobs, sensors, schedules and resources for one deployment."""
    return Definitions(
        assets=load_assets_from_modules(ASSET_MODULES),
        asset_checks=load_asset_checks_from_modules(ASSET_MODULES),
        jobs=JOBS,
        sensors=build_sensors(deployment.sensors_running, deployment.sensor_interval_seconds),
        schedules=build_schedules(deployment.sensors_running),
        resources=resources_for(deployment),
    )


@definitions
def defs() -> Definitions:
    """The code location's entry (``workspace.yaml``, ``dagster dev -m``): this process's
    deployment, read from the environment when Dagster loads it."""
    return make_definitions(Deployment.from_environment())
