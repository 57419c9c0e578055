"""Helpers for integration tests, kept out of the shipped package: a topic reader and a module's own
config. What benchmarks need too (a shifted config, a seeded lake) lives in bench/support.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import yaml

from fraudctl.config import KafkaConfig

# stack/loop.sh's settings for the whole loop's tests on either runtime (50 days of 600 customers instead of the
# quick start's 60 of 5 000): the same data and seeds, so the same answers (assert_same_answers).
# The alert budget is sized to 600 customers (~1 200 transactions a day), as 100 is to 5 000; loop.sh gives it to
# the first model's training and to the retrain's run, whatever the stack's config says.
SMALL_LOOP = {"DAYS": "50", "LAST_DAYS": "5", "CUSTOMERS": "600", "TERMINALS": "1200", "START_DATE": "2020-01-01",
              "RATE": "5000", "SEED": "7", "ALERT_BUDGET": "25"}
SUMMARY_FIGURES = ("scored", "alerts", "labelled", "frauds", "true_alerts", "precision", "recall")
MODEL_METRICS = ("roc_auc", "average_precision", "card_precision_at_100")

# A module's topics have at most two partitions (the count these modules always used): still more than one,
# so keys are spread, and each partition is one more Spark task per micro-batch on a two-core machine.
MODULE_PARTITIONS = 2


def read_topic(kafka: KafkaConfig, topic: str, start: dict[int, int] | None = None, timeout: float = 60.0,
               with_headers: bool = False) -> list[dict[str, Any]]:
    """Every record of `topic` from `start` (default: the beginning) to its current end, as dicts with the
    decoded JSON value (or raw bytes under `raw`), key, partition, offset, Kafka timestamp (ms)."""
    import json

    from fraudctl.clients.kafka import read_records

    records: list[dict[str, Any]] = []
    for batch in read_records(kafka, topic, start, timeout=timeout):
        for message in batch:
            value = message.value()
            try:
                decoded = json.loads(value)
            except (TypeError, ValueError):
                decoded = None
            record = {"value": decoded, "raw": value, "key": message.key(), "partition": message.partition(),
                      "offset": message.offset(), "timestamp": message.timestamp()[1]}
            if with_headers:
                record["headers"] = {k: v.decode() for k, v in (message.headers() or [])}
            records.append(record)
    return records


def module_config(stack_config_path: Path, folder: Path, suffix: str, **sections: Mapping[str, Any]) -> Path:
    """folder/fraudctl.yaml: the session stack's config with topics of the module's own (names + `suffix`,
    created here), so a module's events never mix with the ones other modules replay, and `sections`
    merged over it (e.g. scorer={...})."""
    from fraudctl.config import load_config
    from fraudctl.clients.kafka import ensure_topics

    data = yaml.safe_load(stack_config_path.read_text())
    topics = load_config(stack_config_path, env={}).kafka.topics
    data["kafka"]["topics"] = {}
    for kind in type(topics).model_fields:
        topic = getattr(topics, kind)
        data["kafka"]["topics"][kind] = {"name": f"{topic.name}{suffix}",
                                         "partitions": min(topic.partitions, MODULE_PARTITIONS)}
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    path = folder / "fraudctl.yaml"
    path.write_text(yaml.safe_dump(data))
    ensure_topics(load_config(path, env={}))
    return path


def assert_the_loop_ran(loop: Mapping[str, Any]) -> None:
    """`stack/loop.sh` (its CompletedProcess under `result`) ran its 9 steps and wrote a summary (`summary`)."""
    result = loop["result"]
    assert result.returncode == 0, f"stack/loop.sh failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    steps = [line for line in result.stdout.splitlines() if "==> [" in line]
    assert len(steps) == 9 and "[9/9] summary" in steps[-1], steps
    assert loop["summary"] is not None


def what_the_loop_answered(loop: Mapping[str, Any], versions: set[str]) -> dict[str, Any]:
    """What one run of the whole loop (`loop`: its config, registry and summary) answered, in a form two runs
    compare by: per role of the model versions it registered (`versions`; "first", or "retrained" by the
    Airflow run) their test metrics; per transaction the role of the model that scored it, its score,
    decision and features (its first publication: later ones are the at-least-once sink's duplicates); the
    summary's figures."""
    import pandas as pd

    from fraudctl import contracts as c

    config, registry = loop["config"], loop["registry"]
    roles, metrics = {}, {}
    for version in registry.client.search_model_versions(f"name='{registry.name}'"):
        if str(version.version) in versions:
            role = "retrained" if version.tags.get(f"{c.TAG_PREFIX}dag_run_id") else "first"
            roles[str(version.version)] = role
            metrics[role] = {name: float(version.tags[f"{c.TAG_PREFIX}test_{name}"]) for name in MODEL_METRICS}
    rows: dict[str, dict[str, Any]] = {}
    for record in read_topic(config.kafka, config.kafka.topics.scores.name, timeout=120):
        value = record["value"]
        rows.setdefault(value[c.TRANSACTION_ID], {
            "role": roles.get(str(value[c.MODEL_VERSION]), f"version {value[c.MODEL_VERSION]}"),
            c.SCORE: value[c.SCORE], c.THRESHOLD: value[c.THRESHOLD], c.DECISION: value[c.DECISION],
            "rules": ",".join(sorted(r["name"] for r in (value.get(c.REASONS) or {}).get("rules", []))),
            **value[c.FEATURES]})
    return {"metrics": metrics, "scores": pd.DataFrame.from_dict(rows, orient="index").sort_index(),
            "summary": {name: loop["summary"][name] for name in SUMMARY_FIGURES}}


def assert_same_answers(native: Mapping[str, Any], compose: Mapping[str, Any]) -> None:
    """Two runs of the whole loop (what_the_loop_answered) gave the same answers: the same models (their test
    metrics), every transaction scored by the model of the same role with the same features, and the same
    score and decision wherever its features are the same to the bit; the same summary.

    Two allowances, both printed. A label that reached one scorer just after its transaction (the live
    parity's LATE_LABEL_SHARE a run) changes that transaction's label-derived features. And the online
    features equal the offline ones to RTOL, not to the bit, and two runs (other micro-batches, other label
    arrivals, another state history) may differ in the last bits of a few features; a tree whose split
    threshold sits exactly there sends the row down another branch. So a score may differ only where a
    feature does. (Which computation leaves the last bits to the run is not pinned down: two batch sizes over
    the first 12 000 transactions, offline, gave the same bits.)"""
    import numpy as np

    from fraudctl import contracts as c
    from fraudctl.features import FEATURE_NAMES
    from tests.integration.test_scorer import LABELLED_FEATURES, LATE_LABEL_SHARE, RTOL

    assert native["metrics"].keys() == compose["metrics"].keys() == {"first", "retrained"}, (
        native["metrics"], compose["metrics"])
    for role, figures in native["metrics"].items():
        for name, value in figures.items():
            np.testing.assert_allclose(compose["metrics"][role][name], value, rtol=RTOL,
                                       err_msg=f"the {role} model's test {name}")
    a, b = native["scores"], compose["scores"]
    assert a.index.equals(b.index), (f"{len(a.index.difference(b.index))} transactions scored natively only, "
                                     f"{len(b.index.difference(a.index))} on compose only")
    roles = a["role"] == b["role"]
    assert roles.all(), f"{int((~roles).sum())} transactions scored by another model: {a['role'][~roles].value_counts().to_dict()}"
    close, bitwise = np.ones(len(a), dtype=bool), np.ones(len(a), dtype=bool)
    for name in FEATURE_NAMES:
        x, y = a[name].to_numpy(), b[name].to_numpy()
        same = np.isclose(x, y, rtol=RTOL, atol=1e-12)
        bitwise &= (x == y) | (np.isnan(x) & np.isnan(y))
        if name in LABELLED_FEATURES:
            close &= same
        else:
            assert same.all(), f"feature {name}: {int((~same).sum())} of {len(same)} transactions differ"
    late = int((~close).sum())
    assert late <= 2 * LATE_LABEL_SHARE * len(a), f"{late} transactions with other label-derived features"
    scores_differ = a[c.SCORE].to_numpy() != b[c.SCORE].to_numpy()
    unexplained = scores_differ & bitwise
    print(f"same answers: {len(a)} transactions; {late} with a label that reached one scorer after them; "
          f"{int((close & ~bitwise).sum())} with features equal to {RTOL:g} but not to the bit, "
          f"{int((scores_differ & close).sum())} of them with another score")
    assert not unexplained.any(), (f"{int(unexplained.sum())} transactions with the same features to the bit "
                                   f"have other scores, e.g. {a.index[unexplained][:5].tolist()}")
    decisions_differ = a[c.DECISION].to_numpy() != b[c.DECISION].to_numpy()
    thresholds = {run: answers["scores"].groupby("role")[c.THRESHOLD].agg(lambda v: tuple(sorted(set(v)))).to_dict()
                  for run, answers in (("native", native), ("compose", compose))}
    assert thresholds["native"] == thresholds["compose"], f"the thresholds differ: {thresholds}"
    odd = decisions_differ & ~scores_differ
    assert not odd.any(), (f"{int(odd.sum())} decisions differ where the score does not:\n"
                           f"{a.loc[odd, ['role', c.SCORE, c.THRESHOLD, c.DECISION, 'rules']].head(5)}\n"
                           f"{b.loc[odd, ['role', c.SCORE, c.THRESHOLD, c.DECISION, 'rules']].head(5)}")
    figures = {name: (native["summary"][name], compose["summary"][name]) for name in SUMMARY_FIGURES}
    assert figures["scored"][0] == figures["scored"][1] and figures["labelled"][0] == figures["labelled"][1], figures
    assert abs(figures["alerts"][0] - figures["alerts"][1]) <= int(decisions_differ.sum()), figures
    if not decisions_differ.any():
        assert all(x == y for x, y in figures.values()), figures
