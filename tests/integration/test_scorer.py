"""The streaming scorer on the real native stack: Spark reads Kafka, features and scores are published, and
they equal the offline computation; bad events reach the dead-letter topic; the champion swaps live; a
`kill -9` loses nothing; an unreachable MLflow degrades but does not stop scoring; a standalone master runs
the same job.

The tests of this module share one scorer and run in order. They use topics of their own (created here),
so the events other modules replay into the session's topics never mix with these.
"""

from __future__ import annotations

import json
import signal
import time

import numpy as np
import pandas as pd
import pytest
import yaml

from pathlib import Path

from fraudctl import contracts as c
from fraudctl.clients.kafka import end_offsets
from fraudctl.config import load_config
from fraudctl.features import FEATURE_NAMES, compute_features
from fraudctl.data.generator import generate_transactions, write_transactions
from tests.conftest import fraudctl_ok, run_fraudctl, wait_for
from tests.support import module_config, read_topic

TOPIC_SUFFIX = "-scorer-test"
PARITY_ROWS = 0.6  # the first 60 % of the data scores from a backlog; the rest is replayed live, in two parts
RTOL = 1e-9
# Events the tests make up carry an early time (late arrivals): a later one would move the state's pruning
# horizon past history the generated transactions still need.
EARLY = "2018-04-01T12:00:00Z"


@pytest.fixture(scope="module")
def env(stack_config_path, tmp_path_factory):
    """A config on the session stack with this module's own topics and a quick model refresh; the data, two
    registered versions (the first one champion), and a clean scorer state."""
    folder = tmp_path_factory.mktemp("scorer")
    cfg = module_config(stack_config_path, folder, TOPIC_SUFFIX,
                        scorer={"max_offsets_per_trigger": 4000, "model_refresh_seconds": 2.0},
                        storage={"lake_prefix": "lake-scorer-test"})  # other modules fill the session's lake
    config = load_config(cfg, env={})
    frame = generate_transactions(n_customers=300, n_terminals=600, n_days=60, seed=7)
    path = folder / "tx.csv"
    write_transactions(frame, path)

    versions = []
    for estimator in ("random_forest", "logistic_regression"):
        trained = json.loads(fraudctl_ok(cfg, "train", "--data", str(path), "--estimator", estimator, "-o", "json").stdout)
        versions.append(trained["registered"]["version"])
    fraudctl_ok(cfg, "promote", versions[0], "--force", "--yes")
    run_fraudctl("-c", str(cfg), "scorer", "stop")
    import shutil

    shutil.rmtree(config.state_dir / "scorer", ignore_errors=True)
    yield {"cfg": cfg, "config": config, "path": path, "frame": frame, "versions": versions}
    run_fraudctl("-c", str(cfg), "scorer", "stop")


def offline(env) -> pd.DataFrame:
    """The features of every generated transaction, computed offline over the whole file (labels known)."""
    if "offline" not in env:
        frame = env["frame"].copy()
        frame[c.TRANSACTION_ID] = frame[c.TRANSACTION_ID].astype(str)
        frame[c.CUSTOMER_ID] = frame[c.CUSTOMER_ID].astype(str)
        frame[c.TERMINAL_ID] = frame[c.TERMINAL_ID].astype(str)
        env["offline"] = compute_features(frame).set_index(c.TRANSACTION_ID)
    return env["offline"]


def scores(env) -> list[dict]:
    return [r for r in read_topic(env["config"].kafka, env["config"].kafka.topics.scores.name)]


def scorer_status(env) -> dict:
    result = run_fraudctl("-c", str(env["cfg"]), "scorer", "status", "-o", "json")
    return json.loads(result.stdout) if result.stdout.strip() else {}


