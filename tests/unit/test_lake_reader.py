"""fraudctl.data.lake.read_training_frame: the window of a lake written by `Lake.write`, deduplicated, with the
labels that had arrived by the cutoff."""

import datetime as dt

import numpy as np
import pandas as pd

from fraudctl.data.lake import Lake, read_training_frame


def transactions(ids, times):
    return pd.DataFrame({
        "transaction_id": [str(i) for i in ids], "tx_datetime": pd.to_datetime(times),
        "customer_id": ["c1"] * len(ids), "terminal_id": ["t1"] * len(ids),
        "amount": np.arange(len(ids), dtype="float64") + 1.0,
        "timestamp": np.arange(len(ids), dtype="int64") * 1000,
    })


def labels(ids, times, frauds, labelled_at):
    return pd.DataFrame({
        "transaction_id": [str(i) for i in ids], "customer_id": ["c1"] * len(ids), "terminal_id": ["t1"] * len(ids),
        "tx_datetime": pd.to_datetime(times), "is_fraud": frauds, "labelled_at": pd.to_datetime(labelled_at),
        "timestamp": np.arange(len(ids), dtype="int64"),
    })


def make_lake(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    times = ["2024-01-01 10:00", "2024-01-02 11:00", "2024-01-03 12:00", "2024-01-04 13:00"]
    lake.write("transactions", 1, transactions([1, 2, 3, 4], times), "tx_datetime")
    # batch 2 re-delivers transaction 2 (at-least-once)
    lake.write("transactions", 2, transactions([2], ["2024-01-02 11:00"]), "tx_datetime")
    lake.write("labels", 3, labels([1, 2, 3], times[:3], [0, 1, 0],
                                   ["2024-01-02", "2024-01-03", "2024-01-10"]), "tx_datetime")
    lake.write("labels", 4, labels([2], times[1:2], [1], ["2024-01-03"]), "tx_datetime")  # a duplicate label
    return lake


def test_window_dedup_and_labels_by_cutoff(tmp_path):
    lake = make_lake(tmp_path)
    frame, lineage = read_training_frame(lake.uri, since=dt.date(2024, 1, 1), until=dt.date(2024, 1, 4),
                                         cutoff=pd.Timestamp("2024-01-05"))
    assert list(frame.columns) == ["transaction_id", "tx_datetime", "customer_id", "terminal_id", "amount",
                                   "is_fraud"]
    assert frame["transaction_id"].tolist() == ["1", "2", "3"]  # day 4 outside, transaction 2 once
    assert frame["is_fraud"].tolist()[:2] == [0.0, 1.0]
    assert np.isnan(frame["is_fraud"].iloc[2])  # its label arrives after the cutoff
    assert frame["tx_datetime"].dtype == "datetime64[ns]"
    assert lineage["duplicates_dropped"] == 1
    assert lineage["labels_after_cutoff"] == 1
    assert lineage["rows"] == 3 and lineage["labelled"] == 2 and lineage["frauds"] == 1
    assert len(lineage["transaction_files"]) == 4  # days 1, 2 (two batches), 3
    assert all("event_date=2024-01-0" in f for f in lineage["transaction_files"])


def test_no_cutoff_takes_every_label_and_no_window_every_day(tmp_path):
    lake = make_lake(tmp_path)
    frame, lineage = read_training_frame(lake)
    assert frame["transaction_id"].tolist() == ["1", "2", "3", "4"]
    assert frame["is_fraud"].iloc[:3].tolist() == [0.0, 1.0, 0.0]
    assert np.isnan(frame["is_fraud"].iloc[3])
    assert lineage["labels_after_cutoff"] == 0


def test_an_empty_window(tmp_path):
    lake = make_lake(tmp_path)
    frame, lineage = read_training_frame(lake, since=dt.date(2025, 1, 1), until=dt.date(2025, 2, 1))
    assert len(frame) == 0 and lineage["transaction_files"] == [] and lineage["rows"] == 0
    frame, _ = read_training_frame(str(tmp_path / "nowhere"))
    assert len(frame) == 0
