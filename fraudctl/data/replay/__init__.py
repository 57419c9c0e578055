"""`fraudctl replay`: a CSV or parquet file of transactions into Kafka, with delayed label events.

The pipeline, one chunk (a few MB of CSV, 64 K parquet rows) at a time, one module per step:

    source    read (pyarrow, every column as text), rows the reader cannot split become rejects
    (layout)  map columns: presets, --map, time formats (fraudctl.data.layout, shared with `train --data`)
    parse     ids, amounts, times and labels, vectorised; bad values reject their row
    encode    the contract's JSON, vectorised (Encoder)
    sequence  delayed labels interleaved in event time, pacing (Sequencer)
    producer  the Kafka producer, opened ahead (Connecting); every delivery report counted (Deliveries)
    send      produce, paced, in slices; wait for the reports
    summary   progress, the summary, the exit status
    core      the orchestration: plan, the reading thread, replay()

Labels
    When a column maps to is_fraud (and --no-labels is not given), each transaction also yields a label event
    on the `labels` topic at event time tx_datetime + label delay (default: model.label_delay_days), placed
    among the transactions in event-time order: a label is produced just before the first transaction at
    or after its time, and those due after the last transaction follow at the end. Every labelled row yields
    a label (0 or 1), as a fraud team's confirmed outcomes would arrive.

Pacing
    As fast as possible (default); --rate N transactions per second (labels ride along); or --speedup X
    times event time (labels included, so the tail of labels after the last transaction takes delay / X).

Pass-through columns
    Unmapped columns pass through in `extra` when they are numeric (judged on the first chunk; a later
    non-numeric value rejects its row, an empty one is null); other unmapped columns are ignored and listed
    in the summary.

Rejects
    A row that cannot be replayed (wrong column count, missing field, non-numeric amount, unparseable time,
    label not 0/1, non-numeric extra value) goes to the rejects file (CSV: line, reason, content) and the
    replay goes on; `line` is the physical line in the CSV (header = line 1; quoted newlines counted), or
    `row` (1-based) for parquet. The file is FILE.rejects.csv beside the input (or in replay.rejects_dir),
    replaced on every run, and only written when there are rejects.

Start-up
    A replay of a small file is dominated by imports. pandas is never imported on this path (pyarrow would
    import it for its conversions; fraudctl.data.replay.arrow avoids them), which a unit test checks, and the
    broker handshake runs in a thread while numpy and pyarrow load and the file is planned.
"""

import importlib
from typing import TYPE_CHECKING

# Public names -> the module that defines them, imported on first use (PEP 562): `fraudctl.data.replay.producer`
# and `fraudctl.data.replay.options` stay free of numpy and pyarrow, so the command line can start connecting
# to the broker before it loads them.
_EXPORTS = {
    "encoded_events": "core", "plan": "core", "replay": "core",
    "EncodedChunk": "encode", "Encoder": "encode",
    "ReplayOptions": "options", "parse_duration": "options",
    "Connecting": "producer", "Deliveries": "producer",
    "Outgoing": "sequence", "Sequencer": "sequence",
    "ReplayInterrupted": "summary", "ReplayProgress": "summary", "ReplaySummary": "summary",
    "raise_for_outcome": "summary",
}
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from fraudctl.data.replay.core import encoded_events, plan, replay
    from fraudctl.data.replay.encode import EncodedChunk, Encoder
    from fraudctl.data.replay.options import ReplayOptions, parse_duration
    from fraudctl.data.replay.producer import Connecting, Deliveries
    from fraudctl.data.replay.sequence import Outgoing, Sequencer
    from fraudctl.data.replay.summary import ReplayInterrupted, ReplayProgress, ReplaySummary, raise_for_outcome


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value