# Features that read the labels received so far. Replayed tens of thousands of times faster than real time,
# a label produced just before a transaction can reach the broker (another partition, its own batch) a
# few hundred milliseconds after it: hours of event time. The scorer then counts that transaction as
# unlabelled, which is its documented behaviour for a label later than the delay. Live tests allow that
# for a few transactions; a backlog, where every label is in Kafka before scoring starts, allows none.
LABELLED_FEATURES = [n for n in FEATURE_NAMES if n.startswith("terminal_fraud_") or n.startswith("terminal_first_")]
LATE_LABEL_SHARE = 0.005


def assert_parity(env, records: list[dict], *, live: bool = False) -> None:
    """Every published feature equals the offline value (rtol 1e-9; live: but for a few late labels), and
    every score the model's offline score for the published features."""
    from fraudctl.model.registry import Registry

    expected = offline(env)
    published = pd.DataFrame([{c.TRANSACTION_ID: r["value"][c.TRANSACTION_ID], c.MODEL_VERSION: r["value"][c.MODEL_VERSION],
                               c.SCORE: r["value"][c.SCORE], **r["value"][c.FEATURES]} for r in records])
    published = published.drop_duplicates(c.TRANSACTION_ID).set_index(c.TRANSACTION_ID)
    want = expected.loc[published.index, FEATURE_NAMES]
    exact = np.ones(len(published), dtype=bool)
    for name in FEATURE_NAMES:
        same = np.isclose(published[name].to_numpy(), want[name].to_numpy(), rtol=RTOL, atol=1e-12)
        if live and name in LABELLED_FEATURES:
            exact &= same
        else:
            assert same.all(), f"feature {name}: {int((~same).sum())} of {len(same)} differ from offline"
    late = int((~exact).sum())
    print(f"parity: {len(published)} transactions, {late} with a label that arrived after them")
    assert late <= LATE_LABEL_SHARE * len(published)
    registry = Registry(env["config"])
    for version, rows in published.groupby(c.MODEL_VERSION):
        model = registry.load_model(version)
        offline_scores = model.predict_proba(rows[FEATURE_NAMES])[:, 1]
        np.testing.assert_allclose(rows[c.SCORE].to_numpy(), offline_scores, rtol=RTOL, atol=1e-12,
                                   err_msg=f"scores of version {version}")


def send_and_await_scores(config, prefix: str, count: int, before: dict[int, int], what: str, timeout: float = 60):
    """Produce `count` made-up transactions (ids prefix-0..) of one new customer and terminal, and wait
    until each has its score."""
    from confluent_kafka import Producer

    from fraudctl.clients.kafka import client_config

    producer = Producer(client_config(config.kafka))
    for i in range(count):
        event = c.transaction_event(transaction_id=f"{prefix}-{i}", customer_id=f"c-{prefix}", terminal_id=f"t-{prefix}",
                                    amount=5.0 + i, tx_datetime=pd.Timestamp(EARLY).to_pydatetime())
        producer.produce(config.kafka.topics.transactions.name, json.dumps(event).encode(), key=f"c-{prefix}")
    assert producer.flush(10) == 0
    wait_for(lambda: sum(r["value"][c.TRANSACTION_ID].startswith(f"{prefix}-")
                         for r in read_topic(config.kafka, config.kafka.topics.scores.name, before)) == count,
             timeout, what)


