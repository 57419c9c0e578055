"""The data contracts: field names and JSON encodings of the events on Kafka, owned here alone.

Version 1. Every producer and consumer (replay, the scorer, the lake, training) imports these names
instead of spelling them, so a renamed field is one edit.
"""

from __future__ import annotations

SCHEMA_VERSION = 1

# Transaction event (topic `transactions`, key = customer_id)
TRANSACTION_ID = "transaction_id"
TX_DATETIME = "tx_datetime"  # event time, ISO-8601 UTC, e.g. 2018-04-01T00:07:56Z
CUSTOMER_ID = "customer_id"
TERMINAL_ID = "terminal_id"
AMOUNT = "amount"
TRANSACTION_FIELDS = (TRANSACTION_ID, TX_DATETIME, CUSTOMER_ID, TERMINAL_ID, AMOUNT)
SCHEMA_VERSION_FIELD = "schema_version"
EXTRA = "extra"  # optional mapping of additional numeric fields passed through from the source

# Label event (topic `labels`, key = customer_id)
IS_FRAUD = "is_fraud"
LABELLED_AT = "labelled_at"
LABEL_FIELDS = (TRANSACTION_ID, CUSTOMER_ID, TERMINAL_ID, TX_DATETIME, IS_FRAUD, LABELLED_AT)

# Generator output columns (a transaction plus its ground truth)
FRAUD_SCENARIO = "fraud_scenario"
GENERATED_COLUMNS = (TRANSACTION_ID, TX_DATETIME, CUSTOMER_ID, TERMINAL_ID, AMOUNT, IS_FRAUD, FRAUD_SCENARIO)

# Score event (topic `scores`; `alerts` carries the ones whose decision is fraud)
SCORE = "score"
DECISION = "decision"  # "fraud" or "legit"
THRESHOLD = "threshold"
MODEL_NAME = "model_name"
MODEL_VERSION = "model_version"
INGEST_TIME = "ingest_time"
SCORED_TIME = "scored_time"
FEATURES = "features"
SCORE_FIELDS = (
    TRANSACTION_ID, SCORE, DECISION, THRESHOLD, MODEL_NAME, MODEL_VERSION, TX_DATETIME, INGEST_TIME,
    SCORED_TIME, FEATURES,
)
