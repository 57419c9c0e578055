"""`fraudctl rules test`: a rule's conditions over the lake's window, with the features the scorer would have
computed (the offline definitions of fraudctl.features over the lake's history, which the parity test makes
exact) and the labels that have arrived. Per rule: matches per event day, precision and recall against the
labels, how many of its matches the @champion model alerts on already and what it adds (for a suppress rule:
the model alerts it would remove).
"""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fraudctl.errors import FraudctlError, NotFoundError
from fraudctl.rules.condition import compile_condition
from fraudctl.rules.ruleset import SUPPRESS, Rule

if TYPE_CHECKING:
    from fraudctl.config import Config

DEFAULT_DAYS = 30


def window(days: list[str], since: dt.date | None, until: dt.date | None) -> tuple[dt.date, dt.date]:
    """[since, until) of event days: until defaults to the day after the lake's last, since to 30 days before."""
    if until is None:
        if not days:
            raise NotFoundError("the lake holds no transactions", hint="replay some, with the scorer running")
        until = dt.date.fromisoformat(days[-1]) + dt.timedelta(days=1)
    since = since or until - dt.timedelta(days=DEFAULT_DAYS)
    if since >= until:
        raise NotFoundError(f"an empty window: {since} .. {until}")
    return since, until


def featured_window(config: "Config", since: dt.date, until: dt.date, storage) -> pd.DataFrame:
    """The window's transactions with their features (history from spec.history_days before) and labels."""
    from fraudctl.data.lake import read_training_frame
    from fraudctl.features import FeatureSpec, compute_features

    spec = FeatureSpec(delay_days=config.model.label_delay_days)
    frame, _ = read_training_frame(config, storage, since=since - dt.timedelta(days=spec.history_days), until=until)
    if not len(frame):
        return frame
    featured = compute_features(frame, spec, source="the lake")
    inside = (featured["tx_datetime"] >= pd.Timestamp(since)) & (featured["tx_datetime"] < pd.Timestamp(until))
    return featured[inside.to_numpy()].reset_index(drop=True)


def model_alerts(config: "Config", featured: pd.DataFrame) -> tuple[str | None, np.ndarray | None]:
    """The @champion's alerts on the window (None when there is no champion or no registry)."""
    try:
        from fraudctl.model.registry import CHAMPION, Registry

        registry = Registry(config)
        version = registry.alias_version(CHAMPION)
        if version is None:
            return None, None
        estimator = registry.load_model(version)
        threshold = config.scorer.threshold if config.scorer.threshold is not None else registry.threshold(version)
    except FraudctlError:
        return None, None
    from fraudctl.stream.model import LoadedModel

    scores = LoadedModel(config.model.name, version, estimator, float(threshold)).score(featured)
    return f"{config.model.name} v{version}", np.asarray(scores) >= float(threshold)


def rule_figures(rule: Rule, featured: pd.DataFrame, model_alert: np.ndarray | None) -> dict[str, Any]:
    """One rule's figures over a featured window (also what the tests count directly)."""
    hits = compile_condition(rule.condition).evaluate(featured)
    label = featured["is_fraud"].to_numpy(dtype="float64")
    labelled, fraud = ~np.isnan(label), label == 1
    days = featured["tx_datetime"].to_numpy().astype("datetime64[D]").astype(str)
    per_day = pd.Series(days[hits]).value_counts().sort_index()
    frauds = int((hits & fraud).sum())
    out: dict[str, Any] = {
        "name": rule.name, "action": rule.action, "condition": rule.condition,
        "matches": int(hits.sum()), "labelled": int((hits & labelled).sum()), "frauds": frauds,
        "precision": frauds / int((hits & labelled).sum()) if (hits & labelled).any() else None,
        "recall": frauds / int(fraud.sum()) if fraud.any() else None,
        "per_day": {day: int(n) for day, n in per_day.items()},
        "model_alerts_too": None, "adds": None, "adds_frauds": None,
    }
    if model_alert is not None:
        out["model_alerts_too"] = int((hits & model_alert).sum())
        # what it changes: an alert rule adds alerts the model does not raise; a suppress rule removes the model's
        extra = hits & (model_alert if rule.action == SUPPRESS else ~model_alert)
        out["adds"], out["adds_frauds"] = int(extra.sum()), int((extra & fraud).sum())
    return out


def run(config: "Config", rules: list[Rule], *, since: dt.date | None, until: dt.date | None,
        with_model: bool = True) -> dict[str, Any]:
    """The backtest of `rules` over [since, until); `with_model` False leaves out the @champion's columns."""
    from fraudctl.data.lake import event_days, lake_for
    from fraudctl.stack import get_runtime

    started = time.perf_counter()
    storage = get_runtime(config).storage()
    since, until = window(event_days(lake_for(config, storage)), since, until)
    featured = featured_window(config, since, until, storage)
    model, model_alert = model_alerts(config, featured) if len(featured) and with_model else (None, None)
    label = featured["is_fraud"] if len(featured) else pd.Series(dtype="float64")
    return {
        "since": since.isoformat(), "until": until.isoformat(), "transactions": int(len(featured)),
        "labelled": int(label.notna().sum()), "frauds": int((label == 1).sum()), "model": model,
        "model_alerts": int(model_alert.sum()) if model_alert is not None else None,
        "rules": [rule_figures(rule, featured, model_alert) for rule in rules] if len(featured) else [],
        "seconds": round(time.perf_counter() - started, 2),
    }
