"""What a replay is asked to do: the file, its layout, labels, pacing and range."""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from fraudctl.config import DURATION_PATTERN
from fraudctl.errors import BadInputError
from fraudctl.data.layout import InputLayout

_DURATION_RE = re.compile(DURATION_PATTERN)
_DURATION_UNITS = {"d": 86_400, "h": 3_600, "m": 60, "s": 1, "": 86_400}


@dataclass
class ReplayOptions:
    path: Path
    file_format: str | None = None
    layout: InputLayout = field(default_factory=InputLayout)  # preset, --map, time format and start
    labels: bool = True
    label_delay: dt.timedelta = dt.timedelta(days=7)
    rate: float | None = None  # transactions per second
    speedup: float | None = None  # times event time
    limit: int | None = None  # data rows, after --skip
    skip: int = 0  # data rows
    max_errors: int = 0
    rejects_path: Path | None = None  # None: FILE.rejects.csv beside FILE

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        if self.rate is not None and self.speedup is not None:
            raise BadInputError("give --rate or --speedup, not both")
        if self.rate is not None and not (self.rate > 0 and math.isfinite(self.rate)):
            raise BadInputError(f"--rate must be a positive number of events per second, got {self.rate}")
        if self.speedup is not None and not (self.speedup > 0 and math.isfinite(self.speedup)):
            raise BadInputError(f"--speedup must be a positive factor, got {self.speedup}")
        if self.skip < 0 or (self.limit is not None and self.limit < 0):
            raise BadInputError("--skip and --limit must be 0 or more")
        if self.label_delay < dt.timedelta(0):
            raise BadInputError("the label delay must not be negative")

    @property
    def rejects_file(self) -> Path:
        return self.rejects_path or self.path.with_name(self.path.name + ".rejects.csv")


def parse_duration(text: str | float | int) -> dt.timedelta:
    """7d, 12h, 30m, 90s, or a bare number of days."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        if text < 0 or not math.isfinite(text):
            raise BadInputError(f"duration {text!r} must be a non-negative number of days")
        return dt.timedelta(days=text)
    match = _DURATION_RE.match(str(text))
    if not match:
        raise BadInputError(f"duration {text!r}: expected a number and a unit d, h, m or s, e.g. 7d or 12h")
    return dt.timedelta(seconds=float(match.group(1)) * _DURATION_UNITS[match.group(2)])
