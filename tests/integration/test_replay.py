"""`fraudctl replay` against the real broker of the test stack: everything consumed back.

Each test notes the topics' end offsets before it replays and reads exactly the range its replay added,
so tests sharing the session's stack do not see each other's events.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fraudctl import contracts as c
from fraudctl.clients.kafka import end_offsets
from fraudctl.errors import ExitCode
from fraudctl.data.generator import generate_transactions, write_transactions
from tests.conftest import FRAUDCTL, REPO, run_fraudctl, wait_for
from tests.integration.conftest import write_config

GENERATED_ARGS = dict(n_customers=200, n_terminals=400, n_days=20, seed=11)  # for the `generated` fixture


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    key: str
    value: dict
    timestamp: int  # CreateTime, ms


def consume(config, topic: str, start: dict[int, int], timeout: float = 60) -> list[Record]:
    """Every record of `topic` from `start` up to the current end offsets."""
    from confluent_kafka import Consumer, TopicPartition

    from fraudctl.clients.kafka import client_config

    end = end_offsets(config.kafka, topic)
    wanted = {p: end[p] - start.get(p, 0) for p in end}
    records: list[Record] = []
    if not any(wanted.values()):
        return records
    consumer = Consumer(client_config(config.kafka, **{"group.id": "test-replay", "enable.auto.commit": False,
                                                       "enable.partition.eof": False}))
    consumer.assign([TopicPartition(topic, p, start.get(p, 0)) for p in end if wanted[p]])
    deadline = time.monotonic() + timeout
    got = defaultdict(int)
    try:
        while any(got[p] < wanted[p] for p in wanted) and time.monotonic() < deadline:
            for msg in consumer.consume(10_000, timeout=1.0):
                if msg.error():
                    continue
                p = msg.partition()
                if msg.offset() >= end[p]:
                    continue
                got[p] += 1
                records.append(Record(msg.topic(), p, msg.offset(), msg.key().decode(), json.loads(msg.value()),
                                      msg.timestamp()[1]))
    finally:
        consumer.close()
    assert all(got[p] == wanted[p] for p in wanted), f"consumed {dict(got)} of {wanted} within {timeout} s"
    return records


class Offsets:
    """End offsets of both topics before a replay; `records()` reads what was added since."""

    def __init__(self, config):
        self.config = config
        self.topics = (config.kafka.topics.transactions.name, config.kafka.topics.labels.name)
        self.start = {topic: end_offsets(config.kafka, topic) for topic in self.topics}

    def records(self) -> tuple[list[Record], list[Record]]:
        tx, labels = (consume(self.config, topic, self.start[topic]) for topic in self.topics)
        return tx, labels


def wait_until_landed(offsets: Offsets, topic: str, count: int, process: subprocess.Popen,
                      timeout: float = 60) -> None:
    """Until a running replay has landed `count` events on `topic` since `offsets` were taken."""
    def landed() -> bool:
        if sum(end_offsets(offsets.config.kafka, topic).values()) - sum(offsets.start[topic].values()) >= count:
            return True
        assert process.poll() is None, process.communicate()  # a replay that ended will land nothing more
        return False

    wait_for(landed, timeout, f"the replay to land {count} events")


def replay_cli(config_path: Path, *args: str, timeout: float = 600, env: dict | None = None):
    result = run_fraudctl("-c", str(config_path), "replay", *map(str, args), "-o", "json", timeout=timeout, env=env)
    summary = json.loads(result.stdout) if result.stdout.strip().startswith("{") else None
    return result, summary


def assert_each_once_keyed_and_ordered(records: list[Record], expected_ids: list[str]) -> None:
    ids = [r.value[c.TRANSACTION_ID] for r in records]
    assert len(ids) == len(set(ids)), "a transaction_id arrived twice"
    assert sorted(ids) == sorted(expected_ids)
    partitions_of_key = defaultdict(set)
    by_key = defaultdict(list)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        assert record.key == record.value[c.CUSTOMER_ID]
        assert c.validate_transaction(record.value) == []
        partitions_of_key[record.key].add(record.partition)
        by_key[record.key].append(record.value[c.TX_DATETIME])
    assert all(len(p) == 1 for p in partitions_of_key.values()), "a key spread over partitions"
    for key, times in by_key.items():
        parsed = [c.parse_time(t) for t in times]
        assert parsed == sorted(parsed), f"customer {key}: events out of event-time order"


# --- the generator's layout ------------------------------------------------------------------------------
def test_every_transaction_once_keyed_and_in_order(stack_config, stack_config_path, generated):
    frame, path = generated
    offsets = Offsets(stack_config)
    result, summary = replay_cli(stack_config_path, path)
    assert result.returncode == 0, result.stderr
    n = len(frame)
    assert summary["read"] == summary["transactions"] == summary["labels"] == n
    assert summary["produced"] == summary["delivered"] == 2 * n and summary["failed"] == 0
    tx, labels = offsets.records()
    assert_each_once_keyed_and_ordered(tx, [str(i) for i in frame[c.TRANSACTION_ID]])
    by_id = frame.set_index(frame[c.TRANSACTION_ID].astype(str))
    for record in tx[:500]:
        row = by_id.loc[record.value[c.TRANSACTION_ID]]
        assert record.value[c.CUSTOMER_ID] == str(row[c.CUSTOMER_ID])
        assert record.value[c.AMOUNT] == pytest.approx(row[c.AMOUNT])
    assert sorted(r.value[c.TRANSACTION_ID] for r in labels) == sorted(str(i) for i in frame[c.TRANSACTION_ID])
    assert all(r.key == r.value[c.CUSTOMER_ID] and c.validate_label(r.value) == [] for r in labels)


def test_labels_are_delayed_and_interleaved_in_event_time(stack_config, stack_config_path, tmp_path):
    frame = generate_transactions(n_customers=40, n_terminals=80, n_days=6, seed=5)
    path = tmp_path / "small.csv"
    write_transactions(frame, path)
    offsets = Offsets(stack_config)
    span = (frame[c.TX_DATETIME].max() - frame[c.TX_DATETIME].min()).total_seconds() + 86_400
    speedup = span / 4.0  # the whole replay, trailing labels included, in about 4 s
    started = time.monotonic()
    result, summary = replay_cli(stack_config_path, path, "--label-delay", "1d", "--speedup", f"{speedup:.3f}")
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started >= 3.5, "--speedup did not pace the replay"
    tx, labels = offsets.records()
    assert len(tx) == len(labels) == len(frame)
    fraud = dict(zip(frame[c.TRANSACTION_ID].astype(str), frame[c.IS_FRAUD]))
    for label in labels:
        event = label.value
        assert c.parse_time(event[c.LABELLED_AT]) - c.parse_time(event[c.TX_DATETIME]) == dt.timedelta(days=1)
        assert event[c.IS_FRAUD] == fraud[event[c.TRANSACTION_ID]]

    # Produce order is event-time order: a label's CreateTime is no earlier than that of any transaction
    # before its time, and no later than that of any transaction after it.
    tx_times = np.array([c.parse_time(r.value[c.TX_DATETIME]).timestamp() for r in tx])
    tx_stamps = np.array([r.timestamp for r in tx])
    order = np.argsort(tx_times, kind="stable")
    tx_times, tx_stamps = tx_times[order], tx_stamps[order]
    stamp_max_before = np.maximum.accumulate(tx_stamps)
    stamp_min_after = np.minimum.accumulate(tx_stamps[::-1])[::-1]
    trailing = 0
    for label in labels:
        at = c.parse_time(label.value[c.LABELLED_AT]).timestamp()
        before = np.searchsorted(tx_times, at, side="left")  # transactions strictly earlier
        after = np.searchsorted(tx_times, at, side="right")  # transactions strictly later from here
        if before:
            assert label.timestamp >= stamp_max_before[before - 1]
        if after < len(tx_times):
            assert label.timestamp <= stamp_min_after[after]
        else:
            trailing += 1
    assert 0 < trailing < len(labels)  # some labels come after the last transaction, most among them
    # and the stream really was spread over the wall clock, labels too
    assert max(r.timestamp for r in labels) - min(r.timestamp for r in tx) >= 3000


# --- each preset layout ----------------------------------------------------------------------------------
def test_generator_parquet(stack_config, stack_config_path, generated, tmp_path):
    frame, _ = generated
    path = tmp_path / "transactions.parquet"
    write_transactions(frame.head(1000), path)
    offsets = Offsets(stack_config)
    result, summary = replay_cli(stack_config_path, path, "--no-labels")
    assert result.returncode == 0, result.stderr
    assert summary["format"] == "parquet" and summary["delivered"] == 1000
    tx, labels = offsets.records()
    assert labels == []
    assert_each_once_keyed_and_ordered(tx, [str(i) for i in range(1000)])


def test_ulb_layout(stack_config, stack_config_path, tmp_path):
    rng = np.random.default_rng(1)
    rows = 800
    frame = pd.DataFrame({"Time": np.sort(rng.integers(0, 172_800, rows)).astype(float)})
    for i in range(1, 29):
        frame[f"V{i}"] = rng.normal(size=rows).round(6)
    frame["Amount"] = rng.uniform(0, 300, rows).round(2)
    frame["Class"] = (rng.uniform(size=rows) < 0.05).astype(int)
    path = tmp_path / "creditcard.csv"
    frame.to_csv(path, index=False)
    offsets = Offsets(stack_config)
    result, summary = replay_cli(stack_config_path, path, "--start", "2013-09-01T00:00:00Z")
    assert result.returncode == 0, result.stderr
    assert summary["preset"] == "ulb" and summary["transactions"] == summary["labels"] == rows
    tx, labels = offsets.records()
    assert_each_once_keyed_and_ordered(tx, [str(i) for i in range(rows)])
    origin = dt.datetime(2013, 9, 1, tzinfo=dt.timezone.utc)
    for record in tx:
        i = int(record.value[c.TRANSACTION_ID])
        assert record.key == record.value[c.TERMINAL_ID] == str(i)
        assert c.parse_time(record.value[c.TX_DATETIME]) == origin + dt.timedelta(seconds=frame["Time"][i])
        assert record.value[c.EXTRA]["V28"] == pytest.approx(frame["V28"][i])
    assert sum(r.value[c.IS_FRAUD] for r in labels) == frame["Class"].sum()


def test_sparkov_layout(stack_config, stack_config_path, tmp_path):
    rng = np.random.default_rng(2)
    rows = 600
    start = pd.Timestamp("2019-01-01")
    frame = pd.DataFrame({
        "trans_date_trans_time": (start + pd.to_timedelta(np.sort(rng.integers(0, 5 * 86_400, rows)), unit="s"))
        .strftime("%Y-%m-%d %H:%M:%S"),
        "cc_num": rng.choice([2703186189652095, 630423337322, 38859492057661, 3534093764340240], rows),
        "merchant": rng.choice(["fraud_Rippin, Kub and Mann", "fraud_Heller, Gutmann and Zieme", 'fraud_"Q"'],
                               rows),
        "category": "misc_net",
        "amt": rng.uniform(1, 500, rows).round(2),
        "zip": rng.integers(10_000, 99_999, rows),
        "trans_num": [f"{i:032x}" for i in rng.integers(0, 2**62, rows)],
        "is_fraud": (rng.uniform(size=rows) < 0.1).astype(int),
    })
    path = tmp_path / "fraudTrain.csv"
    frame.to_csv(path)  # with the unnamed index column, as the published file
    offsets = Offsets(stack_config)
    result, summary = replay_cli(stack_config_path, path)
    assert result.returncode == 0, result.stderr
    assert summary["preset"] == "sparkov" and summary["extra_columns"] == ["zip"]
    tx, labels = offsets.records()
    assert_each_once_keyed_and_ordered(tx, list(frame["trans_num"]))
    by_id = frame.set_index("trans_num")
    for record in tx:
        row = by_id.loc[record.value[c.TRANSACTION_ID]]
        assert record.key == str(row["cc_num"])
        assert record.value[c.TERMINAL_ID] == row["merchant"]
        assert record.value[c.EXTRA] == {"zip": row["zip"]}
    assert len(labels) == rows


# --- bad rows --------------------------------------------------------------------------------------------
BAD_FILE = (
    "transaction_id,tx_datetime,customer_id,terminal_id,amount,is_fraud\n"
    "bad-1,2018-04-01T00:00:00Z,1,2,10.5,0\n"
    "bad-2,2018-04-01T00:00:01Z,,2,10.5,0\n"  # line 3: missing field
    "bad-3,2018-04-01T00:00:02Z,1,2,ten,0\n"  # line 4: non-numeric amount
    "bad-4,not a time,1,2,10.5,0\n"  # line 5: unparseable timestamp
    "bad-5,2018-04-01T00:00:04Z,1,2\n"  # line 6: wrong column count
    "bad-6,2018-04-01T00:00:05Z,2,2,10.5,1\n"
    "bad-7,2018-04-01T00:00:06Z,1,2,10.5,0,9\n"  # line 8: wrong column count
    "bad-8,2018-04-01T00:00:07Z,3,2,99,0\n"
)


def test_bad_rows_land_in_the_rejects_file_and_the_counts_add_up(stack_config, stack_config_path, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(BAD_FILE)
    offsets = Offsets(stack_config)
    result, summary = replay_cli(stack_config_path, path)
    assert result.returncode == ExitCode.BAD_INPUT, result.stderr
    assert "5 row(s) rejected" in result.stderr and "bad.csv.rejects.csv" in result.stderr
    rejects = pd.read_csv(tmp_path / "bad.csv.rejects.csv")
    assert list(rejects["line"]) == [3, 4, 5, 6, 8]
    assert [reason.split(" (")[0].split(":")[0] for reason in rejects["reason"]] == [
        "missing field customer_id", "non-numeric amount 'ten'", "unparseable timestamp 'not a time'",
        "wrong column count", "wrong column count"]
    assert summary["read"] == 8 and summary["rejected"] == len(rejects) == 5
    assert summary["transactions"] == summary["read"] - summary["rejected"] == 3
    assert summary["delivered"] == summary["produced"] == 6
    tx, labels = offsets.records()
    assert sorted(r.value[c.TRANSACTION_ID] for r in tx) == ["bad-1", "bad-6", "bad-8"]
    assert len(labels) == 3

    result, summary = replay_cli(stack_config_path, path, "--max-errors", "5", "--no-labels")
    assert result.returncode == 0, result.stderr


# --- failure and recovery --------------------------------------------------------------------------------
def wait_for_kafka(config, timeout: float = 120) -> None:
    from fraudctl.errors import UnavailableError
    from fraudctl.clients.kafka import probe

    wait_for(lambda: probe(config.kafka, timeout=3), timeout, "Kafka to answer again", every=1, ignoring=UnavailableError)


def test_broker_restart_mid_replay_still_delivers_every_row_once(stack_config, stack_config_path, generated):
    from fraudctl.stack.supervisor import Supervisor

    frame, path = generated
    rows = min(len(frame), 40_000)
    offsets = Offsets(stack_config)
    topic = stack_config.kafka.topics.transactions.name
    process = subprocess.Popen(
        [*FRAUDCTL, "-c", str(stack_config_path), "replay", str(path), "--limit", str(rows), "--rate", "1000",
         "-o", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        # Let a good part go through, then take the broker down and up while the replay keeps producing.
        wait_until_landed(offsets, topic, 2500, process)
        supervisor = Supervisor(stack_config.state_dir)
        supervisor.stop("kafka")  # waits until the process is gone
        time.sleep(2)
        assert process.poll() is None, "the replay ended while the broker was down"
        supervisor.start("kafka")
        out, err = process.communicate(timeout=400)
    finally:
        if process.poll() is None:
            process.kill()
        wait_for_kafka(stack_config)
    assert process.returncode == 0, err
    summary = json.loads(out)
    assert summary["transactions"] == summary["labels"] == rows
    assert summary["delivered"] == summary["produced"] == 2 * rows and summary["failed"] == 0
    assert summary["broker_errors"], "the producer never noticed the broker going away"
    tx, labels = offsets.records()
    assert_each_once_keyed_and_ordered(tx, [str(i) for i in range(rows)])
    label_ids = [r.value[c.TRANSACTION_ID] for r in labels]
    assert len(label_ids) == len(set(label_ids)) == rows


def test_ctrl_c_flushes_and_prints_the_summary(stack_config, stack_config_path, generated):
    frame, path = generated
    offsets = Offsets(stack_config)
    process = subprocess.Popen(
        [*FRAUDCTL, "-c", str(stack_config_path), "replay", str(path), "--rate", "1000", "-o", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    wait_until_landed(offsets, stack_config.kafka.topics.transactions.name, 500, process)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == ExitCode.INTERRUPTED, err
    summary = json.loads(out)
    assert summary["interrupted"] is True
    assert 0 < summary["transactions"] < len(frame)
    assert summary["delivered"] == summary["produced"] == summary["transactions"] + summary["labels"]
    tx, labels = offsets.records()
    assert len(tx) == summary["transactions"] and len(labels) == summary["labels"]


@pytest.mark.parametrize("host", ["127.0.0.1", "192.0.2.1"])  # refused; a documentation address (no answer)
def test_unreachable_broker_fails_clearly_within_bounded_time(tmp_path, generated, host):
    _, path = generated
    config = write_config(tmp_path, kafka={"host": host, "port": 1}, replay={"connect_timeout": 3})
    started = time.monotonic()
    result = run_fraudctl("-c", str(config), "replay", str(path), timeout=60)
    elapsed = time.monotonic() - started
    assert result.returncode == ExitCode.UNAVAILABLE, result.stderr
    assert f"Kafka at {host}:1 did not answer within 3 s" in result.stderr
    assert "fraudctl up" in result.stderr and "Traceback" not in result.stderr
    assert elapsed < 20
    # librdkafka's own log lines stay out of the way (they would say "%3|...|FAIL|... Connection refused")
    assert "|FAIL|" not in result.stderr and not any(line.startswith("%") for line in result.stderr.splitlines())
    if host == "127.0.0.1":  # refused at once: librdkafka has logged why; --debug shows it
        debug = run_fraudctl("--debug", "-c", str(config), "replay", str(path), timeout=60)
        assert debug.returncode == ExitCode.UNAVAILABLE
        assert "fraudctl.librdkafka: FAIL" in debug.stderr and "Connection refused" in debug.stderr


@pytest.mark.parametrize("reports", ["errors", "all"])
def test_deliveries_the_broker_refuses_are_counted_as_failed(stack_config, stack_config_path, tmp_path, reports):
    """A topic whose max.message.bytes no batch fits in: the broker refuses every event, and both report
    modes count each refusal, with its reason, and deliver nothing."""
    from confluent_kafka.admin import AdminClient, NewTopic

    from fraudctl.clients.kafka import client_config

    topic = f"test-replay-refused-{reports}"
    admin = AdminClient(client_config(stack_config.kafka))
    futures = admin.create_topics([NewTopic(topic, 1, 1, config={"max.message.bytes": "64"})])
    try:
        futures[topic].result(timeout=30)
    except Exception as exc:  # left over from an earlier run of the same session stack
        if "TOPIC_ALREADY_EXISTS" not in str(exc):
            raise
    path = tmp_path / "few.csv"
    write_transactions(generate_transactions(n_customers=20, n_terminals=40, n_days=3, seed=5), path)
    rows = len(pd.read_csv(path))
    result, summary = replay_cli(stack_config_path, path, "--no-labels", env={
        "FRAUDCTL_KAFKA__TOPICS__TRANSACTIONS__NAME": topic, "FRAUDCTL_REPLAY__DELIVERY_REPORTS": reports})
    assert result.returncode == ExitCode.UNAVAILABLE, result.stderr
    assert summary["produced"] == summary["failed"] == rows and summary["delivered"] == 0
    assert "MSG_SIZE_TOO_LARGE" in summary["first_failure"], summary["first_failure"]
    assert f"{rows:,} of {rows:,} events were not delivered" in result.stderr
