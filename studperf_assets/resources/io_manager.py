"""An IO manager that never pickles: Parquet for frames, skops for models, JSON for the rest.

Dagster's default IO manager pickles every output; a model store that insists on skops
should not keep pickles of the same models one folder over.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
from dagster import ConfigurableIOManager, InputContext, OutputContext
from pydantic import Field

from studperf_assets.lib.trained import TrainedModel


class SafeIOManager(ConfigurableIOManager):
    base_dir: str = Field(description="Folder for materialized asset values.")

    def _path(self, context: InputContext | OutputContext) -> Path:
        parts = list(context.asset_key.path)
        if context.has_asset_partitions:  # the asset's own partition, not the run's
            parts.append(context.asset_partition_key)
        return Path(self.base_dir, *parts)

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        path = self._path(context)
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        if isinstance(obj, pd.DataFrame):
            obj.to_parquet(path / "frame.parquet")
        elif (
            isinstance(obj, dict) and obj and all(isinstance(v, pd.DataFrame) for v in obj.values())
        ):
            for name, frame in obj.items():
                frame.to_parquet(path / f"{name}.frames.parquet")
        elif isinstance(obj, TrainedModel):
            _skops_dump(obj.pipeline, path / "model.skops")
            (path / "trained.json").write_text(json.dumps(obj.info(), indent=2))
        elif _is_estimator(obj):
            _skops_dump(obj, path / "estimator.skops")
        else:
            (path / "value.json").write_text(json.dumps(obj, indent=2, default=str))

    def load_input(self, context: InputContext) -> Any:
        path = self._path(context)
        if (path / "frame.parquet").exists():
            return pd.read_parquet(path / "frame.parquet")
        frames = sorted(path.glob("*.frames.parquet"))
        if frames:
            return {p.name.removesuffix(".frames.parquet"): pd.read_parquet(p) for p in frames}
        if (path / "trained.json").exists():
            info = json.loads((path / "trained.json").read_text())
            return TrainedModel.from_info(_skops_load(path / "model.skops"), info)
        if (path / "estimator.skops").exists():
            return _skops_load(path / "estimator.skops")
        return json.loads((path / "value.json").read_text())


def _is_estimator(obj: Any) -> bool:
    """A scikit-learn estimator, recognised without importing scikit-learn."""
    return type(obj).__module__.startswith("sklearn.") and hasattr(obj, "get_params")


# skops and scikit-learn are imported by the steps that store or load models, never when
# the code location loads.
def _skops_dump(obj: Any, path: Path) -> None:
    import skops.io as sio

    sio.dump(obj, path)


def _skops_load(path: Path) -> Any:
    from studperf_assets.lib.models import load_skops

    return load_skops(path)
