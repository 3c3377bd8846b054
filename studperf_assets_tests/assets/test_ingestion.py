"""raw_student_data: the file and the labelled production rows, one row per student."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterInstance, materialize

from studperf_assets.assets import ingestion
from studperf_assets.deployment import Deployment
from studperf_assets.lib import data
from studperf_assets.lib.labels import AVAILABLE_AT, LABEL_COLUMNS, REQUEST_ID, label_key
from studperf_assets.resources import resources_for


@pytest.mark.integration
def test_a_production_label_of_a_student_in_the_file_supersedes_the_file_row(
    tmp_path: Path,
) -> None:
    """Field fault: a production label whose StudentID was also in the training CSV failed
    the blocking raw_unique_student_ids check of every later retraining. The production
    label is the newer observation of that student: it wins, and the file row it replaces
    is counted and logged."""
    resources = resources_for(Deployment(home=tmp_path))
    bundled = data.parse_raw_csv(data.bundled_dataset_path().read_bytes())
    shared = bundled.iloc[[0, 5]].copy()  # two students of the file, labelled in production
    shared["GradeClass"] = (shared["GradeClass"] + 1) % 5
    shared["GPA"] = [3.9 if g == 0 else 1.0 for g in shared["GradeClass"]]
    shared[REQUEST_ID] = ["r-shared-1", "r-shared-2"]
    shared[AVAILABLE_AT] = datetime.now(UTC) - timedelta(minutes=1)
    database = resources["ground_truth"].database
    database.ingest_labels(label_key(datetime.now(UTC)), shared[list(LABEL_COLUMNS)])
    instance = DagsterInstance.ephemeral()
    result = materialize(
        [ingestion.raw_student_data, ingestion.raw_unique_student_ids],
        resources=resources,
        instance=instance,
        run_config={"ops": {"raw_student_data": {"config": {"include_production_labels": True}}}},
    )
    assert result.success
    (check,) = result.get_asset_check_evaluations()
    assert check.passed, check.metadata
    frame = result.output_for_node("raw_student_data")
    assert len(frame) == len(bundled) and frame[data.ID].is_unique
    kept = frame.set_index(data.ID).loc[shared[data.ID], "GradeClass"]
    assert kept.tolist() == shared["GradeClass"].tolist()  # the production label won
    (materialization,) = result.asset_materializations_for_node("raw_student_data")
    metadata: dict[str, Any] = {k: v.value for k, v in materialization.metadata.items()}
    assert metadata["file_rows_superseded"] == 2
    logged = [e.user_message for e in instance.all_logs(result.run_id)]
    assert any("2 rows of the file superseded by production labels" in m for m in logged)
