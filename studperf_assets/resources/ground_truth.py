"""Ground truth for monitoring and retraining: label files in, labels by prediction out.

Label files land in the monitoring store (``lib.labels`` names them by arrival time); each
is ingested into the monitoring database once, by whichever monitoring run sees it first.
Reads are incremental: a run lists only the files after the newest one handled, and looks
up the labels of its own predictions by ``request_id``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pandas as pd
from dagster import ConfigurableResource

from studperf_assets.lib.labels import (
    ARRIVAL_SLACK,
    MAX_LABEL_FILE_BYTES,
    REQUEST_ID,
    LabelFileError,
    arrived_keys,
    read_label_file,
    watermark_key,
)
from studperf_assets.resources.metrics_db import IngestedFile, MetricsDatabase
from studperf_assets.resources.object_store import ObjectStore


@dataclass
class LabelIntake:
    """What one ingestion pass found."""

    ingested: list[IngestedFile] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)  # file key -> problem

    @property
    def new_labels(self) -> int:
        return sum(f.new_labels for f in self.ingested)

    @property
    def duplicates(self) -> int:
        return sum(f.duplicates for f in self.ingested)

    @property
    def conflicts(self) -> list[str]:
        return sorted({r for f in self.ingested for r in f.conflicts})


class GroundTruth(ConfigurableResource):
    """Label files (object store) and the label index (monitoring database), together."""

    store: ObjectStore
    database: MetricsDatabase

    def ingest_new(self, now: datetime | None = None) -> LabelIntake:
        """Ingest every label file that has arrived and was not handled before. A file that
        cannot be used is recorded as rejected, with its problem, and never stalls a run."""
        start = self._rescan_from()
        handled = self.database.label_files_after(start)
        intake = LabelIntake()
        for key in arrived_keys(self.store, after=start, now=now):
            if key in handled:
                continue
            try:
                frame = read_label_file(self.store, key)
            except LabelFileError as error:
                if self.database.reject_label_file(key, error.problem):
                    intake.rejected[key] = error.problem
                continue
            done = self.database.ingest_labels(key, frame)
            if done is not None:
                intake.ingested.append(done)
        return intake

    def _rescan_from(self) -> str:
        newest = self.database.label_watermark()
        return watermark_key(newest - ARRIVAL_SLACK) if newest else ""

    def new_files(self, after: str, now: datetime | None = None) -> list[str]:
        """Arrived label files after a watermark key (for a sensor's cursor)."""
        return arrived_keys(self.store, after=after, now=now or datetime.now(UTC))

    def request_ids_in(self, key: str) -> set[str]:
        """The predictions a label file labels ({} for a file that cannot be read: the
        monitoring run that ingests it reports it)."""
        try:
            raw = self.store.get_bytes(key, max_bytes=MAX_LABEL_FILE_BYTES)
            frame = pd.read_parquet(io.BytesIO(raw), columns=[REQUEST_ID])
        except Exception:  # noqa: BLE001 - reported where it is ingested
            return set()
        return {str(r) for r in frame[REQUEST_ID].dropna()}

    def labels_for(self, partition: str) -> pd.DataFrame:
        return self.database.labels_for(partition)

    def usable_labels(self) -> int:
        return self.database.label_count()
