"""Training: the time-ordered split, the known-compromised exclusion, thresholds, metrics by hand, loading."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from fraudctl.errors import BadInputError, NotFoundError
from fraudctl.features import FEATURE_NAMES
from fraudctl.model.evaluation import card_precision_at_k, choose_threshold, evaluate
from fraudctl.model.training import (
    ESTIMATORS,
    SplitSpec,
    default_split,
    InputLayout,
    load_transactions,
    make_estimator,
    prepare,
    split_train_test,
    train,
)

D = dt.date


def rows(items: list[tuple]) -> pd.DataFrame:
    """(tx_datetime, customer_id, is_fraud) rows; other contract fields filled in."""
    df = pd.DataFrame(items, columns=["tx_datetime", "customer_id", "is_fraud"])
    df["tx_datetime"] = pd.to_datetime(df["tx_datetime"])
    df.insert(0, "transaction_id", range(len(df)))
    df["terminal_id"] = 0
    df["amount"] = 10.0
    return df


# ----------------------------------------------------------------------------------------------- split


def test_split_dates_follow_the_handbook_protocol():
    split = SplitSpec(D(2018, 7, 25))
    assert (split.train_end, split.test_start, split.test_end) == (D(2018, 8, 1), D(2018, 8, 8), D(2018, 8, 15))
    validation = split.validation_split()
    # The threshold's validation slice is the last week of training, scored by a model trained on the week
    # that ends a delay before it: it never touches the test days.
    assert (validation.train_start, validation.train_end) == (D(2018, 7, 11), D(2018, 7, 18))
    assert (validation.test_start, validation.test_end) == (D(2018, 7, 25), D(2018, 8, 1))
    assert validation.test_end <= split.test_start
    assert split.first_day_needed == D(2018, 7, 11)
    assert SplitSpec(D(2018, 7, 25), validation_days=0).validation_split() is None


def test_split_rejects_impossible_windows():
    with pytest.raises(BadInputError, match="validation_days"):
        SplitSpec(D(2018, 7, 25), train_days=3, validation_days=4)
    with pytest.raises(BadInputError):
        SplitSpec(D(2018, 7, 25), test_days=0)


def test_train_and_test_windows_and_the_delay_gap():
    split = SplitSpec(D(2018, 4, 3), train_days=2, delay_days=2, test_days=2, validation_days=0)
    df = rows([
        ("2018-04-02 23:59:59", 1, 0),  # before training
        ("2018-04-03 00:00:00", 2, 0),  # first training second
        ("2018-04-04 23:59:59", 3, 0),  # last training second
        ("2018-04-05 00:00:00", 4, 0),  # delay gap: in neither
        ("2018-04-06 23:59:59", 5, 0),  # delay gap
        ("2018-04-07 00:00:00", 6, 0),  # test
        ("2018-04-08 23:59:59", 7, 0),  # test
        ("2018-04-09 00:00:00", 8, 0),  # after the test
    ])
    train_rows, test_rows = split_train_test(df, split)
    assert train_rows["customer_id"].tolist() == [2, 3]
    assert test_rows["customer_id"].tolist() == [6, 7]


def test_cards_known_compromised_are_left_out_of_each_test_day():
    # train 04-03..04-04, delay 2 days (04-05, 04-06), test 04-07 and 04-08.
    split = SplitSpec(D(2018, 4, 3), train_days=2, delay_days=2, test_days=2, validation_days=0)
    df = rows([
        ("2018-04-01 10:00", 10, 1),  # fraud before training: the handbook does not look back that far
        ("2018-04-03 10:00", 11, 1),  # fraud in training: known for every test day
        ("2018-04-05 10:00", 12, 1),  # fraud on the first delay day: label arrives 04-07 10:00, so known
                                      # from test day 04-08 (a day is excluded once its labels arrived before it)
        ("2018-04-06 10:00", 13, 1),  # fraud on the last delay day: not known during the test
        ("2018-04-07 09:00", 10, 0), ("2018-04-07 09:00", 11, 0), ("2018-04-07 09:00", 12, 1),
        ("2018-04-07 09:00", 13, 1),
        ("2018-04-08 09:00", 10, 0), ("2018-04-08 09:00", 11, 0), ("2018-04-08 09:00", 12, 1),
        ("2018-04-08 09:00", 13, 1),
    ])
    _, test_rows = split_train_test(df, split)
    by_day = test_rows.groupby(test_rows["tx_datetime"].dt.day)["customer_id"].apply(sorted).to_dict()
    assert by_day == {7: [10, 12, 13], 8: [10, 13]}


def test_default_split_ends_with_the_last_complete_day():
    df = rows([("2018-04-01 00:00", 1, 0), ("2018-06-30 23:10", 1, 0)])
    assert default_split(df).test_end == D(2018, 7, 1)
    partial = rows([("2018-04-01 00:00", 1, 0), ("2018-06-30 08:00", 1, 0)])
    assert default_split(partial).test_end == D(2018, 6, 30)  # 06-30 is still being filled


# --------------------------------------------------------------------------------------------- metrics


def test_average_precision_and_auc_by_hand():
    df = rows([("2018-04-01 01:00", 1, 1), ("2018-04-01 02:00", 2, 0), ("2018-04-01 03:00", 3, 1),
               ("2018-04-01 04:00", 4, 0)])
    m = evaluate(df, np.array([0.9, 0.8, 0.7, 0.1]), threshold=0.75, k=2)
    # Ranked: +, -, +, -. AP = mean precision at each fraud = (1/1 + 2/3) / 2
    assert m["average_precision"] == pytest.approx((1 + 2 / 3) / 2)
    # AUC: fraud above legit in 3 of the 4 (fraud, legit) pairs
    assert m["roc_auc"] == pytest.approx(0.75)
    # At 0.75: 2 alerts (0.9, 0.8), 1 of them fraud, 1 of the 2 frauds found
    assert (m["alerts_per_day"], m["precision_at_threshold"], m["recall_at_threshold"]) == (2.0, 0.5, 0.5)


def test_card_precision_at_k_by_hand():
    df = rows([
        # day 1: card 1 (max 0.9, fraud), card 2 (0.8, legit), card 3 (0.7, fraud)
        ("2018-04-01 01:00", 1, 0), ("2018-04-01 02:00", 1, 1), ("2018-04-01 03:00", 2, 0),
        ("2018-04-01 04:00", 3, 1),
        # day 2: card 1 again (found on day 1: dropped), 3 (0.6 fraud), 4 (0.65 fraud), 2 (0.5 legit)
        ("2018-04-02 01:00", 1, 1), ("2018-04-02 02:00", 3, 1), ("2018-04-02 03:00", 4, 1),
        ("2018-04-02 04:00", 2, 0),
        # day 3: one card only; the denominator stays k
        ("2018-04-03 01:00", 5, 1),
    ])
    scores = np.array([0.1, 0.9, 0.8, 0.7, 0.99, 0.6, 0.65, 0.5, 0.3])
    mean, daily = card_precision_at_k(df, scores, k=2)
    # day 1: top 2 = cards 1 (fraud), 2 (legit) -> 1/2; a card's max is 0.9 although one tx scored 0.1
    # day 2: card 1 dropped; top 2 = 4, 3 -> 2/2
    # day 3: top = 5 -> 1/2
    assert daily == [0.5, 1.0, 0.5]
    assert mean == pytest.approx(2 / 3)


def test_threshold_for_an_alert_budget():
    df = rows([(f"2018-04-0{1 + i % 2} 10:{i:02d}", i, int(i < 3)) for i in range(10)])  # 2 days
    scores = np.linspace(1.0, 0.1, 10)
    choice = choose_threshold(df, scores, alert_budget_per_day=2)
    assert choice.threshold == pytest.approx(scores[3])  # 4 alerts over 2 days
    assert (scores >= choice.threshold).sum() == 4 and choice.achieved == 2.0
    tied = choose_threshold(df, np.array([0.9, 0.8, 0.8, 0.8, 0.8, 0.1, 0.1, 0.1, 0.1, 0.1]),
                            alert_budget_per_day=2)
    assert tied.achieved <= 2.0  # ties at the cut would break the budget: the cut moves above them


def test_threshold_for_a_precision_target():
    df = rows([(f"2018-04-01 10:{i:02d}", i, label) for i, label in enumerate([1, 1, 0, 1, 0, 0])])
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    choice = choose_threshold(df, scores, precision_target=0.75)
    # at 0.6: alerts 0.9, 0.8, 0.7, 0.6 -> 3 of 4 = 0.75, the most alerts reaching the target
    assert choice.threshold == pytest.approx(0.6) and choice.achieved == pytest.approx(0.75)
    unreachable = choose_threshold(df, scores * 0 + 0.5, precision_target=0.99)
    assert "not reachable" in unreachable.note


# ------------------------------------------------------------------------------------------ estimators


@pytest.mark.parametrize("name", ESTIMATORS)
def test_every_estimator_gives_fraud_probabilities(name):
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.random((300, len(FEATURE_NAMES))), columns=FEATURE_NAMES)
    y = (X["amount"] > 0.8).astype(int)
    model = make_estimator(name).fit(X, y)
    proba = model.predict_proba(X)
    assert proba.shape == (300, 2)
    assert proba[y == 1, 1].mean() > proba[y == 0, 1].mean()


def test_logistic_regression_scales_its_inputs():
    assert "scale" in make_estimator("logistic_regression").named_steps


def test_unknown_estimator_is_bad_input():
    with pytest.raises(BadInputError, match="unknown estimator"):
        make_estimator("xgboost")


# --------------------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def small_history() -> pd.DataFrame:
    from fraudctl.data.generator import generate_transactions

    return generate_transactions(n_customers=600, n_terminals=1200, n_days=70, seed=3)


def test_train_end_to_end_on_generated_data(small_history):
    featured = prepare(small_history)
    split = SplitSpec(D(2018, 5, 15))
    result = train(featured, split, estimator="gradient_boosting", alert_budget_per_day=20)
    assert result.threshold.chosen_on == "validation"
    assert result.train["tx_datetime"].min() >= pd.Timestamp("2018-05-15")
    assert result.train["tx_datetime"].max() < pd.Timestamp("2018-05-22")
    assert result.test["tx_datetime"].min() >= pd.Timestamp("2018-05-29")
    assert result.test["tx_datetime"].max() < pd.Timestamp("2018-06-05")
    # far better than chance on the simulator's fraud, which the features are made to find
    assert result.metrics["roc_auc"] > 0.75
    assert result.metrics["average_precision"] > 5 * result.test["is_fraud"].mean()
    assert 0 < result.metrics["card_precision_at_100"] <= 1


def test_train_refuses_a_split_the_data_does_not_cover(small_history):
    featured = prepare(small_history)
    with pytest.raises(BadInputError, match="needs 2018-03-"):
        train(featured, SplitSpec(D(2018, 4, 5)))


# -------------------------------------------------------------------------------------------- loading


def handbook_csv(path, df: pd.DataFrame) -> None:
    """The handbook's own column names."""
    out = df.rename(columns={"transaction_id": "TRANSACTION_ID", "tx_datetime": "TX_DATETIME",
                             "customer_id": "CUSTOMER_ID", "terminal_id": "TERMINAL_ID", "amount": "TX_AMOUNT",
                             "is_fraud": "TX_FRAUD"})
    out.to_csv(path, index=False)