def test_backlog_scores_equal_the_offline_computation(env):
    n = int(len(env["frame"]) * PARITY_ROWS)
    env["parity_rows"] = n
    fraudctl_ok(env["cfg"], "replay", str(env["path"]), "--limit", str(n))
    started = fraudctl_ok(env["cfg"], "scorer", "start", "-o", "json", timeout=300)
    assert json.loads(started.stdout)["health"] == "healthy"

    records = wait_for(lambda: (r := scores(env)) and len({x["value"][c.TRANSACTION_ID] for x in r}) >= n and r,
                       240, f"{n} scores")
    ids = {r["value"][c.TRANSACTION_ID] for r in records}
    assert ids == set(env["frame"][c.TRANSACTION_ID].astype(str).iloc[:n])
    assert {r["value"][c.MODEL_VERSION] for r in records} == {env["versions"][0]}
    assert all(r["key"].decode() == r["value"][c.TRANSACTION_ID] for r in records)
    assert_parity(env, records)

    status = scorer_status(env)
    assert status["health"] == "healthy" and status["counters"]["batches"] > 3  # many micro-batches, not one
    assert status["dead_letters"] == 0
    assert read_topic(env["config"].kafka, env["config"].kafka.topics.dlq.name) == []
    alerts = read_topic(env["config"].kafka, env["config"].kafka.topics.alerts.name)
    assert alerts and all(a["value"][c.SCORE] >= a["value"][c.THRESHOLD] for a in alerts)
    assert {a["value"][c.TRANSACTION_ID] for a in alerts} == \
        {r["value"][c.TRANSACTION_ID] for r in records if r["value"][c.DECISION] == "fraud"}

    from fraudctl.data.lake import read_training_frame
    from fraudctl.stack import get_runtime

    lake_rows, _ = read_training_frame(env["config"], get_runtime(env["config"]).storage())  # the objectstore by default
    assert set(lake_rows[c.TRANSACTION_ID]) == ids  # every transaction once, however many files


def test_operator_views_of_the_running_scorer(env):
    """`scores tail`, `scorer logs` and the stack's `status` see the scorer the parity test left running."""
    tail = json.loads(fraudctl_ok(env["cfg"], "scores", "tail", "-n", "5", "-o", "json").stdout)
    assert tail["topic"] == env["config"].kafka.topics.scores.name and len(tail["scores"]) == 5
    assert all(set(c.SCORE_FIELDS) <= set(score) for score in tail["scores"])
    alerts = json.loads(fraudctl_ok(env["cfg"], "scores", "tail", "--alerts", "-n", "3", "-o", "json").stdout)
    assert alerts["scores"] and all(a[c.DECISION] == "fraud" for a in alerts["scores"])
    text = fraudctl_ok(env["cfg"], "scores", "tail", "-n", "3").stdout
    assert tail["scores"][-1][c.TRANSACTION_ID] in text

    logs = fraudctl_ok(env["cfg"], "scorer", "logs", "-n", "200").stdout
    assert "query" in logs and "started" in logs

    stack = json.loads(run_fraudctl("-c", str(env["cfg"]), "status", "-o", "json").stdout)
    scorer = next(s for s in stack["services"] if s["name"] == "scorer")
    assert scorer["state"] == "RUNNING" and scorer["healthy"] is True and f"model v{env['versions'][0]}" in scorer["detail"]


def test_bad_events_go_to_the_dead_letter_topic_and_the_query_goes_on(env):
    from confluent_kafka import Producer

    from fraudctl.clients.kafka import client_config

    config = env["config"]
    topic = config.kafka.topics.transactions.name
    good = c.transaction_event(transaction_id="good-1", tx_datetime=pd.Timestamp(EARLY).to_pydatetime(),
                               customer_id="c-x", terminal_id="t-x", amount=12.5)
    bad = {
        b"{not json": "malformed JSON",
        json.dumps({k: v for k, v in good.items() if k != c.AMOUNT}).encode(): "missing field 'amount'",
        json.dumps({**good, c.AMOUNT: "12.5"}).encode(): "amount is not a finite number",
        json.dumps({**good, c.SCHEMA_VERSION_FIELD: 99}).encode(): "schema_version is not 1",
    }
    before = end_offsets(config.kafka, config.kafka.topics.dlq.name)
    producer = Producer(client_config(config.kafka))
    for i, value in enumerate(bad):
        producer.produce(topic, value, key=f"bad-{i}")
    producer.produce(topic, json.dumps(good).encode(), key="c-x")
    assert producer.flush(10) == 0

    letters = wait_for(lambda: (r := read_topic(config.kafka, config.kafka.topics.dlq.name, before, with_headers=True))
                       and len(r) >= len(bad) and r, 60, "dead letters")
    assert len(letters) == len(bad)
    by_value = {letter["raw"]: letter for letter in letters}
    for value, reason in bad.items():
        letter = by_value[value]  # the raw bytes, unchanged
        assert reason in letter["headers"]["fraudctl.reason"]
        assert letter["headers"]["fraudctl.source.topic"] == topic
        assert int(letter["headers"]["fraudctl.source.offset"]) >= 0
    wait_for(lambda: any(r["value"][c.TRANSACTION_ID] == "good-1" for r in scores(env)), 60, "the good event's score")
    status = scorer_status(env)
    assert status["health"] == "healthy" and status["dead_letters"] == len(bad)


