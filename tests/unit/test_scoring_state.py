"""The scorer's feature state: durable per-batch commits, restarts, snapshots, batch-id fencing, intents,
labels before and after their transaction, pruning."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from fraudctl.contracts import AMOUNT, CUSTOMER_ID, IS_FRAUD, TERMINAL_ID, TRANSACTION_ID, TX_DATETIME
from fraudctl.features import DEFAULT_SPEC, FEATURE_NAMES
from fraudctl.stream.state import PRUNE_SLACK_DAYS, FeatureState, Intent

T0 = pd.Timestamp("2018-04-01 00:00:00")


def txs(rows) -> pd.DataFrame:
    """rows: (transaction_id, hours after T0, customer_id, terminal_id, amount)."""
    return pd.DataFrame({
        TRANSACTION_ID: [str(r[0]) for r in rows],
        TX_DATETIME: pd.Series([T0 + pd.Timedelta(hours=r[1]) for r in rows], dtype="datetime64[ns]"),
        CUSTOMER_ID: [str(r[2]) for r in rows], TERMINAL_ID: [str(r[3]) for r in rows],
        AMOUNT: pd.Series([float(r[4]) for r in rows], dtype="float64"),
    })


def labels(rows) -> pd.DataFrame:
    """rows: (transaction_id, hours after T0 of the transaction, is_fraud)."""
    return pd.DataFrame({
        TRANSACTION_ID: [str(r[0]) for r in rows],
        TX_DATETIME: pd.Series([T0 + pd.Timedelta(hours=r[1]) for r in rows], dtype="datetime64[ns]"),
        IS_FRAUD: pd.Series([int(r[2]) for r in rows], dtype="int64"),
    })


NO_LABELS = labels([])

# Ten batches over 20 days: 3 customers, 2 terminals; the labels of days 0..12 arrive from day 7 on.
BATCHES = []
for b in range(10):
    hours = [48 * b + h for h in (1, 5, 30)]
    rows = [(100 * b + k, h, k % 3, k % 2, 10.0 + b + 3 * k) for k, h in enumerate(hours)]
    known = [(100 * (b - 4) + k, 48 * (b - 4) + h, (b + k) % 2) for k, h in enumerate((1, 5, 30))] if b >= 4 else []
    BATCHES.append((labels(known), txs(rows)))


def run_batch(state: FeatureState, batch_id: int, batch_labels: pd.DataFrame, batch_txs: pd.DataFrame) -> pd.DataFrame:
    state.apply_labels(batch_labels)
    featured = state.features(batch_txs)
    state.commit(batch_id, batch_txs)
    return featured


def assert_same_state(a: FeatureState, b: FeatureState) -> None:
    key = [TX_DATETIME, TRANSACTION_ID]
    assert_frame_equal(a.history.sort_values(key).reset_index(drop=True),
                       b.history.sort_values(key).reset_index(drop=True), check_dtype=True)
    assert_frame_equal(a.pending_labels.sort_values(key).reset_index(drop=True),
                       b.pending_labels.sort_values(key).reset_index(drop=True))
    assert a.last_batch_id == b.last_batch_id


def next_batch():
    return labels([(800, 16 * 24 + 1, 1), (801, 16 * 24 + 5, 1), ("late", 1, 1)]), \
        txs([(1000, 20 * 24 + 1, 0, 0, 55.0), (1001, 20 * 24 + 2, 1, 1, 7.0), (1002, 20 * 24 + 3, 9, 0, 1.0)])


@pytest.mark.parametrize("snapshot_every", [1000, 2, 3])
def test_a_restart_finds_the_committed_state_and_computes_the_same_features(tmp_path, snapshot_every):
    folder = tmp_path / "state"
    live = FeatureState(folder, DEFAULT_SPEC, snapshot_every=snapshot_every)
    for batch_id, (batch_labels, batch_txs) in enumerate(BATCHES[:7]):
        run_batch(live, batch_id, batch_labels, batch_txs)
    assert live.last_batch_id == 6
    assert live.history[IS_FRAUD].notna().sum() == 9  # three batches of labels arrived

    restarted = FeatureState(folder, DEFAULT_SPEC, snapshot_every=snapshot_every)
    assert_same_state(live, restarted)
    assert restarted.seen(pd.Series(["0", "601", "700"])).tolist() == [True, True, False]

    # Both go on with the same batch (the live one in a copy of the folder, so they do not collide).
    shutil.copytree(folder, tmp_path / "copy")
    live.folder = tmp_path / "copy"
    expected = run_batch(live, 7, *next_batch())
    actual = run_batch(restarted, 7, *next_batch())
    assert_frame_equal(actual, expected)
    assert actual["terminal_fraud_share_30d"].gt(0).any()  # the labels reached the features
    assert_same_state(live, FeatureState(folder, DEFAULT_SPEC))


def test_committed_batch_ids_are_fenced(tmp_path):
    state = FeatureState(tmp_path, DEFAULT_SPEC)
    assert not state.is_committed(0)
    for batch_id in (0, 1, 2):
        run_batch(state, batch_id, *BATCHES[batch_id])
    assert [state.is_committed(i) for i in (0, 1, 2, 3)] == [True, True, True, False]
    restarted = FeatureState(tmp_path, DEFAULT_SPEC)
    assert [restarted.is_committed(i) for i in (0, 1, 2, 3)] == [True, True, True, False]


def test_a_batch_that_never_committed_leaves_no_trace(tmp_path):
    state = FeatureState(tmp_path, DEFAULT_SPEC)
    for batch_id in range(5):
        run_batch(state, batch_id, *BATCHES[batch_id])
    before = FeatureState(tmp_path, DEFAULT_SPEC)
    # Batch 5 is featured (its labels applied in memory), then the driver dies before the commit.
    state.apply_labels(BATCHES[5][0])
    state.features(BATCHES[5][1])
    after_crash = FeatureState(tmp_path, DEFAULT_SPEC)
    assert_same_state(after_crash, before)
    assert not after_crash.is_committed(5)
    # The re-run gives what the first run gave.
    assert_frame_equal(run_batch(after_crash, 5, *BATCHES[5]), state.features(BATCHES[5][1]))


def test_a_batch_staged_aside_counts_only_once_committed(tmp_path):
    folder = tmp_path / "state"
    state = FeatureState(folder, DEFAULT_SPEC)
    for batch_id in range(3):
        run_batch(state, batch_id, *BATCHES[batch_id])
    batch_labels, batch_txs = BATCHES[3]
    state.stage(3, batch_txs, batch_labels)  # the scorer writes these in a thread while the batch is scored
    state.apply_labels(batch_labels)
    state.features(batch_txs)
    # The driver dies before the output is flushed: the staged files are no commit.
    shutil.copytree(folder, tmp_path / "crashed")
    crashed = FeatureState(tmp_path / "crashed", DEFAULT_SPEC)
    assert crashed.last_batch_id == 2 and not crashed.is_committed(3)
    assert not any(p.name.endswith(".partial") for p in (tmp_path / "crashed").iterdir())
    # Committed, it is the same as a batch written at its commit.
    state.commit(3, batch_txs)
    plain = FeatureState(tmp_path / "plain", DEFAULT_SPEC)
    for batch_id in range(4):
        run_batch(plain, batch_id, *BATCHES[batch_id])
    assert_same_state(state, plain)
    assert_same_state(FeatureState(folder, DEFAULT_SPEC), plain)


def test_snapshots_compact_the_log_and_reload_to_the_same_state(tmp_path):
    state = FeatureState(tmp_path, DEFAULT_SPEC, snapshot_every=2)
    for batch_id, batch in enumerate(BATCHES[:5]):
        run_batch(state, batch_id, *batch)
    entries = sorted(p.name for p in tmp_path.iterdir() if p.is_dir())
    # Batches 0..3 are in the snapshot of batch 3 alone; batch 4 is its own folder.
    assert entries == ["000000000004", "snapshot-000000000003"]
    assert_same_state(state, FeatureState(tmp_path, DEFAULT_SPEC, snapshot_every=2))
    run_batch(state, 5, *BATCHES[5])
    entries = sorted(p.name for p in tmp_path.iterdir() if p.is_dir())
    assert entries == ["snapshot-000000000005"]
    reloaded = FeatureState(tmp_path, DEFAULT_SPEC, snapshot_every=2)
    assert_same_state(state, reloaded)
    state.apply_labels(BATCHES[6][0])
    assert_frame_equal(run_batch(reloaded, 6, *BATCHES[6]), state.features(BATCHES[6][1]))


def test_a_leftover_partial_commit_is_ignored(tmp_path):
    state = FeatureState(tmp_path, DEFAULT_SPEC)
    for batch_id in range(4):
        run_batch(state, batch_id, *BATCHES[batch_id])
    # A crash in the middle of batch 4's commit (and of a snapshot): a staging folder with a half file.
    for name in (".4.partial", ".snapshot-000000000004.partial"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "transactions.arrow").write_bytes(b"ARROW1\x00half")
    restarted = FeatureState(tmp_path, DEFAULT_SPEC)
    assert_same_state(state, restarted)
    assert restarted.last_batch_id == 3 and not restarted.is_committed(4)
    assert not any(p.name.endswith(".partial") for p in tmp_path.iterdir())
    run_batch(restarted, 4, *BATCHES[4])
    assert restarted.is_committed(4)


def test_intents_round_trip_and_match_only_their_batch(tmp_path):
    state = FeatureState(tmp_path, DEFAULT_SPEC)
    assert state.intent(0) is None
    intent = Intent(7, "3", "2018-04-01T10:00:00.123Z")
    state.record_intent(intent)
    assert state.intent(7) == intent
    assert state.intent(6) is None and state.intent(8) is None
    assert FeatureState(tmp_path, DEFAULT_SPEC).intent(7) == intent  # survives a restart
    state.record_intent(Intent(8, "4", "2018-04-01T10:00:01Z"))
    assert state.intent(7) is None and state.intent(8).model_version == "4"
    (tmp_path / "intent.json").write_text("{not json")
    assert state.intent(8) is None


def test_labels_before_and_after_their_transaction(tmp_path):
    state = FeatureState(tmp_path, DEFAULT_SPEC)
    # A label whose transaction has not been seen waits; one for a known transaction is applied.
    run_batch(state, 0, NO_LABELS, txs([(1, 0, 1, 1, 5.0)]))
    run_batch(state, 1, labels([(1, 0, 1), (2, 2, 1)]), txs([]))
    assert state.history.set_index(TRANSACTION_ID)[IS_FRAUD].to_dict() == {"1": 1.0}
    assert state.pending_labels[TRANSACTION_ID].tolist() == ["2"]
    run_batch(state, 2, NO_LABELS, txs([(2, 2, 1, 1, 6.0), (3, 3, 1, 1, 7.0)]))
    assert state.history.set_index(TRANSACTION_ID)[IS_FRAUD].fillna(-1).to_dict() == {"1": 1.0, "2": 1.0, "3": -1.0}
    assert len(state.pending_labels) == 0
    # A label later than the delay is still recorded: later transactions' windows use it.
    run_batch(state, 3, labels([(3, 3, 0)]), txs([]))
    restarted = FeatureState(tmp_path, DEFAULT_SPEC)
    assert restarted.history.set_index(TRANSACTION_ID)[IS_FRAUD].to_dict() == {"1": 1.0, "2": 1.0, "3": 0.0}
    later = restarted.features(txs([(4, 8 * 24 + 4, 2, 1, 1.0)]))
    assert later["terminal_tx_count_7d"].iloc[0] == 3.0
    assert later["terminal_fraud_share_7d"].iloc[0] == pytest.approx(2 / 3)


def test_pruning_drops_what_no_window_can_reach(tmp_path):
    state = FeatureState(tmp_path, DEFAULT_SPEC)
    horizon_hours = (DEFAULT_SPEC.history_days + PRUNE_SLACK_DAYS) * 24
    latest = horizon_hours + 100
    run_batch(state, 0, labels([("gone", 1, 1), ("kept", 101, 1)]),
              txs([("old", 99, 1, 1, 1.0), ("edge", 100, 1, 1, 2.0), ("inside", 100.5, 1, 1, 3.0)]))
    run_batch(state, 1, NO_LABELS, txs([("new", latest, 1, 1, 4.0)]))
    # A transaction exactly history_days (plus the slack for events a little behind the newest) before the
    # latest is out of every later window (left edges open).
    assert sorted(state.history[TRANSACTION_ID]) == ["inside", "new"]
    assert state.pending_labels[TRANSACTION_ID].tolist() == ["kept"]
    assert state.seen(pd.Series(["old", "edge", "inside"])).tolist() == [False, False, True]
    assert_same_state(state, FeatureState(tmp_path, DEFAULT_SPEC))
    featured = state.features(txs([("next", latest + 1, 1, 1, 5.0)]))
    assert featured["customer_tx_count_30d"].iloc[0] == 2.0
    assert set(FEATURE_NAMES) <= set(featured.columns)


def test_size_reports_the_state(tmp_path):
    state = FeatureState(tmp_path, DEFAULT_SPEC)
    for batch_id in range(6):
        run_batch(state, batch_id, *BATCHES[batch_id])
    size = state.size()
    assert size["transactions"] == 18 and size["labelled"] == 6 and size["pending_labels"] == 0
    assert size["disk_bytes"] > 0 and size["memory_bytes"] > 0


def test_a_transaction_a_little_behind_the_newest_keeps_its_whole_window(tmp_path):
    """Kafka partitions are read side by side: a batch may bring a transaction an hour older than one the
    state has already seen. Its terminal window reaches an hour further back, and that row is still there."""
    state = FeatureState(tmp_path, DEFAULT_SPEC)
    reach = DEFAULT_SPEC.history_days * 24
    run_batch(state, 0, NO_LABELS, txs([("early", 10, 1, 1, 1.0)]))
    run_batch(state, 1, NO_LABELS, txs([("newest", 10 + reach + 2, 2, 2, 1.0)]))  # past the early row's reach
    late = state.features(txs([("late", 10 + reach - 1, 1, 1, 1.0)]))  # an hour behind: "early" is in its window
    assert late["terminal_tx_count_30d"].iloc[0] == 1.0


def test_labels_find_their_rows_after_a_prune_from_the_middle(tmp_path):
    # Rows are found by sequence number: a prune that removes rows between kept ones (a transaction that
    # arrived late, behind newer ones) must not shift a later label onto its neighbour.
    state = FeatureState(tmp_path, DEFAULT_SPEC)
    horizon_hours = (DEFAULT_SPEC.history_days + PRUNE_SLACK_DAYS) * 24
    run_batch(state, 0, NO_LABELS, txs([("a", 200, 1, 1, 1.0), ("b", 201, 2, 2, 1.0)]))
    run_batch(state, 1, NO_LABELS, txs([("late", 10, 3, 3, 1.0), ("c", 202, 4, 4, 1.0)]))
    run_batch(state, 2, NO_LABELS, txs([("d", horizon_hours + 100, 5, 5, 1.0)]))
    assert state.history[TRANSACTION_ID].tolist() == ["a", "b", "c", "d"]  # "late" went, from the middle
    run_batch(state, 3, labels([("c", 202, 1), ("a", 200, 0), ("late", 10, 1)]), txs([]))
    assert state.history.set_index(TRANSACTION_ID)[IS_FRAUD].fillna(-1).to_dict() == \
        {"a": 0.0, "b": -1.0, "c": 1.0, "d": -1.0}
    assert state.pending_labels[TRANSACTION_ID].tolist() == []  # too old to matter: pruned with its row
    assert_same_state(state, FeatureState(tmp_path, DEFAULT_SPEC))
