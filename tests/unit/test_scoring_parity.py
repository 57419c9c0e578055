"""Online/offline parity of the scorer's feature state: generated transactions streamed through
`FeatureState` in micro-batches of varying sizes, with every label arriving exactly at its delay, give
the features `compute_features` computes over the whole history, value for value (rtol 1e-9)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from fraudctl.contracts import AMOUNT, CUSTOMER_ID, IS_FRAUD, TERMINAL_ID, TRANSACTION_ID, TX_DATETIME
from fraudctl.features import DEFAULT_SPEC, FEATURE_NAMES, OnlineFeatureState, compute_features
from fraudctl.stream.state import PRUNE_SLACK_DAYS, FeatureState

DELAY = pd.Timedelta(days=DEFAULT_SPEC.delay_days)
# Sizes in events of the merged stream (labels and transactions), cycled: single events, small batches,
# big ones; some batches hold only labels.
BATCH_SIZES = (1, 7, 500, 3, 1200, 1, 60, 2500)
GENERATED_ARGS = dict(n_customers=300, n_terminals=600, n_days=50, seed=7)  # for the `generated` fixture


def _with_ties(df: pd.DataFrame) -> pd.DataFrame:
    """Same-second transactions of one customer whose ids order differently as text and as integers
    (e.g. "100024" < "100025" < "99912" as text, the reverse as integers), at one terminal and at two."""
    assert int(df[TRANSACTION_ID].max()) < 99_900, "the tie ids below must be new"
    customer, terminal, other = df[CUSTOMER_ID].iloc[10], df[TERMINAL_ID].iloc[10], df[TERMINAL_ID].iloc[20]
    rows = []
    for day, when in ((12, "10:00:00"), (20, "03:30:00"), (40, "23:59:59")):
        stamp = pd.Timestamp("2018-04-01") + pd.Timedelta(days=day) + pd.Timedelta(when)
        for tid, term, amount, fraud in tie_ids(day, terminal, other):
            rows.append({TRANSACTION_ID: tid, TX_DATETIME: stamp, CUSTOMER_ID: customer,
                         TERMINAL_ID: term, AMOUNT: amount + day, IS_FRAUD: fraud})
    ties = pd.DataFrame(rows)
    ties[TRANSACTION_ID] = ties[TRANSACTION_ID].astype("int64")
    return pd.concat([df.drop(columns=["fraud_scenario"]), ties], ignore_index=True)


def tie_ids(day, terminal=None, other=None):
    return ((99_900 + day, terminal, 10.0, 1), (100_000 + 2 * day, terminal, 250.0, 0),
            (100_001 + 2 * day, other, 37.5, 1))


@pytest.fixture(scope="module")
def history(generated) -> pd.DataFrame:
    return _with_ties(generated.frame)


@pytest.fixture(scope="module")
def offline(history) -> pd.DataFrame:
    # As training computes them: integer ids as the generator writes them, every label known.
    features = compute_features(history)
    features.index = features[TRANSACTION_ID].astype(str)
    return features


def contract_frame(df: pd.DataFrame) -> pd.DataFrame:
    """The transactions as the scorer decodes them: string ids, naive UTC times, in event order
    (time, then id as text)."""
    out = pd.DataFrame({
        TRANSACTION_ID: df[TRANSACTION_ID].astype(str), TX_DATETIME: df[TX_DATETIME].astype("datetime64[ns]"),
        CUSTOMER_ID: df[CUSTOMER_ID].astype(str), TERMINAL_ID: df[TERMINAL_ID].astype(str),
        AMOUNT: df[AMOUNT].astype("float64"), IS_FRAUD: df[IS_FRAUD].astype("float64"),
    })
    return out.sort_values([TX_DATETIME, TRANSACTION_ID], kind="stable").reset_index(drop=True)


def merged_stream(txs: pd.DataFrame) -> pd.DataFrame:
    """Transactions and their labels in one stream ordered by time, as `fraudctl replay` sends them: a label
    is due at tx_datetime + delay and goes just before the first transaction at or after that time."""
    labels = txs.assign(_time=txs[TX_DATETIME] + DELAY, _kind=0)
    transactions = txs.assign(_time=txs[TX_DATETIME], _kind=1)
    stream = pd.concat([labels, transactions], ignore_index=True)
    return stream.sort_values(["_time", "_kind", TRANSACTION_ID], kind="stable").reset_index(drop=True)


def stream_through_state(state: FeatureState, stream: pd.DataFrame, sizes=BATCH_SIZES,
                         first_batch: int = 0) -> pd.DataFrame:
    featured, start, batch_id = [], 0, first_batch
    for size in itertools.cycle(sizes):
        if start >= len(stream):
            break
        part = stream.iloc[start:start + size]
        start += size
        labels = part[part["_kind"] == 0][[TRANSACTION_ID, TX_DATETIME, IS_FRAUD]]
        transactions = part[part["_kind"] == 1][[TRANSACTION_ID, TX_DATETIME, CUSTOMER_ID, TERMINAL_ID, AMOUNT]]
        state.apply_labels(labels)
        out = state.features(transactions)
        assert list(out[TRANSACTION_ID]) == list(transactions[TRANSACTION_ID])  # the batch's row order
        featured.append(out)
        state.commit(batch_id, transactions)
        batch_id += 1
    return pd.concat(featured, ignore_index=True).set_index(TRANSACTION_ID)


@pytest.fixture(scope="module")
def streamed(history, tmp_path_factory) -> pd.DataFrame:
    stream = merged_stream(contract_frame(history))
    state = FeatureState(tmp_path_factory.mktemp("state"), DEFAULT_SPEC, snapshot_every=25)
    result = stream_through_state(state, stream)
    # The state forgot what no window can reach any more.
    horizon = stream[TX_DATETIME].max() - pd.Timedelta(days=DEFAULT_SPEC.history_days + PRUNE_SLACK_DAYS)
    assert state.history[TX_DATETIME].min() > horizon
    return result


def assert_features_equal(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert actual.index.is_unique and expected.index.is_unique
    assert set(actual.index) == set(expected.index)
    a = actual.loc[expected.index, FEATURE_NAMES].to_numpy(dtype="float64")
    b = expected[FEATURE_NAMES].to_numpy(dtype="float64")
    bad = ~np.isclose(a, b, rtol=1e-9, atol=0)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise AssertionError(f"{bad.sum()} value(s) differ, first: transaction {expected.index[row]} "
                             f"{FEATURE_NAMES[col]}: online {a[row, col]!r}, offline {b[row, col]!r}")


def test_streamed_features_equal_offline_features(streamed, offline):
    assert_features_equal(streamed, offline)


def test_the_data_exercises_every_feature(offline):
    # Parity over constant columns would prove little: the delayed terminal windows fill, frauds are seen,
    # fraud runs occur.
    later = offline[offline[TX_DATETIME] >= offline[TX_DATETIME].min() + pd.Timedelta(days=38)]
    for name in FEATURE_NAMES:
        assert later[name].nunique() > 1, name
    assert (later["terminal_fraud_share_30d"] > 0).mean() > 0.01
    assert (later["terminal_fraud_run"] >= 2).any()


def test_same_second_ties_follow_the_text_order_of_ids(streamed, offline):
    # "1000.." comes before "999.." although 999.. < 1000..: counts and means follow the text order.
    for day in (12, 20, 40):
        ids = [str(tid) for tid, *_ in tie_ids(day)]
        counts = offline.loc[ids, "customer_tx_count_1d"].to_numpy()
        assert counts[1] + 1 == counts[2] and counts[2] + 1 == counts[0]  # 100000, 100001, then 99999
        np.testing.assert_allclose(streamed.loc[ids, FEATURE_NAMES].to_numpy(), offline.loc[ids, FEATURE_NAMES],
                                   rtol=1e-9, atol=0)


def test_batch_boundaries_do_not_matter(history, offline, tmp_path):
    # Other batch sizes, and one batch spanning more than the label delay (labels of transactions in the
    # same batch), give the same values.
    txs = contract_frame(history)
    txs = txs[txs[TX_DATETIME] < txs[TX_DATETIME].min() + pd.Timedelta(days=20)]
    stream = merged_stream(txs)
    stream = stream[stream["_time"] <= txs[TX_DATETIME].max()]
    state = FeatureState(tmp_path, DEFAULT_SPEC)
    result = stream_through_state(state, stream, sizes=(len(stream) // 2 + 1, 13))
    assert_features_equal(result, offline.loc[txs[TRANSACTION_ID]])


def test_feature_state_agrees_with_the_per_event_reference(streamed, history):
    # The first 12 days, one event at a time through the reference online implementation.
    txs = contract_frame(history)
    txs = txs[txs[TX_DATETIME] < txs[TX_DATETIME].min() + pd.Timedelta(days=12)]
    reference = OnlineFeatureState(DEFAULT_SPEC)
    stream = merged_stream(txs)
    rows = []
    for event in stream.to_dict("records"):
        if event["_kind"] == 0:
            reference.add_label(event[TRANSACTION_ID], event[IS_FRAUD])
        else:
            rows.append({TRANSACTION_ID: event[TRANSACTION_ID], **reference.features(event)})
    per_event = pd.DataFrame(rows).set_index(TRANSACTION_ID)
    assert len(per_event) == len(txs)
    assert_features_equal(streamed.loc[per_event.index], per_event)


def test_a_restart_mid_stream_keeps_parity(history, offline, tmp_path):
    # Half the stream, a new FeatureState on the same folder (a scorer restart), the other half.
    txs = contract_frame(history)
    txs = txs[txs[TX_DATETIME] < txs[TX_DATETIME].min() + pd.Timedelta(days=40)]
    stream = merged_stream(txs)
    stream = stream[stream["_time"] <= txs[TX_DATETIME].max()]
    cut = len(stream) // 2
    first = stream_through_state(FeatureState(tmp_path, DEFAULT_SPEC, snapshot_every=7), stream.iloc[:cut],
                                 sizes=(400, 1, 900))
    restarted = FeatureState(tmp_path, DEFAULT_SPEC, snapshot_every=7)
    assert restarted.last_batch_id >= 0
    second = stream_through_state(restarted, stream.iloc[cut:].reset_index(drop=True), sizes=(1500, 5, 700),
                                  first_batch=restarted.last_batch_id + 1)
    assert_features_equal(pd.concat([first, second]), offline.loc[txs[TRANSACTION_ID]])


# --------------------------------------------------------------------------- the whole path, as deployed


class _RecordingPublisher:
    def __init__(self):
        self.values: list[str] = []
        self.rejects = 0

    def send(self, keys, values, alert, rejects) -> None:
        self.values += values
        self.rejects += len(rejects)

    def flush(self) -> None:
        pass


class _OneModel:
    def for_batch(self):
        from fraudctl.stream.model import LoadedModel

        class Constant:
            def predict_proba(self, x):
                return np.column_stack([np.full(len(x), 0.75), np.full(len(x), 0.25)])

        return LoadedModel("fraud-detector", "1", Constant(), threshold=0.5)

    pinned = None  # no intent survives in this test: never asked


def _kafka_records(values: list[str], is_label: np.ndarray, keys: list[str]):
    import datetime as dt

    import pyarrow as pa

    n = len(values)
    return pa.table({
        "topic": pa.array(np.where(is_label, "labels", "transactions"), pa.string()),
        "partition": pa.array(np.zeros(n, dtype="int32")),
        "offset": pa.array(np.arange(n, dtype="int64")),
        "timestamp": pa.array([dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)] * n, pa.timestamp("us", tz="UTC")),
        "key": pa.array([k.encode() for k in keys], pa.binary()),
        "value": pa.array([v.encode() for v in values], pa.binary()),
    })


def test_replayed_events_scored_by_the_scorer_publish_the_offline_features(history, offline, tmp_path):
    # The generator's file, the events `fraudctl replay` sends for it (its encoder and sequencer: labels
    # interleaved at the delay), cut into micro-batches, through Scorer.process (decoding, dedup, state,
    # features, publishing): every published feature equals the offline one.
    import json

    from fraudctl.data.generator import write_transactions
    from fraudctl.data.replay import ReplayOptions, encoded_events
    from fraudctl.stream.scorer import Scorer

    path = tmp_path / "transactions.csv"
    # In event order with ties by id as text (see test_ties_straddling_a_batch_boundary for why).
    ordered = history.assign(_text=history[TRANSACTION_ID].astype(str)).sort_values([TX_DATETIME, "_text"])
    write_transactions(ordered.drop(columns=["_text"]).assign(fraud_scenario=0), path)
    values, is_label, keys = [], [], []
    for out in encoded_events(ReplayOptions(path=path, label_delay=DELAY.to_pytimedelta())):
        values += out.values
        keys += out.keys
        is_label.append(out.is_label)
    is_label = np.concatenate(is_label)
    assert is_label.sum() == len(history) == (~is_label).sum()

    publisher = _RecordingPublisher()
    scorer = Scorer(transactions_topic="transactions", labels_topic="labels",
                    state=FeatureState(tmp_path / "state", DEFAULT_SPEC, snapshot_every=10),
                    models=_OneModel(), publisher=publisher, lake=None)
    start, batch_id = 0, 0
    for size in itertools.cycle((3000, 1, 17, 5000, 800)):
        if start >= len(values):
            break
        scorer.process(_kafka_records(values[start:start + size], is_label[start:start + size],
                                      keys[start:start + size]), batch_id)
        start, batch_id = start + size, batch_id + 1
    assert publisher.rejects == 0 and scorer.counters.duplicates == 0
    published = pd.DataFrame([{TRANSACTION_ID: e[TRANSACTION_ID], **e["features"]}
                              for e in map(json.loads, publisher.values)]).set_index(TRANSACTION_ID)
    assert_features_equal(published, offline)


@pytest.mark.xfail(strict=True, reason="known limit: same-second transactions of one customer must reach the "
                                       "scorer in the order of their ids as text when a batch boundary falls "
                                       "between them (replay sends a file's order)")
def test_ties_straddling_a_batch_boundary(history, offline, tmp_path):
    # Offline, "100024" precedes "99912" (same customer, same second). If the stream delivers 99912 in one
    # batch and 100024 in the next, 99912 is scored before its predecessor exists: its customer count is
    # one short. Inside one batch the order of arrival does not matter (see the tests above).
    txs = contract_frame(history)
    stream = merged_stream(txs[txs[TX_DATETIME] <= pd.Timestamp("2018-04-13 10:00:00")])
    first = stream.index[stream[TRANSACTION_ID] == "100024"][0]
    tie = stream.index[stream[TRANSACTION_ID] == "99912"][0]
    assert tie == first + 2  # event order: 100024, 100025, 99912
    # Replay sends them in the file's order instead, 99912 first, and a batch ends right after it.
    order = list(range(first)) + [tie] + [i for i in range(first, len(stream)) if i != tie]
    swapped = stream.iloc[order].reset_index(drop=True)
    state = FeatureState(tmp_path, DEFAULT_SPEC)
    result = stream_through_state(state, swapped.iloc[:first + 1], sizes=(10**9,))
    result = pd.concat([result, stream_through_state(state, swapped.iloc[first + 1:], sizes=(10**9,), first_batch=1)])
    assert_features_equal(result, offline.loc[result.index])