def sample() -> pd.DataFrame:
    return rows([("2018-04-01 10:00:00", 1, 0), ("2018-04-02 11:00:00", 2, 1), ("2018-04-03 12:00:00", 3, 0)])


HANDBOOK_MAP = ["TRANSACTION_ID=transaction_id", "TX_DATETIME=tx_datetime", "CUSTOMER_ID=customer_id",
                "TERMINAL_ID=terminal_id", "TX_AMOUNT=amount", "TX_FRAUD=is_fraud"]


def test_load_csv_through_a_column_map(tmp_path):
    path = tmp_path / "handbook.csv"
    handbook_csv(path, sample())
    # the same SOURCE=FIELD items as `fraudctl replay --map`
    loaded = load_transactions(path, layout=InputLayout.from_flags(items=HANDBOOK_MAP))
    assert loaded.kind == "csv" and loaded.files == 1 and len(loaded.fingerprint) == 64
    assert list(loaded.frame.columns) == ["transaction_id", "tx_datetime", "customer_id", "terminal_id",
                                          "amount", "is_fraud"]
    assert loaded.frame["tx_datetime"].iloc[1] == pd.Timestamp("2018-04-02 11:00:00")
    assert loaded.frame["amount"].tolist() == [10.0, 10.0, 10.0]


