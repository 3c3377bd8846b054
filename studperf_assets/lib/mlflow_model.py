"""What a registered MLflow model carries so that it stands alone.

Not a requirement on ``studperf`` (it is not on PyPI: anyone could register the name, and
nothing could rebuild the model from it), but the code the pipeline's own classes live in
(``code_paths``: the two modules a studperf pipeline imports when it loads), and exact
requirements on published packages.
"""

from __future__ import annotations

import shutil
from importlib import metadata
from pathlib import Path
from typing import Any

from lambda_service.schema import GRADE_LETTERS

# Modules a pickled-free studperf pipeline needs at load time: GPAOrdinalClassifier and the
# schema constants it imports. Copied as packages so that the import paths stay the same.
MODEL_CODE = ("studperf_assets/lib/models.py", "lambda_service/schema.py")
PUBLISHED = ("scikit-learn", "skops", "numpy", "scipy", "pandas")
REPO = Path(__file__).resolve().parent.parent.parent


def code_paths(folder: Path) -> list[str]:
    """Minimal copies of the packages the model's classes live in, under ``folder``."""
    tops = []
    for module in MODEL_CODE:
        source = REPO / module
        target = folder / module
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        for parent in Path(module).parents:  # every package on the way needs an __init__
            if str(parent) != ".":
                (folder / parent / "__init__.py").touch()
        tops.append(str(folder / Path(module).parts[0]))
    return sorted(set(tops))


def requirements() -> list[str]:
    """Exact versions of the published packages the model needs, as installed now."""
    return [f"{name}=={metadata.version(name)}" for name in PUBLISHED]


def confusion_matrix_figure(matrix: list[list[int]]) -> Any:
    """The test split's confusion matrix as a matplotlib figure (true grade by row)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(4.5, 4))
    axis.imshow(matrix, cmap="Blues")
    ticks = range(len(GRADE_LETTERS))
    axis.set_xticks(ticks, GRADE_LETTERS)
    axis.set_yticks(ticks, GRADE_LETTERS)
    axis.set_xlabel("predicted grade")
    axis.set_ylabel("true grade")
    axis.set_title("test split")
    peak = max(max(row) for row in matrix) or 1
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            color = "white" if count > peak / 2 else "black"
            axis.text(j, i, str(count), ha="center", va="center", color=color)
    figure.tight_layout()
    return figure
