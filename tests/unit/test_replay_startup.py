"""`fraudctl replay` start-up: what a small file waits for is imports and the broker handshake. pandas stays
off the path, and the handshake overlaps the rest without changing which error wins."""

from __future__ import annotations

import time
from pathlib import Path

from fraudctl.cli import run
from fraudctl.errors import ExitCode


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_cli_connects_ahead_but_a_bad_file_still_comes_first(tmp_path):
    """The command line opens the producer in a thread before it reads the file: with no broker, a bad file
    is still the error, at once (not after replay.connect_timeout), and a good one gets UNAVAILABLE."""
    def config(name: str, connect_timeout: float) -> str:
        path = tmp_path / name
        path.write_text(f"runtime: {{state_dir: {tmp_path / 'state'}}}\nkafka: {{port: 1}}\n"
                        f"replay: {{connect_timeout: {connect_timeout}}}\n")
        return str(path)

    patient, quick = config("patient.yaml", 30), config("quick.yaml", 1.5)
    assert run(["-c", patient, "replay", str(tmp_path / "nope.csv")]) == ExitCode.NOT_FOUND  # loads replay
    bad = write_csv(tmp_path / "bad.csv", "a,b\n1,2\n")
    started = time.monotonic()
    assert run(["-c", patient, "replay", str(bad)]) == ExitCode.BAD_INPUT
    assert time.monotonic() - started < 15, "a file error waited for the broker"
    good = write_csv(tmp_path / "good.csv", "tx_datetime,customer_id,terminal_id,amount\n2018-04-01,1,2,3\n")
    started = time.monotonic()
    assert run(["-c", quick, "replay", str(good)]) == ExitCode.UNAVAILABLE
    assert time.monotonic() - started >= 1.4


# --- start-up: no pandas on replay's path ---------------------------------------------------------------
NO_PANDAS_SCRIPT = r'''
import sys
from pathlib import Path

import fraudctl.cli  # the command line, as `fraudctl replay` loads it
from fraudctl.cli import replay as replay_command  # noqa: F401
from fraudctl.config import Config
from fraudctl.data.replay import ReplayOptions, replay


class Producer:  # accepts everything: the point is what replay imports, not what it sends
    def __init__(self):
        self.sent = 0

    def produce(self, topic, value, key):
        self.sent += 1

    def poll(self, timeout=0):
        return 0

    def flush(self, timeout=None):
        return 0

    def purge(self, **kwargs):
        pass

    def __len__(self):
        return 0


for path in sys.argv[1:]:
    producer = Producer()
    summary = replay(Config(), ReplayOptions(path=Path(path)), producer_factory=lambda d, t: producer)
    assert summary.transactions and summary.rejected and producer.sent == summary.produced, summary
print(sorted(name for name in ("pandas", "sklearn", "mlflow", "pyspark") if name in sys.modules))
'''


def test_replay_does_not_import_pandas(tmp_path):
    """pyarrow imports pandas (0.2-0.3 s) on its first numpy or Python conversion; replay must avoid them all
    (fraudctl.data.replay.arrow), through every path a small file takes: CSV and parquet, labels, extras, rejects
    of every kind, fractions of seconds, text to escape, quoted newlines."""
    import subprocess
    import sys

    import pyarrow as pa
    import pyarrow.parquet as pq

    csv_path = write_csv(tmp_path / "mixed.csv", (
        "transaction_id,tx_datetime,customer_id,terminal_id,amount,is_fraud,score,note\n"
        '1,2018-04-01T00:00:00.250Z,"a ""quoted"" id",2,3.5,true,0.5,"two\nlines"\n'
        "2,2018-04-01 00:00:01+02:00,1,2,x,0,1,\n"
        "3,,1,2,3,0,1,ok\n"
        "4,yesterday,1,2,3,5,1,ok\n"
        "5,2018-04-01T00:00:03Z,1,2\n"
        "6,2018-04-01T00:00:04Z, 7 ,2,1e999,1,2,ok\n"))
    epoch_path = write_csv(tmp_path / "epoch.csv", "tx_datetime,customer_id,terminal_id,amount,is_fraud\n"
                                                   "1522540800000,1,2,3,0\n1522540801000,1,2,x,1\n")
    parquet_path = tmp_path / "mixed.parquet"
    pq.write_table(pa.table({
        "transaction_id": pa.array([1.0, 2.0, None]), "tx_datetime": pa.array([1, 2, 3], pa.timestamp("s")),
        "customer_id": pa.array([1, 2, 3]), "terminal_id": pa.array(["a", "b", "c"]),
        "amount": pa.array([1.5, None, 2.0]), "is_fraud": pa.array([0, 1, 0])}), parquet_path)
    done = subprocess.run([sys.executable, "-c", NO_PANDAS_SCRIPT, str(csv_path), str(epoch_path), str(parquet_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", f"replay imported {done.stdout.strip()}"
