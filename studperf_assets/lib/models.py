"""Candidate model families, their search spaces, and evaluation.

The family that wins here uses the structure of the problem: GradeClass is a binning of
GPA, and GPA (known only at training time) is a far richer target than five classes.
``GPAOrdinalClassifier`` regresses GPA on the features, models the residual as Gaussian,
and turns that into the probability of each GPA band: an ordinal model with known cut-offs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import ndtr
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression, Ridge, RidgeCV
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)
from sklearn.model_selection import ParameterGrid, ParameterSampler, StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import MinMaxScaler, PolynomialFeatures

from lambda_service.schema import FEATURE_NAMES, GPA_CUTOFFS, GRADE_LETTERS, SCALED_FEATURES

CLASSES = np.arange(len(GRADE_LETTERS))
RIDGE_ALPHAS = tuple(float(a) for a in np.logspace(-3, 2, 21))


class GPAOrdinalClassifier(ClassifierMixin, BaseEstimator):
    """Predict GradeClass through a GPA regression and Gaussian residuals.

    ``P(class k) = Phi((upper_k - mu) / sigma) - Phi((lower_k - mu) / sigma)`` where mu is
    the regressed GPA and sigma the residual spread on the training data.
    """

    def __init__(self, regressor: Any = None) -> None:
        self.regressor = regressor

    def fit(
        self, X: np.ndarray, y: np.ndarray | None, gpa: np.ndarray | None = None
    ) -> GPAOrdinalClassifier:
        if gpa is None:
            raise ValueError("GPAOrdinalClassifier needs the training GPA: fit(X, y, gpa=...)")
        gpa = np.asarray(gpa, dtype=np.float64)
        self.regressor_ = clone(self.regressor if self.regressor is not None else Ridge()).fit(
            X, gpa
        )
        residuals = gpa - self.regressor_.predict(X)
        self.sigma_ = float(max(np.std(residuals), 1e-6))
        self.classes_ = CLASSES.copy()
        return self

    def predict_gpa(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.regressor_.predict(X), dtype=np.float64)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        mu = self.predict_gpa(X)
        # P(GPA >= cut) for the A, B, C, D lower bounds, framed by 0 (above A) and 1 (F).
        at_least = ndtr((mu[:, None] - np.asarray(GPA_CUTOFFS)[None, :]) / self.sigma_)
        framed = np.hstack([np.zeros((len(mu), 1)), at_least, np.ones((len(mu), 1))])
        return np.diff(framed, axis=1)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.predict_proba(X).argmax(axis=1), dtype=np.int64)


# Types skops must be told to trust when loading a studperf pipeline.
TRUSTED_TYPES: tuple[str, ...] = (f"{GPAOrdinalClassifier.__module__}.GPAOrdinalClassifier",)


class UntrustedModelFile(RuntimeError):
    """A skops file that asks for types studperf does not know."""


def load_skops(path: Path | str) -> Any:
    """Load a skops file, trusting scikit-learn's defaults and studperf's own types only."""
    return load_skops_bytes(Path(path).read_bytes(), str(path))


def load_skops_bytes(data: bytes, source: str = "skops data") -> Any:
    """``load_skops`` for bytes (values the IO manager keeps in an object store)."""
    import skops.io as sio  # only model loaders pay for skops (monitoring runs need metrics)

    untrusted = sio.get_untrusted_types(data=data)
    unknown = sorted(set(untrusted) - set(TRUSTED_TYPES))
    if unknown:
        raise UntrustedModelFile(f"{source}: refuses to load unknown types {unknown}")
    return sio.loads(data, trusted=list(untrusted))


def make_scaler() -> ColumnTransformer:
    """MinMax on the four ordinal/continuous features; binary flags pass through."""
    scaled = [FEATURE_NAMES.index(name) for name in SCALED_FEATURES]
    return ColumnTransformer([("minmax", MinMaxScaler(), scaled)], remainder="passthrough")


@dataclass(frozen=True)
class CandidateSpec:
    family: str
    params: dict[str, Any]

    @property
    def name(self) -> str:
        return f"{self.family}[{json.dumps(self.params, sort_keys=True)}]"

    @property
    def uses_gpa(self) -> bool:
        return self.family == "gpa_ordinal"

    def build(self) -> Any:
        p = self.params
        if self.family == "gpa_ordinal":
            # The ridge penalty is tuned on the GPA regression itself (efficient
            # leave-one-out), a far steadier signal than f1 on a 15% validation split.
            steps: list[Any] = []
            if p["degree"] > 1:
                steps.append(
                    PolynomialFeatures(
                        p["degree"], interaction_only=p["interaction_only"], include_bias=False
                    )
                )
            steps.append(RidgeCV(alphas=RIDGE_ALPHAS))
            return GPAOrdinalClassifier(make_pipeline(*steps))
        if self.family == "logistic_regression":
            return LogisticRegression(C=p["C"], class_weight=p["class_weight"], max_iter=5000)
        if self.family == "hist_gradient_boosting":
            return HistGradientBoostingClassifier(random_state=0, **p)
        raise ValueError(f"unknown model family {self.family!r}")


def search_space(seed: int = 0, boosting_samples: int = 4) -> Iterator[CandidateSpec]:
    """The candidates, ranked by cross-validated f1-macro (grids; a random sample for trees)."""
    yield CandidateSpec("gpa_ordinal", {"degree": 1, "interaction_only": False})
    for p in ParameterGrid({"degree": [2], "interaction_only": [True, False]}):
        yield CandidateSpec("gpa_ordinal", dict(p))
    for p in ParameterGrid({"C": [0.1, 1.0, 10.0, 100.0], "class_weight": [None, "balanced"]}):
        yield CandidateSpec("logistic_regression", dict(p))
    boosting = {
        "learning_rate": [0.03, 0.1, 0.3],
        "max_depth": [2, 3, 5],
        "max_iter": [100, 200],
        "l2_regularization": [0.0, 1.0],
    }
    for p in ParameterSampler(boosting, n_iter=boosting_samples, random_state=seed):
        yield CandidateSpec("hist_gradient_boosting", dict(p))


@contextmanager
def native_threads(limit: int) -> Iterator[None]:
    """Cap the OpenMP and BLAS thread pools while fitting.

    Why: histogram gradient boosting runs many short OpenMP regions whose threads spin at
    each barrier. When another process holds a core (the daemon, a monitoring run, the
    consumer), that spinning turns a 15 s training into 90 s on two cores (7 min beside two
    busy processes). One thread per process is as fast when the machine is idle, and Dagster
    already runs steps and runs in processes of their own."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=limit):
        yield


