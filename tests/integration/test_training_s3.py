"""Training data from a day-partitioned lake on S3, through a real S3 HTTP endpoint (moto's server mode,
standing in for MinIO, which has no installable server binary here)."""

from __future__ import annotations

import datetime as dt
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from fraudctl.errors import NotFoundError, UnavailableError

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint():
    server = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or shutil.which("moto_server")
    if server is None:
        pytest.skip("moto_server not installed (pip install 'moto[server]')")
    port = free_port()
    proc = subprocess.Popen([server, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("moto_server did not start")
                time.sleep(0.2)
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def storage(s3_endpoint):
    from fraudctl.config import StorageConfig

    return StorageConfig(kind="s3", endpoint_url=s3_endpoint, bucket="lake", access_key_id="testing",
                         secret_access_key="testing")


def test_load_a_day_partitioned_lake_from_s3(storage):
    import boto3
    import pyarrow as pa
    import pyarrow.parquet as pq

    from fraudctl.training import load_transactions

    s3 = boto3.client("s3", endpoint_url=storage.endpoint_url, aws_access_key_id="testing",
                      aws_secret_access_key="testing", region_name="us-east-1")
    s3.create_bucket(Bucket="lake")
    df = pd.DataFrame({
        "transaction_id": range(6),
        "tx_datetime": pd.to_datetime([f"2018-04-0{d} 10:00:00" for d in (1, 1, 2, 3, 4, 5)]),
        "customer_id": [1, 2, 3, 4, 5, 6], "terminal_id": 7, "amount": 10.0, "is_fraud": [0, 1, 0, 0, 1, 0],
    })
    for day, part in df.groupby(df["tx_datetime"].dt.strftime("%Y-%m-%d")):
        table = pa.Table.from_pandas(part, preserve_index=False)
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        s3.put_object(Bucket="lake", Key=f"transactions/day={day}/part-0.parquet", Body=sink.getvalue().to_pybytes())

    loaded = load_transactions("s3://lake/transactions", storage=storage)
    assert loaded.kind == "lake" and loaded.files == 5 and loaded.source == "s3://lake/transactions"
    assert sorted(loaded.frame["transaction_id"]) == list(range(6))
    window = load_transactions("s3://lake/transactions", storage=storage, since=dt.date(2018, 4, 2),
                               until=dt.date(2018, 4, 4))
    assert sorted(window.frame["customer_id"]) == [3, 4]

    with pytest.raises(NotFoundError):
        load_transactions("s3://lake/nothing-here", storage=storage)


def test_unreachable_s3_is_unavailable():
    from fraudctl.config import StorageConfig
    from fraudctl.training import load_transactions

    dead = StorageConfig(kind="s3", endpoint_url=f"http://127.0.0.1:{free_port()}", access_key_id="x",
                         secret_access_key="y")
    with pytest.raises(UnavailableError):
        load_transactions("s3://lake/transactions", storage=dead)
