"""What a replay is asked to do: the file, its layout, labels, pacing and range."""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from typing import TYPE_CHECKING, Any

from fraudctl.config import DURATION_PATTERN
from fraudctl.errors import BadInputError
from fraudctl.data.layout import InputLayout

if TYPE_CHECKING:
    from fraudctl.config import Config

_DURATION_RE = re.compile(DURATION_PATTERN)
_DURATION_UNITS = {"d": 86_400, "h": 3_600, "m": 60, "s": 1, "": 86_400}
REJECTS_SUFFIX = ".rejects.csv"  # FILE's rejects are FILE.rejects.csv


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
    rejects_path: Path | None = None  # None: FILE.rejects.csv in rejects_dir
    rejects_dir: Path | None = None  # None: beside FILE

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

    @classmethod
    def from_config(cls, config: "Config", path: Path, **given: Any) -> "ReplayOptions":
        """The options of a replay of `path`: what the caller gives (None: not given) over the config's
        replay section."""
        settings = config.replay
        defaults = {"label_delay": label_delay(config), "max_errors": settings.max_errors,
                    "rejects_dir": settings.rejects_dir}
        return cls(path=path, **{**defaults, **{name: value for name, value in given.items() if value is not None}})

    @property
    def rejects_file(self) -> Path:
        if self.rejects_path is not None:
            return self.rejects_path
        folder = self.rejects_dir if self.rejects_dir is not None else self.path.parent
        return folder / (self.path.name + REJECTS_SUFFIX)


def label_delay(config: "Config") -> dt.timedelta:
    """How long after its transaction a label is sent: replay.label_delay, else model.label_delay_days, so
    that by default labels arrive when training assumes they are known."""
    if config.replay.label_delay is not None:
        return parse_duration(config.replay.label_delay)
    return dt.timedelta(days=config.model.label_delay_days)


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