def test_promotion_swaps_the_model_within_seconds_without_skipping(env):
    import subprocess

    from tests.conftest import FRAUDCTL, REPO

    config, (first, second) = env["config"], env["versions"]
    n = env["parity_rows"]
    live = (len(env["frame"]) - n) // 2
    env["live_rows"] = live
    before = end_offsets(config.kafka, config.kafka.topics.scores.name)
    replay = subprocess.Popen([*FRAUDCTL, "-c", str(env["cfg"]), "replay", str(env["path"]), "--skip", str(n),
                               "--limit", str(live), "--rate", "300"], cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: len(read_topic(config.kafka, config.kafka.topics.scores.name, before)) > 200, 60,
                 "live scores by the first version")
        assert replay.poll() is None, "the replay ended before the promotion: nothing left to score live"
        fraudctl_ok(env["cfg"], "promote", second, "--force", "--yes")
        promoted_at = time.time() * 1000
        swapped = wait_for(lambda: [r for r in read_topic(config.kafka, config.kafka.topics.scores.name, before)
                                    if r["value"][c.MODEL_VERSION] == second], 30, f"a score by version {second}")
        assert swapped[0]["timestamp"] - promoted_at <= 10_000
    finally:
        assert replay.wait(300) == 0, replay.stderr.read()
    wanted = set(env["frame"][c.TRANSACTION_ID].astype(str).iloc[n:n + live])
    records = wait_for(lambda: (r := read_topic(config.kafka, config.kafka.topics.scores.name, before))
                       and wanted <= {x["value"][c.TRANSACTION_ID] for x in r} and r, 120, "every live transaction scored")
    versions = [r["value"][c.MODEL_VERSION] for r in sorted(records, key=lambda r: r["timestamp"])]
    assert set(versions) == {first, second} and versions[-1] == second
    assert_parity(env, records, live=True)
    assert scorer_status(env)["model"]["version"] == second


