"""What a bundle's ONNX form must return to be served: checked on a fixed smoke set before a
bundle serves, and in part on every scored batch.

A bundle whose hashes verify can still be unable to serve: a graph that returns a label
outside the class labels crashed the consumer on every batch after the hot swap to it, and
NaN probabilities or probabilities that do not sum to one would be written out as
predictions. ``Predictor`` runs the smoke test when it loads a bundle (cold start, hot swap,
the training's integrity check, all alike), so no bundle that fails it ever scores.

On every batch only what costs nothing is checked, since checking values there measured 2-5 %
of the handler: the shapes (``check_shapes``), a label out of range (``Predictor`` reads a
label's letter from a dict, so a KeyError, never ``letters[-1]``) and a probability that is
not a number (the prediction's JSON refuses NaN). A model whose probabilities stop summing to
one only on inputs the smoke set misses is served as it is; the integrity check holds every
row of the data to all the rules.

The smoke set comes from the serving schema (``schema.FEATURES``), which a bundle's manifest
must repeat exactly (names, order, kinds, ranges) to be loaded at all: a manifest that
narrowed Absences to [0, 1] once passed a smoke test drawn from its own schema and then sent
most valid rows to errors. Every
feature at its minimum, at its maximum, at its midpoint, each feature alone at either end
with the others at their midpoints, and a few seeded random rows within range. Expected of
the output: one label per row, integral and in ``0 .. classes-1``; probabilities of shape
(rows, classes), finite, within [0, 1], each row summing to 1 (within ``SUM_TOLERANCE``);
and the label being the row's most probable class.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from lambda_service.bundle import BundleError
from lambda_service.schema import Feature

SUM_TOLERANCE = 1e-3  # float32 probabilities sum to 1 within ~1e-6; a broken model misses by far
RANGE_TOLERANCE = 1e-6
SMOKE_SEED = 20261127
SMOKE_RANDOM_ROWS = 8


class InvalidModelOutput(BundleError):
    """A bundle's ONNX form returned what cannot be served; the message says what."""


class UnusableSchema(ValueError):
    """A feature schema no smoke set can be drawn from; the message names the field."""


def check_ranges(features: Sequence[Feature]) -> None:
    """Refuse, naming the field and its range, what numpy reports as ``OverflowError:
    Range exceeds valid bounds`` or ``ValueError: high - low < 0``: an unknown kind, an end
    that is not finite, a minimum above the maximum, a range wider than a float holds."""
    for f in features:
        shown = f"{f.name}: range [{f.minimum:g}, {f.maximum:g}]"
        if f.kind not in ("int", "float"):
            raise UnusableSchema(f"{f.name}: kind {f.kind!r}; expected 'int' or 'float'")
        if not (math.isfinite(f.minimum) and math.isfinite(f.maximum)):
            raise UnusableSchema(f"{shown}: both ends must be finite numbers")
        if f.minimum > f.maximum:
            raise UnusableSchema(f"{shown}: the minimum is above the maximum")
        if not (math.isfinite(f.maximum - f.minimum) and math.isfinite(f.maximum + f.minimum)):
            raise UnusableSchema(f"{shown}: too wide to draw values from")


def smoke_rows(features: Sequence[Feature], random_rows: int = SMOKE_RANDOM_ROWS) -> np.ndarray:
    """The smoke set of a feature schema: (3 + 2 * features + random_rows, features) float32.
    UnusableSchema, naming the field and its range, for a range it cannot be drawn from."""
    check_ranges(features)
    low = np.array([f.minimum for f in features], dtype=np.float64)
    high = np.array([f.maximum for f in features], dtype=np.float64)
    integral = np.array([f.kind == "int" for f in features])
    middle = np.where(integral, np.floor((low + high) / 2), (low + high) / 2)
    rows = [low, high, middle]
    for index in range(len(features)):
        for end in (low, high):
            row = middle.copy()
            row[index] = end[index]
            rows.append(row)
    random = np.random.default_rng(SMOKE_SEED).uniform(low, high, (random_rows, len(features)))
    rows.extend(np.where(integral, np.round(random), random))
    return np.asarray(rows, dtype=np.float32)


def check_shapes(labels: Any, probabilities: Any, rows: int, classes: int) -> None:
    """What every batch's output must be before it is read: one label per row and a row
    of probabilities per class (attribute compares: free). InvalidModelOutput otherwise."""
    shapes = (getattr(labels, "shape", None), getattr(probabilities, "shape", None))
    if shapes != ((rows,), (rows, classes)):
        raise InvalidModelOutput("; ".join(output_problems(labels, probabilities, rows, classes)))


def output_problems(
    labels: Any, probabilities: Any, rows: int, classes: int, most_probable: bool = True
) -> list[str]:
    """Everything wrong with a model's output for ``rows`` rows ([] when nothing is)."""
    labels, probabilities = np.asarray(labels), np.asarray(probabilities)
    problems = []
    if labels.shape != (rows,):
        problems.append(f"labels of shape {labels.shape}, expected ({rows},)")
    elif labels.dtype.kind not in "iuf" or (
        labels.dtype.kind == "f" and not np.all(np.isfinite(labels) & (labels % 1 == 0))
    ):
        problems.append(f"labels that are not integers ({labels.dtype}: {labels[:3].tolist()})")
    elif rows and ((labels < 0) | (labels >= classes)).any():
        bad = np.flatnonzero((labels < 0) | (labels >= classes))
        problems.append(
            f"label {labels[bad[0]]:g} outside 0..{classes - 1} in {len(bad)} of {rows} rows"
        )
    if probabilities.shape != (rows, classes):
        problems.append(f"probabilities of shape {probabilities.shape}, expected {(rows, classes)}")
        return problems
    if probabilities.dtype.kind != "f":
        problems.append(f"probabilities of type {probabilities.dtype}")
        return problems
    finite = np.isfinite(probabilities).all(axis=1)
    if not finite.all():
        problems.append(f"probabilities not finite (NaN or infinite) in {(~finite).sum()} rows")
    valid = probabilities[finite]
    low, high = -RANGE_TOLERANCE, 1 + RANGE_TOLERANCE
    if valid.size and ((valid < low) | (valid > high)).any():
        problems.append(f"probabilities outside [0, 1] (from {valid.min():g} to {valid.max():g})")
    sums = valid.sum(axis=1)
    if sums.size and (np.abs(sums - 1) > SUM_TOLERANCE).any():
        worst = sums[np.argmax(np.abs(sums - 1))]
        problems.append(f"probabilities of a row summing to {worst:g}, not 1")
    if most_probable and not problems and rows:
        chosen = probabilities[np.arange(rows), labels.astype(np.int64)]
        off = np.flatnonzero(chosen < probabilities.max(axis=1) - RANGE_TOLERANCE)
        if off.size:
            problems.append(f"the label is not the most probable class in {off.size} rows")
    return problems
