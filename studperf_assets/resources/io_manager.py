"""An IO manager that never pickles: Parquet for frames, skops for models, JSON for the rest.

Dagster's default IO manager pickles every output; a model store that insists on skops
should not keep pickles of the same models one folder over. Values go through an
``ObjectStore``, so the same code keeps them in a folder (local) or under an S3 prefix
(aws), each value beside a small ``_value.json`` that says how it was written.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pandas as pd
from dagster import ConfigurableIOManager, InputContext, OutputContext
from pydantic import Field

from studperf_assets.lib.trained import TrainedModel
from studperf_assets.resources.object_store import ObjectStore

DESCRIPTION = "_value.json"


class SafeIOManager(ConfigurableIOManager):
    store: ObjectStore
    prefix: str = Field(default="assets", description="Key prefix of the asset values.")

    def _key(self, context: InputContext | OutputContext) -> str:
        parts = [self.prefix, *context.asset_key.path]
        if context.has_asset_partitions:  # the asset's own partition, not the run's
            parts.append(context.asset_partition_key)
        return "/".join(parts)

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        key = self._key(context)
        if isinstance(obj, pd.DataFrame):
            kind, parts = "frame", {"frame.parquet": _parquet(obj)}
        elif (
            isinstance(obj, dict) and obj and all(isinstance(v, pd.DataFrame) for v in obj.values())
        ):
            kind = "frames"
            parts = {f"{name}.parquet": _parquet(frame) for name, frame in obj.items()}
        elif isinstance(obj, TrainedModel):
            kind = "trained_model"
            parts = {"model.skops": _skops(obj.pipeline), "trained.json": _json(obj.info())}
        elif _is_estimator(obj):
            kind, parts = "estimator", {"estimator.skops": _skops(obj)}
        else:
            kind, parts = "json", {"value.json": _json(obj)}
        for name, data in parts.items():
            self.store.put_bytes(f"{key}/{name}", data)
        # written last: a value is readable once its description names its parts
        self.store.put_bytes(f"{key}/{DESCRIPTION}", _json({"kind": kind, "parts": list(parts)}))

    def load_input(self, context: InputContext) -> Any:
        key = self._key(context)
        description = json.loads(self.store.get_bytes(f"{key}/{DESCRIPTION}"))
        kind, parts = description["kind"], description["parts"]

        def read(name: str) -> bytes:
            return self.store.get_bytes(f"{key}/{name}")

        if kind == "frame":
            return pd.read_parquet(io.BytesIO(read("frame.parquet")))
        if kind == "frames":
            return {n.removesuffix(".parquet"): pd.read_parquet(io.BytesIO(read(n))) for n in parts}
        if kind == "trained_model":
            info = json.loads(read("trained.json"))
            return TrainedModel.from_info(_load_skops(read("model.skops")), info)
        if kind == "estimator":
            return _load_skops(read("estimator.skops"))
        return json.loads(read("value.json"))


def _parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    return buffer.getvalue()


def _json(value: Any) -> bytes:
    return json.dumps(value, indent=2, default=str).encode()


def _is_estimator(obj: Any) -> bool:
    """A scikit-learn estimator, recognised without importing scikit-learn."""
    return type(obj).__module__.startswith("sklearn.") and hasattr(obj, "get_params")


# skops and scikit-learn are imported by the steps that store or load models, never when
# the code location loads.
def _skops(obj: Any) -> bytes:
    import skops.io as sio

    return bytes(sio.dumps(obj))


def _load_skops(data: bytes) -> Any:
    from studperf_assets.lib.models import load_skops_bytes

    return load_skops_bytes(data)
