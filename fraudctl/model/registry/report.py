"""The training report: one MLflow run per training, with what an operator and an auditor need.

Params (hyperparameters, windows, threshold policy, feature spec, data lineage), metrics (test and
validation, card precision@100 by day), four plots, permutation importances, the data window as dataset
inputs, lineage and git revision, the holdout (the featured test rows, `holdout/holdout.parquet`, which a
later promotion scores the champion on), and the model itself (skops, signature, input example, metadata:
feature spec and threshold). The version is registered as @challenger; version tags `fraudctl.*` carry what
the scorer needs without opening the run: the decision threshold, the feature spec version, the metrics.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fraudctl.contracts import CUSTOMER_ID, IS_FRAUD, TRANSACTION_ID, TX_DATETIME
from fraudctl.model.registry.client import (
    CHALLENGER, HOLDOUT_DIR, HOLDOUT_FILE, MODEL_ARTIFACT, TAG, TRUSTED_TYPES, Registry, quiet_mlflow,
)
from fraudctl.model.registry.contract import PREDICT_FN, SPEC_METADATA, THRESHOLD_METADATA, UntrustedModelError

if TYPE_CHECKING:
    import pandas as pd

    from fraudctl.model.training import LoadedData, TrainingResult

PLOTS_DIR = "plots"
PLOTS = ("pr_curve.png", "roc_curve.png", "score_distribution.png", "feature_importance.png")


def git_revision(start: Path | None = None) -> dict[str, str]:
    """The commit of the code that trained (and whether the tree had changes), or 'unknown'."""
    where = str(start or Path(__file__).resolve().parent)
    try:
        commit = subprocess.run(["git", "-C", where, "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=5)
        status = subprocess.run(["git", "-C", where, "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return {"commit": "unknown", "dirty": "unknown"}
    return {
        "commit": commit.stdout.strip() if commit.returncode == 0 else "unknown",
        "dirty": ("true" if status.stdout.strip() else "false") if status.returncode == 0 else "unknown",
    }


# ---------------------------------------------------------------------------------------- the run


def log_training(registry: Registry, result: "TrainingResult", data: "LoadedData | None" = None,
                 run_name: str | None = None) -> dict[str, Any]:
    """Log the run (params, metrics, plots, holdout, lineage, model) and register it as challenger."""
    import mlflow
    import mlflow.sklearn
    import sklearn
    import skops
    from mlflow.models import infer_signature

    registry.ensure_registered_model()  # also sets the URIs the mlflow module functions use
    with registry.errors("logging the training run"), quiet_mlflow():
        experiment = mlflow.set_experiment(registry.config.mlflow.experiment)
        untrusted = _skops_types(result)
        lineage = {
            "data": data.lineage() if data else None,
            "window": result.split.as_dict(),
            "features": result.spec.as_dict(),
            "git": git_revision(),
        }
        features = result.feature_names
        x_example = result.test[features].head(5).astype("float64")
        signature = infer_signature(x_example, result.model.predict_proba(x_example))
        with mlflow.start_run(run_name=run_name or f"{result.estimator}-{result.split.train_start}") as run:
            mlflow.log_params(_params(result, lineage))
            mlflow.log_metrics(_metrics(result))
            for step, value in enumerate(result.metrics.get("card_precision_at_100_daily", [])):
                mlflow.log_metric("test_card_precision_at_100_by_day", value, step=step)
            mlflow.set_tags(_run_tags(result, data, lineage))
            mlflow.log_dict(lineage, "lineage.json")
            mlflow.log_dict(result.summary(), "summary.json")
            _log_datasets(result, data)
            importances = permutation_importances(result)
            mlflow.log_dict(importances, "feature_importance.json")
            figures = make_figures(result, importances)
            try:
                for name, figure in figures.items():
                    mlflow.log_figure(figure, f"{PLOTS_DIR}/{name}")
            finally:
                figures_closed(figures)
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / HOLDOUT_FILE
                holdout_frame(result.test, features).to_parquet(path, index=False)
                mlflow.log_artifact(str(path), HOLDOUT_DIR)
            info = mlflow.sklearn.log_model(
                result.model, name=MODEL_ARTIFACT, signature=signature, input_example=x_example,
                pyfunc_predict_fn=PREDICT_FN, serialization_format="skops",
                skops_trusted_types=sorted(untrusted),
                # Explicit requirements: inference would load the model in a subprocess (slow, and
                # refused without MLFLOW_ALLOW_PICKLE_DESERIALIZATION).
                pip_requirements=[f"scikit-learn=={sklearn.__version__}", f"skops=={skops.__version__}",
                                  "pandas<3", "numpy", *_estimator_requirements(result)],
                metadata={SPEC_METADATA: result.spec.as_dict(), THRESHOLD_METADATA: result.threshold.threshold},
            )
        version = registry.register(info.model_uri, run.info.run_id, info.model_id, _version_tags(result, lineage))
    return {
        "name": registry.name, "version": version, "alias": CHALLENGER, "run_id": run.info.run_id,
        "experiment_id": experiment.experiment_id,
        "run_url": registry.run_url(experiment.experiment_id, run.info.run_id),
        "version_url": registry.version_url(version),
    }


def _estimator_requirements(result: "TrainingResult") -> list[str]:
    """The packages beyond scikit-learn the model needs to load: lightgbm, pinned to the version that trained it."""
    if result.estimator == "lightgbm":
        import lightgbm

        return [f"lightgbm=={lightgbm.__version__}"]
    return []


def _skops_types(result: "TrainingResult") -> set[str]:
    """The types skops must be told to trust to load the model; refuses a model needing any we do not trust."""
    import skops.io

    untrusted = set(skops.io.get_untrusted_types(data=skops.io.dumps(result.model)))
    if not untrusted <= set(TRUSTED_TYPES):
        raise UntrustedModelError(f"the {result.estimator} model holds types fraudctl does not trust to load: "
                                  f"{', '.join(sorted(untrusted - set(TRUSTED_TYPES)))}")
    return untrusted


def _run_tags(result: "TrainingResult", data: "LoadedData | None", lineage: dict[str, Any]) -> dict[str, str]:
    return {
        f"{TAG}git_commit": lineage["git"]["commit"], f"{TAG}git_dirty": lineage["git"]["dirty"],
        f"{TAG}feature_spec_version": str(result.spec.version),
        f"{TAG}estimator": result.estimator,
        f"{TAG}data_fingerprint": data.fingerprint if data else "",
        **{f"{TAG}warning_{i}": w[:500] for i, w in enumerate(result.warnings)},
    }


def _version_tags(result: "TrainingResult", lineage: dict[str, Any]) -> dict[str, str]:
    """What `fraudctl models` and the promotion read from a version without opening its run."""
    metrics = result.metrics
    return {
        f"{TAG}threshold": repr(result.threshold.threshold),
        f"{TAG}threshold_policy": result.threshold.policy,
        f"{TAG}feature_spec_version": str(result.spec.version),
        f"{TAG}estimator": result.estimator,
        f"{TAG}train_window": f"{result.split.train_start}..{result.split.train_end}",
        f"{TAG}test_window": f"{result.split.test_start}..{result.split.test_end}",
        f"{TAG}test_roc_auc": f"{metrics['roc_auc']:.6f}",
        f"{TAG}test_average_precision": f"{metrics['average_precision']:.6f}",
        f"{TAG}test_card_precision_at_100": f"{metrics['card_precision_at_100']:.6f}",
        f"{TAG}git_commit": lineage["git"]["commit"],
    }


def _params(result: "TrainingResult", lineage: dict[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {"estimator": result.estimator}
    params.update({f"model.{k}": v for k, v in result.params.items()})
    params.update({f"window.{k}": v for k, v in result.split.as_dict().items()})
    params.update({f"threshold.{k}": v for k, v in asdict(result.threshold).items() if k != "note"})
    params.update({f"features.{k}": v for k, v in result.spec.as_dict().items()})
    params["features.names"] = ",".join(result.feature_names)
    for key, value in (lineage.get("data") or {}).items():
        params[f"data.{key}"] = value
    # MLflow caps a param value at 6000 characters.
    return {k: (str(v)[:6000] if v is not None else "") for k, v in params.items()}

def _metrics(result: "TrainingResult") -> dict[str, float]:
    values: dict[str, float] = {"threshold": result.threshold.threshold,
                                "fit_seconds": result.fit_seconds, "train_total_seconds": result.total_seconds,
                                "train_transactions": float(len(result.train)),
                                "train_frauds": float(result.train[IS_FRAUD].sum())}
    for prefix, metrics in (("test_", result.metrics), ("validation_", result.validation_metrics or {})):
        for key, value in metrics.items():
            if isinstance(value, (int, float)):
                values[prefix + key] = float(value)
    return values

def _log_datasets(result: "TrainingResult", data: "LoadedData | None") -> None:
    """Record the training and test slices as MLflow dataset inputs: source, window, schema, digest.

    A metadata-only dataset: MLflow's pandas dataset would scan every row to infer the schema (about
    10 s for a week of transactions) and the rows are already described by the source fingerprint.
    """
    import hashlib

    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.types import ColSpec, DataType, Schema

    import mlflow

    if data is None:  # trained on an in-memory frame: nothing to point at
        return
    source = resolve_dataset_source(data.source)
    schema = Schema([ColSpec(DataType.string, TRANSACTION_ID), ColSpec(DataType.datetime, TX_DATETIME),
                     ColSpec(DataType.string, CUSTOMER_ID),
                     *[ColSpec(DataType.double, name) for name in result.feature_names],
                     ColSpec(DataType.long, IS_FRAUD)])
    window = result.split.as_dict()
    for context, frame, start, end in (("training", result.train, window["train_start"], window["train_end"]),
                                       ("test", result.test, window["test_start"], window["test_end"])):
        key = f"{data.fingerprint}|{context}|{start}|{end}|{len(frame)}"
        dataset = MetaDataset(source, name=f"{context} {start}..{end} ({len(frame)} rows)", schema=schema,
                              digest=hashlib.sha256(key.encode()).hexdigest()[:16])
        mlflow.log_input(dataset, context=context)



# ----------------------------------------------------------------------------------- holdout and plots


def holdout_frame(test: "pd.DataFrame", features: list[str]) -> "pd.DataFrame":
    """What a later comparison needs: ids for card precision, the day, the features, the label."""
    return test[[TRANSACTION_ID, TX_DATETIME, CUSTOMER_ID, *features, IS_FRAUD]].reset_index(drop=True)


def permutation_importances(result: "TrainingResult", max_rows: int = 20_000) -> dict[str, float]:
    """Average-precision drop when each feature is shuffled, on (a sample of) the test rows.

    One method for every estimator (HistGradientBoosting has no impurity importances), measured on the
    test rows because it describes the model, it selects nothing.
    """
    from sklearn.inspection import permutation_importance

    test = result.test
    if len(test) > max_rows:
        test = test.sample(max_rows, random_state=0)
    if test[IS_FRAUD].nunique() < 2:
        return {name: 0.0 for name in result.feature_names}
    found = permutation_importance(result.model, test[result.feature_names], test[IS_FRAUD].astype(int),
                                   scoring="average_precision", n_repeats=3, random_state=0)
    return {name: float(v) for name, v in zip(result.feature_names, found.importances_mean)}


def make_figures(result: "TrainingResult", importances: dict[str, float]) -> dict[str, Any]:
    """The four PNG plots of a training run, as matplotlib figures (Agg backend: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from sklearn.metrics import precision_recall_curve, roc_curve

    labels = result.test[IS_FRAUD].to_numpy().astype(int)
    scores = result.test["score"].to_numpy()
    threshold = result.threshold.threshold
    m = result.metrics
    last_day = result.split.test_end - dt.timedelta(days=1)
    title = f"{result.estimator}, test {result.split.test_start}..{last_day}"
    figures = {}

    fig, ax = plt.subplots(figsize=(6, 5))
    precision, recall, _ = precision_recall_curve(labels, scores)
    ax.plot(recall, precision, label=f"AP = {m['average_precision']:.3f}")
    alerts = scores >= threshold
    if alerts.any():
        ax.scatter([alerts[labels == 1].mean()], [labels[alerts].mean()], color="red", zorder=3,
                   label=f"threshold {threshold:.3f}")
    ax.axhline(labels.mean(), color="grey", linestyle=":", label=f"fraud rate {labels.mean():.4f}")
    ax.set(xlabel="recall", ylabel="precision", title=f"Precision-recall, {title}", xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(loc="upper right")
    figures["pr_curve.png"] = fig

    fig, ax = plt.subplots(figsize=(6, 5))
    fpr, tpr, _ = roc_curve(labels, scores)
    ax.plot(fpr, tpr, label=f"AUC = {m['roc_auc']:.3f}")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC, {title}")
    ax.legend(loc="lower right")
    figures["roc_curve.png"] = fig

    fig, ax = plt.subplots(figsize=(6, 5))
    bins = np.linspace(0, 1, 51)
    ax.hist(scores[labels == 0], bins=bins, alpha=0.6, density=True, label=f"legitimate ({(labels == 0).sum()})")
    ax.hist(scores[labels == 1], bins=bins, alpha=0.6, density=True, label=f"fraud ({(labels == 1).sum()})")
    ax.axvline(threshold, color="red", linestyle="--", label=f"threshold {threshold:.3f}")
    ax.set_yscale("log")
    ax.set(xlabel="score P(fraud)", ylabel="density (log)", title=f"Scores by class, {title}")
    ax.legend()
    figures["score_distribution.png"] = fig

    fig, ax = plt.subplots(figsize=(7, 6))
    ordered = sorted(importances.items(), key=lambda kv: kv[1])
    ax.barh([k for k, _ in ordered], [v for _, v in ordered])
    ax.set(xlabel="drop in average precision when shuffled", title=f"Permutation importance, {result.estimator}")
    figures["feature_importance.png"] = fig
    for figure in figures.values():
        figure.tight_layout()
    return figures


def figures_closed(figures: dict[str, Any]) -> None:
    import matplotlib.pyplot as plt

    for figure in figures.values():
        plt.close(figure)


__all__ = ["figures_closed", "git_revision", "holdout_frame", "log_training", "make_figures", "permutation_importances"]
