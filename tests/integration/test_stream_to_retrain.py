"""End to end from the stream on the real native stack: a generated file replayed into Kafka (topics of this
module's own), the running scorer writes the lake as it scores, and `fraudctl retrain --wait` trains on
what the lake holds: a registered version whose lineage names the lake files the scorer wrote and the DAG
run id.

Independent of test_scorer.py, which shares the session's scorer: the scorer is stopped and its state
cleared before this module starts it, and stopped at the end. Its data lie in 2019 (the other modules'
in 2018), so the retrain window holds only what this module streamed.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import fraudctl_ok, run_fraudctl, wait_for
from tests.support import module_config

TOPIC_SUFFIX = "-stream-retrain"
START, DAYS = "2019-01-01", 45
CUTOFF = "2019-02-15"  # the day after the last generated day


@pytest.fixture(scope="module")
def env(stack_config_path, tmp_path_factory):
    """A config on the session stack with this module's own topics; the data (2019), a champion trained and
    promoted from the file, and the scorer stopped with its state cleared."""
    from fraudctl.config import load_config
    from fraudctl.data.generator import generate_transactions, write_transactions

    folder = tmp_path_factory.mktemp("stream-retrain")
    cfg = module_config(stack_config_path, folder, TOPIC_SUFFIX, scorer={"max_offsets_per_trigger": 10000})
    config = load_config(cfg, env={})
    frame = generate_transactions(n_customers=300, n_terminals=600, n_days=DAYS, start_date=START, seed=11)
    path = folder / "tx.csv"
    write_transactions(frame, path)

    trained = json.loads(fraudctl_ok(cfg, "train", "--data", str(path), "-o", "json").stdout)
    fraudctl_ok(cfg, "promote", trained["registered"]["version"], "--force", "--yes")
    run_fraudctl("-c", str(cfg), "scorer", "stop")
    shutil.rmtree(config.state_dir / "scorer", ignore_errors=True)
    yield {"cfg": cfg, "config": config, "path": path, "frame": frame}
    run_fraudctl("-c", str(cfg), "scorer", "stop")


def lake_window(config):
    """This module's days (2019) of the lake, read as the DAG reads it (whatever the storage): the frame
    (labels whenever they arrived) and the lineage (the files)."""
    import datetime as dt

    from fraudctl.data.lake import read_training_frame
    from fraudctl.stack import get_runtime

    return read_training_frame(config, get_runtime(config).storage(), since=dt.date.fromisoformat(START), until=dt.date.fromisoformat(CUTOFF))


def lake_filled(config, wanted: set[str], seen: dict) -> bool:
    frame, lineage = lake_window(config)
    seen.update(rows=len(frame), labelled=int(frame["is_fraud"].notna().sum()),
                files=len(lineage["transaction_files"]), label_files=len(lineage["label_files"]))
    return set(frame["transaction_id"]) == wanted and bool(frame["is_fraud"].notna().all())


def test_replayed_stream_fills_the_lake_and_retrain_registers_from_it(env):
    from fraudctl.model.registry import Registry

    cfg, config, frame = env["cfg"], env["config"], env["frame"]
    started = time.monotonic()
    out = json.loads(fraudctl_ok(cfg, "scorer", "start", "-o", "json", timeout=300).stdout)
    assert out["health"] == "healthy"
    replay = json.loads(fraudctl_ok(cfg, "replay", str(env["path"]), "-o", "json", timeout=300).stdout)
    wanted = set(frame["transaction_id"].astype(str))
    assert replay["transactions"] == len(wanted) and replay["labels"] == len(wanted)

    # the scorer writes every transaction and, as the labels arrive, every label to the lake
    seen: dict = {}
    wait_for(lambda: lake_filled(config, wanted, seen), 180,
             f"the lake to hold all {len(wanted)} streamed transactions with their labels", every=1,
             explain=lambda: f"the lake holds {seen}; scorer: "
                             f"{run_fraudctl('-c', str(cfg), 'scorer', 'status', '-o', 'json').stdout}")
    filled = time.monotonic() - started
    status = json.loads(run_fraudctl("-c", str(cfg), "scorer", "status", "-o", "json").stdout)
    assert status["health"] == "healthy" and status["counters"]["batches"] > 1 and status["dead_letters"] == 0

    result = run_fraudctl("-c", str(cfg), "retrain", "--wait", "--timeout", "400", "-o", "json",
                          "--conf", f"window_days={DAYS}", "--conf", f"cutoff={CUTOFF}", timeout=600)
    assert result.returncode == 0, result.stderr + result.stdout
    out = json.loads(result.stdout)
    print(f"lake filled {filled:.0f}s after the scorer start; retrain tasks {out['durations']}, "
          f"wall {out['wall_seconds']}s; whole test {time.monotonic() - started:.0f}s")
    assert out["state"] == "success"
    report = out["report"]
    assert report["dag_run_id"] == out["run_id"] and report["version"]
    data = report["data"]
    assert data["kind"] == "lake" and data["since"] == START and data["until"] == CUTOFF
    assert data["rows"] == len(wanted)  # exactly what was streamed: no other module's days, no duplicate
    # labels arrive 7 days after the transaction: those after the cutoff are not in the training set
    arrived = int((frame["tx_datetime"] + pd.Timedelta(days=config.model.label_delay_days) <= pd.Timestamp(CUTOFF)).sum())
    assert data["labelled"] == arrived < len(wanted)

    registry = Registry(config)
    version = registry.client.get_model_version(registry.name, report["version"])
    assert version.tags["fraudctl.dag_run_id"] == out["run_id"]
    assert version.tags["fraudctl.retrain_window"] == f"{START}..{CUTOFF}"
    lineage = json.loads(Path(registry.client.download_artifacts(version.run_id, "retrain_lineage.json")).read_text())
    assert lineage["dag_run_id"] == out["run_id"]
    # the lineage names the files the scorer wrote, and nothing else
    frame, now = lake_window(config)
    written = set(now["transaction_files"])
    assert set(lineage["transaction_files"]) == written and len(written) >= DAYS
    assert all("/transactions/event_date=2019-" in f and f.rsplit("/", 1)[1].startswith("batch-") for f in written)
    assert data["lake_files"] == len(written) and set(frame["transaction_id"]) == wanted
