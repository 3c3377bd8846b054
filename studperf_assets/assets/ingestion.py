"""Raw student data: loaded, schema-validated, and guarded by data checks."""

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    Config,
    MetadataValue,
    Output,
    asset,
    asset_check,
)
from dagster_aws.s3 import S3Resource
from pydantic import Field

from studperf_assets.constants import TRAINING_GROUP
from studperf_assets.lib import data
from studperf_assets.lib.labels import as_training_rows, without_superseded
from studperf_assets.lib.row_cap import cap_training_rows
from studperf_assets.resources.ground_truth import GroundTruth
from studperf_assets.resources.training_settings import TrainingSettings

GROUP = TRAINING_GROUP


class RawDataConfig(Config):
    source: str = Field(
        default="",
        description="CSV path or s3:// URI; empty means the dataset bundled with the package.",
    )
    include_production_labels: bool = Field(
        default=False,
        description="Append the labelled production rows that have arrived (retraining).",
    )


@asset(group_name=GROUP, kinds={"pandas", "csv"})
def raw_student_data(
    context: AssetExecutionContext,
    config: RawDataConfig,
    s3: S3Resource,
    ground_truth: GroundTruth,
    training_settings: TrainingSettings,
) -> Output[pd.DataFrame]:
    """The Kaggle students-performance CSV (El Kharoua 2024, CC BY 4.0), schema-validated,
    with the labelled production rows when retraining; at most
    ``training_settings.max_training_rows`` of them (``lib.row_cap``), so every later step
    is bounded.

    A missing column, a wrong type, an out-of-range value or an empty file fails here, with
    the column and rows named, before anything downstream runs.
    """
    source = config.source
    payload = data.read_source(source, s3.get_client() if source.startswith("s3://") else None)
    frame = data.parse_raw_csv(payload, source or "the bundled dataset")
    context.log.info(f"loaded {len(frame)} rows from {source or 'the bundled dataset'}")
    rows = pd.DataFrame(columns=list(data.RAW_COLUMNS))
    superseded = 0
    if config.include_production_labels:
        labels = ground_truth.database.training_labels()
        rows = as_training_rows(labels)  # one per student, the latest label; oldest first
        superseded = len(labels) - len(rows)
    capped = cap_training_rows(
        frame,
        rows,
        limit=training_settings.max_training_rows,
        production_share=training_settings.max_production_share,
        seed=training_settings.row_sample_seed,
    )
    frame = without_superseded(capped.file, capped.production)
    replaced = len(capped.file) - len(frame)
    if len(capped.production):  # validated like the file: labelled rows are training data too
        production_csv = capped.production.to_csv(index=False).encode()
        kept = data.parse_raw_csv(production_csv, "labelled rows")
        frame = pd.concat([frame, kept], ignore_index=True)
    elif capped.dropped_total:
        frame = frame.reset_index(drop=True)
    if config.include_production_labels:
        context.log.info(
            f"appended {len(capped.production)} of {len(rows)} labelled production rows "
            f"({superseded} earlier labels of the same students left out; {replaced} rows "
            "of the file superseded by production labels of the same StudentID)"
        )
    context.log.info(capped.summary())
    return Output(
        frame,
        metadata={
            "source": source or f"bundled:{data.BUNDLED_DATASET}",
            "source_sha256": data.sha256_bytes(payload),
            "rows": len(frame),
            "production_rows": len(capped.production),
            "production_labels_superseded": superseded,
            "file_rows_superseded": replaced,
            **{
                key: MetadataValue.json(value) if isinstance(value, dict) else value
                for key, value in capped.metadata().items()
            },
            "columns": MetadataValue.json(list(frame.columns)),
            "preview": MetadataValue.md(frame.head(5).to_markdown(index=False)),
        },
    )


@asset_check(asset=raw_student_data, blocking=True, description="Columns, types and ranges.")
def raw_schema_and_ranges(raw_student_data: pd.DataFrame) -> AssetCheckResult:
    problems = data.schema_problems(raw_student_data)
    return AssetCheckResult(
        passed=not problems, metadata={"problems": MetadataValue.json(problems[:20])}
    )


@asset_check(asset=raw_student_data, blocking=True, description="No missing values.")
def raw_no_nulls(raw_student_data: pd.DataFrame) -> AssetCheckResult:
    nulls = {str(c): int(n) for c, n in raw_student_data.isna().sum().items() if n}
    return AssetCheckResult(passed=not nulls, metadata={"null_counts": MetadataValue.json(nulls)})


@asset_check(asset=raw_student_data, blocking=True, description="Each StudentID once.")
def raw_unique_student_ids(raw_student_data: pd.DataFrame) -> AssetCheckResult:
    duplicates = data.duplicate_ids(raw_student_data)
    return AssetCheckResult(
        passed=not duplicates,
        metadata={"duplicates": len(duplicates), "examples": MetadataValue.json(duplicates[:10])},
    )


@asset_check(asset=raw_student_data, description="Every GradeClass is represented.")
def raw_class_balance(
    raw_student_data: pd.DataFrame, training_settings: TrainingSettings
) -> AssetCheckResult:
    shares = data.class_shares(raw_student_data)
    smallest = min(shares.values())
    return AssetCheckResult(
        passed=smallest >= training_settings.min_class_share,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "class_shares": MetadataValue.json({str(k): round(v, 4) for k, v in shares.items()}),
            "smallest_share": smallest,
            "threshold": training_settings.min_class_share,
        },
    )


@asset_check(
    asset=raw_student_data,
    description="GradeClass agrees with the GPA cut-offs (A >= 3.5, B >= 3.0, C >= 2.5, D >= 2.0).",
)
def raw_label_consistency(
    raw_student_data: pd.DataFrame, training_settings: TrainingSettings
) -> AssetCheckResult:
    """Disagreeing rows are label noise: they stay in val/test (honest, comparable scores)
    and are left out when fitting the classifier families (see
    docs/training.md#label-noise-what-training-does-with-it)."""
    consistent = data.label_consistent(raw_student_data)
    disagreeing = int((~consistent).sum())
    share = disagreeing / max(len(raw_student_data), 1)
    return AssetCheckResult(
        passed=share <= training_settings.max_label_disagreement,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "disagreeing_rows": disagreeing,
            "share": round(share, 4),
            "threshold": training_settings.max_label_disagreement,
            "crosstab_label_vs_gpa": MetadataValue.md(
                pd.crosstab(
                    raw_student_data[data.TARGET], data.grade_from_gpa(raw_student_data[data.GPA])
                )
                .rename_axis(index="GradeClass", columns="from GPA")
                .to_markdown()
            ),
        },
    )
