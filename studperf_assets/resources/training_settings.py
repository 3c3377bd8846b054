"""``TrainingSettings``: what the training checks enforce (quality floor, champion
tolerance, data thresholds), the rows a run fits, the size of the search, its native
threads, and the scratch folder for bundles."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field


class TrainingSettings(ConfigurableResource):
    quality_floor_f1: float = Field(
        default=0.55, description="Minimum validation f1-macro the best model must reach."
    )
    champion_tolerance: float = Field(
        # about one standard deviation of f1-macro across CV folds (measured 0.017-0.03):
        # a tighter bar rejects equally good models by chance
        default=0.02,
        description="A new bundle is promoted if its test f1-macro >= champion's - tolerance.",
    )
    max_label_disagreement: float = Field(
        default=0.10, description="Largest share of rows whose GradeClass contradicts GPA."
    )
    min_class_share: float = Field(
        default=0.02, description="Smallest share of rows any GradeClass may have."
    )
    max_training_rows: int = Field(
        # measured (docs/benchmarks.md#how-many-rows-pay): by 50,000 rows every family's test
        # f1 is within 0.002 of its score on 200,000; a run on a 1,000,000-row CSV then takes 69 s
        default=50_000,
        ge=1_000,
        description="Most rows a training run fits (the CSV's plus labelled production rows); "
        "over it, the most recent production labels and a seeded sample of the CSV's rows "
        "stratified by GradeClass (lib.row_cap). At least 1,000: every grade must reach "
        "every split and fold.",
    )
    max_production_share: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description="Over the row cap, the share of it the most recent production labels may "
        "take (more only when the CSV's rows cannot fill the rest), so the original "
        "population is never washed out.",
    )
    row_sample_seed: int = Field(
        default=42, description="Seed of the stratified sample taken over the row cap."
    )
    boosting_samples: int = Field(
        default=4, description="Random-search draws for the gradient-boosting family."
    )
    native_threads: int = Field(
        default=1,
        ge=1,
        description="OpenMP/BLAS threads a training step may use (models.native_threads says "
        "why 1: spinning threads slow training sixfold when another process holds a core).",
    )
    bundles_kept: int = Field(
        default=5,
        ge=0,
        description="After a promotion the model store keeps, besides every bundle a pointer "
        "names and the previous champion, this many of the newest other bundles; older "
        "bundles are deleted (their MLflow registry entries are kept).",
    )
    work_dir: str = Field(default=".studperf/work", description="Scratch folder for bundles.")

    @contextmanager
    def scratch(self, prefix: str) -> Iterator[Path]:
        """A fresh folder under work_dir, removed afterwards whatever happens."""
        root = Path(self.work_dir)
        root.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(dir=root, prefix=prefix))
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)
