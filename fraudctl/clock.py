"""Wall-clock times as fraudctl writes them for people and tags: UTC, ISO-8601, to the second.

The bottom layer (imports nothing of fraudctl), so any stage can use it. Event times are another matter:
they follow the data contract (`fraudctl.contracts.format_time`, a "Z" and microseconds when there are some).
"""

from __future__ import annotations

import datetime as dt


def utc_seconds(at: float | None = None) -> str:
    """`at` (seconds since the epoch; now when None) as e.g. 2026-12-07T01:02:03+00:00."""
    when = dt.datetime.now(dt.timezone.utc) if at is None else dt.datetime.fromtimestamp(at, tz=dt.timezone.utc)
    return when.isoformat(timespec="seconds")
