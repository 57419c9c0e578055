"""`fraudctl replay`: a CSV or parquet file of transactions into Kafka, with delayed label events.

The pipeline, one chunk (a few MB of CSV, 64 K parquet rows) at a time, one module per step:

    source    read (pyarrow, every column as text), rows the reader cannot split become rejects
    (layout)  map columns: presets, --map, time formats (fraudctl.layout, shared with `train --data`)
    parse     ids, amounts, times and labels, vectorised; bad values reject their row
    encode    the contract's JSON, vectorised (Encoder)
    sequence  delayed labels interleaved in event time, pacing (Sequencer)
    send      produce (confluent-kafka), every delivery report accounted for
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
    import it for its conversions; fraudctl.replay.arrow avoids them), which a unit test checks.
"""

from fraudctl.replay.core import encoded_events, plan, replay
from fraudctl.replay.encode import EncodedChunk, Encoder
from fraudctl.replay.options import ReplayOptions, parse_duration
from fraudctl.replay.sequence import Outgoing, Sequencer
from fraudctl.replay.summary import ReplayInterrupted, ReplayProgress, ReplaySummary, raise_for_outcome

__all__ = [
    "EncodedChunk", "Encoder", "Outgoing", "ReplayInterrupted", "ReplayOptions", "ReplayProgress", "ReplaySummary",
    "Sequencer", "encoded_events", "parse_duration", "plan", "raise_for_outcome", "replay",
]
