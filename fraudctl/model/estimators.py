"""The estimators fraudctl trains: their names (the one list the config, the CLI and training use), their
hyperparameters, and how each is built. Importing this module imports no scikit-learn.
"""

from __future__ import annotations

from typing import Any

from fraudctl.choices import ESTIMATORS, EstimatorName
from fraudctl.errors import BadInputError


# Hyperparameters, chosen on the handbook's validation weeks (four training weeks starting 2018-06-20,
# 06-27, 07-04 and 07-11, each tested on the week after its 7-day delay, mean average precision), never
# on the benchmark's test week (2018-08-08..14). See bench/bench_handbook.py for the figures.
#
# "gradient_boosting" is sklearn's exact-split GradientBoostingClassifier, not HistGradientBoosting: the
# latter bins every feature into at most 255 quantile bins, and the fraud signal lives in the far tail
# of amounts and amount ratios, a few bins wide. On the validation weeks that cost HistGradientBoosting
# about 0.035 average precision (0.682 against 0.718), for a fit that is ~5x faster.
HYPERPARAMETERS: dict[EstimatorName, dict[str, Any]] = {
    "gradient_boosting": {  # sklearn GradientBoostingClassifier: stochastic gradient boosting
        "n_estimators": 300,
        "learning_rate": 0.03,
        "max_depth": 5,
        "subsample": 0.7,  # row sampling per tree: the variance reduction that ~600 frauds a week need
        "max_features": 0.5,
        "min_samples_leaf": 50,
    },
    # LightGBM, the default: histogram-based like HistGradientBoosting, but the bins are a parameter
    # (max_bin), and it gives exact TreeSHAP contributions per prediction (pred_contrib), which alert reasons
    # need. The bins matter because the signal sits in the tails: on the validation weeks of seed 0, 255 bins
    # gave mean AP 0.713 against 0.726 with 1023 (CP@100 0.304 against 0.310). 100 trees, not issue 22's
    # 400: on the validation weeks of seeds 0-2 AP peaked at 100-200 trees and fell slowly after, and a
    # prediction costs about a seventh (2.6 against 18.5 ms of CPU per 1000 rows). Learning rate 0.1 lost
    # 0.010-0.018 AP, min_child_samples 200 and num_leaves 15 were mixed, seed by seed (README, issue 22
    # round 2; bench/handbook_validation.py).
    "lightgbm": {
        "n_estimators": 100,
        "learning_rate": 0.03,
        "num_leaves": 31,
        "max_depth": 6,
        "max_bin": 1023,
        "subsample": 0.7,
        "subsample_freq": 1,
        "colsample_bytree": 0.5,
        "min_child_samples": 50,
        "n_jobs": 1,  # the scorer and the Celery worker share the host; one thread each is predictable
        "verbose": -1,
    },
    "random_forest": {"n_estimators": 200, "max_depth": 20, "min_samples_leaf": 1, "n_jobs": -1},
    "logistic_regression": {"C": 1.0, "max_iter": 2000},
}

def make_estimator(name: str, random_state: int = 0, **overrides: Any):
    """A fresh scikit-learn estimator taking the feature columns (a DataFrame) and giving predict_proba."""
    params = {**HYPERPARAMETERS.get(name, {}), **overrides}
    if name == "gradient_boosting":
        from sklearn.ensemble import GradientBoostingClassifier

        return GradientBoostingClassifier(random_state=random_state, **params)
    if name == "lightgbm":
        from lightgbm import LGBMClassifier

        return LGBMClassifier(random_state=random_state, **params)
    if name == "random_forest":
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(random_state=random_state, **params)
    if name == "logistic_regression":
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import StandardScaler

        # Counts (up to ~150) and amounts (up to thousands) beside 0/1 flags: unscaled, the solver
        # converges slowly and the penalty weighs the features unevenly.
        return Pipeline([("scale", StandardScaler()),
                         ("classify", LogisticRegression(random_state=random_state, **params))])
    raise BadInputError(f"unknown estimator {name!r}; choose one of {', '.join(ESTIMATORS)}")


def hyperparameters(estimator) -> dict[str, Any]:
    """The parameters worth logging (scalars only), without the pipeline plumbing."""
    params = estimator.get_params(deep=True)
    return {k: v for k, v in params.items() if isinstance(v, (int, float, str, bool, type(None)))}
