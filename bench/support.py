"""What benchmarks and tests both need and the shipped package does not: a second native stack's config on
shifted ports, and a lake filled as the scorer fills it.

Benchmarks import it as `bench.support` after putting the repository root on sys.path; tests import it from
here too, so that bench/ never depends on tests/.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import yaml

from fraudctl.config import Config

if TYPE_CHECKING:
    import pandas as pd

    from fraudctl.data.lake import Lake


def config_ports(config: Config | None = None) -> dict[str, dict[str, int]]:
    """Every port of `config` (default: the defaults), by section: {"kafka": {"port": 9092, ...}, ...}."""
    config = Config() if config is None else config
    ports = {}
    for name in type(config).model_fields:
        section = getattr(config, name)
        fields = getattr(type(section), "model_fields", {})
        found = {key: getattr(section, key) for key in fields if key == "port" or key.endswith("_port")}
        if found:
            ports[name] = found
    return ports


def write_shifted_config(folder: Path, offset: int, **sections: Mapping[str, Any]) -> Path:
    """folder/fraudctl.yaml for a second native stack: every port moved by `offset`, state in folder/.fraudctl,
    then `sections` merged over it (e.g. runtime={"stop_timeout": 20})."""
    data: dict[str, dict[str, Any]] = {name: {key: port + offset for key, port in ports.items()}
                                       for name, ports in config_ports().items()}
    data["runtime"] = {"kind": "native", "state_dir": str(folder / ".fraudctl")}
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    path = folder / "fraudctl.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def seed_lake(lake: Lake, generated: pd.DataFrame, *, label_delay_days: int = 7, batch_rows: int = 5000,
              duplicate_batch: bool = True) -> int:
    """Fill a lake as the scorer would (`Lake.write`, ids as text, labels arriving `label_delay_days` later)
    from a generated frame: transactions and labels in batches; with `duplicate_batch` the first batch is
    written again under another id (an at-least-once lake). Returns the number of batches written."""
    # pandas and the lake only here: bench_stack imports this module and needs neither
    import pandas as pd

    from fraudctl.data.lake import LABELS, TRANSACTIONS

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


def stack_memory(state_dir: Path) -> tuple[int, float, float]:
    """(processes, RSS MiB, PSS MiB) of supervisord and everything below it."""
    import psutil

    root = psutil.Process(int((state_dir / "run" / "supervisord.pid").read_text()))
    procs = [root, *root.children(recursive=True)]
    rss = pss = 0
    for proc in procs:
        try:
            info = proc.memory_full_info()
            rss += info.rss
            pss += getattr(info, "pss", info.rss)
        except psutil.Error:
            pass
    return len(procs), rss / 2**20, pss / 2**20
