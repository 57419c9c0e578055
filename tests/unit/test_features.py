"""The feature definitions: hand-worked values, window edges, the label delay, leakage, online parity."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fraudctl.errors import BadInputError
from fraudctl.features import (
    DEFAULT_SPEC,
    FEATURE_NAMES,
    FeatureSpec,
    OnlineFeatureState,
    compute_features,
)
from fraudctl.features import _window_outliers, _window_spread


def frame(rows: list[tuple]) -> pd.DataFrame:
    """rows: (transaction_id, tx_datetime, customer_id, terminal_id, amount, is_fraud)."""
    df = pd.DataFrame(rows, columns=["transaction_id", "tx_datetime", "customer_id", "terminal_id", "amount",
                                     "is_fraud"])
    df["tx_datetime"] = pd.to_datetime(df["tx_datetime"])
    return df


def by_id(features: pd.DataFrame) -> pd.DataFrame:
    return features.set_index("transaction_id")


# ------------------------------------------------------------------------------------- hand-worked


def test_feature_names_are_the_documented_twenty_five():
    assert FEATURE_NAMES == [
        "amount", "is_weekend", "is_night",
        "customer_tx_count_1d", "customer_mean_amount_1d", "customer_tx_count_7d", "customer_mean_amount_7d",
        "customer_tx_count_30d", "customer_mean_amount_30d",
        "customer_amount_ratio_1d", "customer_amount_ratio_7d", "customer_amount_ratio_30d",
        "terminal_tx_count_1d", "terminal_fraud_share_1d", "terminal_tx_count_7d", "terminal_fraud_share_7d",
        "terminal_tx_count_30d", "terminal_fraud_share_30d",
        "terminal_fraud_run", "terminal_fraud_run_age_days", "terminal_first_fraud_age_days",
        "customer_amount_z", "customer_baseline_ratio", "customer_outlier_count_14d",
        "customer_max_median_ratio_14d",
    ]
    assert DEFAULT_SPEC.delay_days == 7
    assert DEFAULT_SPEC.history_days == 37  # 7 days of delay + the 30-day terminal window


def test_weekend_and_night_flags():
    # 2018-04-01 is a Sunday, 2018-04-02 a Monday, 2018-04-07 a Saturday. Night is 00:00 <= t < 07:00.
    f = by_id(compute_features(frame([
        (1, "2018-04-01 12:00:00", 1, 1, 10.0, 0),
        (2, "2018-04-02 06:59:59", 1, 1, 10.0, 0),
        (3, "2018-04-02 07:00:00", 1, 1, 10.0, 0),
        (4, "2018-04-02 00:00:00", 1, 1, 10.0, 0),
        (5, "2018-04-02 23:59:59", 1, 1, 10.0, 0),
        (6, "2018-04-07 00:00:00", 1, 1, 10.0, 0),
    ])))
    assert f["is_weekend"].tolist() == [1.0, 0.0, 0.0, 0.0, 0.0, 1.0]
    assert f["is_night"].tolist() == [0.0, 1.0, 0.0, 1.0, 0.0, 1.0]


def test_customer_windows_by_hand():
    f = by_id(compute_features(frame([
        # id, time, customer, terminal, amount, fraud
        (1, "2018-04-02 10:00:00", 7, 1, 10.0, 0),
        (2, "2018-04-03 10:00:00", 7, 2, 20.0, 0),  # tx 1 is exactly 1 day earlier: out of the 1-day window
        (3, "2018-04-03 10:00:00", 7, 3, 30.0, 0),  # same second as tx 2, later id: sees tx 2
        (4, "2018-04-04 09:59:59", 7, 4, 40.0, 0),  # 1-day window (04-03 09:59:59, now]: tx 2, 3, 4
        (5, "2018-05-02 10:00:00", 7, 5, 50.0, 1),  # tx 1 exactly 30 days earlier: out; tx 2..4 in
        (6, "2018-04-03 10:00:00", 8, 1, 999.0, 0),  # another customer never mixes in
    ])))
    # The current transaction always counts.
    assert f.loc[1, ["customer_tx_count_1d", "customer_mean_amount_1d"]].tolist() == [1.0, 10.0]
    assert f.loc[2, ["customer_tx_count_1d", "customer_mean_amount_1d"]].tolist() == [1.0, 20.0]
    assert f.loc[2, ["customer_tx_count_7d", "customer_mean_amount_7d"]].tolist() == [2.0, 15.0]
    # tx 2 is before tx 3 in event order (same time, lower id): tx 3 is not in tx 2's features
    assert f.loc[3, ["customer_tx_count_1d", "customer_mean_amount_1d"]].tolist() == [2.0, 25.0]
    assert f.loc[4, ["customer_tx_count_1d", "customer_mean_amount_1d"]].tolist() == [3.0, 30.0]
    assert f.loc[4, ["customer_tx_count_7d", "customer_mean_amount_7d"]].tolist() == [4.0, 25.0]
    assert f.loc[5, ["customer_tx_count_1d", "customer_tx_count_7d"]].tolist() == [1.0, 1.0]
    assert f.loc[5, ["customer_tx_count_30d", "customer_mean_amount_30d"]].tolist() == [4.0, 35.0]
    assert f.loc[6, ["customer_tx_count_30d", "customer_mean_amount_30d"]].tolist() == [1.0, 999.0]
    # amount relative to the customer's mean: tx 5 is 50 against 35 over 30 days, 50 against 50 over 1 day
    assert f.loc[5, "customer_amount_ratio_30d"] == pytest.approx(50 / 35)
    assert f.loc[5, "customer_amount_ratio_1d"] == 1.0
    assert f.loc[4, "customer_amount_ratio_7d"] == pytest.approx(40 / 25)


def test_customer_spread_and_baseline_by_hand():
    f = by_id(compute_features(frame([
        (1, "2018-04-01 10:00:00", 7, 1, 10.0, 0),
        (2, "2018-04-03 10:00:00", 7, 2, 30.0, 0),  # 7 days: {10, 30}, mean 20, deviation 10: z = 1
        (3, "2018-04-20 10:00:00", 7, 3, 40.0, 0),  # alone in 7 days: no spread; baseline (03-21, 04-06]: 20
        (4, "2018-05-01 10:00:00", 7, 4, 80.0, 0),  # baseline (04-01 10:00, 04-17 10:00]: tx 1 out, tx 2 in
        (5, "2018-05-04 10:00:00", 7, 5, 80.0, 1),  # {80, 80}: no spread; baseline ends at tx 3 exactly: in
        (6, "2018-05-04 11:00:00", 7, 5, 80.004, 0),  # a spread of 2 thousandths of a cent is rounding
        (7, "2018-05-04 10:00:00", 8, 1, 99.0, 0),  # another customer, no baseline: ratio 1
    ])))
    assert f["customer_amount_z"].tolist() == [0.0, pytest.approx(1.0), 0.0, 0.0, 0.0, 0.0, 0.0]
    assert f["customer_baseline_ratio"].tolist() == [
        1.0, 1.0, pytest.approx(2.0), pytest.approx(80 / 30), pytest.approx(2.0), pytest.approx(80.004 / 40), 1.0]


def test_customer_outliers_by_hand():
    # Outliers: amounts over 14 days above 3x the median over 30 days, both windows ending at the transaction.
    f = by_id(compute_features(frame([
        (1, "2018-04-01 10:00:00", 7, 1, 10.0, 0),
        (2, "2018-04-02 10:00:00", 7, 1, 10.0, 0),
        (3, "2018-04-03 10:00:00", 7, 1, 40.0, 1),  # median of {10, 10, 40}: 10, and 40 > 30
        (4, "2018-04-04 10:00:00", 7, 1, 20.0, 0),  # median (10 + 20) / 2 = 15: 40 is no outlier now
        (5, "2018-04-20 10:00:00", 7, 1, 100.0, 1),  # median 20; tx 3 is 17 days back: only tx 5 counts
        (6, "2018-05-02 11:00:00", 7, 1, 10.0, 0),  # 30 days: tx 3..6, median 30; tx 5 (100 > 90) still counts
        (7, "2018-04-01 10:00:00", 8, 1, 10.0, 0),
        (8, "2018-04-01 11:00:00", 8, 1, 10.0, 0),
        (9, "2018-04-01 12:00:00", 8, 1, 30.0, 0),  # exactly 3x the median is not above it
    ])))
    assert f["customer_outlier_count_14d"].tolist() == [0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    assert f["customer_max_median_ratio_14d"].tolist() == [1.0, 1.0, 4.0, 40 / 15, 5.0, 100 / 30, 1.0, 1.0, 3.0]


def test_outliers_are_counted_in_chunks_of_any_size():
    rng = np.random.default_rng(2)
    values = np.round(rng.lognormal(3, 1, size=300), 2)
    at = np.arange(300)
    median_from = np.maximum(at - rng.integers(0, 40, size=300), 0)
    count_from = np.minimum(median_from + rng.integers(0, 20, size=300), at)
    expected = [(values[c:a + 1] > 3 * np.median(values[m:a + 1])).sum()
                for m, c, a in zip(median_from, count_from, at)]
    largest = [values[c:a + 1].max() for c, a in zip(count_from, at)]
    for budget in (1, 50, 1 << 22):
        count, top, median = _window_outliers(values, median_from, count_from, at, 3.0, budget=budget)
        assert count.tolist() == expected and top.tolist() == largest
        assert median.tolist() == [np.median(values[m:a + 1]) for m, a in zip(median_from, at)]


def test_spread_is_summed_within_the_window_in_chunks():
    # The chunked two-pass sum gives numpy's mean and std of each window, whatever the chunk size.
    rng = np.random.default_rng(1)
    values = rng.normal(100, 30, size=200)
    at = np.arange(200)
    lower = np.maximum(at - rng.integers(0, 20, size=200), 0)
    for chunk in (1, 7, 1 << 21):
        mean, spread = _window_spread(values, lower, at, chunk=chunk)
        np.testing.assert_allclose(mean, [values[lo:a + 1].mean() for lo, a in zip(lower, at)], rtol=1e-12)
        np.testing.assert_allclose(spread, [values[lo:a + 1].std() for lo, a in zip(lower, at)], rtol=1e-9, atol=1e-12)


def test_amount_ratio_of_a_zero_mean_is_one():
    f = by_id(compute_features(frame([(1, "2018-04-01 10:00:00", 1, 1, 0.0, 0),
                                      (2, "2018-04-01 11:00:00", 1, 1, 0.0, 0)])))
    assert f["customer_amount_ratio_1d"].tolist() == [1.0, 1.0]


def test_terminal_windows_with_the_label_delay_by_hand():
    # Terminal 20, delay 7 days: a transaction at t sees labels of transactions in (t - 7d - w, t - 7d].
    f = by_id(compute_features(frame([
        (1, "2018-04-01 12:00:00", 1, 20, 10.0, 1),
        (2, "2018-04-02 12:00:00", 2, 20, 10.0, 0),
        (3, "2018-04-08 12:00:00", 3, 20, 10.0, 1),  # t-D = tx 1's time exactly: its label has arrived
        (4, "2018-04-09 11:59:59", 4, 20, 10.0, 0),  # t-D is one second before tx 2: only tx 1
        (5, "2018-04-09 12:00:00", 5, 20, 10.0, 0),  # 1-day window (04-01 12:00, 04-02 12:00]: tx 1 out, tx 2 in
        (6, "2018-04-15 12:00:01", 6, 20, 10.0, 0),  # t-D = 04-08 12:00:01: tx 4 and 5 are still too recent
        (7, "2018-04-01 13:00:00", 7, 21, 10.0, 1),  # another terminal never mixes in
    ])))
    cols = ["terminal_tx_count_1d", "terminal_fraud_share_1d", "terminal_tx_count_7d", "terminal_fraud_share_7d",
            "terminal_tx_count_30d", "terminal_fraud_share_30d"]
    assert f.loc[1, cols].tolist() == [0, 0, 0, 0, 0, 0]  # nothing known yet: share 0, not NaN
    assert f.loc[2, cols].tolist() == [0, 0, 0, 0, 0, 0]  # tx 1 is a day old, its label 6 days away
    assert f.loc[3, cols].tolist() == [1, 1.0, 1, 1.0, 1, 1.0]
    assert f.loc[4, cols].tolist() == [1, 1.0, 1, 1.0, 1, 1.0]
    assert f.loc[5, cols].tolist() == [1, 0.0, 2, 0.5, 2, 0.5]
    assert f.loc[6, cols].tolist() == [1, 1.0, 2, 0.5, 3, pytest.approx(2 / 3)]
    assert f.loc[7, cols].tolist() == [0, 0, 0, 0, 0, 0]


def test_terminal_fraud_run_and_ages_by_hand():
    # Terminal 30, delay 7 days; the known history H of a transaction at t is (t - 37d, t - 7d].
    f = by_id(compute_features(frame([
        (1, "2018-04-01 12:00:00", 1, 30, 10.0, 1),
        (2, "2018-04-02 12:00:00", 2, 30, 10.0, 0),
        (3, "2018-04-03 12:00:00", 3, 30, 10.0, 1),
        (4, "2018-04-04 12:00:00", 4, 30, 10.0, 1),
        (5, "2018-04-12 12:00:00", 5, 30, 10.0, 0),  # H = tx 1..4: a run of 2 frauds (3, 4)
        (6, "2018-04-10 12:00:00", 6, 30, 10.0, 0),  # H = tx 1..3: the run is tx 3 alone
        (7, "2018-04-09 11:59:59", 7, 30, 10.0, 0),  # H = tx 1 (tx 2 is one second too recent)
        (8, "2018-05-08 12:00:00", 8, 30, 10.0, 0),  # H = tx 2..7 (tx 1 exactly 37 days old: out); ends honest
        (9, "2018-04-12 12:00:00", 9, 31, 10.0, 0),  # another terminal: nothing known
    ])))
    cols = ["terminal_fraud_run", "terminal_fraud_run_age_days", "terminal_first_fraud_age_days"]
    assert f.loc[5, cols].tolist() == [2.0, 9.0, 11.0]
    assert f.loc[6, cols].tolist() == [1.0, 7.0, 9.0]
    almost_eight = (8 * 86_400 - 1) / 86_400
    assert f.loc[7, cols].tolist() == [1.0, almost_eight, almost_eight]
    assert f.loc[8, cols].tolist() == [0.0, 0.0, 35.0]
    assert f.loc[9, cols].tolist() == [0.0, 0.0, 0.0]
    assert f.loc[1, cols].tolist() == [0.0, 0.0, 0.0]


def test_unknown_labels_count_as_transactions_but_not_as_fraud():
    f = by_id(compute_features(frame([
        (1, "2018-04-01 12:00:00", 1, 20, 10.0, np.nan),
        (2, "2018-04-01 13:00:00", 1, 20, 10.0, 1),
        (3, "2018-04-08 14:00:00", 1, 20, 10.0, 0),
    ])))
    assert f.loc[3, ["terminal_tx_count_1d", "terminal_fraud_share_1d"]].tolist() == [2.0, 0.5]
    assert f.loc[3, ["terminal_fraud_run", "terminal_first_fraud_age_days"]].tolist() == [1.0, 7 + 1 / 24]


def test_zero_delay_never_uses_the_current_label():
    spec = FeatureSpec(delay_days=0)
    f = by_id(compute_features(frame([
        (1, "2018-04-01 12:00:00", 1, 20, 10.0, 1),
        (2, "2018-04-01 12:00:00", 2, 20, 10.0, 1),  # same second: tx 1 precedes it, tx 2 itself is out
        (3, "2018-04-01 18:00:00", 3, 20, 10.0, 0),
    ]), spec))
    assert f.loc[1, ["terminal_tx_count_1d", "terminal_fraud_share_1d"]].tolist() == [0.0, 0.0]
    assert f.loc[2, ["terminal_tx_count_1d", "terminal_fraud_share_1d"]].tolist() == [1.0, 1.0]
    assert f.loc[3, ["terminal_tx_count_1d", "terminal_fraud_share_1d"]].tolist() == [2.0, 1.0]


def test_output_keeps_input_order_and_float_dtype():
    df = frame([
        (3, "2018-04-03 10:00:00", 1, 1, 30.0, 0),
        (1, "2018-04-01 10:00:00", 1, 1, 10.0, 0),
        (2, "2018-04-02 10:00:00", 1, 1, 20.0, 0),
    ])
    f = compute_features(df)
    assert f["transaction_id"].tolist() == [3, 1, 2]
    assert f["customer_tx_count_7d"].tolist() == [3.0, 1.0, 2.0]
    assert all(f[name].dtype == "float64" for name in FEATURE_NAMES)


def test_timezone_aware_times_are_taken_in_utc():
    naive = compute_features(frame([(1, "2018-04-01 23:30:00", 1, 1, 10.0, 0)]))
    aware = frame([(1, "2018-04-01 23:30:00", 1, 1, 10.0, 0)])
    # 01:30 on Monday in Paris is 23:30 on Sunday in UTC
    aware["tx_datetime"] = pd.to_datetime(["2018-04-02 01:30:00"]).tz_localize("Europe/Paris")
    f = compute_features(aware)
    assert f[FEATURE_NAMES].equals(naive[FEATURE_NAMES])
    assert f["is_weekend"].iloc[0] == 1.0


# ------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("mutate, message", [
    (lambda df: df.drop(columns=["terminal_id"]), "missing column(s) terminal_id"),
    (lambda df: df.assign(transaction_id=[1, 1]), "transaction_id must be unique"),
    (lambda df: df.assign(is_fraud=[0, 2]), "is_fraud must be 0 or 1"),
    (lambda df: df.assign(amount=[1.0, np.nan]), "amount is empty in 1 row(s)"),
    (lambda df: df.assign(tx_datetime=["2018-04-01", "2018-04-02"]), "tx_datetime must be a datetime"),
])
def test_bad_input_names_the_source_and_field(mutate, message):
    df = mutate(frame([(1, "2018-04-01 10:00:00", 1, 1, 10.0, 0), (2, "2018-04-01 11:00:00", 1, 1, 10.0, 0)]))
    with pytest.raises(BadInputError) as caught:
        compute_features(df, source="week.csv")
    assert caught.value.message.startswith("week.csv: ")
    assert message in caught.value.message


# ---------------------------------------------------------------------------- leakage and parity


def random_history(seed: int, n: int = 1500, days: int = 60) -> pd.DataFrame:
    """Few customers and terminals so windows are busy; times on whole minutes so ties happen."""
    rng = np.random.default_rng(seed)
    minutes = np.sort(rng.integers(0, days * 24 * 60, n))
    df = pd.DataFrame({
        "transaction_id": rng.permutation(n) + 1000,  # ids unrelated to time: ties are broken by id
        "tx_datetime": pd.Timestamp("2018-04-01") + pd.to_timedelta(minutes, unit="min"),
        "customer_id": rng.integers(0, 25, n),
        "terminal_id": rng.integers(0, 15, n),
        "amount": np.round(rng.gamma(2.0, 30.0, n), 2),
        "is_fraud": (rng.random(n) < 0.2).astype(int),
    })
    # some exact ties at a second inside the same customer and terminal
    df.loc[df.index[10:14], ["tx_datetime", "customer_id", "terminal_id"]] = [df["tx_datetime"].iloc[10], 3, 4]
    return df


def event_order(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(["tx_datetime", "transaction_id"]).reset_index(drop=True)


@pytest.mark.parametrize("seed", [1, 2])
def test_no_feature_uses_a_later_transaction_or_an_early_label(seed):
    history = random_history(seed)
    full = by_id(compute_features(history))
    ordered = event_order(history)
    rng = np.random.default_rng(seed)
    delay = pd.Timedelta(days=DEFAULT_SPEC.delay_days)
    for cut in rng.integers(100, len(ordered), 5):
        now = ordered.loc[cut, "tx_datetime"]
        # What was knowable when transaction `cut` happened: transactions up to it in event order, and the
        # labels of those at least `delay` old. Everything else is rewritten wildly.
        past = ordered.iloc[: cut + 1].copy()
        unknown = past["tx_datetime"] > now - delay
        past.loc[unknown, "is_fraud"] = 1 - past.loc[unknown, "is_fraud"]
        future = ordered.iloc[cut + 1:].copy()
        future["amount"] = future["amount"] * 1000
        future["is_fraud"] = 1
        future["customer_id"] = past.loc[cut, "customer_id"]
        future["terminal_id"] = past.loc[cut, "terminal_id"]
        rewritten = by_id(compute_features(pd.concat([past, future])))
        ids = past["transaction_id"]
        pd.testing.assert_frame_equal(rewritten.loc[ids, FEATURE_NAMES], full.loc[ids, FEATURE_NAMES])


def test_the_leakage_test_would_catch_a_leak():
    # Guard for the test above: with a feature spec that looks at fresher labels (delay 0 instead of 7)
    # the rewritten labels DO change the features, so the comparison is sensitive.
    history = random_history(3)
    ordered = event_order(history)
    cut = len(ordered) - 1
    now = ordered.loc[cut, "tx_datetime"]
    rewritten = ordered.copy()
    unknown = rewritten["tx_datetime"] > now - pd.Timedelta(days=7)
    rewritten.loc[unknown, "is_fraud"] = 1 - rewritten.loc[unknown, "is_fraud"]
    leaky = FeatureSpec(delay_days=0)
    a = by_id(compute_features(ordered, leaky)).loc[ordered["transaction_id"].iloc[cut], FEATURE_NAMES]
    b = by_id(compute_features(rewritten, leaky)).loc[ordered["transaction_id"].iloc[cut], FEATURE_NAMES]
    assert not a.equals(b)


@pytest.mark.parametrize("spec", [DEFAULT_SPEC, FeatureSpec(delay_days=2, terminal_windows_days=(1, 3))])
def test_online_state_matches_offline_value_for_value(spec):
    history = random_history(4)
    offline = by_id(compute_features(history, spec))
    ordered = event_order(history)
    online = OnlineFeatureState(spec)
    pending = list(ordered[["tx_datetime", "transaction_id", "is_fraud"]].itertuples(index=False))
    delivered = 0
    delay = pd.Timedelta(days=spec.delay_days)
    rows = []
    for tx in ordered.to_dict("records"):
        # The label stream: a label arrives exactly `delay` after its transaction, not before.
        while delivered < len(pending) and pending[delivered].tx_datetime <= tx["tx_datetime"] - delay:
            online.add_label(pending[delivered].transaction_id, pending[delivered].is_fraud)
            delivered += 1
        rows.append({"transaction_id": tx["transaction_id"], **online.features(tx)})
    streamed = pd.DataFrame(rows).set_index("transaction_id")
    names = spec.feature_names
    np.testing.assert_allclose(streamed.loc[offline.index, names].to_numpy(), offline[names].to_numpy(),
                               rtol=1e-9, atol=0)


def test_online_state_does_not_double_count_a_replayed_transaction():
    online = OnlineFeatureState()
    tx = {"transaction_id": 1, "tx_datetime": pd.Timestamp("2018-04-01 10:00"), "customer_id": 1,
          "terminal_id": 1, "amount": 10.0}
    first = online.features(tx)
    again = online.features(tx)  # a micro-batch re-run after a crash
    assert first == again
    later = online.features({**tx, "transaction_id": 2, "tx_datetime": pd.Timestamp("2018-04-01 11:00")})
    assert later["customer_tx_count_1d"] == 2.0



@pytest.mark.parametrize("unit", [10**9, 1])  # whole seconds (fast key) and nanoseconds
def test_window_search_kernels_agree_with_brute_force(unit):
    from fraudctl.features import _count_le, _count_le_merge

    rng = np.random.default_rng(5)
    codes = np.sort(rng.integers(0, 6, 400))
    times = np.concatenate([np.sort(rng.integers(0, 50, (codes == c).sum())) for c in range(6)]) * unit
    q_codes = rng.integers(0, 6, 300)
    q_times = rng.integers(-5, 55, 300) * unit
    brute = np.array([((codes < g) | ((codes == g) & (times <= x))).sum() for g, x in zip(q_codes, q_times)])
    np.testing.assert_array_equal(_count_le(codes, times, q_codes, q_times), brute)
    np.testing.assert_array_equal(_count_le_merge(codes, times, q_codes, q_times), brute)


@pytest.mark.parametrize("spread", [7, 70_001])  # codes sorted as 16-bit integers, and past 2**16
def test_given_group_codes_change_no_feature(monkeypatch, spread):
    """The scorer passes its own integer codes for customer and terminal ids: any numbering (here scrambled,
    with gaps) that keeps equal ids equal gives exactly the values of factorizing the ids, and the ids are
    then not factorized at all."""
    from fraudctl.features import GroupRows, _as_utc_ns, compute_online_features, online_feature_values

    history = random_history(4)
    ordered = event_order(history).reset_index(drop=True)
    cut = len(ordered) * 2 // 3
    earlier, batch = ordered.iloc[:cut], ordered.iloc[cut:]
    plain = compute_online_features(earlier, batch)
    rng = np.random.default_rng(3)
    codes = {}
    for column in ("customer_id", "terminal_id"):
        ids = pd.concat([earlier[column], batch[column]]).to_numpy()
        unique = pd.unique(ids)
        numbering = dict(zip(unique, rng.permutation(len(unique)) * spread + 2))
        codes[column] = np.array([numbering[key] for key in ids], dtype="int64")
    frame = pd.concat([earlier, batch], ignore_index=True)
    times, ids = _as_utc_ns(frame["tx_datetime"]), frame["transaction_id"].to_numpy()
    monkeypatch.setattr(pd, "factorize", lambda *args, **kwargs: pytest.fail("the ids were factorized"))
    given = online_feature_values(
        GroupRows(codes["customer_id"], times, ids, frame["amount"].to_numpy(dtype="float64")),
        GroupRows(codes["terminal_id"], times, ids, frame["is_fraud"].fillna(0).to_numpy(dtype="float64")),
        len(batch))
    pd.testing.assert_frame_equal(batch.assign(**given)[plain.columns], plain, check_exact=True)
