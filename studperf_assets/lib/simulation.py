"""Synthetic students for traffic, drift scenarios and retraining.

The generator is fitted on the **training split only**: validation and test rows must not
leak into retraining or into the champion check's evaluation. Features are resampled
from training rows with jitter; GPA comes from the relation fitted on them (linear, plus
Gaussian noise of the residual spread) and GradeClass from GPA's cut-offs, so labels stay
consistent with features. A population drift changes the features before GPA is drawn
(labels follow); a raw shift changes them after (labels do not: an alert-only scenario).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from lambda_service.schema import FEATURE_NAMES, FEATURES
from studperf_assets.lib.data import GPA, ID, RAW_COLUMNS, TARGET, grade_from_gpa

FIRST_SYNTHETIC_ID = 1_000_000  # far above the dataset's 1001-3392


@dataclass(frozen=True)
class Drift:
    """Population drift (labels follow) and raw shifts (labels do not)."""

    absences_added: float = 0.0
    study_time_factor: float = 1.0
    raw_shift: dict[str, float] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Drift:
        """``absences=+8,study=0.5,raw:Music=1`` -> Drift."""
        values: dict[str, Any] = {"raw_shift": {}}
        for item in filter(None, (p.strip() for p in text.split(","))):
            key, _, value = item.partition("=")
            if key == "absences":
                values["absences_added"] = float(value)
            elif key == "study":
                values["study_time_factor"] = float(value)
            elif key.startswith("raw:") and key[4:] in FEATURE_NAMES:
                values["raw_shift"][key[4:]] = float(value)
            else:
                raise ValueError(
                    f"unknown drift setting {item!r} (absences=, study=, raw:<Feature>=)"
                )
        return cls(**values)


class StudentGenerator:
    def __init__(self, train: pd.DataFrame, seed: int = 0) -> None:
        from sklearn.linear_model import LinearRegression

        self.train = train.reset_index(drop=True)
        self.rng = np.random.default_rng(seed)
        X = self.train[list(FEATURE_NAMES)].to_numpy(dtype=float)
        self.gpa_model = LinearRegression().fit(X, self.train[GPA].to_numpy())
        self.sigma = float(np.std(self.train[GPA].to_numpy() - self.gpa_model.predict(X)))
        self.next_id = FIRST_SYNTHETIC_ID

    def sample(
        self, n: int, drift: Drift | None = None, first_id: int | None = None
    ) -> pd.DataFrame:
        """``n`` raw rows (all dataset columns), StudentIDs counting from ``first_id`` (a
        reserved block, see ``traffic.reserve_ids``) or from this generator's own counter."""
        drift = drift or Drift()
        rows = self.train.iloc[self.rng.integers(0, len(self.train), n)].reset_index(drop=True)
        out = rows[[c for c in RAW_COLUMNS if c in rows.columns]].copy()
        out["StudyTimeWeekly"] = np.clip(
            (out["StudyTimeWeekly"] + self.rng.normal(0, 0.5, n)) * drift.study_time_factor, 0, 20
        )
        jitter = self.rng.integers(-1, 2, n)
        out["Absences"] = np.clip(out["Absences"] + jitter + round(drift.absences_added), 0, 29)
        for column in ("ParentalEducation", "ParentalSupport"):
            move = np.where(self.rng.random(n) < 0.1, self.rng.integers(-1, 2, n), 0)
            out[column] = np.clip(out[column] + move, 0, 4)
        X = out[list(FEATURE_NAMES)].to_numpy(dtype=float)
        gpa = self.gpa_model.predict(X) + self.rng.normal(0, self.sigma, n)
        out[GPA] = np.clip(gpa, 0.0, 4.0)
        out[TARGET] = grade_from_gpa(out[GPA])
        for column, delta in drift.raw_shift.items():
            feature = next(f for f in FEATURES if f.name == column)
            out[column] = np.clip(out[column] + delta, feature.minimum, feature.maximum)
        start = self.next_id if first_id is None else first_id
        out[ID] = np.arange(start, start + n)
        self.next_id = max(self.next_id, start + n)
        for spec in FEATURES:
            if spec.kind == "int":
                out[spec.name] = out[spec.name].round().astype("int64")
        return out[list(RAW_COLUMNS)]


def request_id_for(student_id: int) -> str:
    """The request ID the simulator gives a student's prediction (unique: IDs are reserved)."""
    return f"sim-{student_id}"


def messages(rows: pd.DataFrame) -> Iterator[dict[str, Any]]:
    """Input-stream messages in the reference format plus a ``request_id`` that the
    student's label will name (demographics included: the Lambda ignores them, as it must)."""
    student_columns = [c for c in RAW_COLUMNS if c not in (ID, GPA, TARGET)]
    for record in rows.to_dict(orient="records"):
        yield {
            "student_id": int(record[ID]),
            "request_id": request_id_for(int(record[ID])),
            "student": {c: _plain(record[c]) for c in student_columns},
        }


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
