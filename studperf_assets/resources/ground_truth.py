"""Ground truth for monitoring and retraining: label files in, labels by prediction out.

Label files land in the monitoring store under ``labels/``; each version of a file is
ingested into the monitoring database once (or rejected once, with its problem), by
whichever monitoring run sees it first. A run lists the folder and reads only the file
versions the database has not seen: what is new is decided by the ledger of handled files
(key and version: S3's ETag, or size and mtime_ns in a folder), never by a writer's clock.
A file rejected once (a copy caught half-written) is read again when it is rewritten; an
unchanged one never is. Labels are keyed by request_id, so a file read again adds only
what it has new (the rest count as duplicates or conflicts).
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pandas as pd
from dagster import ConfigurableResource

from studperf_assets.lib.labels import (
    MAX_LABEL_FILE_BYTES,
    REQUEST_ID,
    LabelFileError,
    ObjectChanged,
    arrived_files,
    read_label_version,
)
from studperf_assets.resources.metrics_db import IngestedFile, LabelFileRefused, MetricsDatabase
from studperf_assets.resources.monitoring_schema import key_problem, printable_key
from studperf_assets.resources.object_store import ObjectStore

# Label files one run reads at most (each up to 128 MiB): a backlog is worked off over runs.
MAX_FILES_PER_RUN = 200


@dataclass
class LabelIntake:
    """What one ingestion pass found."""

    ingested: list[IngestedFile] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)  # file key -> problem
    changing: list[str] = field(default_factory=list)  # changed while read: read next run

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

    def ingest_new(
        self, now: datetime | None = None, limit: int = MAX_FILES_PER_RUN
    ) -> LabelIntake:
        """Ingest every label file that has arrived and was not handled before (at most
        ``limit``, oldest name first; the rest wait for the next run). A file that cannot
        be used is recorded as rejected, with its problem, and never stalls a run."""
        intake = LabelIntake()
        for key, listed in self.unseen_versions(now)[:limit]:
            version = listed  # until the bytes judged say otherwise
            try:
                if unstorable := key_problem(key):
                    if not key.endswith(".parquet"):
                        unstorable = f"not a .parquet file; {unstorable}"
                    raise LabelFileError(printable_key(key), unstorable)
                frame, version = read_label_version(self.store, key)
                done = self.database.ingest_labels(key, frame, version)
            except ObjectChanged:  # still being written: its next version is read later
                intake.changing.append(printable_key(key))
                continue
            except (LabelFileError, LabelFileRefused) as error:
                version = getattr(error, "version", None) or version
                if self.database.reject_label_file(key, error.problem, version):
                    intake.rejected[printable_key(key)] = error.problem
                continue
            if done is not None:
                intake.ingested.append(done)
        return intake

    def unseen_versions(self, now: datetime | None = None) -> list[tuple[str, str]]:
        """(key, version) of the files under ``labels/`` that have arrived and whose
        version no run has ingested or rejected yet, sorted by key."""
        files = arrived_files(self.store, now=now or datetime.now(UTC))
        handled = self.database.label_file_states(files)
        return [(k, v) for k, v in files.items() if k not in handled]

    def unseen_files(self, now: datetime | None = None) -> list[str]:
        """The keys of ``unseen_versions``."""
        return [key for key, _ in self.unseen_versions(now)]

    def request_ids_in(self, key: str) -> set[str]:
        """The predictions a label file labels ({} for a file that cannot be read: the
        monitoring run that ingests it reports it)."""
        try:
            raw = self.store.get_bytes(key, max_bytes=MAX_LABEL_FILE_BYTES)
            frame = pd.read_parquet(io.BytesIO(raw), columns=[REQUEST_ID])
        except Exception:  # noqa: BLE001 - reported where it is ingested
            return set()
        return {str(r) for r in frame[REQUEST_ID].dropna()}

    def labels_of(self, request_ids: Iterable[str]) -> pd.DataFrame:
        """The labels of these predictions that have arrived (``MetricsDatabase.labels_of``)."""
        return self.database.labels_of(request_ids)

    def usable_labels(self) -> int:
        return self.database.label_count()
