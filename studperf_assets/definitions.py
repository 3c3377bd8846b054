"""The one Definitions object of the studperf code location.

The deployment (``STUDPERF_DEPLOYMENT``: local or aws, and every other setting) is read
once, here; everything else receives it as parameters (see ``deployment``).
"""

from __future__ import annotations

from dagster import Definitions, load_asset_checks_from_modules, load_assets_from_modules

from studperf_assets.assets import ingestion, monitoring, publishing, reports, training
from studperf_assets.deployment import Deployment
from studperf_assets.jobs import JOBS
from studperf_assets.resources import resources_for
from studperf_assets.sensors import build_sensors

ASSET_MODULES = [ingestion, training, publishing, monitoring, reports]


def make_definitions(deployment: Deployment) -> Definitions:
    return Definitions(
        assets=load_assets_from_modules(ASSET_MODULES),
        asset_checks=load_asset_checks_from_modules(ASSET_MODULES),
        jobs=JOBS,
        sensors=build_sensors(deployment.sensors_running, deployment.sensor_interval_seconds),
        resources=resources_for(deployment),
    )


defs = make_definitions(Deployment.from_environment())
