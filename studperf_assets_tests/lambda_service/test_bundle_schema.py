"""A bundle is served only against the serving schema.

- Its manifest's feature schema must be the serving schema (``schema.FEATURES``): names,
  order, kinds and ranges. A manifest that narrowed Absences to [0, 1] passed the smoke test
  (drawn from the manifest's own schema) and then ``predict`` scored 4 of 20 rows.
- The smoke set comes from the serving schema, and a range it cannot draw from is a message
  naming the field and the range, not ``OverflowError: Range exceeds valid bounds``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lambda_service.bundle import MANIFEST_FILE, BundleError, Manifest
from lambda_service.model_provider import ModelProvider
from lambda_service.predictor import Predictor
from lambda_service.schema import FEATURES, Feature
from lambda_service.smoke import smoke_rows


def edited_schema(trained: Path, where: Path, edit: Any) -> Path:
    """A copy of a real bundle whose manifest's ``features`` were changed by ``edit``."""
    shutil.copytree(trained, where)
    manifest = json.loads((where / MANIFEST_FILE).read_text())
    edit(manifest["features"])
    (where / MANIFEST_FILE).write_text(json.dumps(manifest))
    return where


def _set(index: int, **changes: Any) -> Any:
    return lambda features: features[index].update(changes)


ABSENCES = 2
# (edit of the manifest's features, what the refusal must say)
SCHEMA_CHANGES = {
    "narrowed range": (_set(ABSENCES, maximum=1), r"Absences: range \[0, 1\].* \[0, 29\]"),
    "widened range": (_set(ABSENCES, maximum=1e308), r"Absences: range \[0, 1e\+308\]"),
    "reversed range": (_set(ABSENCES, minimum=29, maximum=0), r"Absences: range \[29, 0\]"),
    "infinite range": (_set(ABSENCES, minimum=-1e308, maximum=1e308), r"Absences: range"),
    "kind": (_set(ABSENCES, kind="float"), r"Absences: kind 'float'.* 'int'"),
    "renamed": (_set(ABSENCES, name="Absence"), r"feature 3 is 'Absence'.*'Absences'"),
    "reordered": (
        lambda f: f.insert(0, f.pop(ABSENCES)),
        r"feature 1 is 'Absences'.*'ParentalEducation'",
    ),
    "one missing": (lambda f: f.pop(), r"8 features.*9 .*Volunteering"),
    "one extra": (
        lambda f: f.append({"name": "Age", "kind": "int", "minimum": 15, "maximum": 18}),
        r"10 features.*9 .*Age",
    ),
    "not a number": (_set(ABSENCES, maximum="lots"), r"Absences: .*'lots'"),
    "not a feature": (lambda f: f.__setitem__(ABSENCES, "Absences"), r"feature 3 .*'Absences'"),
}


@pytest.mark.parametrize("change", SCHEMA_CHANGES)
def test_a_bundle_whose_schema_is_not_the_serving_schema_is_refused_at_load(
    trained_bundle: tuple[Path, Manifest], tmp_path: Path, change: str
) -> None:
    """Before: a narrowed (or any) manifest schema loaded and its smoke test passed; a
    widened or reversed one failed with OverflowError / 'high - low < 0'."""
    edit, message = SCHEMA_CHANGES[change]
    bundle = edited_schema(trained_bundle[0], tmp_path / "bundle", edit)
    for load in (
        lambda: Predictor.from_folder(bundle),
        lambda: Predictor.from_uri(str(bundle), tmp_path / "cache"),
        lambda: ModelProvider(str(bundle), tmp_path / "provider"),
    ):
        with pytest.raises(BundleError, match=message) as refused:
            load()
        assert "serving schema" in str(refused.value)
        assert "Error:" not in str(refused.value)  # no exception name: a sentence


def test_the_served_schema_is_the_serving_schema(trained_bundle: tuple[Path, Manifest]) -> None:
    predictor = Predictor.from_folder(trained_bundle[0])
    assert predictor.features == FEATURES


@pytest.mark.parametrize(
    ("feature", "message"),
    [
        (Feature("Absences", "int", 0, -1), r"Absences: range \[0, -1\]: the minimum is above"),
        (Feature("Absences", "int", -1e308, 1e308), r"Absences: range \[-1e\+308, 1e\+308\]"),
        (Feature("Absences", "int", 0, float("inf")), r"Absences: range \[0, inf\]"),
        (Feature("Absences", "int", float("nan"), 1), r"Absences: range \[nan, 1\]"),
        (Feature("Absences", "count", 0, 1), r"Absences: kind 'count'"),
    ],
)
def test_a_range_the_smoke_set_cannot_draw_from_is_named(feature: Feature, message: str) -> None:
    """Before: OverflowError 'Range exceeds valid bounds', ValueError 'high - low < 0'."""
    with pytest.raises(ValueError, match=message):
        smoke_rows([feature])


def test_the_smoke_set_of_the_serving_schema_is_within_it() -> None:
    rows = smoke_rows(FEATURES)
    assert rows.shape[1] == len(FEATURES)
    for column, feature in zip(rows.T, FEATURES, strict=True):
        assert feature.minimum <= column.min() and column.max() <= feature.maximum
        assert {feature.minimum, feature.maximum} <= set(np.unique(column).tolist())