def test_load_generator_output_needs_no_map(tmp_path):
    path = tmp_path / "generated.parquet"
    sample().assign(fraud_scenario=0).to_parquet(path)
    loaded = load_transactions(path)
    assert loaded.kind == "parquet" and loaded.frame["is_fraud"].tolist() == [0, 1, 0]


def test_load_epoch_and_offset_times(tmp_path):
    path = tmp_path / "epoch.csv"
    df = sample()
    df["tx_datetime"] = (df["tx_datetime"] - pd.Timestamp(0)).dt.total_seconds().astype(int)
    df.to_csv(path, index=False)
    assert load_transactions(path).frame["tx_datetime"].iloc[1] == pd.Timestamp("2018-04-02 11:00:00")
    df["tx_datetime"] = [0, 90, 3600]
    df.to_csv(path, index=False)
    offset = load_transactions(path, layout=InputLayout(time_format="offset", start="2013-09-01T00:00:00Z"))
    assert offset.frame["tx_datetime"].iloc[2] == pd.Timestamp("2013-09-01 01:00:00")


def test_load_names_the_file_and_the_missing_field(tmp_path):
    path = tmp_path / "handbook.csv"
    handbook_csv(path, sample())
    with pytest.raises(BadInputError) as caught:
        load_transactions(path, layout=InputLayout.from_flags(items=["TX_DATETIME=tx_datetime"]))
    message = caught.value.message
    assert message.startswith(f"{path}: ") and "customer_id" in message and "'TX_AMOUNT'" in message
    assert "--map" in caught.value.hint


