"""The reference project's training approach, rebuilt for comparison on the same split.

hyperopt TPE, 32 evaluations over SVM, random forest, decision tree and XGBoost; MinMax
scaling of the four ordinal/continuous features; every row of train used as labelled;
the best configuration by validation f1-macro, then scored once on test.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hyperopt import STATUS_OK, Trials, fmin, hp, tpe
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import f1_score
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier
from xgboost import XGBClassifier

from studperf_assets.lib import data, models

SPACE = hp.choice(
    "classifier",
    [
        {"type": "svm", "C": hp.loguniform("svm_C", np.log(0.1), np.log(100)),
         "kernel": hp.choice("svm_kernel", ["linear", "rbf"])},
        {"type": "random_forest", "n_estimators": hp.quniform("rf_n", 50, 300, 25),
         "max_depth": hp.quniform("rf_depth", 3, 20, 1)},
        {"type": "decision_tree", "max_depth": hp.quniform("dt_depth", 2, 20, 1),
         "criterion": hp.choice("dt_criterion", ["gini", "entropy"])},
        {"type": "xgboost", "max_depth": hp.quniform("xgb_depth", 2, 10, 1),
         "learning_rate": hp.loguniform("xgb_lr", np.log(0.01), np.log(0.3)),
         "n_estimators": hp.quniform("xgb_n", 50, 300, 25)},
    ],
)  # fmt: skip


def build(params: dict[str, Any], seed: int) -> Any:
    kind = params["type"]
    if kind == "svm":
        return SVC(C=params["C"], kernel=params["kernel"], random_state=seed)
    if kind == "random_forest":
        return RandomForestClassifier(
            n_estimators=int(params["n_estimators"]),
            max_depth=int(params["max_depth"]),
            random_state=seed,
            n_jobs=1,
        )
    if kind == "decision_tree":
        return DecisionTreeClassifier(
            max_depth=int(params["max_depth"]), criterion=params["criterion"], random_state=seed
        )
    return XGBClassifier(
        max_depth=int(params["max_depth"]),
        learning_rate=params["learning_rate"],
        n_estimators=int(params["n_estimators"]),
        random_state=seed,
        n_jobs=1,
    )


def run(seed: int = 42, evaluations: int = 32) -> dict[str, Any]:
    raw = data.parse_raw_csv(data.bundled_dataset_path().read_bytes())
    splits = data.reference_split(data.select_features(raw))
    scaler = models.make_scaler().fit(data.feature_matrix(splits["train"]))
    X = {name: scaler.transform(data.feature_matrix(frame)) for name, frame in splits.items()}
    y = {name: frame[data.TARGET].to_numpy() for name, frame in splits.items()}

    def objective(params: dict[str, Any]) -> dict[str, Any]:
        model = build(params, seed).fit(X["train"], y["train"])
        score = f1_score(y["val"], model.predict(X["val"]), average="macro")
        return {"loss": -score, "status": STATUS_OK, "model": model, "params": params}

    trials = Trials()
    fmin(
        objective,
        SPACE,
        algo=tpe.suggest,
        max_evals=evaluations,
        trials=trials,
        rstate=np.random.default_rng(seed),
        show_progressbar=False,
    )
    best = min(trials.results, key=lambda r: r["loss"])
    return {
        "seed": seed,
        "best": best["params"]["type"],
        "val_f1_macro": -best["loss"],
        "test_f1_macro": float(
            f1_score(y["test"], best["model"].predict(X["test"]), average="macro")
        ),
    }