def fit_candidate(spec: CandidateSpec, X: np.ndarray, y: np.ndarray, gpa: np.ndarray) -> Any:
    model = spec.build()
    if spec.uses_gpa:
        return model.fit(X, y, gpa=gpa)
    return model.fit(X, y)


CV_FOLDS = 5


def cross_validated_f1(
    spec: CandidateSpec,
    X: np.ndarray,
    y: np.ndarray,
    gpa: np.ndarray,
    label_ok: np.ndarray,
    folds: int = CV_FOLDS,
    seed: int = 42,
) -> tuple[float, float]:
    """Mean and spread of f1-macro over stratified folds (raw features; scaler per fold).

    Why not the validation split alone: its 359 rows (16 of them A) decide between
    near-tied candidates by chance; five folds over train + val do not. Classifier
    families fit without label-noise rows (``label_ok``), and every fold scores all rows.
    """
    scores = []
    for train, held_out in StratifiedKFold(folds, shuffle=True, random_state=seed).split(X, y):
        scaler = make_scaler().fit(X[train])
        keep = train if spec.uses_gpa else train[label_ok[train]]
        model = fit_candidate(spec, scaler.transform(X[keep]), y[keep], gpa[keep])
        predicted = model.predict(scaler.transform(X[held_out]))
        scores.append(
            f1_score(y[held_out], predicted, labels=CLASSES, average="macro", zero_division=0)
        )
    return float(np.mean(scores)), float(np.std(scores))


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[int] | None = None
) -> dict[str, Any]:
    """f1-macro, accuracy, per-class precision/recall/f1 and the confusion matrix, over
    ``classes`` (all five grades by default: a test set holds every grade)."""
    labels = [int(c) for c in (CLASSES if classes is None else classes)]
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    return {
        "f1_macro": float(
            f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)
        ),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "per_class": {
            GRADE_LETTERS[label]: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(labels)
        },
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def batch_quality(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    """``classification_metrics`` of a monitored batch, over the fixed label set A-F whatever
    subset the batch, its labels or its reference hold: five per-class entries and a 5x5
    confusion matrix, always. A grade in neither the batch's labels nor its predictions has
    no defined precision, recall or F1 (none of its students was missed, none wrongly given
    it): its entry says None, and the macro average is over the grades present, the figure
    Evidently's report shows; a batch without A students must not look like a collapse."""
    metrics = classification_metrics(y_true, y_pred)
    present = {int(v) for v in np.concatenate([y_true, y_pred])}
    f1s = [metrics["per_class"][GRADE_LETTERS[c]]["f1"] for c in sorted(present)]
    metrics["f1_macro"] = float(np.mean(f1s)) if f1s else None
    for label in CLASSES:
        if int(label) not in present:
            metrics["per_class"][GRADE_LETTERS[label]].update(precision=None, recall=None, f1=None)
    return metrics


def flat_metrics(metrics: dict[str, Any], prefix: str) -> dict[str, float]:
    """MLflow-friendly scalar metrics: f1_macro, accuracy and per-class f1/precision/recall."""
    flat = {f"{prefix}_f1_macro": metrics["f1_macro"], f"{prefix}_accuracy": metrics["accuracy"]}
    for letter, values in metrics["per_class"].items():
        for key in ("precision", "recall", "f1"):
            flat[f"{prefix}_{key}_{letter}"] = values[key]
    return flat


def make_pipeline_for(scaler: ColumnTransformer, model: Any) -> Pipeline:
    """The served pipeline: the fitted scaler then the fitted model."""
    return Pipeline([("scaler", scaler), ("model", model)])


def tuned_params(model: Any) -> dict[str, float]:
    """Hyper-parameters the model chose itself while fitting (for tracking)."""
    if isinstance(model, GPAOrdinalClassifier):
        return {
            "selected_alpha": float(model.regressor_[-1].alpha_),
            "residual_sigma": model.sigma_,
        }
    return {}
