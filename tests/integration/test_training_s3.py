"""Training data from a day-partitioned lake on S3: the native stack's own S3 server (the objectstore
service, S3Proxy), over HTTP with its generated keys."""

from __future__ import annotations

import datetime as dt
import socket
import uuid

import pandas as pd
import pytest

from fraudctl.errors import NotFoundError, UnavailableError

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def storage(stack_storage):
    """The session stack's objectstore (S3Proxy), with its generated keys."""
    return stack_storage


@pytest.fixture
def prefix():
    return f"it-{uuid.uuid4().hex[:8]}"


def test_load_a_day_partitioned_lake_from_s3(storage, prefix):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from fraudctl.clients.objectstore import client
    from fraudctl.model.training import load_transactions

    s3 = client(storage)
    bucket = storage.bucket
    df = pd.DataFrame({
        "transaction_id": range(6),
        "tx_datetime": pd.to_datetime([f"2018-04-0{d} 10:00:00" for d in (1, 1, 2, 3, 4, 5)]),
        "customer_id": [1, 2, 3, 4, 5, 6], "terminal_id": 7, "amount": 10.0, "is_fraud": [0, 1, 0, 0, 1, 0],
    })
    for day, part in df.groupby(df["tx_datetime"].dt.strftime("%Y-%m-%d")):
        table = pa.Table.from_pandas(part, preserve_index=False)
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        s3.put_object(Bucket=bucket, Key=f"{prefix}/transactions/day={day}/part-0.parquet",
                      Body=sink.getvalue().to_pybytes())

    location = f"s3://{bucket}/{prefix}/transactions"
    loaded = load_transactions(location, storage=storage)
    assert loaded.kind == "lake" and loaded.files == 5 and loaded.source == location
    assert sorted(loaded.frame["transaction_id"]) == list(range(6))
    window = load_transactions(location, storage=storage, since=dt.date(2018, 4, 2), until=dt.date(2018, 4, 4))
    assert sorted(window.frame["customer_id"]) == [3, 4]

    with pytest.raises(NotFoundError):
        load_transactions(f"s3://{bucket}/{prefix}/nothing-here", storage=storage)


def test_unreachable_s3_is_unavailable():
    from fraudctl.config import StorageConfig
    from fraudctl.model.training import load_transactions

    dead = StorageConfig(kind="s3", endpoint_url=f"http://127.0.0.1:{free_port()}", access_key_id="x",
                         secret_access_key="y")
    with pytest.raises(UnavailableError):
        load_transactions("s3://fraudctl/lake/transactions", storage=dead)