def test_kill_minus_nine_loses_nothing(env):
    import subprocess

    import psutil

    from tests.conftest import FRAUDCTL, REPO

    config = env["config"]
    start = env["parity_rows"] + env["live_rows"]
    before = end_offsets(config.kafka, config.kafka.topics.scores.name)
    replay = subprocess.Popen([*FRAUDCTL, "-c", str(env["cfg"]), "replay", str(env["path"]), "--skip", str(start),
                               "--rate", "500"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: len(read_topic(config.kafka, config.kafka.topics.scores.name, before)) > 300, 60,
                 "live scores before the kill")
        pid = scorer_status(env)["pid"]
        scorer = psutil.Process(pid)
        children = scorer.children(recursive=True)  # Spark's JVM, and whatever it runs at the moment
        scorer.send_signal(signal.SIGKILL)
        for process in children:
            try:
                process.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:  # a short-lived one (Hadoop's `chmod` of a checkpoint file) ended
                pass
        # supervisord restarts a scorer that died unexpectedly; it resumes from its checkpoint and state
        wait_for(lambda: (s := scorer_status(env)).get("health") == "healthy" and s.get("pid") != pid, 180,
                 "the scorer back after kill -9")
    finally:
        assert replay.wait(300) == 0, replay.stderr.read()
    wanted = set(env["frame"][c.TRANSACTION_ID].astype(str).iloc[start:])
    records = wait_for(lambda: (r := read_topic(config.kafka, config.kafka.topics.scores.name, before))
                       and wanted <= {x["value"][c.TRANSACTION_ID] for x in r} and r, 180, "every transaction scored")
    ids = [r["value"][c.TRANSACTION_ID] for r in records]
    duplicates = len(ids) - len(set(ids))
    print(f"kill -9 recovery: {len(set(ids))} transactions scored, {duplicates} duplicate score(s)")
    by_id: dict[str, bytes] = {}
    for record in records:  # at-least-once: a duplicate carries the same content
        assert by_id.setdefault(record["value"][c.TRANSACTION_ID], record["raw"]) == record["raw"]
    assert_parity(env, records, live=True)


def test_mlflow_down_degrades_but_scoring_goes_on(env):
    from fraudctl.stack.supervisor import Supervisor

    config = env["config"]
    supervisor = Supervisor(config.state_dir)
    before = end_offsets(config.kafka, config.kafka.topics.scores.name)
    supervisor.stop("mlflow")
    try:
        wait_for(lambda: scorer_status(env).get("health") == "degraded", 60, "the scorer to report degraded")
        send_and_await_scores(config, "degraded", 20, before, "scores while MLflow is down")
        status = run_fraudctl("-c", str(env["cfg"]), "scorer", "status")
        assert status.returncode == 0 and "degraded" in status.stdout
    finally:
        supervisor.start("mlflow")
    wait_for(lambda: scorer_status(env).get("health") == "healthy", 90, "the scorer healthy again")


def test_the_same_job_runs_on_a_standalone_master(env, stack_config_path):
    """`up` with spark.standalone starts a master and a worker; the scorer restarted against that master
    picks up from its checkpoint and state and keeps scoring."""
    data = yaml.safe_load(env["cfg"].read_text())
    data.setdefault("spark", {})["standalone"] = True
    data["spark"]["worker_cores"] = 1
    data["spark"]["worker_memory"] = "1g"
    cfg = env["cfg"].with_name("standalone.yaml")
    cfg.write_text(yaml.safe_dump(data))
    standalone = load_config(cfg, env={})
    try:
        run_on_a_standalone_master(env, cfg, standalone)
    finally:
        # `up` restarted the services whose settings it changed (Airflow's FRAUDCTL_CONFIG names the file it ran
        # with): the session's own config puts the stack back as the later modules expect it
        run_fraudctl("-c", str(env["cfg"]), "scorer", "stop")
        fraudctl_ok(stack_config_path, "up", timeout=300)


def run_on_a_standalone_master(env, cfg: Path, standalone) -> None:
    config = env["config"]
    fraudctl_ok(cfg, "up", timeout=300)
    fraudctl_ok(cfg, "scorer", "stop")
    before = end_offsets(config.kafka, config.kafka.topics.scores.name)
    started = json.loads(fraudctl_ok(cfg, "scorer", "start", "--master", standalone.spark.standalone_url, "-o", "json",
                                     timeout=300).stdout)
    assert started["master"] == standalone.spark.standalone_url
    send_and_await_scores(config, "standalone", 10, before, "scores from the standalone cluster", timeout=120)
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{standalone.spark.master_ui_port}/json/", timeout=5) as response:
        master = json.loads(response.read())
    assert any(app["name"] == "fraudctl-scorer" for app in master.get("activeapps", []))
    fraudctl_ok(cfg, "scorer", "stop")
    status = json.loads(run_fraudctl("-c", str(cfg), "status", "-o", "json").stdout)
    scorer = next(s for s in status["services"] if s["name"] == "scorer")
    assert scorer["state"] == "STOPPED" and status["healthy"] is True  # stopped on purpose is not a fault