def test_load_without_labels_is_refused(tmp_path):
    path = tmp_path / "unlabelled.csv"
    sample().drop(columns=["is_fraud"]).to_csv(path, index=False)
    with pytest.raises(BadInputError, match="no label column"):
        load_transactions(path)


def test_load_names_the_column_with_a_bad_time(tmp_path):
    path = tmp_path / "bad.csv"
    df = sample().astype({"tx_datetime": str})
    df.loc[1, "tx_datetime"] = "yesterday"
    df.to_csv(path, index=False)
    with pytest.raises(BadInputError, match=r"bad.csv: column 'tx_datetime' .* 'yesterday' in row 1"):
        load_transactions(path)


def test_column_map_syntax_errors():
    with pytest.raises(BadInputError, match="SOURCE=FIELD"):
        InputLayout.from_flags(items=["tx_datetime"])
    with pytest.raises(BadInputError, match="'TX_AMOUNT' is not a field") as caught:
        InputLayout.from_flags(items=["amount=TX_AMOUNT"])  # the other way round
    assert "the source column comes first: --map TX_AMOUNT=amount" in caught.value.hint


def test_load_missing_file_is_not_found(tmp_path):
    with pytest.raises(NotFoundError):
        load_transactions(tmp_path / "nope.parquet")


def test_load_a_day_partitioned_lake_and_prune_it(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    df = rows([(f"2018-04-0{d} 10:00:00", d, d % 2) for d in range(1, 6)])
    lake = tmp_path / "lake"
    for day, part in df.groupby(df["tx_datetime"].dt.strftime("%Y-%m-%d")):
        folder = lake / f"day={day}"
        folder.mkdir(parents=True)
        table = pa.Table.from_pandas(part, preserve_index=False)
        # the scorer writes timestamps as UTC microseconds (Spark cannot read nanoseconds)
        table = table.set_column(table.schema.get_field_index("tx_datetime"), "tx_datetime",
                                 table.column("tx_datetime").cast(pa.timestamp("us", tz="UTC")))
        pq.write_table(table, folder / "part-0.parquet")
    loaded = load_transactions(lake)
    assert loaded.kind == "lake" and loaded.files == 5 and len(loaded.frame) == 5
    assert loaded.frame["tx_datetime"].dt.tz is None
    window = load_transactions(lake, since=D(2018, 4, 2), until=D(2018, 4, 4))
    assert sorted(window.frame["customer_id"]) == [2, 3]
    assert load_transactions(lake).fingerprint == loaded.fingerprint  # same files, same lineage
    extra = lake / "day=2018-04-06"
    extra.mkdir()
    pq.write_table(pa.Table.from_pandas(rows([("2018-04-06 10:00:00", 6, 0)]).assign(transaction_id=99),
                                        preserve_index=False), extra / "part-0.parquet")
    assert load_transactions(lake).fingerprint != loaded.fingerprint


# ------------------------------------------------------------------------------------------------- CLI


def test_cli_train_dry_run_needs_no_mlflow(small_history, tmp_path, capsys, monkeypatch):
    import json

    from fraudctl.cli import app, run

    if "train" not in {c.name for c in app.registered_commands}:  # until the lead wires it into fraudctl.cli
        from fraudctl.cli import train as train_cmd

        train_cmd.register(app)
    monkeypatch.setenv("FRAUDCTL_MLFLOW__PORT", "1")  # nothing listens: a dry run must not ask
    path = tmp_path / "history.csv"
    small_history.rename(columns={"amount": "TX_AMOUNT"}).to_csv(path, index=False)
    code = run(["train", "--data", str(path), "--map", "TX_AMOUNT=amount", "--train-start", "2018-05-15",
                "--estimator", "logistic_regression", "--alert-budget", "20", "--dry-run", "-o", "json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    summary = json.loads(out.out)
    assert summary["registered"] is None and summary["estimator"] == "logistic_regression"
    assert summary["window"]["test_start"] == "2018-05-29" and summary["threshold"]["chosen_on"] == "validation"
    assert summary["data"]["kind"] == "csv" and summary["metrics"]["roc_auc"] > 0.75

    code = run(["train", "--data", str(path), "--train-start", "2018-05-15", "--dry-run"])
    assert code == 11  # BAD_INPUT: the amount column is not where the contract expects it
    assert "no column for field(s) amount" in capsys.readouterr().err


def test_alert_budget_drift_warns_and_names_the_cause():
    from fraudctl.model.training import alert_budget_drift

    first = dt.date(2018, 4, 1)
    early = SplitSpec(train_start=dt.date(2018, 4, 22), validation_days=7).validation_split()  # trains from 04-08
    late = SplitSpec(train_start=dt.date(2018, 5, 22), validation_days=7).validation_split()
    assert alert_budget_drift(100, 100, "validation", early, first_day=first, history_days=37) is None
    assert alert_budget_drift(290, 100, "validation", early, first_day=first, history_days=37) is None
    assert alert_budget_drift(34, 100, "validation", early, first_day=first, history_days=37) is None

    warning = alert_budget_drift(3181, 100, "validation", early, first_day=first, history_days=37)
    assert "3,181 alerts a day" in warning and "budget of 100" in warning
    assert "trained from 2018-04-08" in warning and "--train-start (from 2018-05-08 on)" in warning

    warning = alert_budget_drift(20, 100, "validation", late, first_day=first, history_days=37)
    assert "20 alerts a day" in warning and "behave unlike the test days" in warning
    assert "training scores" in alert_budget_drift(500, 100, "training", None, first_day=first, history_days=37)
