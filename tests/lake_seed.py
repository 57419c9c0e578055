"""Fill a lake as the scorer would (`Lake.write`, ids as text, labels arriving `label_delay_days` later)
from a generated frame, for the retraining tests."""

from __future__ import annotations

import pandas as pd

from fraudctl.data.lake import LABELS, TRANSACTIONS, Lake


def seed_lake(lake: Lake, generated: pd.DataFrame, *, label_delay_days: int = 7, batch_rows: int = 5000,
              duplicate_batch: bool = True) -> int:
    """Write transactions and labels in batches; with `duplicate_batch` the first batch is written again
    under another id (an at-least-once lake). Returns the number of batches written."""
    frame = generated.sort_values("tx_datetime", kind="mergesort").reset_index(drop=True)
    tx = pd.DataFrame({
        "transaction_id": frame["transaction_id"].astype(str), "tx_datetime": frame["tx_datetime"],
        "customer_id": frame["customer_id"].astype(str), "terminal_id": frame["terminal_id"].astype(str),
        "amount": frame["amount"].astype("float64"),
        "timestamp": frame["tx_datetime"].astype("int64"),
    })
    labels = pd.DataFrame({
        "transaction_id": tx["transaction_id"], "customer_id": tx["customer_id"], "terminal_id": tx["terminal_id"],
        "tx_datetime": tx["tx_datetime"], "is_fraud": frame["is_fraud"].astype("int64"),
        "labelled_at": tx["tx_datetime"] + pd.Timedelta(days=label_delay_days),
        "timestamp": tx["timestamp"],
    })
    batches = 0
    for batch_id, start in enumerate(range(0, len(tx), batch_rows)):
        rows = slice(start, start + batch_rows)
        lake.write(TRANSACTIONS, batch_id, tx.iloc[rows], "tx_datetime")
        lake.write(LABELS, batch_id, labels.iloc[rows], "tx_datetime")
        batches += 1
    if duplicate_batch:
        lake.write(TRANSACTIONS, batches, tx.iloc[0:batch_rows], "tx_datetime")
        batches += 1
    return batches
